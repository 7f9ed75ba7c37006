"""Helpers of the integration tests: sample events rewritten to the test's resources, objects in the
uploads bucket, the lifecycle events on the bus, and the handlers invoked as Lambda would."""

from __future__ import annotations

import base64
import copy
import io
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import botocore.loaders
import botocore.session
import jsonschema  # type: ignore[import-untyped]
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.stub import Stubber
from PIL import Image, ImageCms

import api_handler
import ingest_handler
import publisher_handler
from imgflow.models import Job
from imgflow_local.stream_poller import lambda_record
from support import EVENTS, FIXTURES, REGION, EmulatedAws, FakeLambdaContext, load_event, load_fixture_event

IMAGES = FIXTURES / "images"
BAD_INPUTS = IMAGES / "bad-inputs"
HOPPER = BAD_INPUTS / "hopper.jpg"
LIFECYCLE_TAP = "lifecycle-tap"
# Per stream (each test's table has its own): the last record the publisher was given.
_stream_positions: dict[str, str] = {}
# The `sub` of the token in events/api_*.json: the owner of every job the sample API events make.
API_OWNER = "alice"
# Settings' default owner of direct drops (DIRECT_DROP_OWNER is not set in the tests' environment).
DROP_OWNER = "system"


# --- speed ------------------------------------------------------------------------------------------------


@contextmanager
def shared_service_models() -> Iterator[None]:
    """Every botocore session shares one loader of the (read-only) service models.

    The functions build their clients from fresh sessions, and each test starts from a fresh container;
    without this, every test would parse the same large JSON models again (most of its run time).
    """
    shared = botocore.loaders.create_loader()
    original = botocore.session.create_loader

    def create_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        return shared if search_path_string is None else original(search_path_string)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", create_loader)
        yield


# --- objects in the uploads bucket ---------------------------------------------------------------------


def put_upload(aws: EmulatedAws, key: str, data: bytes | Path, content_type: str = "image/jpeg") -> str:
    """Store an object in the uploads bucket, as a browser or a backend would; returns its ETag as S3
    notifications carry it (no quotes)."""
    body = data.read_bytes() if isinstance(data, Path) else data
    response = aws.client("s3").put_object(Bucket=aws.uploads_bucket, Key=key, Body=body, ContentType=content_type)
    etag: str = response["ETag"].strip('"')
    return etag


def photo_with_metadata(size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A JPEG carrying EXIF (camera, GPS) and an ICC profile: what every variant must leave behind."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "imgflow-test-camera"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPS
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, exif=exif, icc_profile=icc)
    return buffer.getvalue()


# --- AWS failures, injected into the clients the functions use ------------------------------------------


@contextmanager
def no_calls_allowed(client: Any) -> Iterator[Stubber]:
    """Any call through `client` fails (nothing is stubbed): proves that a path never reaches that service."""
    with Stubber(client) as stubber:
        yield stubber


@contextmanager
def throttled(client: Any, operation: str, code: str = "SlowDown", status: int = 503) -> Iterator[Stubber]:
    """The next `operation` through `client` is throttled, as AWS does under load."""
    with Stubber(client) as stubber:
        stubber.add_client_error(
            operation,
            service_error_code=code,
            service_message="Please reduce your request rate.",
            http_status_code=status,
        )
        yield stubber


# --- what JobsTable holds ------------------------------------------------------------------------------


def stored_jobs(aws: EmulatedAws) -> list[Job]:
    """Every job in JobsTable (the per-object sequencer items left out)."""
    items = aws.table().scan(ConsistentRead=True)["Items"]
    return [Job.model_validate(item) for item in items if not item["pk"].startswith("object#")]


def stored_job(aws: EmulatedAws, job_id: str) -> Job:
    item = aws.table().get_item(Key={"pk": job_id}, ConsistentRead=True).get("Item")
    assert item is not None, f"no job {job_id} in JobsTable"
    return Job.model_validate(item)


# --- SQS events for the queue-triggered handlers ---------------------------------------------------------


def _sqs_record_template() -> dict[str, Any]:
    record: dict[str, Any] = load_event("ingest_s3_upload.json")["Records"][0]
    return record


