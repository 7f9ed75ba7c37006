"""The files generated from code stay in step with it: event schemas and the Lambda artifacts' locks."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from imgflow.lifecycle import DETAIL_TYPES
from imgflow.schemas import schema_file_name, schema_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("detail", DETAIL_TYPES, ids=lambda d: d.detail_type)
def test_given_a_lifecycle_event_then_its_committed_schema_matches_the_model(detail: type) -> None:
    committed = (ROOT / "events" / "schemas" / schema_file_name(detail)).read_text()
    assert committed == schema_of(detail), "run `make schemas`"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses, and the scripts that import it, look it up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


LAYER_REQUIREMENTS = load_script("layer_requirements")
PACKAGE = load_script("package")


def locked(lock: Path) -> dict[str, tuple[Requirement, int]]:
    """Each pinned package of a lock (by canonical name): its requirement and how many hashes it has."""
    pins: dict[str, tuple[Requirement, int]] = {}
    # A pin and its --hash options are one logical line, continued with backslashes.
    for entry in lock.read_text().replace("\\\n", " ").splitlines():
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        text, *hashes = entry.split("--hash=")
        requirement = Requirement(text.split("#")[0].strip())
        pins[canonicalize_name(requirement.name)] = (requirement, len(hashes))
    return pins


@pytest.mark.parametrize("artifact", LAYER_REQUIREMENTS.ARTIFACTS, ids=lambda a: str(a.lock.relative_to(ROOT)))
def test_given_pyproject_then_each_artifacts_lock_pins_every_runtime_dependency_in_range_with_hashes(
    artifact: Any,
) -> None:
    pins = locked(artifact.lock)

    for declared in map(Requirement, LAYER_REQUIREMENTS.declared(artifact)):
        assert canonicalize_name(declared.name) in pins, f"{declared.name} is not locked: run `make lock`"
        pin, _ = pins[canonicalize_name(declared.name)]
        (version,) = (spec.version for spec in pin.specifier if spec.operator == "==")
        assert declared.specifier.contains(version, prereleases=True), f"{pin} is outside {declared}: run `make lock`"
        assert declared.extras <= pin.extras, f"{pin} lacks the extras of {declared}: run `make lock`"
    unhashed = [name for name, (pin, hashes) in pins.items() if hashes == 0 or not str(pin.specifier).startswith("==")]
    assert unhashed == []


def test_given_the_locks_then_a_package_shipped_by_two_artifacts_has_one_version() -> None:
    versions: dict[str, set[str]] = {}
    for artifact in LAYER_REQUIREMENTS.ARTIFACTS:
        for name, (pin, _) in locked(artifact.lock).items():
            versions.setdefault(name, set()).add(str(pin.specifier))

    assert {name: found for name, found in versions.items() if len(found) > 1} == {}


def test_given_the_template_then_the_lean_functions_are_built_from_no_lock_with_pillow_or_gemini() -> None:
    application = PACKAGE.read_application(ROOT / "template.yaml")

    for name in PACKAGE.LEAN_FUNCTIONS:
        sources = [
            application.functions[name],
            *(application.layers[layer] for layer in application.function_layers[name]),
        ]
        pinned = {
            package
            for source in sources
            if (source / "requirements.txt").exists()
            for package in locked(source / "requirements.txt")
        }
        assert pinned.isdisjoint(PACKAGE.FORBIDDEN_IN_LEAN), name


def test_given_the_template_then_every_artifact_with_requirements_is_locked_and_no_function_has_over_5_layers() -> None:
    application = PACKAGE.read_application(ROOT / "template.yaml")
    sources = [*application.layers.values(), *application.functions.values()]

    with_requirements = {source / "requirements.txt" for source in sources if (source / "requirements.txt").exists()}
    assert with_requirements == {artifact.lock for artifact in LAYER_REQUIREMENTS.ARTIFACTS}
    assert all(len(layers) <= PACKAGE.MAX_LAYERS for layers in application.function_layers.values())


def test_given_the_api_function_when_imported_then_no_imaging_gemini_event_or_webhook_module_is_loaded() -> None:
    # Its artifact carries neither (only the shared layer), and its cold start must not pay for them; nor for
    # the lifecycle events (the publisher's) or the webhook models (loaded by the webhook routes' requests).
    unwanted = ("PIL", "google.genai", "imgflow_local", "imgflow.lifecycle", "imgflow.webhook_models")
    code = f"import sys, api_handler; print(*(m in sys.modules for m in {unwanted!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/imgflow", "functions/api"))}
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False"] * len(unwanted)


def test_given_the_layer_then_it_never_imports_the_local_runtime() -> None:
    offenders = [
        path.name
        for path in (ROOT / "layers" / "imgflow" / "imgflow").glob("*.py")
        if "imgflow_local" in path.read_text()
    ]
    assert offenders == []
