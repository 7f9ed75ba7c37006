"""AWS clients, made once per process (per Lambda container) and reused across invocations.

Endpoints come from boto3's own configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, ...), which is
how the local runtime and LocalStack point the same code at an emulator.

What a cold start pays for them, measured by `make bench-cold`: boto3 is imported with the first client,
not at init (botocore's import is ~150 ms of CPU, which a route that calls no AWS service never pays),
and every client comes from one session, whose loader parses botocore's endpoint rules and service
models once (a session per client parsed them again for each: ~400 ms more with five clients).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from imgflow.observability import tracer

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

# A session is not thread-safe: clients are made one at a time (then shared, which clients allow).
_making = threading.Lock()


@lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    import boto3

    # Traces every AWS call from here on (a no-op where tracing is off), patched before any client exists.
    tracer.patch(["botocore"])
    return boto3.session.Session()


def _config(**overrides: Any) -> Config:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30, **overrides)


def _client(service: str, config: Config | None = None) -> Any:
    with _making:
        return _session().client(service, config=config or _config())  # type: ignore[call-overload]


@lru_cache(maxsize=1)
def s3() -> S3Client:
    # SigV4 everywhere: presigned POSTs and GETs must verify in every region.
    client: S3Client = _client("s3", _config(signature_version="s3v4"))
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
    with _making:
        resource: DynamoDBServiceResource = _session().resource("dynamodb", config=_config())
    return resource


def reset_clients() -> None:
    """Forget every client (tests and the local runtime call this after changing endpoints)."""
    for getter in (_session, s3, sqs, events, dynamodb, dynamodb_client):
        getter.cache_clear()
