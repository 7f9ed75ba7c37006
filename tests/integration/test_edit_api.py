"""Edits through the HTTP API: asked with `POST /uploads` or added with `POST /jobs/{id}/edits` (chains
included), then run by the edit function on what EditQueue holds, and shown by `GET /jobs/{id}`."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image

import ingest_handler
from imgflow import services
from imgflow.models import JobStatus, TaskStatus, edit_task_name
from integration.helpers import (
    HOPPER,
    accepted_api_job,
    call_api,
    create_api_job,
    create_upload_event,
    detail_types,
    lifecycle_events,
    put_upload,
    reported_failures,
    stored_job,
    stored_jobs,
    tap_lifecycle_events,
    upload_notification,
)
from integration.test_edit_handler import (
    RECIPE,
    api_view,
    assert_same_pixels,
    decoded,
    edit_event,
    edit_view,
    expected_recipe,
    finish_variants,
    media_bytes,
    only_edit,
    queued_edit_messages,
    run_edit_event,
    run_queued_edits,
)
from support import EmulatedAws, FakeLambdaContext

ROTATE = [{"op": "rotate", "degrees": 90}]
FLIP = [{"op": "flip", "direction": "horizontal"}]
UNKNOWN_EDIT_ID = "0123456789ab"


@pytest.fixture
def no_gemini_keys(aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEYS", raising=False)
    monkeypatch.delenv("GEMINI_BASE_URL", raising=False)
    monkeypatch.setenv("GEMINI_API_KEYS_SECRET", "")
    services.reset()


# --- requests -----------------------------------------------------------------------------------------------


def upload_body(**changes: Any) -> dict[str, Any]:
    """The body of events/api_create_upload.json, changed."""
    body: dict[str, Any] = json.loads(create_upload_event()["body"])
    body.update(changes)
    return body


def add_edit_event(job_id: str, body: dict[str, Any] | str) -> dict[str, Any]:
    """events/api_create_upload.json moved to `POST /jobs/{job_id}/edits` with `body`."""
    event = create_upload_event(body)
    path = f"/jobs/{job_id}/edits"
    event["rawPath"] = path
    event["routeKey"] = "POST /jobs/{job_id}/edits"
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["routeKey"] = "POST /jobs/{job_id}/edits"
    event["pathParameters"] = {"job_id": job_id}
    return event


def add_edit(context: FakeLambdaContext, job_id: str, body: dict[str, Any] | str) -> tuple[int, dict[str, Any]]:
    return call_api(add_edit_event(job_id, body), context)


def added(context: FakeLambdaContext, job_id: str, body: dict[str, Any]) -> str:
    """POST /jobs/{job_id}/edits, which must answer 202; the new edit's id."""
    status, answer = add_edit(context, job_id, body)
    assert status == 202, answer
    assert answer["status_url"].endswith(f"/jobs/{job_id}")
    edit_id: str = answer["edit_id"]
    return edit_id


def ingest_upload(aws: EmulatedAws, context: FakeLambdaContext, created: dict[str, Any], data: bytes) -> None:
    key = created["upload"]["fields"]["key"]
    etag = put_upload(aws, key, data)
    notification = upload_notification(aws, key, etag, len(data))
    assert reported_failures(ingest_handler.lambda_handler, notification, context) == []


def rejected_job(aws: EmulatedAws, context: FakeLambdaContext) -> str:
    data = b"these bytes are not an image at all"
    created = create_api_job(context, upload_body(size=len(data)))
    ingest_upload(aws, context, created, data)
    job_id: str = created["job_id"]
    assert stored_job(aws, job_id).status is JobStatus.REJECTED
    return job_id


