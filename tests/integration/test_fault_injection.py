"""Faults injected through the local runtime (IMGFLOW_FAULTS), each kind on the probe function
(tests/fixtures/functions/probe) with probability 1: a crash before or after the handler, a timeout
after it, throttled AWS calls inside the container, and duplicate deliveries by the SQS poller; and
`--retry-delay`, which shortens the queue's visibility timeout but never a delay the handler set."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imgflow_local.faults import FunctionFaults
from imgflow_local.functions import ContainerExitedError, FunctionTimeoutError, LocalFunction
from imgflow_local.sqs_poller import SqsPoller
from imgflow_local.stack import FunctionSpec, SqsEventSource
from support import FIXTURES, REGION

QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:probe"


def probe_spec(timeout: int = 20) -> FunctionSpec:
    return FunctionSpec(
        logical_id="ProbeFunction",
        code_uri=FIXTURES / "functions" / "probe",
        handler="probe_handler.lambda_handler",
        timeout=timeout,
        memory_mb=256,
        environment={},
        sqs_sources=(),
        routes=(),
    )


@pytest.fixture
def faulted() -> Iterator[Callable[..., LocalFunction]]:
    started: list[LocalFunction] = []

    def make(probabilities: dict[str, float], timeout: int = 20) -> LocalFunction:
        faults = FunctionFaults("ProbeFunction", probabilities, seed=1)
        environment = {**os.environ, **faults.environment()}
        function = LocalFunction(probe_spec(timeout), REGION, environment, max_containers=2, faults=faults)
        started.append(function)
        return function

    yield make
    for function in started:
        function.stop()


def remember(tmp_path: Path) -> dict[str, Any]:
    return {"action": "remember", "name": "ran", "barrier": str(tmp_path)}


def test_given_crash_before_then_the_container_dies_and_the_handler_never_ran(
    faulted: Callable[..., LocalFunction], tmp_path: Path
) -> None:
    with pytest.raises(ContainerExitedError):
        faulted({"crash_before": 1.0}).invoke(remember(tmp_path))

    assert not (tmp_path / "ran.started").exists()


def test_given_crash_after_then_the_handler_ran_but_its_result_never_arrives(
    faulted: Callable[..., LocalFunction], tmp_path: Path
) -> None:
    function = faulted({"crash_after": 1.0})

    with pytest.raises(ContainerExitedError):
        function.invoke(remember(tmp_path))

    assert (tmp_path / "ran.started").exists()
    assert function.containers == 0, "the dead container is not reused"


def test_given_timeout_then_the_invocation_outlives_its_timeout_after_the_handler_ran_and_is_killed(
    faulted: Callable[..., LocalFunction], tmp_path: Path
) -> None:
    function = faulted({"timeout": 1.0}, timeout=1)

    with pytest.raises(FunctionTimeoutError):
        function.invoke(remember(tmp_path))

    assert (tmp_path / "ran.started").exists()
    assert function.containers == 0


def test_given_throttle_then_the_handlers_aws_calls_get_the_services_throttling_error_and_the_sdk_retries(
    faulted: Callable[..., LocalFunction],
) -> None:
    function = faulted({"throttle": 1.0})

    result = function.invoke({"action": "aws_call"})

    assert result == {"code": "ProvisionedThroughputExceededException", "retries": 1}
    assert function._faults is not None
    assert function._faults.injected["throttle"] == 2


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for variable, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        yield sqs, sqs.create_queue(QueueName="probe", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]


def poll(function: LocalFunction, sqs: Any, queue_url: str, faults: bool, retry_delay: int | None = None) -> SqsPoller:
    source = SqsEventSource("Probe", QUEUE_ARN, 1, 0, True, maximum_concurrency=2)
    poller = SqsPoller(
        sqs, queue_url, source, function, REGION, retry_delay=retry_delay, faults=function._faults if faults else None
    )
    poller.start()
    return poller


def test_given_duplicate_then_an_sqs_message_is_handled_twice_and_then_deleted(
    faulted: Callable[..., LocalFunction], queue: tuple[Any, str], tmp_path: Path
) -> None:
    sqs, queue_url = queue
    log = tmp_path / "deliveries"
    function = faulted({"duplicate": 1.0})
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"name": "m", "log": str(log)}))

    poller = poll(function, sqs, queue_url, faults=True)
    try:
        _wait_for(lambda: log.exists() and len(log.read_text().split()) == 2)
        _wait_for(lambda: _in_queue(sqs, queue_url) == 0)
    finally:
        poller.stop()

    first, second = log.read_text().split()
    assert first == second, "the same message twice"


def test_given_duplicate_then_an_s3_notification_comes_again_as_a_second_message_once(
    faulted: Callable[..., LocalFunction], queue: tuple[Any, str], tmp_path: Path
) -> None:
    sqs, queue_url = queue
    log = tmp_path / "deliveries"
    function = faulted({"duplicate": 1.0})
    notification = {"Records": [{"eventSource": "aws:s3"}], "log": str(log)}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(notification))

    poller = poll(function, sqs, queue_url, faults=True)
    try:
        _wait_for(lambda: log.exists() and len(log.read_text().split()) == 3)
        _wait_for(lambda: _in_queue(sqs, queue_url) == 0)
        time.sleep(1)  # a copy of the copy would have been received by now
    finally:
        poller.stop()

    # The notification once, and its copy (a message of its own) twice: SQS duplicates it in its turn.
    deliveries = log.read_text().split()
    assert sorted(deliveries.count(message) for message in set(deliveries)) == [1, 2]


def test_given_retry_delay_then_a_failed_message_comes_back_sooner_but_one_whose_delay_the_handler_set_does_not(
    faulted: Callable[..., LocalFunction], queue: tuple[Any, str], tmp_path: Path
) -> None:
    sqs, queue_url = queue
    log = tmp_path / "deliveries"
    function = faulted({})
    for name, sets_delay in (("plain", False), ("delayed", True)):
        body = {"name": name, "fail": True, "log": str(log), "set_visibility": sets_delay}
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))

    poller = poll(function, sqs, queue_url, faults=False, retry_delay=1)
    try:
        # Handed twice: the failed message came back after a second, not the queue's 30.
        _wait_for(lambda: log.exists() and len(log.read_text().split()) >= 3)
        time.sleep(1)
    finally:
        poller.stop()

    counts = {message: log.read_text().split().count(message) for message in set(log.read_text().split())}
    assert sorted(counts.values())[0] == 1, "the message whose delay the handler set stayed away"
    assert sorted(counts.values())[1] >= 2


def _in_queue(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the condition did not hold within {timeout} s")
        time.sleep(0.05)
