"""sweep: on a schedule, ends the jobs that stopped moving, so none waits forever: `expired` when the
upload never came, `failed` (`internal_error`) when a step gave up (imgflow.sweep)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imgflow.observability import logger, metrics, tracer
from imgflow.services import sweep_service


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    outcome = sweep_service().sweep()
    if outcome.expired:
        logger.info("expired jobs whose upload never came", extra={"job_ids": outcome.expired})
        metrics.add_metric(name="JobsExpired", unit="Count", value=len(outcome.expired))
    if outcome.gave_up:
        # A step gave up on these: its message is in a dead-letter queue (`imgflow dlq`), or was lost.
        logger.warning("failed jobs whose step gave up", extra={"job_ids": outcome.gave_up})
        metrics.add_metric(name="JobsGivenUp", unit="Count", value=len(outcome.gave_up))
    if outcome.settled:
        logger.warning("settled jobs left unsettled", extra={"job_ids": outcome.settled})
    return {
        "expired": len(outcome.expired),
        "gave_up": len(outcome.gave_up),
        "settled": len(outcome.settled),
        "rescheduled": outcome.rescheduled,
    }
