"""variants: VariantsQueue messages → the web variants and placeholder of one job, recorded as they land."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgflow.batches import require_time
from imgflow.errors import TransitionRejectedError
from imgflow.event_models import VariantsRecordModel
from imgflow.models import JobError
from imgflow.observability import logger, metrics, tracer
from imgflow.services import variants_service
from imgflow.settings import get_settings

processor = BatchProcessor(event_type=EventType.SQS, model=VariantsRecordModel, raise_on_entire_batch_failure=False)
# Less time than this is likely to be cut short by the timeout (a large image's variants): no record
# of a batch starts with less. BatchSize 1 makes it matter only if the template raises it.
RECORD_TIME_MS = 20_000


def record_handler(record: VariantsRecordModel, lambda_context: LambdaContext) -> None:
    require_time(lambda_context, RECORD_TIME_MS)
    message = record.body
    logger.append_keys(job_id=message.job_id)
    attempt = int(record.attributes.ApproximateReceiveCount)
    try:
        job = variants_service().run(message)
    except TransitionRejectedError as race:
        # The job ended or the task finished elsewhere meanwhile: nothing is left to do but what a
        # deletion meanwhile leaves (the variants written before the record failed).
        logger.info("variants skipped", extra={"reason": race.message})
        variants_service().remove_leftovers(message.job_id)
        return
    except Exception:
        if attempt >= get_settings().max_receive_count:
            logger.exception("variants gave up")
            variants_service().finish(
                message.job_id,
                JobError(code="internal_error", message="making the variants kept failing"),
                gave_up=True,
            )
        raise
    if job is not None:
        metrics.add_metric(name="VariantsTaskDone", unit="Count", value=1)
        logger.info("variants task done", extra={"status": job.status, "variants": len(job.variants)})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
