"""edit: EditQueue messages → one edit of one job (a recipe, a Gemini edit or an in-image translation)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgflow import aws
from imgflow.batches import require_time
from imgflow.errors import TransientError, TransitionRejectedError
from imgflow.event_models import EditRecordModel
from imgflow.models import JobError, TaskStatus, edit_task_name
from imgflow.observability import logger, metrics, tracer
from imgflow.retries import retry_delay
from imgflow.services import edit_service
from imgflow.settings import get_settings

processor = BatchProcessor(event_type=EventType.SQS, model=EditRecordModel, raise_on_entire_batch_failure=False)
# Less time than this is likely to be cut short by the timeout (a recipe and its variants; a Gemini call
# takes longer in its tail): no record of a batch starts with less. BatchSize 1 makes it matter only if
# the template raises it.
RECORD_TIME_MS = 20_000


def record_handler(record: EditRecordModel, lambda_context: LambdaContext) -> None:
    require_time(lambda_context, RECORD_TIME_MS)
    message = record.body
    logger.append_keys(job_id=message.job_id, edit_id=message.edit_id)
    settings = get_settings()
    attempt = int(record.attributes.ApproximateReceiveCount)
    try:
        job = edit_service().run(message)
    except TransitionRejectedError as race:
        logger.info("edit skipped", extra={"reason": race.message})
        # A deletion meanwhile leaves what the edit wrote before its record failed.
        edit_service().remove_leftovers(message.job_id)
        return
    except TransientError as error:
        if attempt >= settings.max_receive_count:
            logger.warning("edit gave up after transient errors", extra={"attempt": attempt, "reason": error.message})
            edit_service().finish(
                message.job_id,
                message.edit_id,
                JobError(code="provider_unavailable", message=f"{error.message} (gave up after {attempt} attempts)"),
                gave_up=True,
            )
            return
        _postpone(record, attempt, error.retry_after, error.message)
        metrics.add_metric(name="EditRetried", unit="Count", value=1)
        raise
    except Exception as error:
        if attempt >= settings.max_receive_count:
            logger.exception("edit gave up")
            edit_service().finish(
                message.job_id,
                message.edit_id,
                JobError(code="internal_error", message="the edit kept failing"),
                gave_up=True,
            )
            raise
        logger.exception("edit failed unexpectedly; it will be retried")
        # Without this the retry would wait for the queue's visibility timeout (6 x 15 min).
        _postpone(record, attempt, None, f"{type(error).__name__}")
        raise
    if job is not None:
        metrics.add_metric(name="EditDone", unit="Count", value=1)
        # Gemini calls are what an edit costs: the dashboard's spend estimate is built on them.
        metrics.add_metric(name="ProviderCalls", unit="Count", value=job.edits[message.edit_id].provider_calls)
        if job.tasks[edit_task_name(message.edit_id)].status is TaskStatus.FAILED:
            metrics.add_metric(name="EditFailed", unit="Count", value=1)


def _postpone(record: EditRecordModel, attempt: int, retry_after: float | None, reason: str) -> None:
    """Bring the message back after a backoff (or the server's delay), and say so on the job."""
    settings = get_settings()
    delay = retry_delay(
        attempt, retry_after, base=settings.edit_retry_base_seconds, cap=settings.edit_retry_cap_seconds
    )
    # The message comes back after `delay`: the server's retryDelay is honoured without sleeping here.
    aws.sqs().change_message_visibility(
        QueueUrl=settings.edit_queue_url, ReceiptHandle=record.receiptHandle, VisibilityTimeout=delay
    )
    edit_service().postpone(record.body, attempt, delay, reason)
    logger.warning("edit will be retried", extra={"attempt": attempt, "delay": delay, "reason": reason})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
