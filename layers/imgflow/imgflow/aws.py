"""AWS clients, made once per process (per Lambda container) and reused across invocations.

Endpoints come from boto3's own configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, ...), which is
how the local runtime and LocalStack point the same code at an emulator.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30)


def _client(service: str, **kwargs: Any) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG, **kwargs)  # type: ignore[call-overload]


@lru_cache(maxsize=1)
def s3() -> S3Client:
    # SigV4 everywhere: presigned POSTs and GETs must verify in every region.
    config = _CONFIG.merge(Config(signature_version="s3v4"))
    client: S3Client = boto3.session.Session().client("s3", config=config)
    return client


@lru_cache(maxsize=1)
def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


@lru_cache(maxsize=1)
def events() -> EventBridgeClient:
    client: EventBridgeClient = _client("events")
    return client


@lru_cache(maxsize=1)
def dynamodb_client() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


@lru_cache(maxsize=1)
def dynamodb() -> DynamoDBServiceResource:
    resource: DynamoDBServiceResource = boto3.session.Session().resource("dynamodb", config=_CONFIG)
    return resource


def reset_clients() -> None:
    """Forget every client (tests and the local runtime call this after changing endpoints)."""
    for getter in (s3, sqs, events, dynamodb, dynamodb_client):
        getter.cache_clear()
