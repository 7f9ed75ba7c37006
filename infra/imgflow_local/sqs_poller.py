"""An SQS event source mapping, as Lambda runs one: long-polls the queue, invokes the function with
batches of up to BatchSize records and at most MaximumConcurrency at once, deletes what succeeded and
leaves failures to come back after the visibility timeout (and to the dead-letter queue after
maxReceiveCount receives, which the emulator applies as SQS does)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from imgflow_local.functions import LocalFunction
from imgflow_local.stack import SqsEventSource

log = logging.getLogger(__name__)


class SqsPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        source: SqsEventSource,
        function: LocalFunction,
        region: str,
        retry_delay: int | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._source = source
        self._function = function
        self._region = region
        # None: failed messages come back after the queue's visibility timeout, exactly as on AWS.
        self._retry_delay = retry_delay
        self._slots = threading.BoundedSemaphore(source.maximum_concurrency)
        self._pool = ThreadPoolExecutor(source.maximum_concurrency, thread_name_prefix=f"{function.name}-batch")
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _poll(self) -> None:
        while not self._stopped.is_set():
            # A free concurrency slot first: at the limit, messages stay in the queue, as with Lambda's cap.
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                messages = self._receive()
            except Exception:
                log.exception("receiving from %s failed", self._queue_url)
                self._slots.release()
                self._stopped.wait(1)
                continue
            if not messages:
                self._slots.release()
                continue
            self._pool.submit(self._invoke, messages)

    def _receive(self) -> list[dict[str, Any]]:
        wanted = min(self._source.batch_size, 10)
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        deadline = time.monotonic() + self._source.batching_window
        # Within the batching window, top the batch up as Lambda does.
        while messages and len(messages) < wanted and time.monotonic() < deadline:
            more = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=wanted - len(messages),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not more:
                break
            messages.extend(more)
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        try:
            event = {"Records": [self._record(message) for message in messages]}
            try:
                result = self._function.invoke(event)
            except Exception:
                self._release_for_retry(messages)
                return
            failed_ids = self._failed_ids(result, messages)
            for message in messages:
                if message["MessageId"] in failed_ids:
                    self._release_for_retry([message])
                else:
                    self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        except Exception:
            log.exception("settling a batch of %s failed", self._function.name)
        finally:
            self._slots.release()

    def _failed_ids(self, result: Any, messages: list[dict[str, Any]]) -> set[str]:
        if not self._source.report_batch_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures") or []
        known = {m["MessageId"] for m in messages}
        ids = {str(f.get("itemIdentifier")) for f in failures}
        # Lambda treats an unknown or empty identifier as a failure of the whole batch.
        return known if not ids <= known else ids

    def _release_for_retry(self, messages: list[dict[str, Any]]) -> None:
        if self._retry_delay is None:
            return
        for message in messages:
            self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=self._retry_delay,
            )

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value["DataType"],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self._source.queue_arn,
            "awsRegion": self._region,
        }
