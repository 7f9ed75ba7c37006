"""Edits whose job ends without them, and edits that fail unexpectedly: none is left waiting."""

from __future__ import annotations

from typing import Any

import pytest

import ingest_handler
from imgflow.edits import EditService
from imgflow.models import TaskStatus, edit_task_name
from integration.helpers import (
    BAD_INPUTS,
    HOPPER,
    accepted_api_job,
    create_api_job,
    put_upload,
    reported_failures,
    stored_job,
    upload_notification,
    with_receive_count,
)
from integration.test_edit_handler import VisibilitySpy, only_edit, queued_edit_events, run_edit_event
from support import EmulatedAws, FakeLambdaContext

RECIPE = {"operations": [{"op": "grayscale"}]}


def test_given_an_upload_with_edits_when_it_is_rejected_then_its_edits_end_not_run(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    data = (BAD_INPUTS / "truncated_jpeg.jpg").read_bytes()
    created = create_api_job(
        lambda_context,
        {"filename": "t.jpg", "content_type": "image/jpeg", "size": len(data), "edits": [RECIPE, RECIPE]},
    )
    key = created["upload"]["fields"]["key"]
    etag = put_upload(aws, key, data)

    failures = reported_failures(
        ingest_handler.lambda_handler, upload_notification(aws, key, etag, len(data)), lambda_context
    )

    assert failures == []
    job = stored_job(aws, created["job_id"])
    assert job.status == "rejected"
    assert [(t.status, t.stage) for t in job.tasks.values()] == [(TaskStatus.FAILED, "not run")] * 2
    assert all(t.error is not None and "corrupt_image" in t.error.message for t in job.tasks.values())
    assert aws.drain("EditQueue") == []


def test_given_an_unexpected_error_when_an_edit_runs_then_it_comes_back_after_a_backoff_not_the_visibility_timeout(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[RECIPE])
    edit_id = only_edit(stored_job(aws, job_id))
    [event] = queued_edit_events(aws)
    spy = VisibilitySpy(monkeypatch)
    original_run = EditService.run

    def flaky(self: EditService, message: Any) -> Any:
        monkeypatch.setattr(EditService, "run", original_run)
        raise ConnectionError("the table was briefly unreachable")

    monkeypatch.setattr(EditService, "run", flaky)

    failures = run_edit_event(event, lambda_context)

    assert failures == [event["Records"][0]["messageId"]]
    [delay] = spy.timeouts
    assert 1 <= delay <= 10  # attempt 1 of the backoff, far below the queue's 5400 s visibility timeout
    assert "ConnectionError" in stored_job(aws, job_id).tasks[edit_task_name(edit_id)].stage
    assert run_edit_event(with_receive_count(event, 2), lambda_context) == []
    assert stored_job(aws, job_id).tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
