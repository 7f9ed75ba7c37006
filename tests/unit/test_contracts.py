"""The files generated from code stay in step with it: event schemas and the layer's requirements."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from imgflow.lifecycle import DETAIL_TYPES
from imgflow.schemas import schema_file_name, schema_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("detail", DETAIL_TYPES, ids=lambda d: d.detail_type)
def test_given_a_lifecycle_event_then_its_committed_schema_matches_the_model(detail: type) -> None:
    committed = (ROOT / "events" / "schemas" / schema_file_name(detail)).read_text()
    assert committed == schema_of(detail), "run `make schemas`"


def test_given_pyproject_then_the_layer_requirements_are_generated_from_it() -> None:
    spec = importlib.util.spec_from_file_location("layer_requirements", ROOT / "scripts" / "layer_requirements.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "layers" / "imgflow" / "requirements.txt").read_text() == module.render(), (
        "run `make layer-requirements`"
    )
