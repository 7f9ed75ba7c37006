"""When a job that stopped moving is overdue: past that moment no retry of its open step can still come,
so the step gave up (a timeout, an out-of-memory kill, a give-up write that failed) and the sweep ends it.

A step's message is retried through its queue up to `max_receive_count` times. Each receive hides it for
the queue's visibility timeout, or, when the step postponed it (the edit step's backoff), for the run
plus the delay it asked for; after the last one it goes to the dead-letter queue. So a step that has not
written for `attempts x max(visibility, timeout + longest delay)` (plus a margin for batching windows and
the sweep's own schedule) is given up. Pure: no AWS here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from imgflow.models import Job, JobStatus, open_tasks
from imgflow.settings import Settings

# An upload that starts just before its policy expires may take a while to land and be noticed.
UPLOAD_GRACE_SECONDS = 300
# Batching windows, clocks a little apart, a message waiting for a free concurrency slot.
MARGIN_SECONDS = 300


class Step(StrEnum):
    INGEST = "ingest"
    VARIANTS = "variants"
    EDIT = "edit"


def step_of(task: str) -> Step:
    """The step that runs a task: `variants`, or an edit (`edit-<id>`)."""
    return Step.VARIANTS if task == Step.VARIANTS else Step.EDIT


@dataclass(frozen=True)
class StepLimits:
    timeout: int
    visibility: int
    # The longest delay the step may ask for before its next attempt (the edit step's backoff cap).
    retry_delay: int = 0

    def budget(self, attempts: int) -> int:
        """Seconds from a step's last write until no attempt of it can still be on its way."""
        return attempts * max(self.visibility, self.timeout + self.retry_delay) + MARGIN_SECONDS


@dataclass(frozen=True)
class Deadlines:
    steps: dict[Step, StepLimits]
    attempts: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        return cls(
            steps={
                Step.INGEST: StepLimits(settings.ingest_timeout_seconds, settings.ingest_visibility_seconds),
                Step.VARIANTS: StepLimits(settings.variants_timeout_seconds, settings.variants_visibility_seconds),
                Step.EDIT: StepLimits(
                    settings.edit_timeout_seconds,
                    settings.edit_visibility_seconds,
                    int(settings.edit_retry_cap_seconds),
                ),
            },
            attempts=settings.max_receive_count,
        )

    def budget(self, step: Step) -> int:
        return self.steps[step].budget(self.attempts)

    def overdue_at(self, job: Job) -> int | None:
        """When `job` is overdue if nothing moves after its last write; None when nothing of it is open.

        A job waiting for its upload is overdue when its form expired; one being validated when ingest
        gave up; otherwise when the slowest of its open tasks' steps gave up (edits run on settled jobs
        too). A processing job whose tasks have all finished is only waiting to settle: a margin.
        """
        if job.status is JobStatus.AWAITING_UPLOAD and job.upload_expires_at is not None:
            return job.upload_expires_at + UPLOAD_GRACE_SECONDS
        if job.status in {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}:
            return job.updated_at + self.budget(Step.INGEST)
        steps = [step_of(name) for name in open_tasks(job)]
        if steps:
            return job.updated_at + max(self.budget(step) for step in steps)
        return job.updated_at + MARGIN_SECONDS if job.status is JobStatus.PROCESSING else None

    def hint(self, step: Step, now: int) -> int:
        """What a write that leaves `step` open records: never later than `overdue_at` of the job it
        leaves (the slowest open step counts there), so the sweep comes by in time and sets it exactly."""
        return now + self.budget(step)


def gave_up_message(job: Job) -> str:
    """Which step gave up on the job, and after how many attempts, as the job's error says it."""
    tasks = open_tasks(job)
    if job.status in {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING} or not tasks:
        return "the ingest step gave up: the upload was never validated"
    name = tasks[0]
    attempts = job.tasks[name].attempts
    step = "the variants step" if step_of(name) is Step.VARIANTS else f"the edit step ({name.removeprefix('edit-')})"
    if attempts == 0:
        return f"{step} gave up before it started"
    return f"{step} gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
