"""Final transitions are conditioned on what they read: an edit added between a job's last read and the
write that ends it is never left behind (pending on a job that will not run it, or ignored by a settle).
Each race is interleaved deterministically: the other write happens inside the first one's window."""

from __future__ import annotations

from typing import Any

import pytest

from imgflow.job_store import JobStore
from imgflow.models import Edit, EditSpec, Job, JobStatus, TaskStatus
from imgflow.services import ingest_service, variants_service
from integration.helpers import HOPPER, accepted_api_job, call_api, create_api_job, get_job_event, stored_job
from integration.test_edit_api import added, ingest_upload, upload_body
from support import EmulatedAws, FakeLambdaContext

LATE_EDIT = Edit(edit_id="0123456789ab", spec=EditSpec(kind="prompt", prompt="a hat"), created_at=1)


def open_or_failed(job: Job) -> dict[str, TaskStatus]:
    return {name: task.status for name, task in job.tasks.items()}


def test_given_a_job_whose_last_task_finished_when_an_edit_is_added_before_it_settles_then_it_waits_for_it(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    store = variants_service().store
    finish = store.finish_task

    def finish_then_edit_added(*args: Any, **kwargs: Any) -> Job:
        finished = finish(*args, **kwargs)  # what the variants step goes on with: every task done
        added(lambda_context, job_id, {"operations": [{"op": "grayscale"}]})
        return finished

    monkeypatch.setattr(store, "finish_task", finish_then_edit_added)

    variants_service().finish(job_id)

    job = stored_job(aws, job_id)
    [edit_task] = [name for name in job.tasks if name != "variants"]
    assert (job.status, job.tasks[edit_task].status) == (JobStatus.PROCESSING, TaskStatus.PENDING)


def test_given_an_upload_being_rejected_when_an_edit_is_added_meanwhile_then_it_is_closed_with_the_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"these bytes are not an image at all"
    created = create_api_job(lambda_context, upload_body(size=len(data)))
    job_id = created["job_id"]
    storage = ingest_service().storage
    read = storage.read

    def edit_added_while_validating(*args: Any, **kwargs: Any) -> bytes:
        added(lambda_context, job_id, {"operations": [{"op": "grayscale"}]})
        return read(*args, **kwargs)

    monkeypatch.setattr(storage, "read", edit_added_while_validating)

    ingest_upload(aws, lambda_context, created, data)

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.REJECTED
    assert set(open_or_failed(job).values()) == {TaskStatus.FAILED}


def test_given_a_form_that_expired_when_an_edit_is_added_as_the_job_expires_then_it_is_closed_with_the_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = create_api_job(lambda_context)["job_id"]
    aws.table().update_item(
        Key={"pk": job_id}, UpdateExpression="SET upload_expires_at = :t", ExpressionAttributeValues={":t": 1_000}
    )
    read, reads = JobStore.get, []

    def edit_added_after_the_second_read(store: JobStore, wanted: str) -> Job | None:
        job = read(store, wanted)
        reads.append(wanted)
        if len(reads) == 2:  # the API's read of the job, then the expiry's own: the edit lands between
            store.add_edits(job_id, [LATE_EDIT])
        return job

    monkeypatch.setattr(JobStore, "get", edit_added_after_the_second_read)

    status, view = call_api(get_job_event(job_id), lambda_context)

    assert (status, view["status"]) == (200, "expired")
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.EXPIRED
    assert open_or_failed(job) == {"edit-0123456789ab": TaskStatus.FAILED}
