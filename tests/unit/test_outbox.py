"""Unit tests of the outbox: the lifecycle events that one change of a JobsTable item means."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer
from boto3.dynamodb.types import TypeSerializer

from imgflow.lifecycle import SOURCE, LifecycleDetail
from imgflow.models import (
    Edit,
    EditFeedback,
    EditResult,
    EditSpec,
    ImageInfo,
    Job,
    JobError,
    JobStatus,
    Placeholder,
    Task,
    TaskStatus,
    Variant,
    edit_task_name,
)
from imgflow.outbox import changed_job_events, job_of_item
from imgflow.webhook_models import LifecycleEnvelope
from imgflow.webhooks import message_id

JOB_ID = "ab" * 16
EDIT_A, EDIT_B = "a" * 12, "b" * 12
IMAGE = ImageInfo(format="JPEG", width=640, height=480)
VARIANT = Variant(
    preset="thumb", format="webp", key="k/thumb.webp", width=150, height=112, bytes=900, content_type="image/webp"
)
RECIPE = EditSpec(kind="recipe", operations=[{"op": "grayscale"}])
DONE = Task(status=TaskStatus.SUCCEEDED, stage="done", progress=100, attempts=1)
RUNNING = Task(status=TaskStatus.RUNNING, stage="encoding", progress=40, attempts=1)
NOT_RUN = Task(
    status=TaskStatus.FAILED, stage="not run", error=JobError(code="edit_failed", message="not run: the upload was")
)


def job(status: JobStatus = JobStatus.PROCESSING, version: int = 3, **changes: Any) -> Job:
    values: dict[str, Any] = {
        "job_id": JOB_ID,
        "owner": "alice",
        "status": status,
        "version": version,
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
        "expires_at": 1_800_000_000,
        "image": IMAGE if status is not JobStatus.AWAITING_UPLOAD else None,
    }
    return Job.model_validate(values | changes)


def edit(edit_id: str, seq: int, **changes: Any) -> Edit:
    return Edit.model_validate({"edit_id": edit_id, "spec": RECIPE, "created_at": 1, "seq": seq} | changes)


def item(value: Job | dict[str, Any]) -> dict[str, Any]:
    """An item as the stream's image carries it: written as the job store writes it (`pk` = the job id),
    through DynamoDB's types and back, so numbers are Decimal."""
    attributes = value.model_dump(mode="json", exclude_none=True) if isinstance(value, Job) else value
    if isinstance(value, Job):
        attributes = {"pk": value.job_id, **attributes}
    typed = {name: TypeSerializer().serialize(attribute) for name, attribute in attributes.items()}
    return {name: TypeDeserializer().deserialize(dict(attribute)) for name, attribute in typed.items()}


def events_of(
    old: Job | dict[str, Any] | None, new: Job | dict[str, Any] | None, **kwargs: Any
) -> list[LifecycleDetail]:
    return changed_job_events(None if old is None else item(old), None if new is None else item(new), **kwargs)


def types_and_versions(events: list[LifecycleDetail]) -> list[tuple[str, int]]:
    return [(event.detail_type, event.version) for event in events]


def ids(events: list[LifecycleDetail]) -> list[str]:
    return [
        message_id(
            LifecycleEnvelope.model_validate(
                {
                    "id": "any",
                    "detail-type": event.detail_type,
                    "source": SOURCE,
                    "time": "2026-12-02T00:00:00Z",
                    "detail": event.model_dump(mode="json"),
                }
            )
        )
        for event in events
    ]


# --- the job's own status -----------------------------------------------------------------------------


def test_given_a_new_job_awaiting_its_upload_then_nothing_is_announced() -> None:
    assert events_of(None, job(JobStatus.AWAITING_UPLOAD, version=1)) == []


def test_given_validation_started_then_nothing_is_announced() -> None:
    awaiting = job(JobStatus.AWAITING_UPLOAD, version=1)
    assert events_of(awaiting, awaiting.model_copy(update={"status": JobStatus.VALIDATING, "version": 2})) == []


def test_given_an_accepted_upload_then_job_accepted_carries_the_image_and_the_new_version() -> None:
    validating = job(JobStatus.VALIDATING, version=2, image=None)
    accepted = job(JobStatus.PROCESSING, version=3, tasks={"variants": Task()})

    [event] = events_of(validating, accepted)

    assert (event.detail_type, event.version, event.status) == ("Job Accepted", 3, JobStatus.PROCESSING)
    assert event.model_dump()["image"] == IMAGE.model_dump()
    assert type(event.version) is int  # the stream's numbers are Decimal; the event's are not