def sqs_event(*bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS batch as Lambda delivers it, one record per body, each with its own message id."""
    records = []
    for body in bodies:
        record = _sqs_record_template()
        message_id = str(uuid.uuid4())
        record["messageId"] = message_id
        record["receiptHandle"] = f"AQEB{message_id}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


def with_receive_count(event: dict[str, Any], receive_count: int) -> dict[str, Any]:
    rewritten = copy.deepcopy(event)
    for record in rewritten["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return rewritten


def retarget_notification(
    notification: dict[str, Any],
    bucket: str,
    *,
    key: str | None = None,
    etag: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """An S3 notification moved to the test's bucket, and to `key` (as S3 encodes it) when given.

    `etag` and `size` describe the object the test stored: ingest reads the original on the condition
    that it is still the write the event names (If-Match), as a real notification's ETag would allow.
    """
    rewritten = copy.deepcopy(notification)
    for record in rewritten.get("Records", []):
        s3 = record["s3"]
        s3["bucket"]["name"] = bucket
        s3["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        if key is not None:
            s3["object"]["key"] = key
        if etag is not None:
            s3["object"]["eTag"] = etag
        if size is not None:
            s3["object"]["size"] = size
    if "Bucket" in rewritten:  # s3:TestEvent
        rewritten["Bucket"] = bucket
    return rewritten


def retarget_batch(event: dict[str, Any], bucket: str, **changes: Any) -> dict[str, Any]:
    """An SQS batch fixture whose S3 notifications are moved to the test's bucket; poison bodies stay as they are."""
    rewritten = copy.deepcopy(event)
    for record in rewritten["Records"]:
        try:
            body = json.loads(record["body"])
        except json.JSONDecodeError:
            continue
        if isinstance(body, dict) and ("Records" in body or body.get("Event") == "s3:TestEvent"):
            record["body"] = json.dumps(retarget_notification(body, bucket, **changes))
    return rewritten


def fixture_notification(name: str, aws: EmulatedAws, **changes: Any) -> dict[str, Any]:
    """A notification of tests/fixtures/s3-events, in the test's uploads bucket, as an IngestQueue batch."""
    return sqs_event(retarget_notification(load_fixture_event(name), aws.uploads_bucket, **changes))


def upload_notification(aws: EmulatedAws, key: str, etag: str, size: int, receive_count: int = 1) -> dict[str, Any]:
    """events/ingest_s3_upload.json (a browser's POST landing in the uploads bucket) for the test's object."""
    event = load_event("ingest_s3_upload.json")
    notification = json.loads(event["Records"][0]["body"])
    return sqs_event(
        retarget_notification(notification, aws.uploads_bucket, key=key, etag=etag, size=size),
        receive_count=receive_count,
    )


def reported_failures(
    handler: Callable[[Any, Any], Any], event: dict[str, Any], context: FakeLambdaContext
) -> list[str]:
    """The message ids that Lambda would return to the queue after this invocation.

    Powertools' batch processor answers with `batchItemFailures`, but raises when every record failed:
    Lambda then returns the whole batch to the queue, which is the same outcome for each record.
    """
    try:
        response = handler(event, context)
    except BatchProcessingError:
        return [record["messageId"] for record in event["Records"]]
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def variants_message_event(
    aws: EmulatedAws, job_id: str, key: str, etag: str | None, receive_count: int = 1
) -> dict[str, Any]:
    """events/variants_message.json rewritten to the test's job and original."""
    event = load_event("variants_message.json")
    record = event["Records"][0]
    body = json.loads(record["body"])
    body.update(job_id=job_id, bucket=aws.uploads_bucket, key=key, etag=etag)
    record["body"] = json.dumps(body)
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return event


def as_lambda_event(messages: list[dict[str, Any]], receive_count: int = 1) -> dict[str, Any]:
    """Messages received from a queue, shaped as the batch Lambda's event source mapping would hand over."""
    return sqs_event(*(message["Body"] for message in messages), receive_count=receive_count)


# --- the HTTP API -------------------------------------------------------------------------------------


def create_upload_event(body: dict[str, Any] | str | None = None) -> dict[str, Any]:
    event = load_event("api_create_upload.json")
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def get_job_event(job_id: str, **query: str | int) -> dict[str, Any]:
    """events/api_get_job.json for `job_id`, with `query` as its query string."""
    event = load_event("api_get_job.json")
    path = f"/jobs/{job_id}"
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"job_id": job_id}
    event["rawQueryString"] = urlencode(query)
    if query:
        event["queryStringParameters"] = {name: str(value) for name, value in query.items()}
    else:
        event.pop("queryStringParameters", None)
    return event


def get_event(path: str) -> dict[str, Any]:
    """events/api_health.json moved to another GET route without parameters."""
    event = load_event("api_health.json")
    event["rawPath"] = path
    event["routeKey"] = f"GET {path}"
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["routeKey"] = f"GET {path}"
    return event


