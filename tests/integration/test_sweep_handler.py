"""The scheduled sweep ends the jobs that stopped moving: `expired` when the upload never came, `failed`
(`internal_error`) when a step gave up; once, and a step that finishes meanwhile wins. A task it failed
runs again when its message comes back (a redrive); a task that failed for good never does."""

from __future__ import annotations

from typing import Any

import pytest

import ingest_handler
import sweep_handler
import variants_handler
from imgflow.job_store import EDIT_RUNNABLE, JobStore
from imgflow.models import Edit, EditSpec, JobError, JobStatus, TaskStatus
from imgflow.overdue import UPLOAD_GRACE_SECONDS
from imgflow.services import ingest_service, job_store, variants_service
from integration.helpers import (
    HOPPER,
    accepted_api_job,
    call_api,
    create_api_job,
    get_job_event,
    lifecycle_events,
    put_upload,
    reported_failures,
    stored_job,
    upload_notification,
    variants_message_event,
)
from integration.test_edit_api import added
from integration.test_edit_handler import (
    edit_event,
    finish_variants,
    only_edit,
    queued_edit_messages,
    run_edit_event,
    run_queued_edits,
)
from support import EmulatedAws, FakeLambdaContext

# Long before any deadline a step of the template could have.
LONG_AGO = 1_000


def scheduled_event() -> dict[str, Any]:
    return {"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


def sweep(context: FakeLambdaContext) -> dict[str, int]:
    result: dict[str, int] = sweep_handler.lambda_handler(scheduled_event(), context)
    return result


def stopped_moving(aws: EmulatedAws, job_id: str, **also: int) -> None:
    """As if the job's last write was long ago (and so the deadline it recorded)."""
    values = {"updated_at": LONG_AGO, "overdue_at": LONG_AGO, **also}
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in values),
        ExpressionAttributeValues={f":{name}": value for name, value in values.items()},
    )


