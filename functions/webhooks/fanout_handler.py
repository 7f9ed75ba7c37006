"""webhook fan-out: lifecycle events (EventBridge → WebhookEventQueue) → one delivery per owner's endpoint."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from imgflow.observability import logger, metrics, tracer
from imgflow.services import webhook_service
from imgflow.webhook_models import LifecycleEnvelope


class LifecycleRecordModel(SqsRecordModel):
    body: Json[LifecycleEnvelope]


processor = BatchProcessor(event_type=EventType.SQS, model=LifecycleRecordModel, raise_on_entire_batch_failure=False)


def record_handler(record: LifecycleRecordModel) -> None:
    envelope = record.body
    logger.append_keys(job_id=envelope.detail.get("job_id"), detail_type=envelope.detail_type)
    queued = webhook_service().fan_out(envelope)
    if queued:
        logger.info("webhook deliveries queued", extra={"deliveries": queued})
        metrics.add_metric(name="WebhookDeliveriesQueued", unit="Count", value=queued)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
