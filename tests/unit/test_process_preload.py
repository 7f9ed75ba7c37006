"""`imgflow process` imports only the handlers an upload runs as the runtime starts; the names it gives
must be the template's, or the runtime refuses them rather than starting every function lazily."""

from __future__ import annotations

import pytest

from imgflow_local.cli import UPLOAD_FUNCTIONS
from imgflow_local.runtime import LocalRuntime, RuntimeOptions
from imgflow_local.stack import LocalStack
from support import REGION, ROOT


def test_the_functions_process_preloads_are_the_templates() -> None:
    functions = {spec.logical_id for spec in LocalStack(ROOT / "template.yaml", REGION).functions()}

    assert not UPLOAD_FUNCTIONS - functions
    assert functions - UPLOAD_FUNCTIONS  # the rest start at their first invocation


def test_given_a_preload_naming_no_function_of_the_template_then_the_runtime_refuses_it() -> None:
    options = RuntimeOptions(template=ROOT / "template.yaml", preload=frozenset({"ApiFunction", "NoSuchFunction"}))

    with pytest.raises(ValueError, match="NoSuchFunction"):
        LocalRuntime(options)
