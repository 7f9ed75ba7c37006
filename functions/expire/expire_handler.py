"""expire: on a schedule, ends the jobs whose upload never came (`expired`), so none waits forever."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imgflow.observability import logger, metrics, tracer
from imgflow.services import uploads_service


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    expired = uploads_service().expire_overdue()
    if expired:
        logger.info("expired jobs whose upload never came", extra={"job_ids": expired})
        metrics.add_metric(name="JobsExpired", unit="Count", value=len(expired))
    return {"expired": len(expired)}