def call_api(event: dict[str, Any], context: FakeLambdaContext) -> tuple[int, dict[str, Any]]:
    """Invoke the API function as API Gateway would; the status code and the decoded JSON body."""
    response = api_handler.lambda_handler(event, context)
    body = response.get("body") or "{}"
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    decoded: dict[str, Any] = json.loads(body)
    return int(response["statusCode"]), decoded


def create_api_job(context: FakeLambdaContext, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /uploads (events/api_create_upload.json, or `body`); the 201 answer."""
    status, created = call_api(create_upload_event(body), context)
    assert status == 201, created
    return created


# --- lifecycle events ------------------------------------------------------------------------------------


def tap_lifecycle_events(aws: EmulatedAws) -> str:
    """An SQS queue that receives every imgflow event published on the bus; returns its URL."""
    sqs, events = aws.client("sqs"), aws.client("events")
    url: str = sqs.create_queue(QueueName=LIFECYCLE_TAP)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = aws.env["EVENT_BUS_NAME"]
    events.put_rule(Name=LIFECYCLE_TAP, EventBusName=bus, EventPattern=json.dumps({"source": ["imgflow"]}))
    events.put_targets(Rule=LIFECYCLE_TAP, EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    return url


def job_changes(aws: EmulatedAws) -> list[dict[str, Any]]:
    """JobsTable's stream records since the last call, as Lambda's stream mapping hands them to a function."""
    table = aws.client("dynamodb").describe_table(TableName=aws.env["JOBS_TABLE"])["Table"]
    stream_arn = table["LatestStreamArn"]
    # The mock routes DynamoDB Streams by this host only (boto3 would name the account in it).
    streams = boto3.client(
        "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
    )
    [shard] = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    after = _stream_positions.get(stream_arn)
    position: dict[str, str] = (
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        if after
        else {"ShardIteratorType": "TRIM_HORIZON"}
    )
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"], **position)["ShardIterator"]
    records: list[dict[str, Any]] = []
    while batch := (response := streams.get_records(ShardIterator=iterator))["Records"]:
        records += [lambda_record(record, stream_arn) for record in batch]
        iterator = response["NextShardIterator"]
    if records:
        _stream_positions[stream_arn] = records[-1]["dynamodb"]["SequenceNumber"]
    return records


def publish_job_changes(aws: EmulatedAws) -> None:
    """Run PublisherFunction over what JobsTable's stream holds since the last call (moto runs no mapping)."""
    if records := job_changes(aws):
        result = publisher_handler.lambda_handler({"Records": records}, FakeLambdaContext())
        assert result["batchItemFailures"] == [], result


def lifecycle_events(aws: EmulatedAws, job_id: str | None = None) -> list[dict[str, Any]]:
    """The imgflow events published since the last call (of `job_id`, when given), oldest first: the
    publisher first announces the job changes committed since then, as its stream mapping would.

    Every detail is checked against its published JSON Schema (events/schemas/), the contract consumers rely on.
    """
    publish_job_changes(aws)
    received: list[dict[str, Any]] = []
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=LIFECYCLE_TAP)["QueueUrl"]
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            received.append(json.loads(message["Body"]))
    for event in received:
        schema_file = EVENTS / "schemas" / (event["detail-type"].lower().replace(" ", "_") + ".json")
        jsonschema.validate(event["detail"], json.loads(schema_file.read_text()))
    return [event for event in received if job_id is None or event["detail"]["job_id"] == job_id]


def detail_types(events: list[dict[str, Any]]) -> list[str]:
    return [event["detail-type"] for event in events]


# --- a job through the front door --------------------------------------------------------------------


def accepted_api_job(
    aws: EmulatedAws,
    context: FakeLambdaContext,
    data: bytes,
    *,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    **request: Any,
) -> tuple[str, str, str]:
    """A job created through POST /uploads, its original uploaded and ingested (status `processing`).

    Returns (job_id, key, etag); the ingest fan-out is drained from VariantsQueue so that a test sees
    only what comes after.
    """
    created = create_api_job(
        context, {"filename": filename, "content_type": content_type, "size": len(data), **request}
    )
    job_id: str = created["job_id"]
    key = created["upload"]["fields"]["key"]
    etag = put_upload(aws, key, data, content_type)
    failures = reported_failures(ingest_handler.lambda_handler, upload_notification(aws, key, etag, len(data)), context)
    assert failures == []
    assert stored_job(aws, job_id).status == "processing"
    assert len(aws.drain("VariantsQueue")) == 1
    return job_id, key, etag
