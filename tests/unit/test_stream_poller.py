"""Unit tests of the local DynamoDB stream mapping: checkpoints, bisection, retries and the on-failure record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamLambdaOnFailureDestinationModel

from imgflow_local import stream_poller
from imgflow_local.stack import StreamEventSource
from imgflow_local.stream_poller import StreamPoller

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/stream/2026-12-02T00:00:00.000"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:publisher-dlq"


def source(**changes: Any) -> StreamEventSource:
    values: dict[str, Any] = {
        "name": "JobChanges",
        "table_name": "jobs",
        "starting_position": "TRIM_HORIZON",
        "batch_size": 100,
        "report_batch_item_failures": True,
        "bisect_on_error": True,
        "maximum_retry_attempts": 2,
        "maximum_record_age": -1,
        "on_failure": DLQ_ARN,
    }
    return StreamEventSource(**(values | changes))


def records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "eventName": "MODIFY",
            "eventSourceARN": STREAM_ARN,
            "dynamodb": {"SequenceNumber": str(100 + number), "ApproximateCreationDateTime": 1_700_000_000.0},
        }
        for number in range(count)
    ]


class Function:
    """Fails every invocation that holds a poisoned record: by raising, or by reporting it."""

    name = "PublisherFunction"

    def __init__(self, poisoned: set[str], report: bool = False, heal_after: int | None = None) -> None:
        self.poisoned, self.report, self.heal_after = poisoned, report, heal_after
        self.batches: list[list[str]] = []

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
        self.batches.append(numbers)
        if self.heal_after is not None and len(self.batches) > self.heal_after:
            self.poisoned = set()
        bad = [number for number in numbers if number in self.poisoned]
        if bad and not self.report:
            raise RuntimeError("the function failed")
        return {"batchItemFailures": [{"itemIdentifier": number} for number in bad]}


class Queues:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"https://sqs.local/{QueueName}"}

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append((QueueUrl, MessageBody))


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_poller, "_MAX_BACKOFF", 0.0)


def deliver(function: Function, batch: list[dict[str, Any]], **changes: Any) -> Queues:
    queues = Queues()
    poller = StreamPoller(None, None, queues, source(**changes), function, "arn:aws:lambda:::function:publisher")
    poller._deliver(batch)
    return queues


def test_given_a_record_that_always_raises_then_it_is_isolated_retried_and_recorded_and_the_rest_go_on_in_order() -> (
    None
):
    function = Function(poisoned={"102"})

    queues = deliver(function, records(4))

    # Halved until the record is alone (halving is no retry), then the first try and two retries.
    assert function.batches == [
        ["100", "101", "102", "103"],
        ["100", "101"],
        ["102", "103"],
        ["102"],
        ["102"],
        ["102"],
        ["103"],
    ]
    [(url, body)] = queues.sent
    assert url == "https://sqs.local/publisher-dlq"
    record = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(json.loads(body))
    info = record.ddb_stream_batch_info
    assert (info.start_sequence_number, info.end_sequence_number, info.batch_size) == ("102", "102", 1)
    assert info.stream_arn == STREAM_ARN
    assert (record.request_context.condition, record.request_context.approximate_invoke_count) == (
        "RetryAttemptsExhausted",
        3,
    )


def test_given_a_reported_failure_then_the_batch_resumes_from_that_record_and_nothing_before_it_is_sent_again() -> None:
    function = Function(poisoned={"101"}, report=True, heal_after=1)

    queues = deliver(function, records(3))

    assert function.batches == [["100", "101", "102"], ["101", "102"]]
    assert queues.sent == []


class NamesAStranger(Function):
    """Reports, once, a failure of a record that is not in the batch."""

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        super().invoke(event)
        return {"batchItemFailures": [{"itemIdentifier": "999"}] if len(self.batches) == 1 else []}


def test_given_an_identifier_that_names_no_record_then_the_whole_batch_is_retried() -> None:
    function = NamesAStranger(poisoned=set())

    deliver(function, records(2))

    assert function.batches == [["100", "101"], ["100", "101"]]


def test_given_records_older_than_the_maximum_age_then_they_are_given_up_as_too_old() -> None:
    function = Function(poisoned={"100"})

    queues = deliver(function, records(1), maximum_retry_attempts=-1, maximum_record_age=60)

    [(_, body)] = queues.sent
    assert json.loads(body)["requestContext"]["condition"] == "RecordAgeExceeded"
    assert function.batches == [["100"]]


def test_given_a_moto_record_then_it_is_handed_on_as_lambda_does() -> None:
    record = {
        "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": "1", "ApproximateCreationDateTime": datetime(2026, 12, 2, tzinfo=UTC)},
    }

    handed = stream_poller.lambda_record(record, STREAM_ARN)

    assert handed["eventSourceARN"] == STREAM_ARN
    assert handed["dynamodb"]["ApproximateCreationDateTime"] == datetime(2026, 12, 2, tzinfo=UTC).timestamp()
