"""What tests share besides fixtures: the Lambda context stand-in, the emulated AWS account with the
template's resources, and loaders of sample events. A plain module (not conftest.py), so that test
files can import it wherever they sit."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from imgflow_local.stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGION = "us-east-1"


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_benchmark(name: str) -> ModuleType:
    """A module of benchmarks/ (not a package on the path: each runs as a script)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (the same files `sam local invoke -e` uses)."""
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def load_fixture_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "s3-events" / name).read_text())
    return loaded


@dataclass
class EmulatedAws:
    """The template's resources in moto's in-process mock, and clients to look at them."""

    stack: LocalStack
    env: dict[str, str]

    @property
    def uploads_bucket(self) -> str:
        return self.env["UPLOADS_BUCKET"]

    @property
    def media_bucket(self) -> str:
        return self.env["MEDIA_BUCKET"]

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]

    def table(self, name_variable: str = "JOBS_TABLE") -> Any:
        return boto3.resource("dynamodb", region_name=REGION).Table(self.env[name_variable])

    def queue_url(self, logical_id: str) -> str:
        url: str = self.client("sqs").get_queue_url(QueueName=self.stack.queue_name(logical_id))["QueueUrl"]
        return url

    def drain(self, logical_id: str) -> list[dict[str, Any]]:
        """Every message waiting in a queue (received and deleted)."""
        sqs, url, messages = self.client("sqs"), self.queue_url(logical_id), []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        ):
            for message in batch:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)
        return messages
