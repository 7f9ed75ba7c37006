"""The edit function, invoked as Lambda invokes it, on EditQueue messages of accepted jobs.

Recipes run with Pillow and no provider; prompts and translations go through the real google-genai SDK
to a fake Gemini endpoint on a local port (GEMINI_BASE_URL), which records every request it gets.
"""

from __future__ import annotations

import functools
import io
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image

import edit_handler
import variants_handler
from fakes.fake_gemini import IMAGE_MODEL, TEXT_MODEL, FakeGemini
from imgflow import aws as clients
from imgflow import services
from imgflow.imaging import ImageLimits, load_normalized
from imgflow.keys import edit_key, edit_text_key, edit_variant_key, job_prefix
from imgflow.models import Job, JobStatus, TaskStatus, edit_task_name
from imgflow.operations import apply_recipe
from imgflow.recipes import Recipe
from imgflow.retries import retry_delay
from imgflow.settings import get_settings
from imgflow.storage import ObjectStorage
from integration.helpers import (
    API_OWNER,
    BAD_INPUTS,
    HOPPER,
    accepted_api_job,
    call_api,
    detail_types,
    get_job_event,
    lifecycle_events,
    photo_with_metadata,
    put_upload,
    reported_failures,
    sqs_event,
    stored_job,
    variants_message_event,
    with_receive_count,
)
from support import EmulatedAws, FakeLambdaContext, load_event

