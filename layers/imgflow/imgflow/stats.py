"""What the system did over a window, in the figures the CloudWatch dashboard shows: for one owner from
their jobs and webhook deliveries, or for everyone (operators) with the queues' depths too.

Figures come from the jobs themselves, so they mean the same locally and on AWS.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgflow.job_store import JobStore
from imgflow.models import TERMINAL_STATUSES, Job, TaskStatus, edit_task_name
from imgflow.queues import QueueDepth, queue_depths
from imgflow.settings import Settings
from imgflow.webhook_models import REGISTERED_ID_PREFIX
from imgflow.webhook_store import WebhookStore

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


def percentile(values: Sequence[int], fraction: float) -> int | None:
    """The nearest-rank percentile (0 < fraction <= 1); None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class JobFigures:
    uploads: int
    jobs_by_status: dict[str, int]
    errors_by_code: dict[str, int]
    edits_by_kind: dict[str, int]
    edits_by_status: dict[str, int]
    provider_calls: int
    spend_estimate_usd: float
    feedback: dict[str, int]
    job_seconds_p50: int | None
    job_seconds_p95: int | None
    edit_ms_p50: int | None
    edit_ms_p95: int | None


def job_figures(jobs: Iterable[Job], cost_per_call: float) -> JobFigures:
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    edit_statuses: Counter[str] = Counter()
    feedback: Counter[str] = Counter({"up": 0, "down": 0})
    job_seconds: list[int] = []
    edit_ms: list[int] = []
    calls = uploads = 0
    for job in jobs:
        uploads += 1
        statuses[job.status.value] += 1
        if job.error is not None:
            codes[job.error.code] += 1
        if job.status in TERMINAL_STATUSES:
            job_seconds.append(job.updated_at - job.created_at)
        for edit in job.edits.values():
            task = job.tasks.get(edit_task_name(edit.edit_id))
            kinds[edit.spec.kind] += 1
            edit_statuses[(task.status if task else TaskStatus.PENDING).value] += 1
            if task is not None and task.error is not None and job.error != task.error:
                codes[task.error.code] += 1
            calls += edit.provider_calls
            if edit.duration_ms is not None:
                edit_ms.append(edit.duration_ms)
            if edit.feedback is not None:
                feedback[edit.feedback.rating] += 1
    return JobFigures(
        uploads=uploads,
        jobs_by_status=dict(statuses),
        errors_by_code=dict(codes),
        edits_by_kind=dict(kinds),
        edits_by_status=dict(edit_statuses),
        provider_calls=calls,
        spend_estimate_usd=round(calls * cost_per_call, 4),
        feedback=dict(feedback),
        job_seconds_p50=percentile(job_seconds, 0.5),
        job_seconds_p95=percentile(job_seconds, 0.95),
        edit_ms_p50=percentile(edit_ms, 0.5),
        edit_ms_p95=percentile(edit_ms, 0.95),
    )


@dataclass(frozen=True)
class Stats:
    owner: str | None  # None: everyone's (an operator's view)
    since: int
    truncated: bool
    jobs: JobFigures
    deliveries_by_status: dict[str, int]
    queues: list[QueueDepth] | None


# The most jobs one report reads: beyond it the figures cover the newest and say they are truncated.
MAX_JOBS = 10_000


@dataclass
class StatsService:
    store: JobStore
    webhooks: WebhookStore
    sqs: SQSClient
    settings: Settings

    def report(self, owner: str, everyone: bool, since: int) -> Stats:
        jobs, truncated = self.store.created_since(since, None if everyone else owner, MAX_JOBS)
        deliveries: Counter[str] = Counter()
        for endpoint in self.webhooks.endpoints(owner, REGISTERED_ID_PREFIX):
            for delivery in self.webhooks.oldest_deliveries_since(endpoint.webhook_id, since, MAX_JOBS):
                deliveries[delivery.status.value] += 1
        return Stats(
            owner=None if everyone else owner,
            since=since,
            truncated=truncated,
            jobs=job_figures(jobs, self.settings.gemini_cost_per_call),
            deliveries_by_status=dict(deliveries),
            queues=queue_depths(self.sqs, self.settings.monitored_queues) if everyone else None,
        )
