"""The sweep of overdue jobs, so that no job stays unfinished: a job whose upload never came ends
`expired`; one whose step gave up (a Lambda timeout, an out-of-memory kill, a give-up write that failed:
its message is in the dead-letter queue, or on its last way there) ends `failed` with `internal_error`
and a message saying which step gave up; an edit of a settled job whose step gave up ends failed.

Candidates come from the sparse `overdue-index` (JobStore.overdue). Each is read again and judged by
`Deadlines.overdue_at`: one that moved since is only rescheduled. The ending write is conditioned on
the version read, so a job is ended once, and a step that finishes meanwhile wins. What the sweep fails
is marked `gave_up`, as what a step's own last attempt fails is: its message, redriven, runs it again
(JobStore.reopen). Like every change of a job, what the sweep writes is announced from the table's
stream (imgflow.outbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgflow.errors import TransitionRejectedError
from imgflow.job_store import JobStore
from imgflow.keys import upload_key
from imgflow.models import Job, JobError, JobStatus, open_tasks
from imgflow.overdue import Deadlines, Step, gave_up_message
from imgflow.settling import settle_if_done
from imgflow.storage import ObjectStorage


@dataclass
class SweepOutcome:
    expired: list[str] = field(default_factory=list)
    # Jobs failed, or settled jobs whose edits failed, because a step gave up.
    gave_up: list[str] = field(default_factory=list)
    # Processing jobs whose tasks had all finished but that had not settled (a crash in between).
    settled: list[str] = field(default_factory=list)
    # Jobs that had moved since their recorded deadline: only their deadline was written again.
    rescheduled: int = 0


@dataclass
class SweepService:
    store: JobStore
    deadlines: Deadlines
    storage: ObjectStorage
    uploads_bucket: str

    def sweep(self, limit: int = 100) -> SweepOutcome:
        """End every job overdue now (at most `limit` a run; the schedule brings the rest)."""
        now = self.store.now()
        outcome = SweepOutcome()
        for job_id in self.store.overdue(now, limit):
            job = self.store.get(job_id)
            if job is None:
                continue  # deleted since the index was read
            due = self.deadlines.overdue_at(job)
            if due is None or due > now:
                outcome.rescheduled += self.store.reschedule(job, due)
                continue
            try:
                self._end(job, now, outcome)
            except TransitionRejectedError:
                continue  # it moved meanwhile (a step finished, an upload came): the next run judges it again
        return outcome

    def _end(self, job: Job, now: int, outcome: SweepOutcome) -> None:
        if job.status is JobStatus.AWAITING_UPLOAD and job.upload_expires_at is not None:
            if not self.storage.exists(self.uploads_bucket, upload_key(job.owner, job.job_id)):
                self.store.expire(job.job_id)
                outcome.expired.append(job.job_id)
                return
            # The upload came in time (S3 refuses a form past its expiry) and waits in the ingest queue's
            # backlog: expiring it would strand the file. It has ingest's budget from the form's expiry, the
            # latest it can have arrived; past that, ingest gave up on it (failed below).
            ingest_due = job.upload_expires_at + self.deadlines.budget(Step.INGEST)
            if now < ingest_due:
                outcome.rescheduled += self.store.reschedule(job, ingest_due)
                return
        tasks = open_tasks(job)
        if job.status is JobStatus.PROCESSING and not tasks:
            if settle_if_done(self.store, job).status.is_terminal:
                outcome.settled.append(job.job_id)
            return
        if job.status.is_terminal:
            # Edits of a settled job, one write (one version, one event) each.
            for task in tasks:
                job = self.store.give_up(job, None, {task: _gave_up(job, task)})
            outcome.gave_up.append(job.job_id)
            return
        error = JobError(code="internal_error", message=gave_up_message(job))
        # The job's event announces the tasks closed with it, as for a rejected or expired job.
        self.store.give_up(job, error, {task: _gave_up(job, task) for task in tasks})
        outcome.gave_up.append(job.job_id)


def _gave_up(job: Job, task: str) -> JobError:
    """A task's own error: its step gave up, or (queued behind the step that did) it never ran."""
    if job.status in {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}:
        return JobError(code="internal_error", message="not run: the ingest step gave up")
    single = job.model_copy(update={"tasks": {task: job.tasks[task]}})
    return JobError(code="internal_error", message=gave_up_message(single))
