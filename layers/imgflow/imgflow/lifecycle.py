"""Lifecycle events: one EventBridge event per change of a job's state that other systems care about.

Published only by the publisher function, from JobsTable's stream (`imgflow.outbox`). Consumers drop
duplicates by detail-type, `job_id`, `version` and the edit's id: one write can mean several events,
which share its `version`. `python -m imgflow.schemas DIR` writes the JSON Schema of each detail-type
to `events/schemas/`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, ClassVar

from imgflow.models import (
    EditKind,
    EditResult,
    FeedbackRating,
    ImageInfo,
    Job,
    JobError,
    JobStatus,
    Model,
    Placeholder,
    Variant,
    edit_task_name,
)

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

SOURCE = "imgflow"


class LifecycleDetail(Model):
    detail_type: ClassVar[str]

    job_id: str
    owner: str
    status: JobStatus
    version: int


class JobAccepted(LifecycleDetail):
    detail_type = "Job Accepted"
    image: ImageInfo


class JobRejected(LifecycleDetail):
    detail_type = "Job Rejected"
    error: JobError


class VariantsReady(LifecycleDetail):
    detail_type = "Variants Ready"
    variants: list[Variant]
    placeholder: Placeholder | None = None


class JobSucceeded(LifecycleDetail):
    detail_type = "Job Succeeded"


class JobFailed(LifecycleDetail):
    detail_type = "Job Failed"
    error: JobError | None = None


class EditOutcome(Model):
    edit_id: str
    kind: EditKind
    parent_edit_id: str | None = None
    provider: str | None = None
    model: str | None = None
    result: EditResult | None = None


class EditSucceeded(LifecycleDetail):
    detail_type = "Edit Succeeded"
    edit: EditOutcome


class EditFailed(LifecycleDetail):
    detail_type = "Edit Failed"
    edit: EditOutcome
    error: JobError


class JobExpired(LifecycleDetail):
    """Not in DESIGN.md's first list: a job whose upload never came also ends, and says so."""

    detail_type = "Job Expired"


class JobDeleted(LifecycleDetail):
    """The owner deleted the job: its original and every result are gone. `status` is the last one it had;
    `version` is one past its last, so the deletion orders after every earlier event."""

    detail_type = "Job Deleted"


class EditFeedbackGiven(LifecycleDetail):
    """The owner rated an edit's result (again: the newest rating counts)."""

    detail_type = "Edit Feedback"
    edit_id: str
    kind: EditKind
    rating: FeedbackRating
    text: str | None = None


DETAIL_TYPES: tuple[type[LifecycleDetail], ...] = (
    JobAccepted,
    JobRejected,
    VariantsReady,
    JobSucceeded,
    JobFailed,
    JobExpired,
    JobDeleted,
    EditSucceeded,
    EditFailed,
    EditFeedbackGiven,
)


def job_accepted(job: Job) -> JobAccepted:
    return JobAccepted.model_validate({**_common(job), "image": job.image})


def job_rejected(job: Job) -> JobRejected:
    return JobRejected.model_validate({**_common(job), "error": job.error})


def variants_ready(job: Job) -> VariantsReady:
    return VariantsReady.model_validate(
        {**_common(job), "variants": list(job.variants.values()), "placeholder": job.placeholder}
    )


def job_settled(job: Job) -> JobSucceeded | JobFailed:
    if job.status is JobStatus.SUCCEEDED:
        return JobSucceeded.model_validate(_common(job))
    return JobFailed.model_validate({**_common(job), "error": job.error})


def job_expired(job: Job) -> JobExpired:
    return JobExpired.model_validate(_common(job))


def job_deleted(job: Job) -> JobDeleted:
    return JobDeleted.model_validate({**_common(job), "version": job.version + 1})


def edit_feedback(job: Job, edit_id: str) -> EditFeedbackGiven:
    edit = job.edits[edit_id]
    if edit.feedback is None:
        raise ValueError(f"edit {edit_id} has no feedback")
    return EditFeedbackGiven.model_validate(
        {
            **_common(job),
            "edit_id": edit_id,
            "kind": edit.spec.kind,
            "rating": edit.feedback.rating,
            "text": edit.feedback.text,
        }
    )


def edit_finished(job: Job, edit_id: str) -> EditSucceeded | EditFailed:
    edit = job.edits[edit_id]
    outcome = EditOutcome(
        edit_id=edit_id,
        kind=edit.spec.kind,
        parent_edit_id=edit.parent_edit_id,
        provider=edit.provider,
        model=edit.model,
        result=edit.result,
    )
    error = job.tasks[edit_task_name(edit_id)].error
    if error is None:
        return EditSucceeded.model_validate({**_common(job), "edit": outcome})
    return EditFailed.model_validate({**_common(job), "edit": outcome, "error": error})


def _common(job: Job) -> dict[str, object]:
    return {"job_id": job.job_id, "owner": job.owner, "status": job.status, "version": job.version}


class EventPublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._events = client
        self._bus = bus_name

    def publish(self, detail: LifecycleDetail) -> None:
        response = self._events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": detail.detail_type,
                    "Detail": detail.model_dump_json(),
                    "EventBusName": self._bus,
                    "Resources": [],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused {detail.detail_type}: {json.dumps(response['Entries'])}")