def png_with_hidden_colour() -> bytes:
    """An RGBA PNG: an opaque gradient on the left, fully transparent white on the right."""
    image = Image.new("RGBA", (64, 32), (255, 255, 255, 0))
    for x in range(32):
        for y in range(32):
            image.putpixel((x, y), (x * 8, y * 8, 128, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# --- POST /uploads with edits -----------------------------------------------------------------------------------


def test_given_edits_with_an_upload_when_created_then_each_has_a_pending_task_and_runs_once_accepted(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    edits = [{"operations": RECIPE}, {"prompt": "make it blue", "enhance_prompt": True}, {"translate_to": "German"}]
    data = HOPPER.read_bytes()

    created = create_api_job(lambda_context, upload_body(size=len(data), edits=edits))

    job = stored_job(aws, created["job_id"])
    assert job.status is JobStatus.AWAITING_UPLOAD
    assert len(job.edits) == 3
    assert sorted(job.tasks) == sorted(edit_task_name(edit_id) for edit_id in job.edits)
    for edit_id, edit in job.edits.items():
        task = job.tasks[edit_task_name(edit_id)]
        assert (task.status, task.progress, task.attempts) == (TaskStatus.PENDING, 0, 0)
        assert (edit.parent_edit_id, edit.depth, edit.result) == (None, 1, None)
    specs = {edit.spec.kind: edit.spec for edit in job.edits.values()}
    assert sorted(specs) == ["prompt", "recipe", "translate"]
    assert [op.model_dump(mode="json") for op in specs["recipe"].operations or []] == [
        {"op": "crop", "left": 10, "top": 20, "width": 100, "height": 80},
        {"op": "grayscale"},
        {"op": "rotate", "degrees": 90.0, "expand": True, "fill": "#00000000"},
    ]
    assert (specs["prompt"].prompt, specs["prompt"].enhance_prompt) == ("make it blue", True)
    assert specs["translate"].translate_to == "German"
    view = api_view(created["job_id"], lambda_context)
    assert sorted((edit["kind"], edit["status"]) for edit in view["edits"]) == [
        ("prompt", "pending"),
        ("recipe", "pending"),
        ("translate", "pending"),
    ]
    assert queued_edit_messages(aws) == []  # nothing to edit before the upload

    ingest_upload(aws, lambda_context, created, data)

    messages = queued_edit_messages(aws)
    assert sorted(message["edit_id"] for message in messages) == sorted(job.edits)
    assert {message["job_id"] for message in messages} == {created["job_id"]}
    job = stored_job(aws, created["job_id"])
    assert job.status is JobStatus.PROCESSING
    assert sorted(job.tasks) == sorted(["variants", *(edit_task_name(edit_id) for edit_id in job.edits)])


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        pytest.param([{"operations": [{"op": "sepia"}]}], ["edits.0.operations.0", "sepia"], id="unknown-op"),
        pytest.param(
            [{"operations": [{"op": "crop", "left": 0, "top": 0, "height": 10}]}],
            ["edits.0.operations.0.crop.width", "Field required"],
            id="crop-without-width",
        ),
        pytest.param(
            [{"operations": [{"op": "grayscale"}] * 21}], ["edits.0.operations", "at most 20"], id="21-operations"
        ),
        pytest.param(
            [{"prompt": "make it blue", "operations": [{"op": "grayscale"}]}],
            ["edits.0", "exactly one of prompt, translate_to or operations", "prompt", "operations"],
            id="two-kinds",
        ),
        pytest.param([{}], ["edits.0", "exactly one of prompt, translate_to or operations"], id="no-kind"),
        pytest.param([{"operations": []}], ["edits.0.operations", "at least 1"], id="no-operations"),
        pytest.param(
            [{"operations": [{"op": "rotate", "degrees": 400}]}], ["edits.0.operations.0.rotate.degrees"], id="angle"
        ),
        pytest.param(
            [{"operations": [{"op": "watermark", "text": "a\nb"}]}],
            ["edits.0.operations.0.watermark.text", "control characters"],
            id="watermark-newline",
        ),
        pytest.param(
            [{"operations": [{"op": "grayscale", "strength": 1}]}], ["edits.0.operations.0.grayscale.strength"], id="x"
        ),
        pytest.param([{"translate_to": "Deutsch; drop table"}], ["edits.0.translate_to"], id="language"),
        pytest.param(
            [{"operations": [{"op": "grayscale"}], "enhance_prompt": True}],
            ["edits.0", "enhance_prompt goes with prompt"],
            id="enhance-without-prompt",
        ),
        pytest.param([{"operations": [{"op": "grayscale"}]}] * 11, ["edits", "at most 10"], id="11-edits"),
    ],
)
def test_given_an_invalid_edit_in_an_upload_request_when_posted_then_400_naming_the_field_and_no_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, edits: list[dict[str, Any]], expected: list[str]
) -> None:
    status, body = call_api(create_upload_event(upload_body(edits=edits)), lambda_context)

    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"
    for part in expected:
        assert part in body["error"]["message"], body["error"]["message"]
    assert stored_jobs(aws) == []