def item(aws: EmulatedAws, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = aws.table().get_item(Key={"pk": job_id}, ConsistentRead=True)["Item"]
    return found


def stuck_variants(aws: EmulatedAws, context: FakeLambdaContext) -> str:
    """A processing job whose variants step started once and was never heard of again (a timeout)."""
    job_id, _, _ = accepted_api_job(aws, context, HOPPER.read_bytes())
    job_store().start_task(job_id, "variants", "decoding", 5)
    stopped_moving(aws, job_id)
    return job_id


# --- uploads that never came ------------------------------------------------------------------------------


def test_given_an_upload_form_long_expired_when_the_sweep_runs_then_the_job_expires_and_says_so(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    overdue = create_api_job(lambda_context)["job_id"]
    fresh = create_api_job(lambda_context)["job_id"]
    stopped_moving(aws, overdue, upload_expires_at=LONG_AGO)

    assert sweep(lambda_context) == {"expired": 1, "gave_up": 0, "settled": 0, "rescheduled": 0}

    assert item(aws, overdue)["status"] == "expired"
    assert "overdue_at" not in item(aws, overdue)
    assert item(aws, fresh)["status"] == "awaiting_upload"
    assert [(e["detail-type"], e["detail"]["job_id"]) for e in lifecycle_events(aws)] == [("Job Expired", overdue)]


def test_given_an_expired_job_when_the_sweep_runs_again_then_nothing_changes(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id = create_api_job(lambda_context)["job_id"]
    stopped_moving(aws, job_id, upload_expires_at=LONG_AGO)
    sweep(lambda_context)
    version = item(aws, job_id)["version"]

    assert sweep(lambda_context)["expired"] == 0
    assert item(aws, job_id)["version"] == version


def test_given_an_upload_that_came_in_time_but_waits_for_ingest_when_its_form_is_overdue_then_ingest_still_takes_it(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    # Found by `imgflow soak`: with ingest's queue behind, jobs whose file had come were expired and the file stranded.
    created = create_api_job(lambda_context)
    job_id, key = created["job_id"], created["upload"]["fields"]["key"]
    etag = put_upload(aws, key, HOPPER)
    stopped_moving(aws, job_id, upload_expires_at=job_store().now() - UPLOAD_GRACE_SECONDS - 10)

    assert sweep(lambda_context) == {"expired": 0, "gave_up": 0, "settled": 0, "rescheduled": 1}
    assert item(aws, job_id)["status"] == "awaiting_upload"
    status, view = call_api(get_job_event(job_id), lambda_context)
    assert (status, view["status"]) == (200, "awaiting_upload")

    notification = upload_notification(aws, key, etag, HOPPER.stat().st_size)
    assert reported_failures(ingest_handler.lambda_handler, notification, lambda_context) == []
    assert item(aws, job_id)["status"] == "processing"


def test_given_an_upload_that_came_but_ingest_never_took_when_ingests_budget_has_passed_then_the_job_fails(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    created = create_api_job(lambda_context)
    job_id, key = created["job_id"], created["upload"]["fields"]["key"]
    put_upload(aws, key, HOPPER)
    stopped_moving(aws, job_id, upload_expires_at=LONG_AGO)

    assert sweep(lambda_context)["gave_up"] == 1

    ended = item(aws, job_id)
    assert ended["status"] == "failed"
    assert ended["error"]["code"] == "internal_error"
    assert ended["error"]["message"] == "the ingest step gave up: the upload was never validated"


# --- steps that gave up -----------------------------------------------------------------------------------


def test_given_a_job_whose_variants_step_never_finishes_when_the_sweep_runs_then_it_fails_once_with_its_event(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id = stuck_variants(aws, lambda_context)
    lifecycle_events(aws)
    before = stored_job(aws, job_id).version

    assert sweep(lambda_context)["gave_up"] == 1

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.version == before + 1
    assert job.error == JobError(code="internal_error", message="the variants step gave up after 1 attempt")
    task = job.tasks["variants"]
    assert (task.status, task.gave_up, task.error) == (TaskStatus.FAILED, True, job.error)
    assert "overdue_at" not in item(aws, job_id)
    [event] = lifecycle_events(aws, job_id)
    assert event["detail-type"] == "Job Failed"
    assert (event["detail"]["version"], event["detail"]["error"]["code"]) == (job.version, "internal_error")

    assert sweep(lambda_context) == {"expired": 0, "gave_up": 0, "settled": 0, "rescheduled": 0}
    assert stored_job(aws, job_id).version == job.version
    assert lifecycle_events(aws, job_id) == []


def test_given_a_stuck_job_when_its_step_finishes_while_the_sweep_reads_it_then_the_finish_wins(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = stuck_variants(aws, lambda_context)
    read = JobStore.get

    def read_then_finish(store: JobStore, wanted: str) -> Any:
        job = read(store, wanted)
        # Between the sweep's read and its write, the late attempt finishes the task and settles the job.
        monkeypatch.setattr(JobStore, "get", read)
        variants_service().finish(job_id)
        return job

    monkeypatch.setattr(JobStore, "get", read_then_finish)

    assert sweep(lambda_context)["gave_up"] == 0

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    variants = job.tasks["variants"]
    assert (variants.status, variants.gave_up, job.error) == (TaskStatus.SUCCEEDED, False, None)


def test_given_a_job_that_moved_since_its_recorded_deadline_when_the_sweep_runs_then_it_records_the_real_one(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    aws.table().update_item(
        Key={"pk": job_id}, UpdateExpression="SET overdue_at = :t", ExpressionAttributeValues={":t": LONG_AGO}
    )
    before = stored_job(aws, job_id)

    assert sweep(lambda_context)["rescheduled"] == 1

    after = stored_job(aws, job_id)
    assert after == before  # the job itself is untouched: same version, same status
    assert int(item(aws, job_id)["overdue_at"]) > before.updated_at


def test_given_a_job_stuck_in_validation_with_an_edit_when_the_sweep_runs_then_both_end_failed(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    created = create_api_job(
        lambda_context,
        {
            "filename": "a.jpg",
            "content_type": "image/jpeg",
            "size": 10,
            "edits": [{"operations": [{"op": "grayscale"}]}],
        },
    )
    job_id = created["job_id"]
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET #s = :v",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":v": "validating"},
    )
    stopped_moving(aws, job_id)

    sweep(lambda_context)

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == JobError(
        code="internal_error", message="the ingest step gave up: the upload was never validated"
    )
    [edit_task] = job.tasks.values()
    assert edit_task.status is TaskStatus.FAILED
    assert edit_task.error == JobError(code="internal_error", message="not run: the ingest step gave up")


# --- what comes back after the sweep (a redrive) ----------------------------------------------------------


def test_given_a_job_the_sweep_failed_when_its_variants_message_comes_back_then_it_runs_and_the_job_succeeds(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id = stuck_variants(aws, lambda_context)
    sweep(lambda_context)
    failed = stored_job(aws, job_id)
    assert failed.status is JobStatus.FAILED
    lifecycle_events(aws)

    redriven = variants_message_event(aws, job_id, "ignored", None, receive_count=1)
    assert reported_failures(variants_handler.lambda_handler, redriven, lambda_context) == []

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.version > failed.version
    assert (job.error, job.gave_up) == (None, False)
    assert (job.tasks["variants"].status, job.tasks["variants"].gave_up) == (TaskStatus.SUCCEEDED, False)
    assert len(job.variants) == 4
    assert "overdue_at" not in item(aws, job_id)
    # Reopened, the job was not accepted again: its step's result and its new end are what is announced.
    events = lifecycle_events(aws, job_id)
    assert [(e["detail-type"], e["detail"]["version"]) for e in events] == [
        ("Variants Ready", job.version - 1),
        ("Job Succeeded", job.version),
    ]


def test_given_a_job_whose_variants_failed_for_good_when_the_message_comes_back_then_it_stays_failed(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    variants_service().finish(job_id, JobError(code="corrupt_image", message="broken"))
    failed = stored_job(aws, job_id)

    redriven = variants_message_event(aws, job_id, "ignored", None, receive_count=1)
    assert reported_failures(variants_handler.lambda_handler, redriven, lambda_context) == []

    assert stored_job(aws, job_id) == failed


def test_given_a_settled_job_whose_edit_never_finishes_when_the_sweep_runs_then_the_edit_fails_and_the_job_stays(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    variants_service().finish(job_id)
    edit = Edit(edit_id="0123456789ab", spec=EditSpec(kind="prompt", prompt="a hat"), created_at=LONG_AGO)
    job_store().add_edits(job_id, [edit])
    job_store().start_task(job_id, "edit-0123456789ab", "editing with AI", 20, allowed=EDIT_RUNNABLE)
    stopped_moving(aws, job_id)
    lifecycle_events(aws)

    assert sweep(lambda_context)["gave_up"] == 1

    job = stored_job(aws, job_id)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    task = job.tasks["edit-0123456789ab"]
    assert (task.status, task.gave_up) == (TaskStatus.FAILED, True)
    assert task.error == JobError(code="internal_error", message="the edit step (0123456789ab) gave up after 1 attempt")
    assert [(e["detail-type"], e["detail"]["version"]) for e in lifecycle_events(aws, job_id)] == [
        ("Edit Failed", job.version)
    ]


def test_given_a_job_whose_validation_gave_up_when_its_upload_notification_comes_back_then_it_is_validated(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = HOPPER.read_bytes()
    created = create_api_job(lambda_context, {"filename": "h.jpg", "content_type": "image/jpeg", "size": len(data)})
    job_id, key = created["job_id"], created["upload"]["fields"]["key"]
    notification = upload_notification(aws, key, put_upload(aws, key, data), len(data))

    def killed(*_: object, **__: object) -> bytes:
        raise RuntimeError("killed, as by a timeout")

    with monkeypatch.context() as crashing:
        crashing.setattr(ingest_service().storage, "read", killed)
        assert reported_failures(ingest_handler.lambda_handler, notification, lambda_context) != []
    assert stored_job(aws, job_id).status is JobStatus.VALIDATING
    stopped_moving(aws, job_id)
    sweep(lambda_context)
    assert (stored_job(aws, job_id).status, stored_job(aws, job_id).gave_up) == (JobStatus.FAILED, True)

    assert reported_failures(ingest_handler.lambda_handler, notification, lambda_context) == []

    job = stored_job(aws, job_id)
    assert (job.status, job.error, job.gave_up) == (JobStatus.PROCESSING, None, False)


def test_given_an_edit_chain_the_sweep_failed_when_the_parent_is_redriven_then_the_child_runs_and_the_job_succeeds(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    grayscale = {"operations": [{"op": "grayscale"}]}
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[grayscale])
    parent = only_edit(stored_job(aws, job_id))
    child = added(lambda_context, job_id, {**grayscale, "parent_edit_id": parent})
    queued_edit_messages(aws)  # the parent's delivery, which timed out on every attempt
    finish_variants(aws, lambda_context, job_id, key, etag)
    job_store().start_task(job_id, f"edit-{parent}", "applying recipe", 20, allowed=EDIT_RUNNABLE)
    stopped_moving(aws, job_id)
    sweep(lambda_context)
    assert stored_job(aws, job_id).status is JobStatus.FAILED

    assert run_edit_event(edit_event(job_id, parent), lambda_context) == []
    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": child}]

    job = stored_job(aws, job_id)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert {name: task.status for name, task in job.tasks.items()} == {
        "variants": TaskStatus.SUCCEEDED,
        f"edit-{parent}": TaskStatus.SUCCEEDED,
        f"edit-{child}": TaskStatus.SUCCEEDED,
    }
