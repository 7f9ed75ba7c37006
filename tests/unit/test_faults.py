"""IMGFLOW_FAULTS: the SPEC grammar, decisions that depend on (seed, function, kind, key) only, and the
throttling errors a container's AWS calls get, as botocore reads and retries them."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from imgflow_local.faults import FaultSpec, FaultSpecError, FunctionFaults, InvocationObserver, decide


def test_given_a_spec_then_unprefixed_kinds_are_the_pipelines_and_a_function_prefix_overrides_them() -> None:
    spec = FaultSpec.parse(
        "crash_after=0.1, duplicate=0.2,throttle=0.05,VariantsFunction.timeout=0.5,IngestFunction.duplicate=0"
    )

    assert spec.for_function("VariantsFunction", queue_triggered=True) == {
        "crash_after": 0.1,
        "duplicate": 0.2,
        "throttle": 0.05,
        "timeout": 0.5,
    }
    assert spec.for_function("IngestFunction", queue_triggered=True) == {"crash_after": 0.1, "throttle": 0.05}
    assert spec.for_function("EditFunction", queue_triggered=True) == {
        "crash_after": 0.1,
        "duplicate": 0.2,
        "throttle": 0.05,
    }


def test_given_a_function_no_queue_triggers_then_only_its_own_entries_fault_it() -> None:
    spec = FaultSpec.parse("crash_after=0.1,ApiFunction.throttle=0.05")

    assert spec.for_function("ApiFunction", queue_triggered=False) == {"throttle": 0.05}
    assert spec.for_function("ExpireFunction", queue_triggered=False) == {}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("crash=0.1", "KIND one of"),
        ("crash_after", "KIND one of"),
        ("crash_after=1.5", "from 0 to 1"),
        ("duplicate=often", "from 0 to 1"),
        ("timeout=-0.1", "from 0 to 1"),
    ],
)
def test_given_a_malformed_entry_then_the_spec_is_refused_saying_why(text: str, complaint: str) -> None:
    with pytest.raises(FaultSpecError, match=complaint):
        FaultSpec.parse(text)


def test_given_a_function_the_template_does_not_have_then_the_spec_is_refused() -> None:
    with pytest.raises(FaultSpecError, match="no function VariantFunction"):
        FaultSpec.parse("VariantFunction.timeout=1").check_functions({"VariantsFunction", "IngestFunction"})


def test_given_the_same_seed_function_kind_and_key_then_the_decision_is_the_same_whoever_asks_first() -> None:
    keys = [f"message-{n}:1" for n in range(2000)]

    first = [decide(7, "VariantsFunction", "crash_after", key, 0.1) for key in keys]
    in_reverse = [decide(7, "VariantsFunction", "crash_after", key, 0.1) for key in reversed(keys)]

    assert first == in_reverse[::-1]
    assert 150 < sum(first) < 250, "about a tenth of the keys"
    assert first != [decide(8, "VariantsFunction", "crash_after", key, 0.1) for key in keys]
    assert first != [decide(7, "IngestFunction", "crash_after", key, 0.1) for key in keys]


def test_given_invocations_without_messages_then_their_faults_follow_their_order_and_are_counted() -> None:
    def faults() -> list[str | None]:
        function = FunctionFaults("ApiFunction", {"crash_before": 0.3, "timeout": 0.3}, seed=3)
        decided = [function.invocation_fault(None) for _ in range(200)]
        assert sum(function.injected.values()) == sum(1 for fault in decided if fault)
        return decided

    decided = faults()
    assert decided == faults()
    assert {"crash_before", "timeout", None} == set(decided)


def _client(service: str, observer: InvocationObserver, attempts: int = 1) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client(service, config=config, endpoint_url="http://127.0.0.1:9")  # type: ignore[call-overload]
    observer.install(client.meta.events.register)
    observer.begin("request-1")
    return client


@pytest.mark.parametrize(
    ("service", "call", "code", "status"),
    [
        (
            "dynamodb",
            lambda c: c.get_item(TableName="t", Key={"k": {"S": "1"}}),
            "ProvisionedThroughputExceededException",
            400,
        ),
        ("s3", lambda c: c.get_object(Bucket="b", Key="k"), "SlowDown", 503),
        ("sqs", lambda c: c.send_message(QueueUrl="http://127.0.0.1:9/1/q", MessageBody="x"), "RequestThrottled", 400),
        (
            "events",
            lambda c: c.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]),
            "ThrottlingException",
            400,
        ),
    ],
)
def test_given_throttling_then_each_service_answers_its_own_error_code_as_botocore_reads_it(
    service: str, call: Any, code: str, status: int
) -> None:
    observer = InvocationObserver("VariantsFunction", throttle=1.0, seed=0)

    with pytest.raises(ClientError) as raised:
        call(_client(service, observer))

    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert observer.throttled == 1


def test_given_throttling_then_the_sdks_own_retries_see_it_and_retry() -> None:
    observer = InvocationObserver("VariantsFunction", throttle=1.0, seed=0)

    with pytest.raises(ClientError) as raised:
        _client("dynamodb", observer, attempts=2).describe_table(TableName="t")

    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert observer.throttled == 2


def test_given_a_handler_that_sets_a_messages_visibility_then_the_observer_notes_its_receipt_handle() -> None:
    observer = InvocationObserver("EditFunction", throttle=0.0, seed=0)
    client = _client("sqs", observer)
    stubber = Stubber(client)
    stubber.add_response("change_message_visibility", {})
    stubber.add_response("change_message_visibility_batch", {"Successful": [{"Id": "1"}], "Failed": []})

    with stubber:
        client.change_message_visibility(QueueUrl="http://q", ReceiptHandle="handle-a", VisibilityTimeout=30)
        client.change_message_visibility_batch(
            QueueUrl="http://q", Entries=[{"Id": "1", "ReceiptHandle": "handle-b", "VisibilityTimeout": 30}]
        )

    assert observer.visibility_set == ["handle-a", "handle-b"]
    observer.begin("request-2")
    assert observer.visibility_set == []
