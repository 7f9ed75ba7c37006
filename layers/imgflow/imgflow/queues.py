"""Sending work between functions through SQS."""

from __future__ import annotations

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