def test_given_ten_edits_when_an_upload_is_asked_then_201_with_ten_tasks(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    created = create_api_job(lambda_context, upload_body(edits=[{"operations": [{"op": "grayscale"}]}] * 10))

    job = stored_job(aws, created["job_id"])
    assert len(job.edits) == 10
    assert sum(name.startswith("edit-") for name in job.tasks) == 10


def test_given_edits_asked_together_when_the_job_is_shown_then_they_come_in_the_order_they_were_asked(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    edits = [{"operations": RECIPE}, {"translate_to": "German"}, {"prompt": "make it blue"}]
    created = create_api_job(lambda_context, upload_body(edits=edits))
    # DynamoDB Map attributes are unordered: AWS may hand the edits back in any order. Store them reversed.
    table = aws.table()
    item = table.get_item(Key={"pk": created["job_id"]}, ConsistentRead=True)["Item"]
    item["edits"] = dict(reversed(list(item["edits"].items())))
    table.put_item(Item=item)

    view = api_view(created["job_id"], lambda_context)

    assert [edit["kind"] for edit in view["edits"]] == ["recipe", "translate", "prompt"]


# --- POST /jobs/{id}/edits and chains ------------------------------------------------------------------------------


def test_given_a_child_edit_when_its_parent_runs_then_it_is_queued_only_after_and_built_on_the_parents_result(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    original = HOPPER.read_bytes()
    job_id, key, etag = accepted_api_job(aws, lambda_context, original, edits=[{"operations": ROTATE}])
    parent_id = only_edit(stored_job(aws, job_id))
    assert queued_edit_messages(aws) == [{"job_id": job_id, "edit_id": parent_id}]

    child_id = added(lambda_context, job_id, {"operations": FLIP, "parent_edit_id": parent_id})

    assert queued_edit_messages(aws) == []  # the parent has not succeeded yet
    job = stored_job(aws, job_id)
    child = job.edits[child_id]
    assert (child.parent_edit_id, child.depth) == (parent_id, 2)
    assert job.tasks[edit_task_name(child_id)].status is TaskStatus.PENDING

    assert run_edit_event(edit_event(job_id, parent_id), lambda_context) == []

    assert queued_edit_messages(aws) == [{"job_id": job_id, "edit_id": child_id}]
    assert stored_job(aws, job_id).tasks[edit_task_name(child_id)].status is TaskStatus.PENDING

    assert run_edit_event(edit_event(job_id, child_id), lambda_context) == []

    job = stored_job(aws, job_id)
    result = job.edits[child_id].result
    assert result is not None
    assert_same_pixels(decoded(media_bytes(aws, result.key)), expected_recipe(original, ROTATE, FLIP))
    view = edit_view(api_view(job_id, lambda_context), child_id)
    assert (view["status"], view["parent_edit_id"], view["kind"]) == ("succeeded", parent_id, "recipe")
    assert view["url"] is not None
    finish_variants(aws, lambda_context, job_id, key, etag)
    assert stored_job(aws, job_id).status is JobStatus.SUCCEEDED
    events = lifecycle_events(aws, job_id)
    succeeded = [event["detail"]["edit"] for event in events if event["detail-type"] == "Edit Succeeded"]
    assert [(edit["edit_id"], edit["parent_edit_id"]) for edit in succeeded] == [
        (parent_id, None),
        (child_id, parent_id),
    ]
    assert detail_types(events).count("Job Succeeded") == 1


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(HOPPER.read_bytes(), id="rgb-jpeg"),
        pytest.param(png_with_hidden_colour(), id="rgba-png-hidden-colour"),
    ],
)
def test_given_a_recipe_edit_when_it_runs_then_the_stored_result_has_exactly_its_pixels(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, source: bytes
) -> None:
    job_id, _, _ = accepted_api_job(
        aws, lambda_context, source, filename="image", content_type="image/png", edits=[{"operations": FLIP}]
    )
    edit_id = only_edit(stored_job(aws, job_id))

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    result = stored_job(aws, job_id).edits[edit_id].result
    assert result is not None
    assert_same_pixels(decoded(media_bytes(aws, result.key)), expected_recipe(source, FLIP))


def test_given_a_chain_on_an_image_with_transparency_when_it_runs_then_it_equals_both_recipes_applied_at_once(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    source = png_with_hidden_colour()
    contrast = [{"op": "contrast", "factor": 2}]
    job_id, _, _ = accepted_api_job(
        aws, lambda_context, source, filename="image.png", content_type="image/png", edits=[{"operations": FLIP}]
    )
    parent_id = only_edit(stored_job(aws, job_id))
    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": parent_id}]
    child_id = added(lambda_context, job_id, {"operations": contrast, "parent_edit_id": parent_id})

    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": child_id}]

    result = stored_job(aws, job_id).edits[child_id].result
    assert result is not None
    child = decoded(media_bytes(aws, result.key))
    expected = expected_recipe(source, FLIP, contrast)
    visible = Image.new("RGBA", expected.size)
    # Only what can be seen: both composited on black.
    assert_same_pixels(Image.alpha_composite(visible, child.convert("RGBA")), Image.alpha_composite(visible, expected))


def test_given_max_edit_chain_two_when_a_third_link_is_added_then_400_chain_too_long(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_EDIT_CHAIN", "2")
    services.reset()
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": ROTATE}])
    root_id = only_edit(stored_job(aws, job_id))
    second_id = added(lambda_context, job_id, {"operations": FLIP, "parent_edit_id": root_id})
    before = stored_job(aws, job_id)

    status, body = add_edit(lambda_context, job_id, {"operations": FLIP, "parent_edit_id": second_id})

    assert status == 400, body
    assert body["error"]["code"] == "chain_too_long"
    assert "the limit is 2" in body["error"]["message"]
    assert stored_job(aws, job_id) == before
    # Another edit on the root is only the second link: still fine.
    added(lambda_context, job_id, {"operations": [{"op": "grayscale"}], "parent_edit_id": root_id})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"operations": FLIP, "parent_edit_id": UNKNOWN_EDIT_ID}, "parent_edit_id", id="unknown-parent"),
        pytest.param({"operations": FLIP, "parent_edit_id": "../etc"}, "parent_edit_id", id="malformed-parent"),
        pytest.param({"prompt": "x", "translate_to": "German"}, "exactly one of", id="two-kinds"),
        pytest.param({"operations": [{"op": "resize"}]}, "resize needs width, height or both", id="resize-no-side"),
        pytest.param({"operations": FLIP, "filename": "x.jpg"}, "filename", id="extra-field"),
        pytest.param("{not json", "", id="not-json"),
        pytest.param(
            {"operations": [{"op": "crop", "left": 10**40, "top": 0, "width": 1, "height": 1}]},
            "body.operations.0.crop.left",
            id="crop-dynamodb-cannot-store",
        ),
        pytest.param({"operations": [{"op": "rotate", "degrees": 1e-200}]}, "rotate.degrees", id="angle-1e-200"),
        pytest.param('{"operations": [{"op": "grayscale"}], "operations": []}', "given twice", id="a-key-twice"),
        pytest.param('{"operations": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested", id="nested-100000-deep"),
    ],
)
def test_given_an_invalid_edit_when_added_then_400_invalid_request_and_the_job_is_unchanged(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, body: dict[str, Any] | str, expected: str
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    before = stored_job(aws, job_id)

    status, answer = add_edit(lambda_context, job_id, body)

    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
    assert expected in answer["error"]["message"]
    assert stored_job(aws, job_id) == before
    assert queued_edit_messages(aws) == []


def test_given_no_such_job_when_an_edit_is_added_then_404(aws: EmulatedAws, lambda_context: FakeLambdaContext) -> None:
    status, answer = add_edit(lambda_context, "0" * 32, {"operations": FLIP})

    assert status == 404, answer
    assert answer["error"]["code"] == "not_found"


def test_given_a_parent_that_fails_when_it_has_pending_children_then_they_fail_too_and_no_child_can_be_added(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None, no_gemini_keys: None
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": "make it blue"}])
    parent_id = only_edit(stored_job(aws, job_id))
    child_id = added(lambda_context, job_id, {"operations": FLIP, "parent_edit_id": parent_id})
    grandchild_id = added(lambda_context, job_id, {"operations": ROTATE, "parent_edit_id": child_id})
    lifecycle_events(aws)

    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": parent_id}]

    assert queued_edit_messages(aws) == []
    job = stored_job(aws, job_id)
    parent_error = job.tasks[edit_task_name(parent_id)].error
    assert parent_error is not None
    assert parent_error.code == "provider_unavailable"
    for edit_id, builds_on in ((child_id, parent_id), (grandchild_id, child_id)):
        task = job.tasks[edit_task_name(edit_id)]
        assert task.status is TaskStatus.FAILED
        assert task.attempts == 0
        assert task.error is not None
        assert task.error.code == "edit_failed"
        assert builds_on in task.error.message
    events = lifecycle_events(aws, job_id)
    failed = {event["detail"]["edit"]["edit_id"]: event["detail"] for event in events}
    assert detail_types(events) == ["Edit Failed"] * 3
    assert sorted(failed) == sorted([parent_id, child_id, grandchild_id])
    assert failed[child_id]["error"]["code"] == "edit_failed"

    status, answer = add_edit(lambda_context, job_id, {"operations": FLIP, "parent_edit_id": parent_id})

    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
    assert "parent_edit_id" in answer["error"]["message"]
    finish_variants(aws, lambda_context, job_id, key, etag)
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert len(job.edits) == 3


def test_given_the_parent_fails_while_a_child_is_being_added_then_the_child_does_not_stay_pending(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    no_gemini_keys: None,
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": "make it blue"}])
    parent_id = only_edit(stored_job(aws, job_id))
    queued_edit_messages(aws)
    store = services.uploads_service().store
    write_edits: Callable[..., Any] = store.add_edits

    def parent_fails_first(*args: Any, **kwargs: Any) -> Any:
        # The edit function fails the parent between the API's read of the job and its write.
        assert run_edit_event(edit_event(job_id, parent_id), lambda_context) == []
        return write_edits(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "add_edits", parent_fails_first)
        status, answer = add_edit(lambda_context, job_id, {"operations": FLIP, "parent_edit_id": parent_id})
    run_queued_edits(aws, lambda_context)
    finish_variants(aws, lambda_context, job_id, key, etag)

    job = stored_job(aws, job_id)
    assert stored_job(aws, job_id).tasks[edit_task_name(parent_id)].status is TaskStatus.FAILED
    if status == 202:
        child_task = job.tasks[edit_task_name(answer["edit_id"])]
        assert child_task.status is TaskStatus.FAILED, f"the child is {child_task.status}: {child_task.stage}"
    else:
        assert status == 400, answer
    assert job.status is JobStatus.FAILED


def test_given_a_rejected_job_when_an_edit_is_added_then_409_conflict(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id = rejected_job(aws, lambda_context)
    before = stored_job(aws, job_id)

    status, answer = add_edit(lambda_context, job_id, {"operations": FLIP})

    assert status == 409, answer
    assert answer["error"]["code"] == "conflict"
    assert "rejected" in answer["error"]["message"]
    assert stored_job(aws, job_id) == before


def test_given_a_job_awaiting_its_upload_when_an_edit_is_added_then_it_runs_once_the_upload_is_accepted(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    data = HOPPER.read_bytes()
    created = create_api_job(lambda_context, upload_body(size=len(data)))
    job_id = created["job_id"]

    edit_id = added(lambda_context, job_id, {"operations": FLIP})

    assert queued_edit_messages(aws) == []
    ingest_upload(aws, lambda_context, created, data)
    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": edit_id}]
    job = stored_job(aws, job_id)
    assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
    result = job.edits[edit_id].result
    assert result is not None
    assert_same_pixels(decoded(media_bytes(aws, result.key)), expected_recipe(data, FLIP))


def test_given_a_succeeded_job_when_an_edit_is_added_then_it_runs_and_the_job_stays_succeeded(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    original = HOPPER.read_bytes()
    job_id, key, etag = accepted_api_job(aws, lambda_context, original)
    finish_variants(aws, lambda_context, job_id, key, etag)
    settled = stored_job(aws, job_id)
    assert settled.status is JobStatus.SUCCEEDED
    lifecycle_events(aws)

    edit_id = added(lambda_context, job_id, {"operations": RECIPE})

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.version > settled.version
    assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.PENDING
    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": edit_id}]
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.error is None
    result = job.edits[edit_id].result
    assert result is not None
    assert_same_pixels(decoded(media_bytes(aws, result.key)), expected_recipe(original, RECIPE))
    view = api_view(job_id, lambda_context)
    assert (view["status"], view["version"]) == ("succeeded", job.version)
    assert edit_view(view, edit_id)["status"] == "succeeded"
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Edit Succeeded"]  # no second Job Succeeded: the job settled once
    assert events[0]["detail"]["status"] == "succeeded"


def test_given_a_failed_job_when_a_recipe_edit_is_added_then_it_runs_and_the_job_stays_failed(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, no_gemini_keys: None
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": "make it blue"}])
    run_queued_edits(aws, lambda_context)
    finish_variants(aws, lambda_context, job_id, key, etag)
    assert stored_job(aws, job_id).status is JobStatus.FAILED

    edit_id = added(lambda_context, job_id, {"operations": FLIP})

    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": edit_id}]
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED


def test_given_recipe_parameters_when_stored_then_fractions_are_dynamodb_numbers_and_read_back_exactly(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    operations = [{"op": "brightness", "factor": 1.25}, {"op": "watermark", "text": "© imgflow", "opacity": 0.3}]
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())

    edit_id = added(lambda_context, job_id, {"operations": operations})

    item = aws.table().get_item(Key={"pk": job_id}, ConsistentRead=True)["Item"]
    stored_operations = item["edits"][edit_id]["spec"]["operations"]
    assert stored_operations[0]["factor"] == Decimal("1.25")
    assert stored_operations[1]["opacity"] == Decimal("0.3")
    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": edit_id}]
    result = stored_job(aws, job_id).edits[edit_id].result
    assert result is not None
    assert_same_pixels(decoded(media_bytes(aws, result.key)), expected_recipe(HOPPER.read_bytes(), operations))


def test_given_a_parent_result_when_a_child_crops_it_then_the_crop_is_in_the_pixels_the_view_shows(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _, _ = accepted_api_job(
        aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": [{"op": "resize", "width": 100}]}]
    )
    parent_id = only_edit(stored_job(aws, job_id))
    assert run_queued_edits(aws, lambda_context) == [{"job_id": job_id, "edit_id": parent_id}]
    parent_view = edit_view(api_view(job_id, lambda_context), parent_id)
    assert (parent_view["width"], parent_view["height"]) == (100, 100)
    crop = [{"op": "crop", "left": 80, "top": 80, "width": 20, "height": 20}]  # the parent's bottom-right corner

    child_id = added(lambda_context, job_id, {"operations": crop, "parent_edit_id": parent_id})
    run_queued_edits(aws, lambda_context)

    job = stored_job(aws, job_id)
    task = job.tasks[edit_task_name(child_id)]
    assert task.status is TaskStatus.SUCCEEDED, task.error
    parent_result, child_result = job.edits[parent_id].result, job.edits[child_id].result
    assert parent_result is not None
    assert child_result is not None
    parent_pixels = decoded(media_bytes(aws, parent_result.key))
    assert_same_pixels(decoded(media_bytes(aws, child_result.key)), parent_pixels.crop((80, 80, 100, 100)))


def test_given_an_upload_when_a_recipe_crops_it_then_the_crop_is_in_the_pixels_the_view_shows(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    quadrant = [{"op": "crop", "left": 64, "top": 64, "width": 64, "height": 64}]
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": quadrant}])
    view = api_view(job_id, lambda_context)
    assert (view["image"]["width"], view["image"]["height"]) == (128, 128)

    run_queued_edits(aws, lambda_context)

    job = stored_job(aws, job_id)
    edit_id = only_edit(job)
    task = job.tasks[edit_task_name(edit_id)]
    assert task.status is TaskStatus.SUCCEEDED, task.error
    result = job.edits[edit_id].result
    assert result is not None
    assert (result.width, result.height) == (64, 64)


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "crop", "left": 100, "top": 100, "width": 64, "height": 64}],  # reaches outside 128x128
        [{"op": "resize", "width": 64}, {"op": "crop", "left": 0, "top": 0, "width": 100, "height": 10}],
    ],
    ids=["crop-outside", "crop-outside-after-resize"],
)
def test_given_an_accepted_image_when_a_recipe_cannot_work_on_it_then_400_naming_the_step_and_nothing_charged(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, operations: list[dict[str, Any]]
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    before = stored_job(aws, job_id)
    quota_before = aws.table().scan(ConsistentRead=True)["Items"]

    status, body = add_edit(lambda_context, job_id, {"operations": operations})

    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert f"operation {len(operations)} (crop)" in body["error"]["message"]
    assert "128x128" in body["error"]["message"]
    assert stored_job(aws, job_id) == before
    assert aws.table().scan(ConsistentRead=True)["Items"] == quota_before
    assert aws.drain("EditQueue") == []


def test_given_a_parent_edit_with_a_result_when_a_child_recipe_reaches_outside_it_then_400(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, _, _ = accepted_api_job(
        aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": [{"op": "resize", "width": 100}]}]
    )
    parent_id = only_edit(stored_job(aws, job_id))
    run_queued_edits(aws, lambda_context)
    outside = [{"op": "crop", "left": 90, "top": 90, "width": 20, "height": 20}]  # fits 128x128, not 100x100

    status, body = add_edit(lambda_context, job_id, {"operations": outside, "parent_edit_id": parent_id})

    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert "100x100" in body["error"]["message"]


def test_given_a_job_with_very_many_edits_when_another_is_added_then_a_clear_4xx_not_a_crash(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    request = {"prompt": ("make it look like an old postcard " * 59)[:2000]}  # as long as a prompt may be
    first = added(lambda_context, job_id, request)
    # What 182 more of the same POSTs leave in the job, written at once (182 requests would take long here).
    table = aws.table()
    item = table.get_item(Key={"pk": job_id}, ConsistentRead=True)["Item"]
    for number in range(182):
        edit_id = f"{number:012x}"
        item["edits"][edit_id] = {**item["edits"][first], "edit_id": edit_id}
        item["tasks"][edit_task_name(edit_id)] = item["tasks"][edit_task_name(first)]
    table.put_item(Item=item)

    status, answer = 202, None
    for _ in range(10):
        try:
            status, answer = add_edit(lambda_context, job_id, request)
        except Exception as error:  # what API Gateway turns into a bare 500
            pytest.fail(f"POST /jobs/{{id}}/edits crashed: {type(error).__name__}: {str(error)[:300]}")
        if status != 202:
            break

    assert status in {400, 409, 413}, answer
    assert answer is not None
    assert answer["error"]["code"] in {"invalid_request", "conflict", "too_many_edits"}


def test_given_two_edits_an_hour_when_a_third_recipe_is_added_then_429_and_the_job_is_unchanged(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITS_PER_HOUR_PER_OWNER", "2")
    services.reset()
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": ROTATE}])
    added(lambda_context, job_id, {"operations": FLIP})
    before = stored_job(aws, job_id)

    status, body = add_edit(lambda_context, job_id, {"operations": FLIP})

    assert (status, body["error"]["code"]) == (429, "quota_exceeded")
    assert "edits-hour" in body["error"]["message"]
    assert stored_job(aws, job_id) == before


def test_given_max_edits_per_job_three_when_a_fourth_is_added_then_400_and_nothing_is_charged(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_EDITS_PER_JOB", "3")
    services.reset()
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": ROTATE}])
    for _ in range(2):
        added(lambda_context, job_id, {"operations": FLIP})
    charged = services.uploads_service().quota_usage("alice")

    status, body = add_edit(lambda_context, job_id, {"operations": FLIP})

    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert "the limit is 3" in body["error"]["message"]
    assert services.uploads_service().quota_usage("alice") == charged


# --- feedback on edits -----------------------------------------------------------------------------------


def feedback(
    context: FakeLambdaContext, job_id: str, edit_id: str, body: dict[str, Any], sub: str = "alice"
) -> tuple[int, dict[str, Any]]:
    event = add_edit_event(job_id, body)
    path = f"/jobs/{job_id}/edits/{edit_id}/feedback"
    route = "POST /jobs/{job_id}/edits/{edit_id}/feedback"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = route
    event["pathParameters"] = {"job_id": job_id, "edit_id": edit_id}
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    return call_api(event, context)


def finished_recipe_edit(aws: EmulatedAws, context: FakeLambdaContext) -> tuple[str, str]:
    tap_lifecycle_events(aws)
    job_id, _, _ = accepted_api_job(aws, context, HOPPER.read_bytes(), edits=[{"operations": ROTATE}])
    edit_id = only_edit(stored_job(aws, job_id))
    run_queued_edits(aws, context)
    lifecycle_events(aws)
    return job_id, edit_id


def test_given_a_finished_edit_when_rated_then_the_view_shows_it_an_event_says_so_and_a_new_rating_replaces_it(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, edit_id = finished_recipe_edit(aws, lambda_context)
    version = stored_job(aws, job_id).version

    status, view = feedback(lambda_context, job_id, edit_id, {"rating": "up"})

    assert status == 200, view
    assert (view["edit_id"], view["feedback"]["rating"], view["feedback"].get("text")) == (edit_id, "up", None)
    [event] = lifecycle_events(aws, job_id)
    assert event["detail-type"] == "Edit Feedback"
    assert event["detail"]["rating"] == "up"
    assert event["detail"]["version"] == version + 1

    status, view = feedback(lambda_context, job_id, edit_id, {"rating": "down", "text": "the horizon tilts"})

    assert (status, view["feedback"]["rating"], view["feedback"]["text"]) == (200, "down", "the horizon tilts")
    shown = edit_view(api_view(job_id, lambda_context), edit_id)
    assert shown["feedback"]["text"] == "the horizon tilts"


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "down"},
        {"rating": "down", "text": "   "},
        {"rating": "meh"},
        {"rating": "up", "text": "x" * 2001},
        {"rating": "up", "extra": 1},
    ],
)
def test_given_feedback_that_cannot_be_then_400_and_nothing_recorded(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, body: dict[str, Any]
) -> None:
    job_id, edit_id = finished_recipe_edit(aws, lambda_context)
    before = stored_job(aws, job_id)

    status, answer = feedback(lambda_context, job_id, edit_id, body)

    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    assert stored_job(aws, job_id) == before
    assert lifecycle_events(aws, job_id) == []


def test_given_feedback_on_what_is_not_the_callers_finished_edit_then_404_or_409(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, edit_id = finished_recipe_edit(aws, lambda_context)
    pending = added(lambda_context, job_id, {"operations": FLIP})

    assert feedback(lambda_context, job_id, edit_id, {"rating": "up"}, sub="bob")[0] == 404
    assert feedback(lambda_context, job_id, "0" * 12, {"rating": "up"})[0] == 404
    status, answer = feedback(lambda_context, job_id, pending, {"rating": "up"})
    assert (status, answer["error"]["code"]) == (409, "conflict")
    assert stored_job(aws, job_id).edits[edit_id].feedback is None
