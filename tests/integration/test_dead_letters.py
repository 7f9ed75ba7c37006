"""`imgflow dlq` against the emulated account: it lists what a dead-letter queue holds without consuming
it, and redrive moves it back to its source queue, where a step the sweep gave up on runs again and its
job settles again; a job that ended for a reason of its own stays as it ended."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

import sweep_handler
import variants_handler
from imgflow.models import JobError, JobStatus
from imgflow.services import job_store, variants_service
from imgflow_local.dlq import DeadLetterQueue, Pipeline, StreamDeadLetterQueue
from integration.helpers import (
    HOPPER,
    accepted_api_job,
    as_lambda_event,
    detail_types,
    job_changes,
    lifecycle_events,
    reported_failures,
    stored_job,
    tap_lifecycle_events,
)
from support import REGION, EmulatedAws, FakeLambdaContext, load_event


@pytest.fixture
def pipeline(aws: EmulatedAws) -> Pipeline:
    return Pipeline.of_stack(aws.client("sqs"), boto3.resource("dynamodb", region_name=REGION), aws.stack)


def dead_letter(aws: EmulatedAws, logical_id: str, body: dict[str, Any]) -> None:
    """A message sent to `logical_id` and received until SQS moves it to the dead-letter queue, as it
    does after maxReceiveCount deliveries that were never deleted (a function that kept timing out)."""
    sqs, url = aws.client("sqs"), aws.queue_url(logical_id)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    while sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages"):
        pass


def variants_queue(pipeline: Pipeline) -> DeadLetterQueue:
    queue = pipeline.queue("variants")
    assert isinstance(queue, DeadLetterQueue)
    return queue


def swept_job(aws: EmulatedAws, context: FakeLambdaContext) -> str:
    """A job whose variants step timed out on every attempt: its message in the DLQ, the job failed by the sweep."""
    job_id, _, _ = accepted_api_job(aws, context, HOPPER.read_bytes())
    job_store().start_task(job_id, "variants", "decoding", 5)
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET updated_at = :t, overdue_at = :t",
        ExpressionAttributeValues={":t": 1_000},
    )
    sweep_handler.lambda_handler({"detail-type": "Scheduled Event", "detail": {}}, context)
    dead_letter(aws, "VariantsQueue", {"job_id": job_id, "bucket": aws.media_bucket, "key": "original"})
    return job_id


def test_given_the_stack_then_every_pipeline_queue_with_a_redrive_policy_has_its_dead_letter_queue(
    pipeline: Pipeline,
) -> None:
    assert {queue.name for queue in pipeline.queues} >= {"ingest", "variants", "edit"}
    variants = variants_queue(pipeline)
    assert variants.url.endswith("VariantsDeadLetterQueue")
    assert variants.source_url.endswith("-VariantsQueue")
    # Named by URL (`--queue-url`), a dead-letter queue's source is what SQS says sends to it.
    given = Pipeline.given(boto3.session.Session(region_name=REGION), [variants.url], None)
    assert [(queue.url, queue.source_url) for queue in given.queues] == [(variants.url, variants.source_url)]


def test_given_a_message_in_a_dead_letter_queue_when_listed_then_it_says_whose_and_why_and_stays(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, pipeline: Pipeline
) -> None:
    job_id = swept_job(aws, lambda_context)

    [letter] = pipeline.peek(variants_queue(pipeline))

    assert (letter.step, letter.job_id) == ("variants", job_id)
    assert letter.queue.endswith("VariantsDeadLetterQueue")
    assert letter.error == "failed: internal_error: the variants step gave up after 1 attempt"
    assert letter.attempts == 5  # template.yaml: MaxReceiveCount
    assert letter.age_seconds >= 0
    # Peeking consumed nothing: the message is there, visible, for the next look or a redrive.
    assert [again.message_id for again in pipeline.peek(variants_queue(pipeline))] == [letter.message_id]


def test_given_a_job_the_sweep_failed_when_its_message_is_redriven_then_the_step_runs_and_the_job_succeeds(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, pipeline: Pipeline
) -> None:
    job_id = swept_job(aws, lambda_context)
    failed = stored_job(aws, job_id)

    redriven = pipeline.redrive(variants_queue(pipeline), move_task=False)

    assert redriven.moved == 1
    assert pipeline.peek(variants_queue(pipeline)) == []
    messages = aws.drain("VariantsQueue")
    assert reported_failures(variants_handler.lambda_handler, as_lambda_event(messages), lambda_context) == []
    job = stored_job(aws, job_id)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert job.version > failed.version
    assert len(job.variants) == 4


def test_given_a_job_that_failed_for_good_when_its_message_is_redriven_then_it_stays_failed(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, pipeline: Pipeline
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    variants_service().finish(job_id, JobError(code="too_many_pixels", message="too big"))
    dead_letter(aws, "VariantsQueue", {"job_id": job_id, "bucket": aws.media_bucket, "key": "original"})
    failed = stored_job(aws, job_id)

    pipeline.redrive(variants_queue(pipeline), move_task=False)
    messages = aws.drain("VariantsQueue")
    assert reported_failures(variants_handler.lambda_handler, as_lambda_event(messages), lambda_context) == []

    assert stored_job(aws, job_id) == failed


def test_given_a_deployed_stack_when_its_dead_letter_queues_are_listed_then_cloudformation_names_them(
    aws: EmulatedAws,
) -> None:
    template = {
        "Resources": {
            "VariantsDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
            "VariantsQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["VariantsDeadLetterQueue", "Arn"]},
                        "maxReceiveCount": 5,
                    }
                },
            },
        }
    }
    aws.client("cloudformation").create_stack(StackName="deployed", TemplateBody=json.dumps(template))

    pipeline = Pipeline.deployed(boto3.session.Session(region_name=REGION), "deployed")

    [queue] = pipeline.queues
    assert queue.name == "variants"
    assert "VariantsDeadLetterQueue" in queue.url
    assert "VariantsQueue" in queue.source_url
    assert pipeline.peek(queue) == []


def test_given_a_job_whose_variants_last_attempt_gave_up_when_its_message_is_redriven_then_it_runs_again(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    body = {"job_id": job_id, "bucket": aws.media_bucket, "key": "original"}

    def broken(*_: object, **__: object) -> bytes:
        raise RuntimeError("a bug, fixed before the redrive")

    with monkeypatch.context() as failing:
        failing.setattr(variants_service().storage, "read", broken)
        last_attempt = as_lambda_event([{"Body": json.dumps(body)}], receive_count=5)  # template: MaxReceiveCount
        assert reported_failures(variants_handler.lambda_handler, last_attempt, lambda_context) != []
    failed = stored_job(aws, job_id)
    assert (failed.status, failed.tasks["variants"].gave_up) == (JobStatus.FAILED, True)

    redriven = as_lambda_event([{"Body": json.dumps(body)}], receive_count=1)
    assert reported_failures(variants_handler.lambda_handler, redriven, lambda_context) == []

    assert stored_job(aws, job_id).status is JobStatus.SUCCEEDED


# --- the publisher's dead letters: places in the stream, announced again -------------------------------


@pytest.fixture
def announcing_pipeline(aws: EmulatedAws) -> Pipeline:
    # The mock routes DynamoDB Streams by this host only.
    streams = boto3.client(
        "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
    )
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    return Pipeline.of_stack(aws.client("sqs"), dynamodb, aws.stack, streams, aws.client("events"))


def publisher_gave_up(aws: EmulatedAws, changes: list[dict[str, Any]], shard_id: str | None = None) -> None:
    """What the publisher's stream mapping sends its on-failure queue when it gives up on `changes`, in the
    form AWS documents (events/publisher_dead_letter.json): where they are in the stream, not the records."""
    body = load_event("publisher_dead_letter.json")
    stream_arn = changes[0]["eventSourceARN"]
    if shard_id is None:
        streams = boto3.client(
            "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
        )
        [shard] = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        shard_id = shard["ShardId"]
    body["DDBStreamBatchInfo"].update(
        shardId=shard_id,
        startSequenceNumber=changes[0]["dynamodb"]["SequenceNumber"],
        endSequenceNumber=changes[-1]["dynamodb"]["SequenceNumber"],
        batchSize=len(changes),
        streamArn=stream_arn,
    )
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws.queue_url("PublisherDeadLetterQueue"), MessageBody=json.dumps(body))


def test_given_changes_the_publisher_gave_up_on_when_redriven_then_their_events_are_announced_once(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, announcing_pipeline: Pipeline
) -> None:
    tap_lifecycle_events(aws)
    job_changes(aws)  # what came before this job was announced
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    lost = job_changes(aws)  # read, never published: the mapping gave up on them
    publisher_gave_up(aws, lost)
    queue = announcing_pipeline.queue("publisher")
    assert isinstance(queue, StreamDeadLetterQueue)

    [letter] = announcing_pipeline.peek(queue)
    assert (letter.step, letter.job_id, letter.attempts) == ("publisher", job_id, 11)
    assert letter.error is not None
    assert letter.error.startswith(f"{len(lost)} change(s) not announced")
    assert lifecycle_events(aws, job_id) == []

    redriven = announcing_pipeline.redrive(queue, move_task=True)  # no move task for a stream's queue

    assert (redriven.moved, redriven.left) == (1, 0)
    announced = lifecycle_events(aws, job_id)
    assert detail_types(announced) == ["Job Accepted"]
    assert redriven.announced == len(announced)
    assert announcing_pipeline.peek(queue) == []
    # Redriving again announces nothing twice.
    assert announcing_pipeline.redrive(queue, move_task=False).moved == 0


def test_given_a_dead_letter_whose_records_the_stream_no_longer_has_when_redriven_then_it_stays_and_says_why(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, announcing_pipeline: Pipeline
) -> None:
    accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    lost = job_changes(aws)
    # Its table was replaced since (a stack deleted and deployed again): the old stream and its records are gone.
    gone = lost[0]["eventSourceARN"].replace("-JobsTable/", "-OldJobsTable/")
    shard_id = "shardId-00000001764547200000-00000000"
    publisher_gave_up(aws, [{**change, "eventSourceARN": gone} for change in lost], shard_id=shard_id)
    queue = announcing_pipeline.queue("publisher")
    assert isinstance(queue, StreamDeadLetterQueue)

    redriven = announcing_pipeline.redrive(queue, move_task=False)

    assert (redriven.moved, redriven.announced, redriven.left) == (0, 0, 1)
    [letter] = announcing_pipeline.peek(queue)
    assert letter.job_id is None
    assert letter.error is not None
    assert letter.error.startswith("the stream no longer has these records")


def test_given_a_deployed_stack_when_listed_then_its_stream_mappings_failure_queue_is_the_publishers(
    aws: EmulatedAws,
) -> None:
    publisher = {
        "Runtime": "python3.13",
        "Handler": "publisher_handler.lambda_handler",
        "Role": {"Fn::GetAtt": ["PublisherRole", "Arn"]},
        "Code": {"ZipFile": "def lambda_handler(event, context): pass"},
        "Environment": {"Variables": {"EVENT_BUS_NAME": "deployed-bus"}},
    }
    table = {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    mapping = {
        "FunctionName": {"Ref": "PublisherFunction"},
        "EventSourceArn": {"Fn::GetAtt": ["JobsTable", "StreamArn"]},
        "StartingPosition": "TRIM_HORIZON",
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["PublisherDeadLetterQueue", "Arn"]}}},
    }
    template = {
        "Resources": {
            "JobsTable": {"Type": "AWS::DynamoDB::Table", "Properties": table},
            "PublisherDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
            "PublisherRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "PublisherFunction": {"Type": "AWS::Lambda::Function", "Properties": publisher},
            "PublisherFunctionJobChanges": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": mapping},
        }
    }
    aws.client("cloudformation").create_stack(StackName="deployed", TemplateBody=json.dumps(template))

    pipeline = Pipeline.deployed(boto3.session.Session(region_name=REGION), "deployed")

    [queue] = pipeline.stream_queues
    assert (queue.name, queue.bus) == ("publisher", "deployed-bus")
    assert "PublisherDeadLetterQueue" in queue.url
    assert pipeline.peek(queue) == []


@pytest.mark.parametrize(
    "body",
    ["{truncated", json.dumps({"DDBStreamBatchInfo": {"shardId": "x"}}), json.dumps([{"deep": [[[]]]}])],
    ids=["not json", "no batch in it", "not an object"],
)
def test_given_a_stray_message_in_the_publishers_queue_when_listed_and_redriven_then_it_is_named_and_stays(
    aws: EmulatedAws, announcing_pipeline: Pipeline, body: str
) -> None:
    aws.client("sqs").send_message(QueueUrl=aws.queue_url("PublisherDeadLetterQueue"), MessageBody=body)
    queue = announcing_pipeline.queue("publisher")
    assert isinstance(queue, StreamDeadLetterQueue)

    [letter] = announcing_pipeline.peek(queue)
    redriven = announcing_pipeline.redrive(queue, move_task=False)

    assert (letter.job_id, letter.attempts) == (None, 0)
    assert letter.error == "not a stream mapping's record of a failed batch: nothing to announce"
    assert (redriven.moved, redriven.announced, redriven.left) == (0, 0, 1)
    assert len(announcing_pipeline.peek(queue)) == 1
