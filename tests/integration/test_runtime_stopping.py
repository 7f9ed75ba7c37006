"""Stopping the local runtime is prompt: a function's loader is killed as Lambda ends an environment, even
in the middle of its handler's import, and an invocation that comes while it stops fails as an invocation
(its event source retries it) instead of raising out of the event source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgflow_local.functions import ContainerExitedError, LocalFunction
from imgflow_local.stack import FunctionSpec
from support import REGION


def slow_import_function(tmp_path: Path) -> LocalFunction:
    (tmp_path / "slow_handler.py").write_text(
        "import time\ntime.sleep(600)  # an import that never ends while the test runs\n\n"
        "def lambda_handler(event, context):\n    return event\n"
    )
    spec = FunctionSpec(
        logical_id="SlowFunction",
        code_uri=tmp_path,
        handler="slow_handler.lambda_handler",
        timeout=5,
        memory_mb=128,
        environment={},
        sqs_sources=(),
        routes=(),
    )
    return LocalFunction(spec, REGION, environment=dict(os.environ), max_containers=1)


def test_given_a_loader_still_importing_when_the_function_stops_then_its_process_is_gone(tmp_path: Path) -> None:
    function = slow_import_function(tmp_path)
    function.start()
    [loader] = function.pids()

    function.stop()

    with pytest.raises(ProcessLookupError):
        os.kill(loader, 0)  # killed and reaped, not left to finish its import


def test_given_a_stopped_function_when_invoked_then_the_invocation_fails_as_its_container_exiting(
    tmp_path: Path,
) -> None:
    function = slow_import_function(tmp_path)
    function.stop()

    invocation = function.invocation({"records": []})

    assert isinstance(invocation.error, ContainerExitedError)
    assert "stopping" in str(invocation.error)
    with pytest.raises(ContainerExitedError):
        function.invoke({"records": []})
