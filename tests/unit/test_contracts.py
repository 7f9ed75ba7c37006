"""The files generated from code stay in step with it: event schemas and the layer's requirements."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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


def test_given_the_api_function_when_imported_then_pillow_is_not_loaded() -> None:
    # The api function's cold start must not pay for the imaging stack.
    code = "import sys, api_handler; print('PIL' in sys.modules, 'imgflow_local' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/imgflow", "functions/api"))}
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]


def test_given_the_layer_then_it_never_imports_the_local_runtime() -> None:
    offenders = [
        path.name
        for path in (ROOT / "layers" / "imgflow" / "imgflow").glob("*.py")
        if "imgflow_local" in path.read_text()
    ]
    assert offenders == []
