"""When a job ends: once every one of its tasks has finished, it settles as succeeded or failed."""

from __future__ import annotations

from imgflow.errors import TransitionRejectedError
from imgflow.job_store import JobStore
from imgflow.keys import job_prefix
from imgflow.models import OPEN_TASK_STATUSES, Job, JobStatus, TaskStatus, Variant
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


def finish_and_settle(store: JobStore, job: Job, task: str, variant: Variant) -> Job | None:
    """Close `task` of `job` (the version its worker last wrote) as succeeded, with its last `variant`, and
    settle the job in that same write when no other task is open: one write where two would be, and the
    job's end reaches its readers a write sooner. None when another task is open or the job changed since
    `job`: the caller finishes the task on its own, and the job settles as `settle_if_done` decides."""
    if job.status is not JobStatus.PROCESSING:
        return None
    done = {**job.tasks, task: job.tasks[task].model_copy(update={"status": TaskStatus.SUCCEEDED})}
    status = settle_status(job.model_copy(update={"tasks": done}))
    if status is None:
        return None
    error = next((other.error for other in job.tasks.values() if other.error), None)
    try:
        return store.finish_last_task(job, task, status, error if status is JobStatus.FAILED else None, variant=variant)
    except TransitionRejectedError:
        return None


def remove_leftovers(store: JobStore, storage: ObjectStorage, media_bucket: str, job_id: str) -> int:
    """What a task wrote for a job that its owner deleted while the task ran (DELETE removed the objects
    there were then; the task's later writes found no job to record them in): removed, if so."""
    owner = store.deleted_owner(job_id)
    if owner is None or store.get(job_id) is not None:
        return 0
    return storage.delete_prefix(media_bucket, job_prefix(owner, job_id))
