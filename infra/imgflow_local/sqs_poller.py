"""An SQS event source mapping, as Lambda runs one: long-polls the queue, invokes the function with
batches of up to BatchSize records and at most MaximumConcurrency at once, deletes what succeeded and
leaves failures to come back after the visibility timeout (and to the dead-letter queue after
maxReceiveCount receives, which the emulator applies as SQS does).

With injected duplicates (faults.py), a message is delivered twice: an S3 notification as a second
notification (a new message with the same body, as S3 sends one), any other message as SQS's
at-least-once delivery does, in a second batch alongside the first."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from imgflow_local.faults import FunctionFaults
from imgflow_local.functions import Invocation, LocalFunction
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
        faults: FunctionFaults | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._source = source
        self._function = function
        self._region = region
        # None: failed messages come back after the queue's visibility timeout, exactly as on AWS.
        self._retry_delay = retry_delay
        self._visibility_timeout = 0
        self._faults = faults
        self._slots = threading.BoundedSemaphore(source.maximum_concurrency)
        self._pool = ThreadPoolExecutor(source.maximum_concurrency, thread_name_prefix=f"{function.name}-batch")
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{function.name}", daemon=True)

    def start(self) -> None:
        if self._retry_delay is not None:
            attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["VisibilityTimeout"])
            self._visibility_timeout = int(attributes["Attributes"]["VisibilityTimeout"])
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
        received = time.monotonic()
        try:
            again = self._deliver_again(messages)
            invocation = self._function.invocation(self._event(messages), fault_key=_fault_key(messages))
            outcomes = [(invocation, _ids(messages))]
            if again:
                outcomes.append(again.outcome())
            # A message is gone once one of its deliveries handled it (that one deleted it).
            succeeded = set().union(*(self._succeeded_ids(i, ids) for i, ids in outcomes))
            visibility_set = frozenset().union(*(i.visibility_set for i, _ in outcomes))
            for message in messages:
                if message["MessageId"] in succeeded:
                    self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
                elif message["ReceiptHandle"] not in visibility_set:
                    self._release_for_retry(message, received)
        except Exception:
            log.exception("settling a batch of %s failed", self._function.name)
        finally:
            self._slots.release()

    def _event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [self._record(message) for message in messages]}

    def _deliver_again(self, messages: list[dict[str, Any]]) -> _Delivery | None:
        """Injected duplicates: S3 notifications sent again, other messages delivered in a second batch."""
        if self._faults is None:
            return None
        twice = [m for m in messages if self._faults.happens("duplicate", _fault_key([m]))]
        notifications = [m for m in twice if _is_s3_notification(m)]
        for message in notifications:
            self._sqs.send_message(
                QueueUrl=self._queue_url, MessageBody=message["Body"], MessageAttributes=_DUPLICATE_MARK
            )
        others = [m for m in twice if m not in notifications]
        if not others:
            return None
        return _Delivery(self._function, self._event(others), _ids(others), _fault_key(others) + "/again")

    def _succeeded_ids(self, invocation: Invocation, ids: set[str]) -> set[str]:
        """The messages of a batch (`ids`) that its invocation handled: all, none, or all but its failures."""
        if invocation.error is not None:
            return set()
        result = invocation.result
        if not self._source.report_batch_item_failures or not isinstance(result, dict):
            return ids
        failures = result.get("batchItemFailures") or []
        failed = {str(f.get("itemIdentifier")) for f in failures}
        # Lambda treats an unknown or empty identifier as a failure of the whole batch.
        return set() if not failed <= ids else ids - failed

    def _release_for_retry(self, message: dict[str, Any], received: float) -> None:
        """With --retry-delay, bring a failed message back sooner than the queue's visibility timeout
        would (never later); a delay the handler set on the message itself stands."""
        if self._retry_delay is None:
            return
        remaining = self._visibility_timeout - (time.monotonic() - received)
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=max(0, int(min(self._retry_delay, remaining))),
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


class _Delivery:
    """A second delivery of some messages, in a batch of its own, on a thread beside the first."""

    def __init__(self, function: LocalFunction, event: dict[str, Any], ids: set[str], fault_key: str) -> None:
        self._ids = ids
        self._invocation: Invocation | None = None

        def run() -> None:
            self._invocation = function.invocation(event, fault_key=fault_key)

        self._thread = threading.Thread(target=run, name=f"{function.name}-again", daemon=True)
        self._thread.start()

    def outcome(self) -> tuple[Invocation, set[str]]:
        self._thread.join()
        assert self._invocation is not None
        return self._invocation, self._ids


def _ids(messages: list[dict[str, Any]]) -> set[str]:
    return {message["MessageId"] for message in messages}


def _fault_key(messages: list[dict[str, Any]]) -> str:
    """What injected faults key on: the messages and how often each has been received."""
    return ",".join(
        sorted(f"{m['MessageId']}:{m.get('Attributes', {}).get('ApproximateReceiveCount', '1')}" for m in messages)
    )


# Marks an S3 notification sent again, so that the copy is not sent again in its turn.
_DUPLICATE_MARK = {"imgflow-fault": {"DataType": "String", "StringValue": "duplicate"}}


def _is_s3_notification(message: dict[str, Any]) -> bool:
    if "imgflow-fault" in message.get("MessageAttributes", {}):
        return False
    try:
        records = json.loads(message["Body"]).get("Records")
    except (ValueError, AttributeError):
        return False
    return isinstance(records, list) and any(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)
