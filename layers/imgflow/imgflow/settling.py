"""When a job ends: once every one of its tasks has finished, it settles as succeeded or failed."""

from __future__ import annotations

from imgflow.errors import TransitionRejectedError
from imgflow.job_store import JobStore
from imgflow.keys import job_prefix
from imgflow.models import OPEN_TASK_STATUSES, Job, JobStatus, TaskStatus
from imgflow.storage import ObjectStorage


def settle_status(job: Job) -> JobStatus | None:
    """The job's terminal status once every task has finished, else None."""
    statuses = [task.status for task in job.tasks.values()]
    if any(status in OPEN_TASK_STATUSES for status in statuses):
        return None
    return JobStatus.FAILED if TaskStatus.FAILED in statuses else JobStatus.SUCCEEDED


def settle_if_done(store: JobStore, job: Job) -> Job:
    """Settle a processing job whose tasks have all finished; otherwise return it as is.

    A job that settled already keeps its status: later edits are tracked on their own tasks.
    """
    while job.status is JobStatus.PROCESSING and (status := settle_status(job)) is not None:
        error = next((task.error for task in job.tasks.values() if task.error), None)
        try:
            settled = store.settle(job, status, error if status is JobStatus.FAILED else None)
        except TransitionRejectedError:
            # Settled by another worker; or changed since it was read (an edit added meanwhile, which it
            # now waits for): read again.
            job = store.require(job.job_id)
            continue
        return settled
    return job


def remove_leftovers(store: JobStore, storage: ObjectStorage, media_bucket: str, job_id: str) -> int:
    """What a task wrote for a job that its owner deleted while the task ran (DELETE removed the objects
    there were then; the task's later writes found no job to record them in): removed, if so."""
    owner = store.deleted_owner(job_id)
    if owner is None or store.get(job_id) is not None:
        return 0
    return storage.delete_prefix(media_bucket, job_prefix(owner, job_id))