RECIPE: list[dict[str, Any]] = [
    {"op": "crop", "left": 10, "top": 20, "width": 100, "height": 80},
    {"op": "grayscale"},
    {"op": "rotate", "degrees": 90},
]
PROMPT = "make the sky purple"


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def no_gemini_keys(aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment without any Gemini key (nor a secret to read them from)."""
    monkeypatch.delenv("GEMINI_API_KEYS", raising=False)
    monkeypatch.delenv("GEMINI_BASE_URL", raising=False)
    monkeypatch.setenv("GEMINI_API_KEYS_SECRET", "")
    services.reset()


def use_gemini(monkeypatch: pytest.MonkeyPatch, fake: FakeGemini, *keys: str, **settings: str | int) -> None:
    """Point the edit function at the fake with these keys (and other settings), as a fresh container."""
    monkeypatch.setenv("GEMINI_API_KEYS", ",".join(keys or ("k1",)))
    monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url)
    for name, value in settings.items():
        monkeypatch.setenv(name.upper(), str(value))
    services.reset()


# --- invoking the function ---------------------------------------------------------------------------------


def run_edit_event(event: dict[str, Any], context: FakeLambdaContext) -> list[str]:
    """Invoke the edit function on an EditQueue batch; the ids of the messages that go back to the queue."""
    return reported_failures(edit_handler.lambda_handler, event, context)


def edit_event(job_id: str, edit_id: str, receive_count: int = 1) -> dict[str, Any]:
    """An EditQueue batch of one message, as a redelivery or a test would make it (a made-up receipt handle)."""
    return sqs_event({"job_id": job_id, "edit_id": edit_id}, receive_count=receive_count)


def queued_edit_events(aws: EmulatedAws) -> list[dict[str, Any]]:
    """Every message waiting in EditQueue, received (not deleted) and shaped as one Lambda batch each
    (the template's BatchSize is 1), with its real receipt handle and receive count."""
    sqs, url = aws.client("sqs"), aws.queue_url("EditQueue")
    template: dict[str, Any] = load_event("ingest_s3_upload.json")["Records"][0]
    events = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages", []
    ):
        for message in batch:
            record = json.loads(json.dumps(template))
            record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"])
            record["attributes"]["ApproximateReceiveCount"] = message["Attributes"]["ApproximateReceiveCount"]
            record["eventSourceARN"] = record["eventSourceARN"].rsplit(":", 1)[0] + ":EditQueue"
            events.append({"Records": [record]})
    return events


def queued_edit_messages(aws: EmulatedAws) -> list[dict[str, str]]:
    """The bodies of the messages waiting in EditQueue (received and deleted)."""
    return [json.loads(message["Body"]) for message in aws.drain("EditQueue")]


def run_queued_edits(aws: EmulatedAws, context: FakeLambdaContext) -> list[dict[str, str]]:
    """Run every edit waiting in EditQueue (one invocation each), deleting what succeeded as Lambda does;
    the bodies of the messages that were run."""
    sqs, url = aws.client("sqs"), aws.queue_url("EditQueue")
    bodies = []
    for event in queued_edit_events(aws):
        record = event["Records"][0]
        assert run_edit_event(event, context) == [], f"the edit of {record['body']} failed"
        sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
        bodies.append(json.loads(record["body"]))
    return bodies


def finish_variants(aws: EmulatedAws, context: FakeLambdaContext, job_id: str, key: str, etag: str) -> None:
    failures = reported_failures(
        variants_handler.lambda_handler, variants_message_event(aws, job_id, key, etag), context
    )
    assert failures == []


class VisibilitySpy:
    """Records the ChangeMessageVisibility calls the edit function makes (and lets them through)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, Any]] = []
        client = clients.sqs()
        original: Callable[..., Any] = client.change_message_visibility

        def spy(**kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return original(**kwargs)

        monkeypatch.setattr(client, "change_message_visibility", spy)

    @property
    def timeouts(self) -> list[int]:
        return [int(call["VisibilityTimeout"]) for call in self.calls]


# --- looking at the results ------------------------------------------------------------------------------


def only_edit(job: Job) -> str:
    [edit_id] = job.edits
    return edit_id


def media_bytes(aws: EmulatedAws, key: str) -> bytes:
    data: bytes = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=key)["Body"].read()
    return data


def media_listing(aws: EmulatedAws) -> list[tuple[str, str, Any]]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.media_bucket).get("Contents", [])
    return sorted((item["Key"], item["ETag"], item["LastModified"]) for item in listed)


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "WEBP"
        return image.copy()


def assert_same_pixels(actual: Image.Image, expected: Image.Image) -> None:
    assert (actual.mode, actual.size) == (expected.mode, expected.size)
    assert actual.tobytes() == expected.tobytes(), "the pixels differ"


def normalized_source(data: bytes) -> Image.Image:
    s = get_settings()
    limits = ImageLimits(
        max_bytes=s.max_upload_bytes, max_pixels=s.max_pixels, max_side=s.max_side, max_frames=s.max_frames
    )
    return load_normalized(data, limits)


def expected_recipe(data: bytes, *recipes: list[dict[str, Any]]) -> Image.Image:
    image = normalized_source(data)
    for operations in recipes:
        image = apply_recipe(image, Recipe.model_validate({"operations": operations}))
    return image


def api_view(job_id: str, context: FakeLambdaContext) -> dict[str, Any]:
    status, view = call_api(get_job_event(job_id), context)
    assert status == 200, view
    return view


def edit_view(view: dict[str, Any], edit_id: str) -> dict[str, Any]:
    [found] = [edit for edit in view["edits"] if edit["edit_id"] == edit_id]
    return found


def decoded_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG"
        return image.copy()


# --- recipes ----------------------------------------------------------------------------------------------


def test_given_a_recipe_when_its_edit_runs_then_the_stored_webp_has_exactly_the_recipes_pixels(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    original = HOPPER.read_bytes()
    job_id, key, etag = accepted_api_job(aws, lambda_context, original, edits=[{"operations": RECIPE}])
    edit_id = only_edit(stored_job(aws, job_id))
    assert queued_edit_messages(aws) == [{"job_id": job_id, "edit_id": edit_id}]
    lifecycle_events(aws)

    failures = run_edit_event(edit_event(job_id, edit_id), lambda_context)

    assert failures == []
    job = stored_job(aws, job_id)
    task = job.tasks[edit_task_name(edit_id)]
    assert (task.status, task.stage, task.progress, task.attempts, task.error) == (
        TaskStatus.SUCCEEDED,
        "done",
        100,
        1,
        None,
    )
    result = job.edits[edit_id].result
    assert result is not None
    assert result.key == edit_key(API_OWNER, job_id, edit_id)
    assert (result.width, result.height, result.content_type) == (80, 100, "image/webp")
    assert (job.edits[edit_id].provider, job.edits[edit_id].provider_calls) == (None, 0)
    stored = media_bytes(aws, result.key)
    assert len(stored) == result.bytes
    assert_same_pixels(decoded(stored), expected_recipe(original, RECIPE))
    assert job.status is JobStatus.PROCESSING  # the variants are still to come

    view = api_view(job_id, lambda_context)
    shown = edit_view(view, edit_id)
    assert (shown["status"], shown["kind"], shown["width"], shown["height"]) == ("succeeded", "recipe", 80, 100)
    assert shown["url"]
    assert edit_key(API_OWNER, job_id, edit_id) in shown["url"]
    assert view["tasks"][edit_task_name(edit_id)]["status"] == "succeeded"

    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Edit Succeeded"]
    detail = events[0]["detail"]
    assert detail["edit"]["edit_id"] == edit_id
    assert detail["edit"]["kind"] == "recipe"
    assert detail["edit"]["result"]["key"] == result.key
    assert detail["version"] == job.version

    finish_variants(aws, lambda_context, job_id, key, etag)

    assert stored_job(aws, job_id).status is JobStatus.SUCCEEDED
    assert detail_types(lifecycle_events(aws, job_id)) == ["Variants Ready", "Job Succeeded"]


def test_given_the_upload_key_written_again_after_acceptance_when_a_recipe_runs_then_it_edits_the_accepted_image(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    original = HOPPER.read_bytes()
    job_id, key, _ = accepted_api_job(aws, lambda_context, original, edits=[{"operations": RECIPE}])
    edit_id = only_edit(stored_job(aws, job_id))
    # The presigned form used again after acceptance, before ingest has removed what it wrote.
    put_upload(aws, key, b"<!doctype html><title>not an image</title>", "image/jpeg")

    failures = run_edit_event(edit_event(job_id, edit_id), lambda_context)

    assert failures == []
    job = stored_job(aws, job_id)
    assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
    result = job.edits[edit_id].result
    assert result is not None
    assert_same_pixels(decoded(media_bytes(aws, result.key)), expected_recipe(original, RECIPE))


def test_given_a_crop_outside_the_image_when_its_edit_runs_then_it_fails_at_once_with_the_reason(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    outside = [{"op": "crop", "left": 100, "top": 0, "width": 100, "height": 10}]
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": outside}])
    edit_id = only_edit(stored_job(aws, job_id))
    lifecycle_events(aws)

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    task = stored_job(aws, job_id).tasks[edit_task_name(edit_id)]
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == "edit_failed"
    assert "reaches outside the 128x128 image" in task.error.message
    finish_variants(aws, lambda_context, job_id, key, etag)
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "edit_failed"
    assert detail_types(lifecycle_events(aws, job_id)) == ["Edit Failed", "Variants Ready", "Job Failed"]


def encoded(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "operations", "reason"),
    [
        pytest.param(
            # a 1500 px font: a 285600 px line, which Pillow renders whole before clipping (or refuses as a bomb)
            encoded(Image.linear_gradient("L").resize((3000, 3000)).convert("RGB"), "JPEG"),
            [{"op": "watermark", "text": "W" * 200, "size": 0.5}],
            "use a smaller size or a shorter text",
            id="watermark-text-larger-than-the-image",
        ),
        pytest.param(
            encoded(Image.new("RGB", (16384, 2), (200, 100, 50)), "PNG"),
            [{"op": "grayscale"}],
            "at most 16383 pixels a side",
            id="result-wider-than-webp-holds",
        ),
    ],
)
def test_given_an_edit_that_its_own_parameters_make_impossible_when_it_runs_then_it_fails_at_once_not_retried(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, image: bytes, operations: list[dict[str, Any]], reason: str
) -> None:
    content_type = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
    job_id, _, _ = accepted_api_job(
        aws, lambda_context, image, content_type=content_type, edits=[{"operations": operations}]
    )
    edit_id = only_edit(stored_job(aws, job_id))

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    task = stored_job(aws, job_id).tasks[edit_task_name(edit_id)]
    assert (task.status, task.attempts) == (TaskStatus.FAILED, 1)
    assert task.error is not None
    assert task.error.code == "edit_failed"
    assert reason in task.error.message


# --- no provider configured ---------------------------------------------------------------------------------


def test_given_no_gemini_key_when_a_prompt_edit_runs_then_it_fails_unavailable_at_once_and_recipes_still_work(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None, no_gemini_keys: None
) -> None:
    original = HOPPER.read_bytes()
    job_id, key, etag = accepted_api_job(
        aws, lambda_context, original, edits=[{"operations": RECIPE}, {"prompt": PROMPT}]
    )
    job = stored_job(aws, job_id)
    kinds = {job.edits[edit_id].spec.kind: edit_id for edit_id in job.edits}
    lifecycle_events(aws)

    ran = run_queued_edits(aws, lambda_context)  # every failure would be reported: none is

    assert sorted(body["edit_id"] for body in ran) == sorted(kinds.values())
    finish_variants(aws, lambda_context, job_id, key, etag)
    job = stored_job(aws, job_id)
    prompt_task = job.tasks[edit_task_name(kinds["prompt"])]
    assert prompt_task.status is TaskStatus.FAILED
    assert prompt_task.attempts == 1
    assert prompt_task.error is not None
    assert prompt_task.error.code == "provider_unavailable"
    assert "GEMINI_API_KEYS" in prompt_task.error.message
    assert job.tasks[edit_task_name(kinds["recipe"])].status is TaskStatus.SUCCEEDED
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "provider_unavailable"

    view = api_view(job_id, lambda_context)
    assert view["status"] == "failed"
    assert sorted(variant["preset"] for variant in view["variants"]) == ["full", "large", "small", "thumb"]
    recipe_view, prompt_view = edit_view(view, kinds["recipe"]), edit_view(view, kinds["prompt"])
    assert recipe_view["url"] is not None
    assert prompt_view["url"] is None
    assert prompt_view["error"]["code"] == "provider_unavailable"
    stored = media_bytes(aws, edit_key(API_OWNER, job_id, kinds["recipe"]))
    assert_same_pixels(decoded(stored), expected_recipe(original, RECIPE))

    events = lifecycle_events(aws, job_id)
    assert sorted(detail_types(events)) == ["Edit Failed", "Edit Succeeded", "Job Failed", "Variants Ready"]
    [failed] = [event for event in events if event["detail-type"] == "Edit Failed"]
    assert failed["detail"]["edit"]["edit_id"] == kinds["prompt"]
    assert failed["detail"]["error"]["code"] == "provider_unavailable"
    assert detail_types(events)[-1] == "Job Failed"


# --- prompts and translations through Gemini --------------------------------------------------------------


def test_given_gemini_when_a_prompt_edit_runs_then_one_request_carries_the_normalized_image_not_the_upload(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    tap: None,
    gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_gemini(monkeypatch, gemini, "k1", provider_max_edge=512)
    photo = photo_with_metadata((1600, 1200))
    job_id, _, _ = accepted_api_job(aws, lambda_context, photo, edits=[{"prompt": PROMPT}])
    edit_id = only_edit(stored_job(aws, job_id))
    lifecycle_events(aws)

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    [request] = gemini.requests
    assert (request.model, request.api_key, request.texts) == (IMAGE_MODEL, "k1", (PROMPT,))
    assert request.response_modalities == ("IMAGE",)
    [sent] = request.images
    assert sent != photo
    assert request.image_mime_types == ("image/png",)
    image = decoded_png(sent)
    assert image.mode in {"RGB", "RGBA"}
    assert image.size == (512, 384)  # the long edge at PROVIDER_MAX_EDGE, the aspect ratio kept
    assert not image.getexif()
    assert not {"exif", "icc_profile", "xmp"} & set(image.info)
    assert b"imgflow-test-camera" not in sent

    job = stored_job(aws, job_id)
    edit = job.edits[edit_id]
    assert (edit.provider, edit.model, edit.provider_calls) == ("gemini", IMAGE_MODEL, 1)
    task = job.tasks[edit_task_name(edit_id)]
    assert (task.status, task.attempts) == (TaskStatus.SUCCEEDED, 1)
    assert edit.result is not None
    assert (edit.result.width, edit.result.height) == (512, 384)
    stored = decoded(media_bytes(aws, edit.result.key)).convert("RGB")
    # The fake's edit inverts the colours of what it was sent: the stored edit is its answer.
    assert stored.tobytes() == bytes(255 - value for value in image.convert("RGB").tobytes())
    view = edit_view(api_view(job_id, lambda_context), edit_id)
    assert (view["status"], view["provider"], view["model"], view["provider_calls"]) == (
        "succeeded",
        "gemini",
        IMAGE_MODEL,
        1,
    )
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Edit Succeeded"]
    assert (events[0]["detail"]["edit"]["provider"], events[0]["detail"]["edit"]["model"]) == ("gemini", IMAGE_MODEL)


def test_given_keys_in_a_secrets_manager_secret_when_prompt_edits_run_then_they_are_used_in_turn(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As deployed: GeminiApiKeysSecret names a secret with the keys, one per line (or comma-separated).
    name = f"imgflow-gemini-keys-{uuid.uuid4().hex}"  # Powertools caches secrets by name for 5 minutes
    aws.client("secretsmanager").create_secret(Name=name, SecretString="secret-key-1\nsecret-key-2\n")
    monkeypatch.delenv("GEMINI_API_KEYS", raising=False)
    monkeypatch.setenv("GEMINI_API_KEYS_SECRET", name)
    monkeypatch.setenv("GEMINI_BASE_URL", gemini.base_url)
    services.reset()
    job_id, _, _ = accepted_api_job(
        aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT}, {"prompt": "make it red"}]
    )

    assert len(run_queued_edits(aws, lambda_context)) == 2

    assert sorted(request.api_key or "" for request in gemini.requests) == ["secret-key-1", "secret-key-2"]
    job = stored_job(aws, job_id)
    assert {job.tasks[edit_task_name(edit_id)].status for edit_id in job.edits} == {TaskStatus.SUCCEEDED}


def test_given_an_exif_rotated_upload_when_a_prompt_edit_runs_then_gemini_gets_it_upright(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_gemini(monkeypatch, gemini, "k1")
    # 2x1 pixels stored, EXIF orientation 8: displayed 1x2.
    data = (BAD_INPUTS / "orientation_rectangle.jpg").read_bytes()
    job_id, _, _ = accepted_api_job(aws, lambda_context, data, edits=[{"prompt": PROMPT}])

    assert run_edit_event(edit_event(job_id, only_edit(stored_job(aws, job_id))), lambda_context) == []

    [request] = gemini.requests
    assert decoded_png(request.images[0]).size == (1, 2)


def test_given_enhance_prompt_when_a_prompt_edit_runs_then_the_text_model_rewrites_it_first(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_gemini(monkeypatch, gemini, "k1")
    enhanced = "Turn the sky a saturated purple; keep everything else unchanged."
    gemini.reply_text(enhanced, model=TEXT_MODEL)
    job_id, _, _ = accepted_api_job(
        aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT, "enhance_prompt": True}]
    )
    edit_id = only_edit(stored_job(aws, job_id))

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    text_call, image_call = gemini.requests
    assert (text_call.model, text_call.texts, text_call.images) == (TEXT_MODEL, (PROMPT,), ())
    assert (image_call.model, image_call.texts) == (IMAGE_MODEL, (enhanced,))
    assert len(image_call.images) == 1
    job = stored_job(aws, job_id)
    assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
    assert job.edits[edit_id].provider_calls == 2


def test_given_a_translation_when_it_runs_then_the_image_and_the_text_pairs_are_stored(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    tap: None,
    gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_gemini(monkeypatch, gemini, "k1")
    pairs = [{"source": "Open", "translated": "Geöffnet"}, {"source": "Exit", "translated": "Ausgang"}]
    gemini.reply_json(pairs, model=TEXT_MODEL)
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"translate_to": "German"}])
    edit_id = only_edit(stored_job(aws, job_id))
    lifecycle_events(aws)

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    image_call, text_call = gemini.requests
    assert image_call.model == IMAGE_MODEL
    assert "into German" in image_call.text
    assert text_call.model == TEXT_MODEL
    assert text_call.response_mime_type == "application/json"
    job = stored_job(aws, job_id)
    edit = job.edits[edit_id]
    assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
    assert (edit.provider, edit.model, edit.provider_calls) == ("gemini", IMAGE_MODEL, 2)
    assert edit.result is not None
    assert edit.result.text_key == edit_text_key(API_OWNER, job_id, edit_id)
    assert json.loads(media_bytes(aws, edit.result.text_key)) == {"pairs": pairs}
    assert decoded(media_bytes(aws, edit.result.key)).size == (128, 128)
    shown = edit_view(api_view(job_id, lambda_context), edit_id)
    assert shown["kind"] == "translate"
    assert shown["text_url"]
    assert edit.result.text_key in shown["text_url"]
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Edit Succeeded"]
    assert events[0]["detail"]["edit"]["result"]["text_key"] == edit.result.text_key


# --- what Gemini answers, through the function --------------------------------------------------------------


def test_given_a_429_with_retry_delay_when_the_edit_runs_then_the_message_is_postponed_and_the_retry_succeeds(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    tap: None,
    gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_gemini(monkeypatch, gemini, "k1", "k2")
    gemini.reply_status(429, retry_delay="7s", model=IMAGE_MODEL)
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT}])
    edit_id = only_edit(stored_job(aws, job_id))
    [event] = queued_edit_events(aws)
    spy = VisibilitySpy(monkeypatch)
    lifecycle_events(aws)

    failures = run_edit_event(event, lambda_context)

    assert failures == [event["Records"][0]["messageId"]]
    [call] = spy.calls
    assert call["ReceiptHandle"] == event["Records"][0]["receiptHandle"]
    assert call["QueueUrl"] == aws.queue_url("EditQueue")
    assert call["VisibilityTimeout"] >= 7
    assert queued_edit_events(aws) == []  # postponed: not back yet
    job = stored_job(aws, job_id)
    task = job.tasks[edit_task_name(edit_id)]
    assert task.status is TaskStatus.RUNNING
    assert task.attempts == 1
    assert "retrying" in task.stage
    assert f"in {call['VisibilityTimeout']} s" in task.stage
    assert job.status is JobStatus.PROCESSING
    assert lifecycle_events(aws, job_id) == []

    retried = run_edit_event(with_receive_count(event, 2), lambda_context)

    assert retried == []
    assert [request.api_key for request in gemini.requests] == ["k1", "k2"]  # k1 rests after its 429
    job = stored_job(aws, job_id)
    task = job.tasks[edit_task_name(edit_id)]
    assert (task.status, task.attempts, task.error) == (TaskStatus.SUCCEEDED, 2, None)
    assert detail_types(lifecycle_events(aws, job_id)) == ["Edit Succeeded"]


def test_given_one_key_and_a_429_with_retry_delay_when_that_delay_has_passed_then_the_retry_reaches_gemini(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_gemini(monkeypatch, gemini, "k1")
    gemini.reply_status(429, retry_delay="7s", model=IMAGE_MODEL)
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT}])
    edit_id = only_edit(stored_job(aws, job_id))
    [event] = queued_edit_events(aws)
    spy = VisibilitySpy(monkeypatch)
    assert len(run_edit_event(event, lambda_context)) == 1
    [postponed] = spy.timeouts
    # The message comes back `postponed` seconds later: the key pool's clock moves on as far.
    pool = services.image_editor()._keys  # type: ignore[attr-defined]
    real_clock = pool._clock
    monkeypatch.setattr(pool, "_clock", lambda: real_clock() + postponed + 0.5)

    retried = run_edit_event(with_receive_count(event, 2), lambda_context)

    assert len(gemini.requests) == 2, f"the retry after {postponed} s did not reach Gemini"
    assert retried == []
    assert stored_job(aws, job_id).tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("status", [500, 503])
def test_given_a_server_error_when_the_edit_runs_then_it_is_retried_after_a_backoff(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    base = 4
    use_gemini(monkeypatch, gemini, "k1", edit_retry_base_seconds=base)
    gemini.reply_status(status, model=IMAGE_MODEL)
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT}])
    edit_id = only_edit(stored_job(aws, job_id))
    [event] = queued_edit_events(aws)
    spy = VisibilitySpy(monkeypatch)

    failures = run_edit_event(event, lambda_context)

    assert failures == [event["Records"][0]["messageId"]]
    [delay] = spy.timeouts
    assert base / 2 - 0.5 <= delay <= base  # attempt 1: full jitter on the base, no retryDelay to honour
    task = stored_job(aws, job_id).tasks[edit_task_name(edit_id)]
    assert (task.status, task.attempts) == (TaskStatus.RUNNING, 1)
    assert "retrying" in task.stage
    assert str(status) in task.stage

    assert run_edit_event(with_receive_count(event, 2), lambda_context) == []
    assert len(gemini.requests) == 2
    assert stored_job(aws, job_id).tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("script", "code", "message"),
    [
        pytest.param(
            lambda g: g.reply_blocked("IMAGE_SAFETY", model=IMAGE_MODEL),
            "edit_blocked",
            "Gemini declined the edit: IMAGE_SAFETY",
            id="image-safety",
        ),
        pytest.param(
            lambda g: g.reply_prompt_blocked("SAFETY", model=IMAGE_MODEL),
            "edit_blocked",
            "Gemini declined the edit: prompt blocked (SAFETY)",
            id="prompt-blocked",
        ),
        pytest.param(
            lambda g: g.reply_status(400, message="Unable to process input image.", model=IMAGE_MODEL),
            "edit_failed",
            "Unable to process input image.",
            id="bad-request",
        ),
        pytest.param(
            lambda g: g.reply_garbage_image(model=IMAGE_MODEL),
            "edit_failed",
            "the provider returned an unusable image",
            id="garbage-image",
        ),
        pytest.param(
            lambda g: g.reply_no_image(model=IMAGE_MODEL),
            "edit_failed",
            "Gemini returned no image (NO_IMAGE)",
            id="no-image",
        ),
    ],
)
def test_given_a_permanent_answer_when_the_edit_runs_then_it_fails_at_once_without_a_retry(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    tap: None,
    gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
    script: Callable[[FakeGemini], object],
    code: str,
    message: str,
) -> None:
    use_gemini(monkeypatch, gemini, "k1")
    script(gemini)
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT}])
    edit_id = only_edit(stored_job(aws, job_id))
    [event] = queued_edit_events(aws)
    spy = VisibilitySpy(monkeypatch)
    lifecycle_events(aws)

    failures = run_edit_event(event, lambda_context)

    assert failures == []
    assert spy.calls == []
    assert len(gemini.requests) == 1
    job = stored_job(aws, job_id)
    task = job.tasks[edit_task_name(edit_id)]
    assert (task.status, task.attempts) == (TaskStatus.FAILED, 1)
    assert task.error is not None
    assert task.error.code == code
    assert message in task.error.message
    assert job.edits[edit_id].result is None
    assert (
        not aws.client("s3")
        .list_objects_v2(Bucket=aws.media_bucket, Prefix=f"{job_prefix(API_OWNER, job_id)}edits/")
        .get("Contents")
    )
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Edit Failed"]
    assert events[0]["detail"]["error"]["code"] == code
    finish_variants(aws, lambda_context, job_id, key, etag)
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == code


def test_given_the_last_attempt_is_throttled_when_the_edit_runs_then_it_fails_unavailable_without_a_retry(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    tap: None,
    gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_gemini(monkeypatch, gemini, "k1")
    gemini.reply_status(429, retry_delay="7s", model=IMAGE_MODEL)
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT}])
    edit_id = only_edit(stored_job(aws, job_id))
    last = int(aws.env["MAX_RECEIVE_COUNT"])
    spy = VisibilitySpy(monkeypatch)
    lifecycle_events(aws)

    failures = run_edit_event(edit_event(job_id, edit_id, receive_count=last), lambda_context)

    assert failures == []
    assert spy.calls == []
    assert len(gemini.requests) == 1
    task = stored_job(aws, job_id).tasks[edit_task_name(edit_id)]
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == "provider_unavailable"
    assert f"gave up after {last} attempts" in task.error.message
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Edit Failed"]
    assert events[0]["detail"]["error"]["code"] == "provider_unavailable"


# --- retry_delay --------------------------------------------------------------------------------------------


def test_retry_delay_grows_with_the_attempts_up_to_the_cap() -> None:
    def longest(attempt: int) -> int:
        return retry_delay(attempt, None, base=10, cap=300, random_fraction=lambda: 1.0)

    def shortest(attempt: int) -> int:
        return retry_delay(attempt, None, base=10, cap=300, random_fraction=lambda: 0.0)

    assert [longest(attempt) for attempt in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert [shortest(attempt) for attempt in range(1, 8)] == [5, 10, 20, 40, 80, 150, 150]
    for attempt in range(1, 12):
        for _ in range(20):
            assert shortest(attempt) <= retry_delay(attempt, None, base=10, cap=300) <= longest(attempt)


def test_retry_delay_honours_the_servers_retry_after_as_a_floor() -> None:
    for fraction in (0.0, 0.5, 1.0):
        delay = retry_delay(1, 37.0, base=10, cap=300, random_fraction=functools.partial(float, fraction))
        assert 37 <= delay <= 37 + 10 / 4 + 1
    # A backoff longer than the server asked for stays.
    assert retry_delay(6, 2.0, base=10, cap=300, random_fraction=lambda: 1.0) == 300
    # Above the cap too: the server knows when its quota comes back.
    assert retry_delay(1, 600.0, base=10, cap=300, random_fraction=lambda: 0.0) >= 600


@pytest.mark.parametrize("retry_after", [None, 0.0, 0.2])
def test_retry_delay_is_never_under_one_second(retry_after: float | None) -> None:
    for attempt in (0, 1, 2):
        assert retry_delay(attempt, retry_after, base=0.1, cap=0.2, random_fraction=lambda: 0.0) >= 1


# --- redelivery and concurrency ------------------------------------------------------------------------------


def test_given_a_succeeded_prompt_edit_when_its_message_is_redelivered_then_gemini_is_not_called_again(
    aws: EmulatedAws,
    lambda_context: FakeLambdaContext,
    tap: None,
    gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_gemini(monkeypatch, gemini, "k1")
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"prompt": PROMPT}])
    edit_id = only_edit(stored_job(aws, job_id))
    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []
    before = stored_job(aws, job_id)
    objects = media_listing(aws)
    lifecycle_events(aws)

    failures = run_edit_event(edit_event(job_id, edit_id, receive_count=2), lambda_context)

    assert failures == []
    assert len(gemini.requests) == 1
    assert media_listing(aws) == objects
    after = stored_job(aws, job_id)
    assert after == before
    assert after.edits[edit_id].result == before.edits[edit_id].result
    # At most the same announcement again (consumers drop duplicates by job_id + version).
    for event in lifecycle_events(aws, job_id):
        assert event["detail-type"] == "Edit Succeeded"
        assert event["detail"]["version"] == before.version


def test_given_a_message_of_an_unknown_job_or_edit_when_handled_then_it_is_dropped(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": RECIPE}])
    before = stored_job(aws, job_id)
    lifecycle_events(aws)

    assert run_edit_event(edit_event(uuid.uuid4().hex, "0123456789ab"), lambda_context) == []
    assert run_edit_event(edit_event(job_id, "0123456789ab"), lambda_context) == []

    assert stored_job(aws, job_id) == before
    assert lifecycle_events(aws) == []


def test_given_three_recipe_edits_when_they_run_at_once_then_all_succeed_and_the_job_settles_once(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    recipes = [RECIPE, [{"op": "flip", "direction": "horizontal"}], [{"op": "blur", "radius": 2}]]
    original = HOPPER.read_bytes()
    job_id, key, etag = accepted_api_job(
        aws, lambda_context, original, edits=[{"operations": recipe} for recipe in recipes]
    )
    finish_variants(aws, lambda_context, job_id, key, etag)
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.PROCESSING
    events = queued_edit_events(aws)
    assert len(events) == 3
    lifecycle_events(aws)

    with ThreadPoolExecutor(max_workers=3) as pool:
        failures = list(pool.map(lambda event: run_edit_event(event, lambda_context), events))

    assert failures == [[], [], []]
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    for edit_id, edit in job.edits.items():
        assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
        assert edit.result is not None
        operations = [operation.model_dump(mode="json") for operation in edit.spec.operations or []]
        assert_same_pixels(decoded(media_bytes(aws, edit.result.key)), expected_recipe(original, operations))
    kinds = detail_types(lifecycle_events(aws, job_id))
    assert kinds.count("Job Succeeded") == 1
    assert kinds.count("Edit Succeeded") == 3
    assert kinds[-1] == "Job Succeeded"


def test_given_the_job_is_deleted_while_its_edit_runs_then_the_edit_result_is_not_left_behind(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), edits=[{"operations": RECIPE}])
    edit_id = only_edit(stored_job(aws, job_id))
    write = ObjectStorage.write
    deleted: list[str] = []

    def delete_the_job_then_write(self: ObjectStorage, bucket: str, key: str, data: bytes, content_type: str) -> None:
        if "/edits/" in key and not deleted:
            # The owner's DELETE lands while the edit runs: its objects go, then the edit writes its result
            # (the master, then its variants).
            services.uploads_service().delete_job(job_id, "alice")
            deleted.append(key)
        write(self, bucket, key, data, content_type)

    monkeypatch.setattr(ObjectStorage, "write", delete_the_job_then_write)

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    assert [key for key, _, _ in media_listing(aws) if job_id in key] == []


# --- the result's web variants ---------------------------------------------------------------------------


def test_given_a_recipe_edit_of_a_photo_when_run_then_its_result_gets_web_variants_and_a_placeholder(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    # 1600 x 1200, rotated a quarter: a 1200 x 1600 result, so every preset but `full` is a reduction.
    photo = photo_with_metadata((1600, 1200))
    recipe: list[dict[str, Any]] = [{"op": "rotate", "degrees": 90}]
    job_id, _, _ = accepted_api_job(
        aws,
        lambda_context,
        photo,
        edits=[{"operations": recipe}],
        variants={"formats": ["webp", "jpeg"]},
    )
    edit_id = only_edit(stored_job(aws, job_id))

    assert run_edit_event(edit_event(job_id, edit_id), lambda_context) == []

    result = stored_job(aws, job_id).edits[edit_id].result
    assert result is not None
    assert result.key == edit_key("alice", job_id, edit_id)  # the lossless master, kept
    assert decoded(media_bytes(aws, result.key)).size == (1200, 1600)
    made = {(v.preset, v.format): v for v in result.variants}
    assert set(made) == {(preset, fmt) for preset in ("thumb", "small", "large", "full") for fmt in ("webp", "jpeg")}
    long_edges = {"thumb": 150, "small": 600, "large": 1200, "full": 1600}
    for (preset, fmt), variant in made.items():
        assert variant.key == edit_variant_key("alice", job_id, edit_id, preset, fmt)
        assert variant.key.startswith(job_prefix("alice", job_id))  # DELETE and clean-up cover it
        with Image.open(io.BytesIO(media_bytes(aws, variant.key))) as image:
            assert image.format == fmt.upper()
            assert image.size == (variant.width, variant.height)
            assert image.height == long_edges[preset]
            assert not {"exif", "icc_profile", "xmp"} & image.info.keys()
    assert result.placeholder is not None

    status, view = call_api(get_job_event(job_id), lambda_context)
    assert status == 200
    [edit_view] = view["edits"]
    assert len(edit_view["variants"]) == 8
    assert {v["preset"] for v in edit_view["variants"]} == set(long_edges)
    assert all(v["url"].startswith("http") for v in edit_view["variants"])
    assert edit_view["variants"][0]["preset"] == "thumb"  # smallest first, as the upload's
    assert edit_view["placeholder"] == result.placeholder.model_dump()