def test_given_a_rejected_upload_with_an_edit_asked_then_the_edit_fails_before_the_job_is_rejected() -> None:
    error = JobError(code="corrupt_image", message="the image cannot be decoded")
    validating = job(
        JobStatus.VALIDATING,
        version=2,
        image=None,
        edits={EDIT_A: edit(EDIT_A, 0)},
        tasks={edit_task_name(EDIT_A): Task()},
    )
    rejected = validating.model_copy(
        update={"status": JobStatus.REJECTED, "version": 3, "error": error, "tasks": {edit_task_name(EDIT_A): NOT_RUN}}
    )

    events = events_of(validating, rejected)

    assert types_and_versions(events) == [("Edit Failed", 3), ("Job Rejected", 3)]
    assert events[1].model_dump()["error"] == error.model_dump()


def test_given_an_upload_that_never_came_then_job_expired() -> None:
    awaiting = job(JobStatus.AWAITING_UPLOAD, version=1)
    expired = awaiting.model_copy(update={"status": JobStatus.EXPIRED, "version": 2})

    assert types_and_versions(events_of(awaiting, expired)) == [("Job Expired", 2)]


@pytest.mark.parametrize("before", [JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING, JobStatus.PROCESSING])
def test_given_a_job_failed_from_any_open_state_then_job_failed_carries_its_error(before: JobStatus) -> None:
    error = JobError(code="internal_error", message="ingest gave up")
    failed = job(before, version=4).model_copy(update={"status": JobStatus.FAILED, "version": 5, "error": error})

    [event] = events_of(job(before, version=4), failed)

    assert (event.detail_type, event.version) == ("Job Failed", 5)
    assert event.model_dump()["error"] == error.model_dump()


def test_given_a_job_the_sweep_failed_when_a_redriven_step_reopens_it_then_it_is_not_accepted_again() -> None:
    error = JobError(code="internal_error", message="the variants step gave up after 5 attempts")
    given_up = Task(status=TaskStatus.FAILED, stage="gave up", error=error, gave_up=True)
    failed = job(JobStatus.FAILED, version=5, error=error, gave_up=True, tasks={"variants": given_up})
    reopened = job(version=6, tasks={"variants": Task(stage="redriven")})

    assert events_of(failed, reopened) == []


# --- tasks --------------------------------------------------------------------------------------------


