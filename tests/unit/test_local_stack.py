"""Unit tests of how the local runtime reads template.yaml: names, wiring and intrinsic functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgflow.webhooks import DELIVERY_ATTEMPTS, RETRY_SCHEDULE
from imgflow_local.http_api import bind
from imgflow_local.stack import HttpRoute, LocalStack, RouteThrottle
from imgflow_local.template import Resolver, parameter_defaults
from imgflow_local.throttle import TokenBucket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> LocalStack:
    return LocalStack(ROOT / "template.yaml", "us-east-1", stack_name="imgflow-unit")


def test_given_the_template_then_every_function_and_its_event_sources_are_read(stack: LocalStack) -> None:
    functions = {f.logical_id: f for f in stack.functions()}
    assert set(functions) == {
        "IngestFunction",
        "VariantsFunction",
        "ApiFunction",
        "SweepFunction",
        "EditFunction",
        "WebhookFanOutFunction",
        "WebhookDeliveryFunction",
        "PublisherFunction",
    }
    [ingest_source] = functions["IngestFunction"].sqs_sources
    assert ingest_source.queue_arn.endswith(":imgflow-unit-IngestQueue")
    assert ingest_source.report_batch_item_failures
    assert ingest_source.maximum_concurrency == 5
    assert ingest_source.batch_size == 10
    assert functions["VariantsFunction"].sqs_sources[0].batch_size == 1
    [changes] = functions["PublisherFunction"].stream_sources
    assert (changes.table_name, changes.starting_position) == ("imgflow-unit-JobsTable", "TRIM_HORIZON")
    assert changes.report_batch_item_failures
    assert changes.bisect_on_error
    assert (changes.maximum_retry_attempts, changes.maximum_record_age) == (10, 21600)
    assert str(changes.on_failure).endswith(":imgflow-unit-PublisherDeadLetterQueue")
    assert [s.expression for s in functions["SweepFunction"].schedules] == ["rate(5 minutes)"]
    assert {(r.method, r.path) for r in functions["ApiFunction"].routes} >= {
        ("POST", "/uploads"),
        ("GET", "/jobs/{job_id}"),
        ("GET", "/health"),
    }


def test_given_the_template_then_function_environment_resolves_to_local_names(stack: LocalStack) -> None:
    env = stack.functions()[0].environment
    assert env["UPLOADS_BUCKET"] == "imgflow-unit-uploads-123456789012-us-east-1"
    assert env["JOBS_TABLE"] == "imgflow-unit-JobsTable"
    assert env["VARIANTS_QUEUE_URL"].endswith("/imgflow-unit-VariantsQueue")
    assert env["EVENT_BUS_NAME"] == "imgflow-unit-events"
    assert env["MAX_UPLOAD_BYTES"] == "26214400"


def test_given_queues_then_visibility_covers_six_timeouts_and_redrive_keeps_messages_longer(stack: LocalStack) -> None:
    consumers = {s.queue_arn: f for f in stack.functions() for s in f.sqs_sources}
    for logical_id in stack.of_type("AWS::SQS::Queue"):
        props = stack.resolver.resolve(stack.properties(logical_id))
        if "RedrivePolicy" not in props:
            continue
        assert int(props["RedrivePolicy"]["maxReceiveCount"]) >= 5
        dead_letter = stack.properties(stack.queue_logical_id(props["RedrivePolicy"]["deadLetterTargetArn"]))
        assert int(dead_letter["MessageRetentionPeriod"]) > int(props["MessageRetentionPeriod"])
        consumer = consumers.get(stack.attribute(logical_id, "Arn"))
        if consumer is not None:
            assert int(props["VisibilityTimeout"]) >= 6 * consumer.timeout


def test_given_intrinsics_when_resolved_then_ref_getatt_sub_and_join_work() -> None:
    resolver = Resolver(
        stack_name="s",
        region="eu-west-1",
        parameters={"Size": "5"},
        physical_id=lambda logical: f"phys-{logical}",
        attribute=lambda logical, attribute: f"{logical}.{attribute}",
    )
    assert resolver.resolve({"Ref": "Size"}) == "5"
    assert resolver.resolve({"Ref": "Bucket"}) == "phys-Bucket"
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "Queue.Arn"
    assert resolver.resolve({"Fn::Sub": "${AWS::StackName}-${Bucket}-${Queue.Arn}-${AWS::Region}"}) == (
        "s-phys-Bucket-Queue.Arn-eu-west-1"
    )
    assert resolver.resolve({"Fn::Sub": ["${X}-${Size}", {"X": {"Ref": "Bucket"}}]}) == "phys-Bucket-5"
    assert resolver.resolve({"Fn::Join": ["-", ["a", {"Ref": "Size"}]]}) == "a-5"


def test_given_parameter_overrides_then_unknown_names_are_refused() -> None:
    template = {"Parameters": {"A": {"Type": "Number", "Default": 1}}}
    assert parameter_defaults(template, {"A": "2"}) == {"A": "2"}
    with pytest.raises(ValueError, match="unknown"):
        parameter_defaults(template, {"B": "2"})


@pytest.mark.parametrize(
    ("path", "url", "parameters"),
    [
        ("/jobs/{job_id}", "/jobs/abc", {"job_id": "abc"}),
        ("/jobs/{job_id}", "/jobs/abc/edits", None),
        ("/jobs/{job_id}/edits", "/jobs/abc/edits", {"job_id": "abc"}),
        ("/files/{path+}", "/files/a/b/c", {"path": "a/b/c"}),
        ("/health", "/health", {}),
        ("/health", "/healthz", None),
    ],
)
def test_given_a_route_when_matched_then_path_parameters_are_extracted(
    path: str, url: str, parameters: dict[str, str] | None
) -> None:
    bound = bind(HttpRoute("GET", path), function=None)  # type: ignore[arg-type]
    match = bound.pattern.match(url)
    assert (match.groupdict() if match else None) == parameters


def test_given_the_template_then_a_deployment_must_name_its_origins_and_no_config_allows_every_origin(
    stack: LocalStack,
) -> None:
    allowed_origin = stack.template["Parameters"]["AllowedOrigin"]

    assert "Default" not in allowed_origin
    samconfig = (ROOT / "samconfig.toml").read_text()
    assert "AllowedOrigin=*" not in samconfig.replace('"', "")


def test_given_conditions_then_fn_if_picks_the_branch_and_a_false_condition_leaves_the_resource_out() -> None:
    local = LocalStack(ROOT / "template.yaml", "us-east-1", stack_name="imgflow-unit")
    with_cognito = LocalStack(
        ROOT / "template.yaml", "us-east-1", stack_name="imgflow-unit", parameter_overrides={"JwtIssuer": ""}
    )

    assert local.http_api().authorizers["OwnerJwt"].issuer == "https://imgflow.local/issuer"
    assert local.of_type("AWS::Cognito::UserPool") == {}
    assert list(with_cognito.of_type("AWS::Cognito::UserPool")) == ["UserPool"]


def test_given_a_comma_delimited_list_parameter_then_a_ref_to_it_is_a_list(stack: LocalStack) -> None:
    assert stack.http_api().cors_origins == ("http://localhost:5173",)


def test_given_the_template_then_the_stage_throttle_comes_from_its_parameters() -> None:
    default = LocalStack(ROOT / "template.yaml", "us-east-1", stack_name="imgflow-unit").http_api()
    assert default.throttle == RouteThrottle(rate=100.0, burst=200)
    overridden = LocalStack(
        ROOT / "template.yaml",
        "us-east-1",
        stack_name="imgflow-unit",
        parameter_overrides={"ApiThrottleRate": "0.5", "ApiThrottleBurst": "3"},
    ).http_api()
    assert overridden.throttle == RouteThrottle(rate=0.5, burst=3)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_given_a_token_bucket_then_a_burst_passes_the_next_is_throttled_and_tokens_come_back_at_the_rate() -> None:
    clock = _Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)

    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.4  # 0.8 of a token: not yet
    assert bucket.take() is False
    clock.now = 0.5
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now = 100  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_given_a_zero_limit_then_every_request_is_throttled() -> None:
    clock = _Clock()
    bucket = TokenBucket(rate=0, burst=0, clock=clock)
    clock.now = 1000
    assert bucket.take() is False


def test_given_the_webhook_queue_then_its_attempts_are_the_schedules(stack: LocalStack) -> None:
    # One place says how often a delivery is tried: the schedule; the queue's redrive must let it finish.
    redrive = stack.resolver.resolve(stack.properties("WebhookDeliveryQueue"))["RedrivePolicy"]
    assert int(redrive["maxReceiveCount"]) == DELIVERY_ATTEMPTS
    retention = int(stack.resolver.resolve(stack.properties("WebhookDeliveryQueue"))["MessageRetentionPeriod"])
    assert retention > sum(RETRY_SCHEDULE)


def test_given_max_receive_count_then_every_pipeline_queue_and_every_function_read_that_one_value() -> None:
    stack = LocalStack(
        ROOT / "template.yaml", "us-east-1", stack_name="imgflow-unit", parameter_overrides={"MaxReceiveCount": "7"}
    )
    counts = {
        logical_id: int(stack.resolver.resolve(stack.properties(logical_id))["RedrivePolicy"]["maxReceiveCount"])
        for logical_id in stack.of_type("AWS::SQS::Queue")
        if "RedrivePolicy" in stack.properties(logical_id)
    }
    # The webhook deliveries' attempts are their schedule's (imgflow.webhooks), not the pipeline's.
    assert counts.pop("WebhookDeliveryQueue") == DELIVERY_ATTEMPTS
    assert set(counts.values()) == {7}, counts
    assert {function.environment["MAX_RECEIVE_COUNT"] for function in stack.functions()} == {"7"}
