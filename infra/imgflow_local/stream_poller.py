"""A DynamoDB stream event source mapping, as Lambda runs one: reads the table's stream in order (one
shard, one batch at a time, as ParallelizationFactor 1 does), invokes the function with batches of up to
BatchSize records, and does not move on until a batch is done:

- a batch item failure checkpoints: the records before the first failed one are done, the rest is
  retried (ReportBatchItemFailures);
- a function error retries the batch, halved first when BisectBatchOnFunctionError is on (halving is no
  retry; each half counts its own);
- past MaximumRetryAttempts retries, or once its oldest record is older than MaximumRecordAgeInSeconds,
  a batch is given up on: Lambda's record of it (shard and sequence numbers, not the records) goes to
  the on-failure destination, and the mapping moves on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from imgflow_local.stack import StreamEventSource

log = logging.getLogger(__name__)
# Lambda polls a stream's shard about four times a second.
POLL_INTERVAL = 0.25
_MAX_BACKOFF = 5.0


class Invocable(Protocol):
    """What the mapping needs of a function (LocalFunction)."""

    @property
    def name(self) -> str: ...

    def invoke(self, event: Any) -> Any: ...


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it to a function: with its stream's ARN, and the creation time
    in epoch seconds (boto3 reads it as a datetime)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


class StreamPoller:
    def __init__(
        self,
        dynamodb: Any,
        streams: Any,
        sqs: Any,
        source: StreamEventSource,
        function: Invocable,
        function_arn: str,
    ) -> None:
        self._dynamodb = dynamodb
        self._streams = streams
        self._sqs = sqs
        self._source = source
        self._function = function
        self._function_arn = function_arn
        self._shard_id = ""
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    # --- reading the stream ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stream_arn = self._dynamodb.describe_table(TableName=self._source.table_name)["Table"]["LatestStreamArn"]
            iterator = self._first_iterator(stream_arn)
        except Exception:
            log.exception(
                "the stream of %s cannot be read: %s gets no records", self._source.table_name, self._function.name
            )
            return
        while not self._stopped.is_set():
            try:
                response = self._streams.get_records(ShardIterator=iterator, Limit=self._source.batch_size)
            except Exception:
                log.exception("reading the stream of %s failed", self._source.table_name)
                self._stopped.wait(1)
                continue
            iterator = response["NextShardIterator"]
            records = [lambda_record(record, stream_arn) for record in response.get("Records", [])]
            if records:
                self._deliver(records)
            else:
                self._stopped.wait(POLL_INTERVAL)

    def _first_iterator(self, stream_arn: str) -> str:
        # The emulator's stream has one shard, which never closes.
        [shard] = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        self._shard_id = shard["ShardId"]
        iterator: str = self._streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=self._shard_id, ShardIteratorType=self._source.starting_position
        )["ShardIterator"]
        return iterator

    # --- one batch, to the end -----------------------------------------------------------------------

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        """Invoke the function until every record is done or given up on, in stream order."""
        batches = [records]
        while batches and not self._stopped.is_set():
            batch, retries = batches.pop(0), 0
            while batch and not self._stopped.is_set():
                failed_from, function_error = self._invoke(batch)
                if failed_from is None:
                    break
                batch = batch[failed_from:]  # the checkpoint: what came before is done
                if function_error and self._source.bisect_on_error and len(batch) > 1:
                    half = len(batch) // 2
                    batches[:0] = [batch[:half], batch[half:]]
                    break
                retries += 1
                condition = self._exhausted(batch, retries)
                if condition is not None:
                    self._give_up(batch, retries, condition)  # each retry followed a failed invocation
                    break
                self._stopped.wait(min(0.2 * 2 ** (retries - 1), _MAX_BACKOFF))

    def _invoke(self, batch: list[dict[str, Any]]) -> tuple[int | None, bool]:
        """Where the batch failed (None when it did not), and whether the function itself failed."""
        try:
            result = self._function.invoke({"Records": batch})
        except Exception:
            return 0, True
        if not self._source.report_batch_item_failures or not isinstance(result, dict):
            return None, False
        failed = [str(failure.get("itemIdentifier")) for failure in result.get("batchItemFailures") or []]
        if not failed:
            return None, False
        sequence = [record["dynamodb"]["SequenceNumber"] for record in batch]
        # An identifier that names no record of the batch fails it whole, as on Lambda.
        return (min(sequence.index(number) for number in failed) if set(failed) <= set(sequence) else 0), False

    def _exhausted(self, batch: list[dict[str, Any]], retries: int) -> str | None:
        source = self._source
        if 0 <= source.maximum_retry_attempts < retries:
            return "RetryAttemptsExhausted"
        oldest = batch[0]["dynamodb"].get("ApproximateCreationDateTime")
        if source.maximum_record_age >= 0 and oldest is not None and time.time() - oldest > source.maximum_record_age:
            return "RecordAgeExceeded"
        return None

    def _give_up(self, batch: list[dict[str, Any]], invocations: int, condition: str) -> None:
        first, last = batch[0], batch[-1]
        log.warning(
            "%s gave up on %d stream record(s) (%s): %s to %s",
            self._function.name,
            len(batch),
            condition,
            first["dynamodb"]["SequenceNumber"],
            last["dynamodb"]["SequenceNumber"],
        )
        if self._source.on_failure is None:
            return
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self._function_arn,
                "condition": condition,
                "approximateInvokeCount": invocations,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "DDBStreamBatchInfo": {
                "shardId": self._shard_id,
                "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first["dynamodb"].get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last["dynamodb"].get("ApproximateCreationDateTime")),
                "batchSize": len(batch),
                "streamArn": first["eventSourceARN"],
            },
        }
        queue_name = self._source.on_failure.rsplit(":", 1)[1]
        queue_url = self._sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))


def _iso(epoch: float | None) -> str:
    moment = datetime.fromtimestamp(epoch if epoch is not None else time.time(), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
