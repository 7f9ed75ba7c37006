"""Writes the JSON Schema of every lifecycle event's detail to a folder: `python -m imgflow.schemas DIR`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from imgflow.lifecycle import DETAIL_TYPES, LifecycleDetail


def schema_file_name(detail: type[LifecycleDetail]) -> str:
    return detail.detail_type.lower().replace(" ", "_") + ".json"


def schema_of(detail: type[LifecycleDetail]) -> str:
    schema = detail.model_json_schema(mode="serialization")
    schema["title"] = detail.detail_type
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(folder: str) -> None:
    for detail in DETAIL_TYPES:
        (Path(folder) / schema_file_name(detail)).write_text(schema_of(detail))


if __name__ == "__main__":
    main(sys.argv[1])
