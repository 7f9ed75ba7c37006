"""publisher: JobsTable's change stream → the lifecycle events each committed change means, on the bus.

The one function that publishes lifecycle events (see `imgflow.outbox`). Lambda hands it one shard's
records in order; a record that fails holds back the rest of its batch, as Lambda resumes from the first
failure reported and a job's later changes must not be announced before an earlier one.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgflow.event_models import ItemChangeRecordModel
from imgflow.lifecycle import EventPublisher
from imgflow.observability import logger, metrics, tracer
from imgflow.outbox import changed_job_events
from imgflow.services import publisher


class HeldBackError(Exception):
    """A record after one that failed: published only once the failed one has been."""


class InOrder:
    """The record handler of one batch: publishes each record's events until one fails, then none."""

    def __init__(self, events: EventPublisher) -> None:
        self._events = events
        self._failed_at: str | None = None

    def __call__(self, record: ItemChangeRecordModel) -> None:
        if self._failed_at is not None:
            raise HeldBackError(f"behind record {self._failed_at}, which failed")
        change = record.dynamodb
        try:
            details = changed_job_events(change.OldImage, change.NewImage, removed_by_ttl=record.removed_by_ttl)
            for detail in details:
                logger.append_keys(job_id=detail.job_id)
                self._events.publish(detail)
        except Exception:
            self._failed_at = change.SequenceNumber
            logger.exception(
                "publishing a change failed: it and the rest of the batch are retried",
                extra={"sequence_number": change.SequenceNumber},
            )
            raise
        if details:
            metrics.add_metric(name="EventsPublished", unit="Count", value=len(details))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # One processor per invocation: its failures are this batch's alone.
    processor = BatchProcessor(
        event_type=EventType.DynamoDBStreams, model=ItemChangeRecordModel, raise_on_entire_batch_failure=False
    )
    return process_partial_response(
        event=event, record_handler=InOrder(publisher()), processor=processor, context=context
    )