def test_given_the_variants_task_finished_then_variants_ready_carries_them() -> None:
    placeholder = Placeholder(blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj", dominant_color="#336699")
    running = job(tasks={"variants": RUNNING, edit_task_name(EDIT_A): Task()}, edits={EDIT_A: edit(EDIT_A, 0)})
    done = running.model_copy(
        update={
            "version": 4,
            "tasks": {"variants": DONE, edit_task_name(EDIT_A): Task()},
            "variants": {VARIANT.slot: VARIANT},
            "placeholder": placeholder,
        }
    )

    [event] = events_of(running, done)

    assert (event.detail_type, event.version) == ("Variants Ready", 4)
    assert event.model_dump()["variants"] == [VARIANT.model_dump()]


def test_given_the_last_task_finished_and_the_job_settled_in_one_write_then_both_in_that_order() -> None:
    running = job(tasks={"variants": RUNNING})
    settled = running.model_copy(update={"version": 4, "status": JobStatus.SUCCEEDED, "tasks": {"variants": DONE}})

    assert types_and_versions(events_of(running, settled)) == [("Variants Ready", 4), ("Job Succeeded", 4)]


def test_given_the_variants_task_failed_then_only_the_jobs_end_tells() -> None:
    failed_task = Task(status=TaskStatus.FAILED, stage="failed", error=JobError(code="corrupt_image", message="x"))
    running = job(tasks={"variants": RUNNING})

    assert events_of(running, running.model_copy(update={"version": 4, "tasks": {"variants": failed_task}})) == []


def test_given_progress_only_then_nothing_is_announced() -> None:
    running = job(tasks={"variants": RUNNING})
    further = running.model_copy(
        update={"version": 4, "tasks": {"variants": RUNNING.model_copy(update={"progress": 70})}}
    )

    assert events_of(running, further) == []


def test_given_edits_finished_then_each_is_announced_in_the_order_they_were_asked() -> None:
    result = EditResult(key="k/e.webp", width=64, height=48, bytes=500, content_type="image/webp")
    edits = {EDIT_B: edit(EDIT_B, 1), EDIT_A: edit(EDIT_A, 0)}
    running = job(
        JobStatus.SUCCEEDED, edits=edits, tasks={edit_task_name(EDIT_A): RUNNING, edit_task_name(EDIT_B): RUNNING}
    )
    failed = Task(status=TaskStatus.FAILED, stage="failed", error=JobError(code="edit_failed", message="parent"))
    finished = running.model_copy(
        update={
            "version": 9,
            "edits": {EDIT_B: edit(EDIT_B, 1), EDIT_A: edit(EDIT_A, 0, result=result)},
            "tasks": {edit_task_name(EDIT_B): failed, edit_task_name(EDIT_A): DONE},
        }
    )

    events = events_of(running, finished)

    assert types_and_versions(events) == [("Edit Succeeded", 9), ("Edit Failed", 9)]
    assert [event.model_dump()["edit"]["edit_id"] for event in events] == [EDIT_A, EDIT_B]
    assert events[0].model_dump()["edit"]["result"]["key"] == "k/e.webp"


def test_given_feedback_given_then_replaced_then_each_rating_is_announced_once() -> None:
    done = job(JobStatus.SUCCEEDED, edits={EDIT_A: edit(EDIT_A, 0)}, tasks={edit_task_name(EDIT_A): DONE})
    up = done.model_copy(
        update={"version": 4, "edits": {EDIT_A: edit(EDIT_A, 0, feedback=EditFeedback(rating="up", given_at=5))}}
    )
    down = up.model_copy(
        update={
            "version": 5,
            "edits": {EDIT_A: edit(EDIT_A, 0, feedback=EditFeedback(rating="down", text="blurry", given_at=6))},
        }
    )
    unrelated = down.model_copy(update={"version": 6, "updated_at": 1_700_000_500})

    assert types_and_versions(events_of(done, up)) == [("Edit Feedback", 4)]
    [event] = events_of(up, down)
    assert (event.model_dump()["rating"], event.model_dump()["text"]) == ("down", "blurry")
    assert events_of(down, unrelated) == []


# --- removals -----------------------------------------------------------------------------------------


def test_given_a_job_deleted_by_its_owner_then_job_deleted_orders_after_its_last_version() -> None:
    [event] = events_of(job(JobStatus.SUCCEEDED, version=7), None)

    assert (event.detail_type, event.version, event.status) == ("Job Deleted", 8, JobStatus.SUCCEEDED)


def test_given_a_job_removed_by_ttl_then_nothing_is_announced() -> None:
    assert events_of(job(JobStatus.SUCCEEDED, version=7), None, removed_by_ttl=True) == []


# --- what is not a job --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(None, {"pk": f"deleted#{JOB_ID}", "expires_at": 5, "deleted_owner": "alice"}, id="tombstone"),
        pytest.param({"pk": f"deleted#{JOB_ID}", "expires_at": 5, "deleted_owner": "alice"}, None, id="tombstone-gone"),
        pytest.param(
            {"pk": "quota#alice#uploads-hour#1700000000", "used": 1},
            {"pk": "quota#alice#uploads-hour#1700000000", "used": 2},
            id="quota-counter",
        ),
        pytest.param(
            None, {"pk": "object#b/uploads/x.jpg", "sequencer": "0A", "job_id": JOB_ID, "expires_at": 5}, id="sequencer"
        ),
        pytest.param({"pk": "object#b/uploads/x.jpg", "sequencer": "0A", "job_id": JOB_ID}, None, id="sequencer-gone"),
    ],
)
def test_given_an_item_that_is_not_a_job_then_nothing_is_announced(
    old: dict[str, Any] | None, new: dict[str, Any] | None
) -> None:
    assert events_of(old, new) == []
    assert job_of_item(None if new is None else item(new)) is None


# --- replays ------------------------------------------------------------------------------------------


def test_given_the_same_change_read_again_then_the_same_events_carry_the_same_ids() -> None:
    running = job(tasks={"variants": RUNNING})
    settled = running.model_copy(update={"version": 4, "status": JobStatus.SUCCEEDED, "tasks": {"variants": DONE}})

    first, again = events_of(running, settled), events_of(running, settled)

    assert first == again
    assert ids(first) == ids(again)
    assert len(set(ids(first))) == 2
