"""The variants function, invoked as Lambda invokes it, on VariantsQueue messages of accepted jobs."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from PIL import Image

import variants_handler
from imgflow import aws as clients
from imgflow import variants
from imgflow.job_store import JobStore
from imgflow.keys import original_key, variant_key
from imgflow.models import Job, JobError, JobStatus, OutputFormat, TaskStatus
from imgflow.services import uploads_service
from imgflow.storage import ObjectStorage
from integration.helpers import (
    API_OWNER,
    HOPPER,
    accepted_api_job,
    detail_types,
    lifecycle_events,
    no_calls_allowed,
    photo_with_metadata,
    put_upload,
    reported_failures,
    stored_job,
    throttled,
    variants_message_event,
)
from support import EmulatedAws, FakeLambdaContext

PRESETS = {"thumb": 150, "small": 600, "large": 1200, "full": 4096}  # template.yaml: VariantPresets
PHOTO_SIZE = (1600, 1200)


def make_variants(event: dict[str, Any], context: FakeLambdaContext) -> list[str]:
    """Invoke the function on a VariantsQueue batch; the ids of the messages that go back to the queue."""
    return reported_failures(variants_handler.lambda_handler, event, context)


def media_object(aws: EmulatedAws, key: str) -> tuple[bytes, str]:
    response = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=key)
    return response["Body"].read(), response["ContentType"]


def media_listing(aws: EmulatedAws) -> list[tuple[str, str, Any]]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.media_bucket).get("Contents", [])
    return sorted((item["Key"], item["ETag"], item["LastModified"]) for item in listed)


def media_keys(aws: EmulatedAws) -> list[str]:
    return [key for key, _, _ in media_listing(aws)]


def test_given_an_accepted_job_when_its_variants_message_is_handled_then_every_preset_lands_as_clean_webp(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    photo = photo_with_metadata(PHOTO_SIZE)
    with Image.open(io.BytesIO(photo)) as original:
        assert {"exif", "icc_profile"} <= set(original.info)  # what the variants must not carry over
    job_id, key, etag = accepted_api_job(aws, lambda_context, photo)
    lifecycle_events(aws)  # Job Accepted: not what this test is about

    failures = make_variants(variants_message_event(aws, job_id, key, etag), lambda_context)

    assert failures == []
    variant_keys = [variant_key(API_OWNER, job_id, preset, "webp") for preset in PRESETS]
    assert media_keys(aws) == sorted([original_key(API_OWNER, job_id), *variant_keys])
    for preset, long_edge in PRESETS.items():
        data, content_type = media_object(aws, variant_key(API_OWNER, job_id, preset, "webp"))
        assert content_type == "image/webp"
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "WEBP"
            assert max(image.size) == min(long_edge, max(PHOTO_SIZE))
            assert image.size[0] > image.size[1]  # the landscape stays a landscape
            assert "exif" not in image.info
            assert "icc_profile" not in image.info
            assert "xmp" not in image.info
            assert not image.getexif()
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    task = job.tasks["variants"]
    assert (task.status, task.progress, task.stage, task.attempts) == (TaskStatus.SUCCEEDED, 100, "done", 1)
    assert sorted(job.variants) == sorted(f"{preset}_webp" for preset in PRESETS)
    assert job.placeholder is not None
    assert job.placeholder.blurhash
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Variants Ready", "Job Succeeded"]
    ready, succeeded = (event["detail"] for event in events)
    assert sorted(variant["preset"] for variant in ready["variants"]) == sorted(PRESETS)
    assert ready["placeholder"] == job.placeholder.model_dump()
    assert ready["version"] < succeeded["version"] == job.version
    assert succeeded["status"] == "succeeded"


def test_given_a_succeeded_job_when_its_variants_message_is_redelivered_then_nothing_changes(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    event = variants_message_event(aws, job_id, key, etag)
    assert make_variants(event, lambda_context) == []
    before = stored_job(aws, job_id)
    objects_before = media_listing(aws)
    lifecycle_events(aws)

    failures = make_variants(variants_message_event(aws, job_id, key, etag, receive_count=2), lambda_context)

    assert failures == []
    assert media_listing(aws) == objects_before
    after = stored_job(aws, job_id)
    assert after == before
    assert after.version == before.version
    # Nothing new to tell: at most a copy of what was told (consumers drop duplicates by job_id + version).
    assert all(event["detail"]["version"] <= before.version for event in lifecycle_events(aws))


def test_given_a_corrupt_original_when_its_variants_are_made_then_the_job_fails_at_once_without_a_retry(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    # Ingest froze bytes it validated; should the frozen original still not decode, a retry would not help.
    truncated = HOPPER.read_bytes()[: len(HOPPER.read_bytes()) // 2]
    aws.client("s3").put_object(Bucket=aws.media_bucket, Key=original_key(API_OWNER, job_id), Body=truncated)
    lifecycle_events(aws)

    failures = make_variants(variants_message_event(aws, job_id, key, etag), lambda_context)

    assert failures == []  # permanent: a retry would meet the same bytes
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "corrupt_image"
    task = job.tasks["variants"]
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == "corrupt_image"
    assert task.attempts == 1
    assert media_keys(aws) == [original_key(API_OWNER, job_id)]
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Job Failed"]
    assert events[0]["detail"]["error"]["code"] == "corrupt_image"


def test_given_the_upload_key_was_written_again_after_acceptance_when_variants_run_then_they_use_the_accepted_image(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, key, accepted_etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    # The form used again, before ingest has removed what it wrote; the message names the upload key, as
    # those queued before originals were frozen do.
    put_upload(aws, key, b"<!doctype html><title>not an image</title>", "image/jpeg")

    failures = make_variants(variants_message_event(aws, job_id, key, accepted_etag), lambda_context)

    assert failures == []
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    data, _ = media_object(aws, variant_key(API_OWNER, job_id, "thumb", "webp"))
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("WEBP", (128, 128))


def test_given_s3_throttles_when_variants_run_then_the_message_is_retried_and_the_job_keeps_processing(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    lifecycle_events(aws)
    event = variants_message_event(aws, job_id, key, etag)

    with throttled(clients.s3(), "get_object"):
        failures = make_variants(event, lambda_context)

    assert failures == [event["Records"][0]["messageId"]]
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.PROCESSING
    assert job.tasks["variants"].status is TaskStatus.RUNNING
    assert job.error is None
    assert lifecycle_events(aws) == []

    retried = make_variants(variants_message_event(aws, job_id, key, etag, receive_count=2), lambda_context)

    assert retried == []
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.tasks["variants"].attempts == 2


def test_given_s3_throttles_on_the_last_attempt_when_variants_run_then_the_job_fails_and_the_message_still_fails(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    lifecycle_events(aws)
    event = variants_message_event(aws, job_id, key, etag, receive_count=int(aws.env["MAX_RECEIVE_COUNT"]))

    with throttled(clients.s3(), "get_object"):
        failures = make_variants(event, lambda_context)

    assert failures == [event["Records"][0]["messageId"]]
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "internal_error"
    assert job.tasks["variants"].status is TaskStatus.FAILED
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Job Failed"]
    assert events[0]["detail"]["version"] == job.version


def test_given_webp_avif_and_jpeg_asked_at_upload_when_variants_run_then_every_preset_lands_in_each_format(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, key, etag = accepted_api_job(
        aws, lambda_context, HOPPER.read_bytes(), variants={"formats": ["webp", "avif", "jpeg"]}
    )

    failures = make_variants(variants_message_event(aws, job_id, key, etag), lambda_context)

    assert failures == []
    expected = [variant_key(API_OWNER, job_id, preset, fmt) for preset in PRESETS for fmt in ("webp", "avif", "jpeg")]
    assert media_keys(aws) == sorted([original_key(API_OWNER, job_id), *expected])
    formats: tuple[tuple[OutputFormat, str], ...] = (("webp", "WEBP"), ("avif", "AVIF"), ("jpeg", "JPEG"))
    for fmt, pillow_format in formats:
        data, content_type = media_object(aws, variant_key(API_OWNER, job_id, "thumb", fmt))
        assert content_type == f"image/{fmt}"
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == pillow_format
            assert image.size == (128, 128)  # hopper is smaller than every preset: never upscaled
            assert "icc_profile" not in image.info
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert len(job.variants) == 3 * len(PRESETS)


def test_given_an_exif_rotated_original_when_variants_run_then_they_are_upright(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    # 2x1 pixels stored, EXIF orientation 8: displayed 1x2.
    job_id, key, etag = accepted_api_job(
        aws, lambda_context, (HOPPER.parent / "orientation_rectangle.jpg").read_bytes()
    )
    job = stored_job(aws, job_id)
    assert job.image is not None
    assert (job.image.width, job.image.height) == (1, 2)

    failures = make_variants(variants_message_event(aws, job_id, key, etag), lambda_context)

    assert failures == []
    data, _ = media_object(aws, variant_key(API_OWNER, job_id, "thumb", "webp"))
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (1, 2)
        assert not image.getexif()


def test_given_eventbridge_is_down_when_variants_are_made_then_the_job_settles_and_is_announced_from_its_stream(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    lifecycle_events(aws)

    with no_calls_allowed(clients.events()):
        failures = make_variants(variants_message_event(aws, job_id, key, etag), lambda_context)

    assert failures == []
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Variants Ready", "Job Succeeded"]
    assert events[-1]["detail"]["version"] == job.version


def test_given_a_job_asking_only_for_presets_no_longer_offered_when_variants_run_then_it_ends_without_retries(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), variants={"presets": ["thumb"]})
    # The deployment's presets changed between the upload and its processing.
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET variants_request.presets = :gone",
        ExpressionAttributeValues={":gone": ["poster"]},
    )

    failures = make_variants(variants_message_event(aws, job_id, key, etag), lambda_context)

    assert failures == []
    assert stored_job(aws, job_id).status.is_terminal


def test_given_a_job_holding_repeated_formats_when_variants_run_then_each_format_is_encoded_once(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes(), variants={"presets": ["thumb"]})
    # A job stored before the API dropped repeats, or written by other means.
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET variants_request.formats = :repeated",
        ExpressionAttributeValues={":repeated": ["webp", "avif", "webp", "avif", "webp"]},
    )
    encoded: list[str] = []
    render = variants.render_variant

    def counting_render(*args: Any, **kwargs: Any) -> Any:
        rendered = render(*args, **kwargs)
        encoded.append(rendered.content_type)
        return rendered

    monkeypatch.setattr(variants, "render_variant", counting_render)

    failures = make_variants(variants_message_event(aws, job_id, key, etag), lambda_context)

    assert failures == []
    # Once each; the encodes run on every CPU at once, so they finish in either order.
    assert sorted(encoded) == ["image/avif", "image/webp"]
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert sorted((v.preset, v.format) for v in job.variants.values()) == [("thumb", "avif"), ("thumb", "webp")]


def test_given_the_job_is_deleted_while_its_variants_are_written_then_nothing_of_it_is_left(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    write = ObjectStorage.write

    def delete_the_job_then_write(self: ObjectStorage, bucket: str, key: str, data: bytes, content_type: str) -> None:
        if "/variants/" in key and stored_job_or_none(aws, job_id) is not None:
            # The owner's DELETE lands while the task renders: its objects go, then the task writes one more.
            uploads_service().delete_job(job_id, "alice")
        write(self, bucket, key, data, content_type)

    monkeypatch.setattr(ObjectStorage, "write", delete_the_job_then_write)

    assert make_variants(variants_message_event(aws, job_id, key, etag), lambda_context) == []

    assert [key for key in media_keys(aws) if job_id in key] == []


def stored_job_or_none(aws: EmulatedAws, job_id: str) -> object:
    return aws.table().get_item(Key={"pk": job_id}).get("Item")


def test_given_a_slow_start_write_when_variants_run_then_the_decode_goes_on_beside_it_and_every_record_follows_it(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    steps: list[str] = []
    original_read, start_task, progress_task = ObjectStorage.read, JobStore.start_task, JobStore.progress_task

    def slow_start(self: JobStore, *args: Any, **kwargs: Any) -> Job:
        time.sleep(0.3)  # the table answering slowly: the read and the decode go on meanwhile
        job = start_task(self, *args, **kwargs)
        steps.append("started")
        return job

    def read(self: ObjectStorage, *args: Any, **kwargs: Any) -> bytes:
        steps.append("read")
        return original_read(self, *args, **kwargs)

    def progress(self: JobStore, *args: Any, **kwargs: Any) -> Job:
        steps.append("recorded")
        return progress_task(self, *args, **kwargs)

    monkeypatch.setattr(JobStore, "start_task", slow_start)
    monkeypatch.setattr(ObjectStorage, "read", read)
    monkeypatch.setattr(JobStore, "progress_task", progress)

    assert make_variants(variants_message_event(aws, job_id, key, etag), lambda_context) == []

    assert steps[:2] == ["read", "started"]
    assert set(steps[2:]) == {"recorded"}
    job = stored_job(aws, job_id)
    assert (job.status, job.tasks["variants"].attempts, len(job.variants)) == (JobStatus.SUCCEEDED, 1, len(PRESETS))


@pytest.mark.parametrize("original", [b"", HOPPER.read_bytes()[:4000]], ids=["intact", "corrupt"])
def test_given_the_job_failed_as_its_task_starts_when_variants_run_then_nothing_is_recorded_after_the_refused_start(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch, original: bytes
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    frozen = original_key(API_OWNER, job_id)
    if original:  # a corrupt original too: its failure is written only after the start, which is refused
        aws.client("s3").put_object(Bucket=aws.media_bucket, Key=frozen, Body=original)
    start_task = JobStore.start_task

    def failed_meanwhile(self: JobStore, *args: Any, **kwargs: Any) -> Job:
        # The sweep fails the job (its step gave up) between the task's read of it and its start.
        self.fail(job_id, JobError(code="internal_error", message="the step gave up"))
        return start_task(self, *args, **kwargs)

    monkeypatch.setattr(JobStore, "start_task", failed_meanwhile)

    assert make_variants(variants_message_event(aws, job_id, key, etag), lambda_context) == []

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert (job.error.code, job.error.message) == ("internal_error", "the step gave up")
    assert (job.tasks["variants"].attempts, job.variants, job.placeholder) == (0, {}, None)
    assert [name for name in media_keys(aws) if "/variants/" in name] == []
