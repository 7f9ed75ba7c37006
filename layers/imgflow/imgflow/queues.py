"""Sending work between functions through SQS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class TaskQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, message: BaseModel) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=message.model_dump_json())


@dataclass(frozen=True)
class QueueDepth:
    name: str
    waiting: int
    in_flight: int
    delayed: int


def queue_depths(client: SQSClient, urls: Mapping[str, str]) -> list[QueueDepth]:
    """How many messages each queue holds, by state (SQS's approximate counts)."""
    depths = []
    for name, url in urls.items():
        attributes = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        depths.append(
            QueueDepth(
                name=name,
                waiting=int(attributes.get("ApproximateNumberOfMessages", 0)),
                in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            )
        )
    return depths
