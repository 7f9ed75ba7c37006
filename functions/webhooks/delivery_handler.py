"""webhook delivery: WebhookDeliveryQueue messages → one signed POST each, retried on the schedule."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from imgflow import aws
from imgflow.observability import logger, metrics, tracer
from imgflow.services import webhook_service
from imgflow.settings import get_settings
from imgflow.webhook_models import DeliveryMessage
from imgflow.webhooks import DeliveryOutcome, retry_after


class DeliveryRecordModel(SqsRecordModel):
    body: Json[DeliveryMessage]


class DeliveryPendingError(Exception):
    """The attempt failed: the message comes back for the next one (or goes to the dead-letter queue)."""


processor = BatchProcessor(event_type=EventType.SQS, model=DeliveryRecordModel, raise_on_entire_batch_failure=False)


def record_handler(record: DeliveryRecordModel) -> None:
    message = record.body
    attempt = int(record.attributes.ApproximateReceiveCount)
    logger.append_keys(webhook_id=message.webhook_id, message_id=message.message_id, attempt=attempt)
    outcome = webhook_service().deliver(message, attempt)
    metrics.add_metric(name=f"WebhookDelivery_{outcome.value}", unit="Count", value=1)
    if outcome is DeliveryOutcome.RETRY:
        delay = retry_after(attempt)
        # The schedule, not the queue's visibility timeout, says when the next attempt comes.
        aws.sqs().change_message_visibility(
            QueueUrl=get_settings().webhook_delivery_queue_url,
            ReceiptHandle=record.receiptHandle,
            VisibilityTimeout=delay,
        )
        logger.info("webhook delivery failed; it will be retried", extra={"delay": delay})
        raise DeliveryPendingError(message.message_id)
    if outcome is DeliveryOutcome.GAVE_UP:
        logger.warning("webhook delivery gave up after its last attempt; the message goes to the dead-letter queue")
        raise DeliveryPendingError(message.message_id)
    logger.info("webhook delivery done", extra={"outcome": outcome.value})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
