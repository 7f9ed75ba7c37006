"""The front door over moto's server: browser uploads are checked as S3 would, the rest passes through."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from botocore.config import Config

from imgflow_local.front_door import FrontDoorServer, embedded_emulator, make_front_door

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
SECRETS = {"testing": "testing"}
JPEG_BYTES = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2 + b"\xff\xd9"


@pytest.fixture(scope="module")
def front_door_url() -> Iterator[str]:
    server = FrontDoorServer(make_front_door(embedded_emulator(), SECRETS, REGION))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def s3(front_door_url: str) -> S3Client:
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=front_door_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def sqs(front_door_url: str) -> SQSClient:
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=front_door_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(s3: S3Client) -> str:
    name = f"uploads-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _presigned_post(s3: S3Client, bucket: str, key: str) -> dict[str, Any]:
    post: dict[str, Any] = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": "image/jpeg"},
        Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 1000]],
        ExpiresIn=300,
    )
    return post


def _keys(s3: S3Client, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_given_a_presigned_post_when_a_browser_uploads_then_204_and_the_exact_bytes_are_stored(
    s3: S3Client, bucket: str
) -> None:
    post = _presigned_post(s3, bucket, "uploads/job-1/original")

    response = requests.post(
        post["url"], data=post["fields"], files={"file": ("cat.jpg", JPEG_BYTES, "image/jpeg")}, timeout=10
    )

    assert response.status_code == 204, response.text
    stored = s3.get_object(Bucket=bucket, Key="uploads/job-1/original")
    assert stored["Body"].read() == JPEG_BYTES
    assert stored["ContentType"] == "image/jpeg"


def test_given_a_size_limit_when_a_larger_file_is_posted_then_400_entity_too_large_and_nothing_stored(
    s3: S3Client, bucket: str
) -> None:
    post = _presigned_post(s3, bucket, "uploads/job-2/original")

    response = requests.post(
        post["url"], data=post["fields"], files={"file": ("big.jpg", b"x" * 1001, "image/jpeg")}, timeout=10
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/xml"
    assert "<Code>EntityTooLarge</Code>" in response.text
    assert "<MaxSizeAllowed>1000</MaxSizeAllowed>" in response.text
    assert _keys(s3, bucket) == []


def test_given_a_pinned_content_type_when_another_is_posted_then_403_and_nothing_stored(
    s3: S3Client, bucket: str
) -> None:
    post = _presigned_post(s3, bucket, "uploads/job-3/original")
    fields = {**post["fields"], "Content-Type": "text/html"}

    response = requests.post(
        post["url"],
        data=fields,
        files={"file": ("page.html", b"<script></script>", "text/html")},
        headers={"Origin": "http://localhost:3000"},
        timeout=10,
    )

    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert "Policy Condition failed" in response.text
    # The bucket has no CORS rule for that origin: as on S3, no CORS headers (the e2e tests cover a rule).
    assert "Access-Control-Allow-Origin" not in response.headers
    assert _keys(s3, bucket) == []


def test_given_a_filename_key_when_uploaded_then_stored_under_the_file_name(s3: S3Client, bucket: str) -> None:
    post = _presigned_post(s3, bucket, "uploads/job-4/${filename}")

    response = requests.post(
        post["url"], data=post["fields"], files={"file": ("cat.jpg", JPEG_BYTES, "image/jpeg")}, timeout=10
    )

    assert response.status_code == 204, response.text
    assert _keys(s3, bucket) == ["uploads/job-4/cat.jpg"]


def test_given_a_multipart_post_without_a_file_when_sent_then_400_and_nothing_stored(s3: S3Client, bucket: str) -> None:
    post = _presigned_post(s3, bucket, "uploads/job-5/original")

    response = requests.post(
        post["url"], files={name: (None, value) for name, value in post["fields"].items()}, timeout=10
    )

    assert response.status_code == 400
    assert "<Code>IncorrectNumberOfFilesInPostRequest</Code>" in response.text
    assert _keys(s3, bucket) == []


def test_given_the_front_door_when_s3_is_used_through_the_sdk_then_requests_pass_through(
    s3: S3Client, bucket: str
) -> None:
    key = "dir/a b+c%.bin"
    body = bytes(range(256)) * 300

    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
    head = s3.head_object(Bucket=bucket, Key=key)
    got = s3.get_object(Bucket=bucket, Key=key)

    assert head["ContentLength"] == len(body)
    assert got["Body"].read() == body
    assert _keys(s3, bucket) == [key]


def test_given_the_front_door_when_a_missing_object_is_read_then_the_s3_error_is_relayed(
    s3: S3Client, bucket: str
) -> None:
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="missing")


def test_given_the_front_door_when_sqs_is_used_then_messages_round_trip(sqs: SQSClient) -> None:
    queue_url = sqs.create_queue(QueueName=f"ingest-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    sqs.send_message(QueueUrl=queue_url, MessageBody='{"job_id": "j-1"}')
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])

    assert [message["Body"] for message in messages] == ['{"job_id": "j-1"}']
