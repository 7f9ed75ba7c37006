"""The outbox: which lifecycle events one committed change of a JobsTable item means.

Services only write the table. The publisher function reads the table's change stream (each change
with the item before and after it) and publishes what `changed_job_events` derives, so that every
committed transition is announced at least once, in the order of the writes (`version` order per job),
and nothing can be lost between a write and its announcement. The events come from the images alone,
so a change read again announces the same events with the same `version`: the same ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from imgflow.lifecycle import (
    LifecycleDetail,
    edit_feedback,
    edit_finished,
    job_accepted,
    job_deleted,
    job_expired,
    job_rejected,
    job_settled,
    variants_ready,
)
from imgflow.models import VARIANTS_TASK, Job, JobStatus, TaskStatus, task_edit_id

_FINISHED = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED})


def changed_job_events(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, *, removed_by_ttl: bool = False
) -> list[LifecycleDetail]:
    """The events of one change of an item, oldest first: `old` and `new` are the item before and after
    it (None when it did not exist); `removed_by_ttl` says that DynamoDB's TTL removed it (no one did).

    Items that are not jobs (quota counters, tombstones, object sequencers) mean nothing here."""
    before, after = job_of_item(old), job_of_item(new)
    if after is None:
        # A job's retention ending is no deletion: it ended long ago, and that was announced then.
        return [job_deleted(before)] if before is not None and new is None and not removed_by_ttl else []
    status_changed = before is None or before.status is not after.status
    # A job the sweep failed, reopened by its step's redriven message (imgflow.sweep), was accepted long ago.
    reopened = before is not None and before.status is JobStatus.FAILED
    events: list[LifecycleDetail] = []
    if status_changed and after.status is JobStatus.PROCESSING and not reopened:
        events.append(job_accepted(after))
    for task in _finished_tasks(before, after):
        edit_id = task_edit_id(task)
        if edit_id is not None and edit_id in after.edits:
            events.append(edit_finished(after, edit_id))
        elif task == VARIANTS_TASK and after.tasks[task].status is TaskStatus.SUCCEEDED:
            events.append(variants_ready(after))
    events += [edit_feedback(after, edit_id) for edit_id in _rated_edits(before, after)]
    # The job's end comes last: what finished in the same write is announced before it.
    if status_changed:
        if after.status is JobStatus.REJECTED:
            events.append(job_rejected(after))
        elif after.status is JobStatus.EXPIRED:
            events.append(job_expired(after))
        elif after.status in {JobStatus.SUCCEEDED, JobStatus.FAILED}:
            events.append(job_settled(after))
    return events


def job_of_item(item: Mapping[str, Any] | None) -> Job | None:
    """The job an item holds, or None when it holds none: a job's key is its id (see `job_store`)."""
    if not item or item.get("job_id") is None or item.get("pk") != item.get("job_id"):
        return None
    return Job.model_validate(item)


def _finished_tasks(before: Job | None, after: Job) -> Iterator[str]:
    """The tasks this change finished: the variants first, then edits in the order they were asked."""
    edits = after.edits

    def order(task: str) -> tuple[int, int, str]:
        edit = edits.get(task_edit_id(task) or "")
        return (0, 0, task) if edit is None else (1, edit.seq, task)

    for task in sorted(after.tasks, key=order):
        was = before.tasks.get(task) if before is not None else None
        if after.tasks[task].status in _FINISHED and (was is None or was.status not in _FINISHED):
            yield task


def _rated_edits(before: Job | None, after: Job) -> list[str]:
    rated = []
    for edit_id, edit in sorted(after.edits.items(), key=lambda item: item[1].seq):
        was = before.edits.get(edit_id) if before is not None else None
        if edit.feedback is not None and (was is None or was.feedback != edit.feedback):
            rated.append(edit_id)
    return rated
