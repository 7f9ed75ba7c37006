"""The local runtime runs functions as Lambda does: every invocation in a container of its own that
serves one invocation at a time, so overlapping invocations never share a handler's module or class
state; timeouts, crashes, import errors and unserializable results fail as they fail on Lambda.

The probe function (tests/fixtures/functions/probe) keeps state where real handlers keep it; its
invocations meet through files, so "overlapping" is certain, not a matter of timing. Each overlap test
failed when the runtime ran invocations on threads of one process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imgflow_local.functions import (
    ContainerExitedError,
    FunctionError,
    FunctionThrottledError,
    FunctionTimeoutError,
    LocalFunction,
    Zygote,
)
from imgflow_local.sqs_poller import SqsPoller
from imgflow_local.stack import FunctionSpec, SqsEventSource
from support import FIXTURES, REGION

PROBE = FIXTURES / "functions" / "probe"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:probe"


def spec(
    code_uri: Path = PROBE,
    handler: str = "probe_handler.lambda_handler",
    timeout: int = 20,
    reserved_concurrency: int | None = None,
) -> FunctionSpec:
    return FunctionSpec(
        logical_id="ProbeFunction",
        code_uri=code_uri,
        handler=handler,
        timeout=timeout,
        memory_mb=256,
        environment={"PROBE_SETTING": "from-the-template"},
        sqs_sources=(),
        routes=(),
        reserved_concurrency=reserved_concurrency,
    )


@pytest.fixture(params=["own loader process", "loader forked by a zygote"])
def make_function(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalFunction]]:
    """Functions whose loader is a process of its own, or forked by the runtime's zygote, as `imgflow serve`
    does: every test here holds for both. The zygote's environment is not the function's."""
    zygote = Zygote({**os.environ, "PROBE_SETTING": "from-the-zygote"}) if "zygote" in request.param else None
    started: list[LocalFunction] = []

    def make(function_spec: FunctionSpec | None = None, max_containers: int = 4) -> LocalFunction:
        function_spec = function_spec or spec()
        environment = {**os.environ, **function_spec.environment}
        function = LocalFunction(
            function_spec, REGION, environment=environment, max_containers=max_containers, zygote=zygote
        )
        started.append(function)
        return function

    yield make
    for function in started:
        function.stop()
    if zygote is not None:
        zygote.stop()


def sqs_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": body["name"],
                "receiptHandle": body["name"],
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }


def test_given_overlapping_invocations_then_each_sees_only_its_own_module_state(
    make_function: Callable[..., LocalFunction], tmp_path: Path
) -> None:
    function = make_function()
    names = ["first", "second", "third"]

    def remember(name: str) -> dict[str, Any]:
        others = [other for other in names if other != name]
        result: dict[str, Any] = function.invoke(
            {"action": "remember", "name": name, "barrier": str(tmp_path), "wait_for": others}
        )
        return result

    with ThreadPoolExecutor(len(names)) as invokers:
        results = list(invokers.map(remember, names))

    assert [result["name"] for result in results] == names
    assert len({result["pid"] for result in results}) == len(names), "overlapping invocations shared a process"


def test_given_two_overlapping_batches_one_failing_then_each_reports_exactly_its_own_failures(
    make_function: Callable[..., LocalFunction], tmp_path: Path
) -> None:
    function = make_function()
    barrier = str(tmp_path)
    # Batch A fails its first record, then holds its second until batch B has started; B's start resets
    # a BatchProcessor shared by both, which wiped A's failure (so its message was deleted).
    batch_a = sqs_event(
        {"name": "a-fails", "fail": True},
        {"name": "a-holds", "barrier": barrier, "wait_for": ["b-runs"]},
    )
    batch_b = sqs_event({"name": "b-runs", "barrier": barrier, "wait_for": ["a-holds"]})

    with ThreadPoolExecutor(2) as invokers:
        result_a, result_b = invokers.map(function.invoke, [batch_a, batch_b])

    assert result_a == {"batchItemFailures": [{"itemIdentifier": "a-fails"}]}
    assert result_b == {"batchItemFailures": []}


def test_given_a_failed_record_in_one_of_two_overlapping_batches_when_polled_then_its_message_is_not_deleted(
    make_function: Callable[..., LocalFunction], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    function = make_function()
    barrier = str(tmp_path)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="probe", Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
        source = SqsEventSource("Probe", QUEUE_ARN, 2, 0, True, maximum_concurrency=2)
        poller = SqsPoller(sqs, queue_url, source, function, REGION)
        for body in (
            {"name": "a-fails", "fail": True},
            {"name": "a-holds", "barrier": barrier, "wait_for": ["b-runs"]},
        ):
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        poller.start()
        try:
            # Batch B goes out only once batch A is running, so the two batches overlap.
            _wait_for(lambda: (tmp_path / "a-holds.started").exists())
            body_b = {"name": "b-runs", "barrier": barrier, "wait_for": ["a-holds"]}
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body_b))
            _wait_for(lambda: (tmp_path / "b-runs.started").exists())
        finally:
            poller.stop()
        # Both batches have settled: successes deleted, the failure left for its retry.
        left = _receive_all(sqs, queue_url)

    assert [json.loads(message["Body"])["name"] for message in left] == ["a-fails"]


def test_given_an_invocation_past_its_timeout_then_it_fails_and_the_next_one_starts_a_new_container(
    make_function: Callable[..., LocalFunction],
) -> None:
    function = make_function(spec(timeout=1), max_containers=1)
    warm = function.invoke({})

    with pytest.raises(FunctionTimeoutError):
        function.invoke({"action": "sleep", "seconds": 30})

    after = function.invoke({})
    assert after["pid"] != warm["pid"]
    assert after["invocations"] == 1, "the new container started from the freshly imported module"


def test_given_a_container_that_crashes_then_the_invocation_fails_and_the_next_one_works(
    make_function: Callable[..., LocalFunction],
) -> None:
    function = make_function(max_containers=1)

    with pytest.raises(ContainerExitedError):
        function.invoke({"action": "crash"})

    assert function.invoke({})["invocations"] == 1


def test_given_a_handler_that_raises_then_the_error_is_reported_as_lambda_reports_it_and_the_container_stays_warm(
    make_function: Callable[..., LocalFunction],
) -> None:
    function = make_function(max_containers=1)
    first = function.invoke({})

    with pytest.raises(FunctionError) as raised:
        function.invoke({"action": "raise"})

    assert raised.value.error_type == "KeyError"
    assert any("probe_handler.py" in line for line in raised.value.stack_trace)
    again = function.invoke({})
    assert (again["pid"], again["invocations"]) == (first["pid"], 3)


def test_given_a_result_that_is_not_json_then_it_fails_as_a_marshal_error(
    make_function: Callable[..., LocalFunction],
) -> None:
    function = make_function()

    with pytest.raises(FunctionError) as raised:
        function.invoke({"action": "unserializable"})

    assert raised.value.error_type == "Runtime.MarshalError"


def test_given_a_handler_whose_import_fails_then_every_invocation_fails_with_an_import_error(
    make_function: Callable[..., LocalFunction],
) -> None:
    function = make_function(spec(code_uri=FIXTURES / "functions" / "broken", handler="broken_handler.lambda_handler"))

    for _ in range(2):
        with pytest.raises(FunctionError) as raised:
            function.invoke({})
        assert raised.value.error_type == "Runtime.ImportModuleError"
        assert "imgflow_no_such_module" in str(raised.value)


def test_given_a_full_pool_then_an_invocation_waits_for_a_free_container_instead_of_sharing_one(
    make_function: Callable[..., LocalFunction], tmp_path: Path
) -> None:
    function = make_function(max_containers=2)

    def hold(name: str) -> dict[str, Any]:
        result: dict[str, Any] = function.invoke(
            {"action": "remember", "name": name, "barrier": str(tmp_path), "wait_for": ["go"]}
        )
        return result

    with ThreadPoolExecutor(3) as invokers:
        futures = [invokers.submit(hold, name) for name in ("one", "two", "three")]
        _wait_for(lambda: len(list(tmp_path.glob("*.started"))) == 2)
        assert function.containers == 2
        (tmp_path / "go.started").touch()
        results = [future.result() for future in futures]

    assert [result["name"] for result in results] == ["one", "two", "three"]
    assert len({result["pid"] for result in results}) == 2


def test_given_reserved_concurrency_when_more_invocations_come_at_once_then_the_extra_one_is_throttled(
    make_function: Callable[..., LocalFunction], tmp_path: Path
) -> None:
    function = make_function(spec(reserved_concurrency=1), max_containers=4)

    with ThreadPoolExecutor(1) as invokers:
        held = invokers.submit(
            function.invoke, {"action": "remember", "name": "held", "barrier": str(tmp_path), "wait_for": ["go"]}
        )
        _wait_for(lambda: (tmp_path / "held.started").exists())
        with pytest.raises(FunctionThrottledError):
            function.invoke({})
        (tmp_path / "go.started").touch()
        assert held.result()["name"] == "held"

    assert function.max_containers == 1
    assert function.invoke({})["invocations"] == 2


def test_given_the_template_environment_then_the_handler_sees_it_with_its_context(
    make_function: Callable[..., LocalFunction],
) -> None:
    result = make_function().invoke({"environment": ["PROBE_SETTING"]})

    assert result["environment"] == {"PROBE_SETTING": "from-the-template"}
    assert result["function_name"] == "ProbeFunction"
    assert 0 < result["remaining_ms"] <= 20_000


def test_given_a_zygote_when_its_function_stops_then_the_loader_is_gone_and_the_zygote_exits_of_itself() -> None:
    zygote = Zygote(dict(os.environ))
    function = LocalFunction(
        spec(), REGION, environment={**os.environ, **spec().environment}, max_containers=1, zygote=zygote
    )
    assert function.invoke({})["invocations"] == 1
    loader = function.pids()[0]

    function.stop()
    zygote.stop()

    assert zygote.process.returncode == 0, "the zygote was killed rather than exiting once its loaders had"
    with pytest.raises(ProcessLookupError):
        os.kill(loader, 0)  # killed, and waited for by the zygote: not even a zombie is left


def _wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the condition did not hold within {timeout} s")
        time.sleep(0.05)


def _receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """What the queue still holds, once no message is in flight: each one not deleted is visible again
    (its visibility is 2 s)."""

    def in_flight() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"])

    _wait_for(lambda: in_flight() == 0)
    messages: list[dict[str, Any]] = []
    while received := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages", []
    ):
        messages += received
    return messages
