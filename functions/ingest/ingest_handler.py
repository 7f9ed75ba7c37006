"""ingest: S3 notifications (through IngestQueue) → a job per uploaded object, validated, fanned out."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgflow import aws
from imgflow.batches import require_time
from imgflow.event_models import IngestRecordModel, created_objects
from imgflow.models import SourceObject
from imgflow.observability import logger, metrics, tracer
from imgflow.services import ingest_service
from imgflow.settings import get_settings

# A batch whose every record failed is reported like any other, so Lambda retries exactly those records.
processor = BatchProcessor(event_type=EventType.SQS, model=IngestRecordModel, raise_on_entire_batch_failure=False)
# The object's identity: a redelivered notification names the same write; the SQS message id does not.
idempotency_config = IdempotencyConfig(
    event_key_jmespath="[bucket, key, sequencer, version_id, etag]",
    expires_after_seconds=24 * 3600,
    raise_on_no_idempotency_key=True,
)
# Less time than this is likely to be cut short by the timeout (validating and copying a large upload):
# no record of a batch starts with less, so a slow neighbour never takes the rest of the batch with it.
RECORD_TIME_MS = 15_000


@lru_cache(maxsize=1)
def _ingest_once() -> Any:
    store = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table, boto3_client=aws.dynamodb_client())

    @idempotent_function(data_keyword_argument="source", persistence_store=store, config=idempotency_config)
    def ingest_once(source: SourceObject) -> dict[str, str | None]:
        result = ingest_service().ingest(source)
        logger.info("ingested", extra={"job_id": result.job_id, "outcome": result.outcome, "key": source.key})
        if result.warning:
            logger.warning(result.warning, extra={"job_id": result.job_id, "key": source.key, "etag": source.etag})
        metrics.add_metric(name=f"Ingest_{result.outcome}", unit="Count", value=1)
        if result.code:
            metrics.add_metric(name=f"Rejected_{result.code}", unit="Count", value=1)
        return {"outcome": result.outcome, "job_id": result.job_id}

    return ingest_once


def record_handler(record: IngestRecordModel, lambda_context: LambdaContext) -> None:
    require_time(lambda_context, RECORD_TIME_MS)
    sources = created_objects(record.body)
    if not sources:
        logger.info("s3 test event acknowledged")
    attempt = int(record.attributes.ApproximateReceiveCount)
    for source in sources:
        try:
            _ingest_once()(source=source)
        except Exception:
            if attempt >= get_settings().max_receive_count:
                job_id = ingest_service().give_up(source, "ingest kept failing; see the function's logs")
                logger.exception("ingest gave up", extra={"job_id": job_id, "key": source.key})
            raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency_config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
