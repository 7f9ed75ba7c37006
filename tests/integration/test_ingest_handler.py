"""The ingest function, invoked as Lambda invokes it, on IngestQueue batches of S3 notifications."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from PIL import Image

import edit_handler
import ingest_handler
import variants_handler
from imgflow import aws as clients
from imgflow import ingest as ingest_module
from imgflow import services
from imgflow.keys import original_key, upload_key
from imgflow.models import ImageInfo, ImageLimits, JobStatus, TaskStatus, VariantsMessage, edit_task_name
from imgflow.storage import ObjectChangedError, ObjectStorage
from integration.helpers import (
    API_OWNER,
    BAD_INPUTS,
    DROP_OWNER,
    HOPPER,
    accepted_api_job,
    as_lambda_event,
    create_api_job,
    detail_types,
    fixture_notification,
    lifecycle_events,
    no_calls_allowed,
    put_upload,
    reported_failures,
    retarget_batch,
    stored_job,
    stored_jobs,
    throttled,
    upload_notification,
    with_receive_count,
)
from support import EmulatedAws, FakeLambdaContext, load_event, load_fixture_event

HOPPER_SIZE = 6412
FIXTURE_KEY = "uploads/u123/job-abc/original"  # the object the duplicate and overwrite fixtures name


def ingest(event: dict[str, Any], context: FakeLambdaContext) -> list[str]:
    """Invoke the function on an IngestQueue batch; the ids of the messages that go back to the queue."""
    return reported_failures(ingest_handler.lambda_handler, event, context)


def last_attempt(aws: EmulatedAws) -> int:
    """The receive count of a message's last delivery (template.yaml: maxReceiveCount = MAX_RECEIVE_COUNT)."""
    return int(aws.env["MAX_RECEIVE_COUNT"])


def fan_out(aws: EmulatedAws) -> list[VariantsMessage]:
    return [VariantsMessage.model_validate_json(message["Body"]) for message in aws.drain("VariantsQueue")]


def frozen_key(job_id: str, owner: str = API_OWNER) -> str:
    """Where ingest freezes a job's accepted original in the media bucket."""
    return original_key(owner, job_id)


def frozen_original(aws: EmulatedAws, job_id: str, owner: str = API_OWNER) -> tuple[bytes, str]:
    response = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=frozen_key(job_id, owner))
    return response["Body"].read(), response["ContentType"]


def upload_keys(aws: EmulatedAws) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.uploads_bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def media_keys(aws: EmulatedAws) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.media_bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def api_upload(aws: EmulatedAws, context: FakeLambdaContext, data: bytes | None = None) -> tuple[str, str, str]:
    """A job created through POST /uploads and its original stored where the presigned POST puts it."""
    job_id: str = create_api_job(context)["job_id"]
    key = upload_key(API_OWNER, job_id)
    etag = put_upload(aws, key, data if data is not None else HOPPER.read_bytes())
    return job_id, key, etag


# --- S3 test events ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda: load_fixture_event("sqs_batch_s3_test_event.json"), id="fixture"),
        pytest.param(lambda: load_event("ingest_s3_test_event.json"), id="sample-event"),
    ],
)
def test_given_an_s3_test_event_when_ingested_then_it_is_acknowledged_without_a_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None, event: Any
) -> None:
    response = ingest(retarget_batch(event(), aws.uploads_bucket), lambda_context)

    assert response == []
    assert stored_jobs(aws) == []
    assert fan_out(aws) == []
    assert lifecycle_events(aws) == []


# --- the happy path of an API upload -------------------------------------------------------------------


def test_given_an_api_job_and_its_upload_when_ingested_then_it_is_processing_with_one_fan_out_and_an_event(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = api_upload(aws, lambda_context)

    response = ingest(upload_notification(aws, key, etag, HOPPER_SIZE), lambda_context)

    assert response == []
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.PROCESSING
    assert job.image == ImageInfo(format="JPEG", width=128, height=128, frames=1)
    assert job.source is not None
    assert (job.source.bucket, job.source.key, job.source.size) == (aws.uploads_bucket, key, HOPPER_SIZE)
    assert job.tasks["variants"].status is TaskStatus.PENDING
    assert job.error is None
    assert fan_out(aws) == [VariantsMessage(job_id=job_id, bucket=aws.media_bucket, key=frozen_key(job_id))]
    # The validated bytes are frozen, labelled by what they are, and the upload key is released.
    assert frozen_original(aws, job_id) == (HOPPER.read_bytes(), "image/jpeg")
    assert upload_keys(aws) == []
    events = lifecycle_events(aws)
    assert detail_types(events) == ["Job Accepted"]
    detail = events[0]["detail"]
    assert (detail["job_id"], detail["status"], detail["version"]) == (job_id, "processing", job.version)
    assert detail["image"] == {
        "format": "JPEG",
        "width": 128,
        "height": 128,
        "frames": 1,
        "animated": False,
        "duration_ms": None,
    }


# --- at-least-once and unordered delivery --------------------------------------------------------------


def test_given_the_same_notification_delivered_twice_when_ingested_then_one_job_and_one_fan_out(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    etag = put_upload(aws, FIXTURE_KEY, HOPPER)

    first = ingest(fixture_notification("s3_duplicate_delivery_a.json", aws, etag=etag), lambda_context)
    second = ingest(fixture_notification("s3_duplicate_delivery_b.json", aws, etag=etag), lambda_context)

    assert first == second == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.PROCESSING
    assert len(fan_out(aws)) == 1
    assert detail_types(lifecycle_events(aws)) == ["Job Accepted"]


def test_given_two_copies_of_one_notification_in_one_batch_when_ingested_then_one_job_and_one_fan_out(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    etag = put_upload(aws, FIXTURE_KEY, HOPPER)
    batch = retarget_batch(load_fixture_event("sqs_batch_two_copies_same_s3_event.json"), aws.uploads_bucket, etag=etag)

    response = ingest(batch, lambda_context)

    assert response == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.PROCESSING
    assert len(fan_out(aws)) == 1
    assert detail_types(lifecycle_events(aws)) == ["Job Accepted"]


def test_given_the_newer_write_ingested_when_the_older_notification_arrives_then_it_is_a_no_op(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    # The key now holds the newer write; the older notification names a write that is gone (its own ETag).
    etag = put_upload(aws, FIXTURE_KEY, HOPPER)
    newer = ingest(fixture_notification("s3_overwrite_out_of_order_newer.json", aws, etag=etag), lambda_context)
    [job] = stored_jobs(aws)
    version = job.version

    older = ingest(fixture_notification("s3_overwrite_out_of_order_older.json", aws), lambda_context)

    assert newer == older == []
    [after] = stored_jobs(aws)
    assert after.job_id == job.job_id
    assert after.version == version
    assert after.status is JobStatus.PROCESSING
    assert after.source is not None
    assert (after.source.sequencer, after.source.etag) == ("0055AED6DCD90281E6AA", etag)
    assert len(fan_out(aws)) == 1
    assert detail_types(lifecycle_events(aws)) == ["Job Accepted"]


def test_given_an_overwritten_drop_when_its_older_notification_arrives_first_then_no_job_is_left_unfinished(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    # S3 delivered the older write's notification first, but the key already holds the newer write.
    etag = put_upload(aws, FIXTURE_KEY, HOPPER)
    older = ingest(fixture_notification("s3_overwrite_out_of_order_older.json", aws), lambda_context)
    newer = ingest(fixture_notification("s3_overwrite_out_of_order_newer.json", aws, etag=etag), lambda_context)

    assert older == newer == []
    following_newer = [job for job in stored_jobs(aws) if job.source and job.source.etag == etag]
    assert [job.status for job in following_newer] == [JobStatus.PROCESSING]
    leftovers = [job for job in stored_jobs(aws) if job not in following_newer]
    assert all(job.status.is_terminal for job in leftovers), [(j.job_id, j.status) for j in leftovers]


def test_given_a_drop_when_the_notifications_the_bucket_sent_are_delivered_twice_then_one_job_and_one_fan_out(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    # What the emulated bucket itself queued: its s3:TestEvent, then a notification without a sequencer
    # and with every `/` of the key percent-encoded.
    key = "uploads/partner/a b+c.jpg"
    put_upload(aws, key, HOPPER)
    delivered = aws.drain("IngestQueue")
    assert len(delivered) == 2

    first = ingest(as_lambda_event(delivered), lambda_context)
    again = ingest(as_lambda_event(delivered, receive_count=2), lambda_context)

    assert first == again == []
    [job] = stored_jobs(aws)
    assert job.source is not None
    assert (job.source.key, job.source.sequencer) == (key, None)
    assert job.status is JobStatus.PROCESSING
    assert [message.key for message in fan_out(aws)] == [frozen_key(job.job_id, DROP_OWNER)]


def test_given_a_drop_when_its_fan_out_message_is_handled_then_the_job_succeeds(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    key = "uploads/partner/hopper.jpg"
    put_upload(aws, key, HOPPER)
    assert ingest(as_lambda_event(aws.drain("IngestQueue")), lambda_context) == []
    fanned_out = aws.drain("VariantsQueue")

    failures = reported_failures(variants_handler.lambda_handler, as_lambda_event(fanned_out), lambda_context)

    assert failures == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.SUCCEEDED
    assert len(job.variants) == 4


# --- keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "key"),
    [
        pytest.param("s3_key_space_plus.json", "uploads/u123/red flower.jpg", id="space-as-plus"),
        pytest.param("s3_key_literal_plus.json", "uploads/u123/a+b.jpg", id="literal-plus"),
        pytest.param("s3_key_unicode.json", "uploads/u123/写真 1.jpg", id="unicode"),
    ],
)
def test_given_a_form_encoded_key_when_ingested_then_the_job_names_the_decoded_key(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, fixture: str, key: str
) -> None:
    etag = put_upload(aws, key, HOPPER)

    response = ingest(fixture_notification(fixture, aws, etag=etag), lambda_context)

    assert response == []
    [job] = stored_jobs(aws)
    assert job.source is not None
    assert job.source.key == key
    assert job.status is JobStatus.PROCESSING
    assert job.filename == key.rsplit("/", 1)[-1]
    assert [message.key for message in fan_out(aws)] == [frozen_key(job.job_id, DROP_OWNER)]


def test_given_a_key_with_dot_dot_segments_when_ingested_then_nothing_is_read_and_no_job_is_made(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    event = fixture_notification("s3_key_dotdot.json", aws)

    with no_calls_allowed(clients.s3()):
        response = ingest(event, lambda_context)

    assert response == []
    assert aws.table().scan()["Items"] == []
    assert fan_out(aws) == []
    assert lifecycle_events(aws) == []


def test_given_a_key_outside_the_upload_prefix_when_ingested_then_it_is_ignored(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    event = fixture_notification("s3_key_unexpected_prefix.json", aws)

    with no_calls_allowed(clients.s3()):
        response = ingest(event, lambda_context)

    assert response == []
    assert aws.table().scan()["Items"] == []
    assert fan_out(aws) == []
    assert lifecycle_events(aws) == []


# --- what the notification alone tells -----------------------------------------------------------------


def test_given_an_empty_object_when_ingested_then_the_job_is_rejected_without_downloading(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    # No object is stored: the notification's size is enough to reject it.
    event = fixture_notification("s3_zero_size.json", aws)

    with no_calls_allowed(clients.s3()):
        response = ingest(event, lambda_context)

    assert response == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == "empty_file"
    assert fan_out(aws) == []
    events = lifecycle_events(aws)
    assert detail_types(events) == ["Job Rejected"]
    assert events[0]["detail"]["error"]["code"] == "empty_file"
    assert events[0]["detail"]["version"] == job.version


def test_given_an_object_above_the_size_limit_when_ingested_then_the_job_is_rejected_without_downloading(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    event = fixture_notification("s3_zero_size.json", aws, size=int(aws.env["MAX_UPLOAD_BYTES"]) + 1)

    with no_calls_allowed(clients.s3()):
        response = ingest(event, lambda_context)

    assert response == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == "too_large_bytes"
    assert detail_types(lifecycle_events(aws)) == ["Job Rejected"]


def test_given_an_upload_of_another_size_than_announced_when_ingested_then_the_job_is_rejected_as_mismatch(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    # POST /uploads announced hopper.jpg (6412 bytes); a larger file arrived within the policy's range.
    png = (BAD_INPUTS / "hopper.png").read_bytes()
    job_id, key, etag = api_upload(aws, lambda_context, png)

    response = ingest(upload_notification(aws, key, etag, len(png)), lambda_context)

    assert response == []
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == "upload_mismatch"
    assert fan_out(aws) == []
    events = lifecycle_events(aws)
    assert detail_types(events) == ["Job Rejected"]
    assert events[0]["detail"]["error"]["code"] == "upload_mismatch"


# --- batches --------------------------------------------------------------------------------------------


def test_given_a_notification_with_two_records_when_ingested_then_each_object_gets_its_own_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    keys = ["uploads/u1/j1/original", "uploads/u2/j2/original"]
    etags = {put_upload(aws, key, HOPPER) for key in keys}
    [etag] = etags  # the same bytes: the same ETag, as the fixture has it

    response = ingest(fixture_notification("s3_two_records.json", aws, etag=etag), lambda_context)

    assert response == []
    jobs = stored_jobs(aws)
    assert sorted(job.source.key for job in jobs if job.source) == keys
    assert {job.status for job in jobs} == {JobStatus.PROCESSING}
    assert len({job.job_id for job in jobs}) == 2
    assert sorted(message.key for message in fan_out(aws)) == sorted(frozen_key(job.job_id, DROP_OWNER) for job in jobs)
    assert detail_types(lifecycle_events(aws)) == ["Job Accepted", "Job Accepted"]


def test_given_a_batch_with_poison_messages_when_ingested_then_only_the_poison_ones_fail(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    key = "uploads/u123/red flower.jpg"
    etag = put_upload(aws, key, HOPPER)
    batch = retarget_batch(load_fixture_event("sqs_batch_with_poison_messages.json"), aws.uploads_bucket, etag=etag)

    response = ingest(batch, lambda_context)

    assert sorted(response) == [
        "55555555-5555-5555-5555-555555555555",
        "66666666-6666-6666-6666-666666666666",
    ]
    [job] = stored_jobs(aws)
    assert job.source is not None
    assert job.source.key == key
    assert job.status is JobStatus.PROCESSING
    assert [message.key for message in fan_out(aws)] == [frozen_key(job.job_id, DROP_OWNER)]


# --- bad images dropped straight into the bucket -------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "code"),
    [
        ("truncated_jpeg.jpg", "corrupt_image"),
        ("broken_data_stream.png", "corrupt_image"),
        ("truncated_image.png", "corrupt_image"),
        ("misleading_eps_zero_bb.jpg", "unsupported_format"),
        ("misleading_tiff_g4.png", "unsupported_format"),
        ("decompression_bomb.gif", "too_many_pixels"),
    ],
)
def test_given_a_bad_image_dropped_directly_when_ingested_then_the_job_is_rejected_with_its_reason(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None, file: str, code: str
) -> None:
    data = (BAD_INPUTS / file).read_bytes()
    key = f"uploads/partner/{file}"
    etag = put_upload(aws, key, data)

    response = ingest(upload_notification(aws, key, etag, len(data)), lambda_context)

    assert response == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == code
    assert job.image is None
    assert fan_out(aws) == []
    # Frozen while it was validated (a JPEG, PNG or GIF by its magic bytes), and removed once refused.
    assert media_keys(aws) == []
    events = lifecycle_events(aws)
    assert detail_types(events) == ["Job Rejected"]
    assert events[0]["detail"]["job_id"] == job.job_id
    assert events[0]["detail"]["error"]["code"] == code


# --- failures: transient, then for good ----------------------------------------------------------------


def test_given_s3_throttles_on_an_early_attempt_when_ingested_then_the_record_fails_and_the_job_waits_for_a_retry(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = api_upload(aws, lambda_context)
    event = upload_notification(aws, key, etag, HOPPER_SIZE, receive_count=1)

    with throttled(clients.s3(), "get_object"):
        response = ingest(event, lambda_context)

    assert response == [event["Records"][0]["messageId"]]
    job = stored_job(aws, job_id)
    assert not job.status.is_terminal
    assert job.error is None
    assert fan_out(aws) == []
    assert lifecycle_events(aws) == []

    retried = ingest(with_receive_count(event, 2), lambda_context)

    assert retried == []
    assert stored_job(aws, job_id).status is JobStatus.PROCESSING
    assert len(fan_out(aws)) == 1


def test_given_s3_throttles_on_the_last_attempt_when_ingested_then_the_job_fails_and_the_record_still_fails(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, key, etag = api_upload(aws, lambda_context)
    event = upload_notification(aws, key, etag, HOPPER_SIZE, receive_count=last_attempt(aws))

    with throttled(clients.s3(), "get_object"):
        response = ingest(event, lambda_context)

    assert response == [event["Records"][0]["messageId"]]
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "internal_error"
    assert fan_out(aws) == []


def test_given_s3_throttles_on_the_last_attempt_when_ingested_then_a_job_failed_event_is_published(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = api_upload(aws, lambda_context)
    event = upload_notification(aws, key, etag, HOPPER_SIZE, receive_count=last_attempt(aws))

    with throttled(clients.s3(), "get_object"):
        ingest(event, lambda_context)

    job = stored_job(aws, job_id)
    events = lifecycle_events(aws, job_id)
    assert detail_types(events) == ["Job Failed"]
    assert events[0]["detail"]["version"] == job.version
    assert events[0]["detail"]["error"]["code"] == "internal_error"


def test_given_eventbridge_is_down_when_an_upload_is_accepted_then_job_accepted_is_published_from_the_stream(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = api_upload(aws, lambda_context)
    event = upload_notification(aws, key, etag, HOPPER_SIZE)

    with no_calls_allowed(clients.events()):
        failures = ingest(event, lambda_context)

    assert failures == []
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.PROCESSING
    [accepted] = lifecycle_events(aws, job_id)
    assert (accepted["detail-type"], accepted["detail"]["version"]) == ("Job Accepted", job.version)


def test_given_an_accepted_api_job_when_its_key_is_overwritten_then_the_job_keeps_the_object_it_accepted(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    data = HOPPER.read_bytes()
    job_id, key, etag = accepted_api_job(aws, lambda_context, data)
    before = stored_job(aws, job_id)
    other = (BAD_INPUTS / "hopper.png").read_bytes()
    newer_etag = put_upload(aws, key, other, "image/png")

    failures = ingest(upload_notification(aws, key, newer_etag, len(other)), lambda_context)

    assert failures == []
    job = stored_job(aws, job_id)
    assert job == before
    assert job.source is not None
    assert job.source.etag == etag
    assert aws.drain("VariantsQueue") == []  # no second fan-out for an object the job never accepted
    assert upload_keys(aws) == []  # even a valid image is removed: the job accepted another one
    assert frozen_original(aws, job_id) == (data, "image/jpeg")


# --- the accepted original is frozen -------------------------------------------------------------------


def test_given_an_accepted_upload_when_its_form_writes_html_over_it_then_it_is_removed_and_results_use_the_image(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None, caplog: pytest.LogCaptureFixture
) -> None:
    # The presigned form stays valid for minutes after the upload was accepted, and S3 takes any bytes
    # that fit its policy: here an HTML page, under the content type the form pins.
    data = HOPPER.read_bytes()
    created = create_api_job(
        lambda_context,
        {
            "filename": "hopper.jpg",
            "content_type": "image/jpeg",
            "size": len(data),
            "edits": [{"operations": [{"op": "grayscale"}]}],
        },
    )
    job_id, key = created["job_id"], created["upload"]["fields"]["key"]
    accepted_etag = put_upload(aws, key, data)
    assert ingest(upload_notification(aws, key, accepted_etag, len(data)), lambda_context) == []
    accepted = stored_job(aws, job_id)
    assert accepted.status is JobStatus.PROCESSING
    variants_fan_out, edits_fan_out = aws.drain("VariantsQueue"), aws.drain("EditQueue")
    assert (len(variants_fan_out), len(edits_fan_out)) == (1, 1)
    lifecycle_events(aws)
    html = b"<!doctype html><html><body><script>alert(document.domain)</script></body></html>"
    html_etag = put_upload(aws, key, html, "image/jpeg")

    with caplog.at_level(logging.WARNING):
        failures = ingest(upload_notification(aws, key, html_etag, len(html)), lambda_context)

    assert failures == []
    assert stored_job(aws, job_id) == accepted  # not a field, not a version changed
    assert upload_keys(aws) == []
    assert aws.drain("VariantsQueue") == aws.drain("EditQueue") == []
    assert lifecycle_events(aws) == []
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [getattr(record, "job_id", None) for record in warnings] == [job_id]

    assert reported_failures(variants_handler.lambda_handler, as_lambda_event(variants_fan_out), lambda_context) == []
    assert reported_failures(edit_handler.lambda_handler, as_lambda_event(edits_fan_out), lambda_context) == []

    job = stored_job(aws, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert sorted(job.variants) == ["full_webp", "large_webp", "small_webp", "thumb_webp"]
    [edit_id] = job.edits
    assert job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
    result = job.edits[edit_id].result
    assert result is not None
    s3 = aws.client("s3")
    with Image.open(io.BytesIO(s3.get_object(Bucket=aws.media_bucket, Key=result.key)["Body"].read())) as edited:
        assert edited.size == (128, 128)  # hopper's, decoded from the bytes ingest validated
        red, green, blue = edited.convert("RGB").split()
        assert red.tobytes() == green.tobytes() == blue.tobytes()
    thumb = job.variants["thumb_webp"]
    with Image.open(io.BytesIO(s3.get_object(Bucket=aws.media_bucket, Key=thumb.key)["Body"].read())) as variant:
        assert (variant.format, variant.size) == ("WEBP", (128, 128))


def test_given_the_fan_out_failed_after_acceptance_when_retried_then_it_completes_and_releases_the_upload(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, etag = api_upload(aws, lambda_context)
    event = upload_notification(aws, key, etag, HOPPER_SIZE)
    with throttled(clients.sqs(), "send_message", code="AWS.SimpleQueueService.RequestThrottled", status=400):
        assert ingest(event, lambda_context) == [event["Records"][0]["messageId"]]
    assert upload_keys(aws) == [key]  # released only after the fan-out, which failed
    fan_out(aws)

    retried = ingest(with_receive_count(event, 2), lambda_context)

    assert retried == []
    assert upload_keys(aws) == []
    assert stored_job(aws, job_id).status is JobStatus.PROCESSING
    assert fan_out(aws) == [VariantsMessage(job_id=job_id, bucket=aws.media_bucket, key=frozen_key(job_id))]
    assert detail_types(lifecycle_events(aws, job_id)) == ["Job Accepted"]
    assert frozen_original(aws, job_id) == (HOPPER.read_bytes(), "image/jpeg")


def test_given_the_upload_is_replaced_between_validation_and_freezing_when_ingested_then_it_is_not_accepted(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    # S3 compares the eTag in the copy itself: the bytes validated are the bytes frozen, or nothing is.
    job_id, key, etag = api_upload(aws, lambda_context)
    data = HOPPER.read_bytes()
    with Stubber(clients.s3()) as s3:
        s3.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)},
            {"Bucket": aws.uploads_bucket, "Key": key, "IfMatch": etag},
        )
        s3.add_client_error(
            "copy_object",
            service_error_code="PreconditionFailed",
            http_status_code=412,
            expected_params={
                "Bucket": aws.media_bucket,
                "Key": frozen_key(job_id),
                "CopySource": {"Bucket": aws.uploads_bucket, "Key": key},
                "CopySourceIfMatch": f'"{etag}"',
                "MetadataDirective": "REPLACE",
                "ContentType": "image/jpeg",
                "CacheControl": "public, max-age=31536000, immutable",
                "TaggingDirective": "REPLACE",
            },
        )

        failures = ingest(upload_notification(aws, key, etag, HOPPER_SIZE), lambda_context)

        s3.assert_no_pending_responses()
    assert failures == []
    # The newer write's own event carries the job on.
    assert stored_job(aws, job_id).status is JobStatus.VALIDATING
    assert fan_out(aws) == []
    assert lifecycle_events(aws) == []
    assert media_keys(aws) == []


def test_given_removing_an_overwrite_keeps_failing_when_its_last_attempt_fails_then_the_job_is_unchanged(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, key, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    before = stored_job(aws, job_id)
    lifecycle_events(aws)
    html = b"<html></html>"
    event = upload_notification(aws, key, put_upload(aws, key, html), len(html), receive_count=last_attempt(aws))

    with throttled(clients.s3(), "delete_object"):
        failures = ingest(event, lambda_context)

    assert failures == [event["Records"][0]["messageId"]]  # retried, then kept in the dead-letter queue
    assert stored_job(aws, job_id) == before
    assert lifecycle_events(aws) == []


def test_given_a_drop_when_accepted_then_its_original_is_frozen_and_the_dropped_object_stays_where_it_was(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    key = "uploads/partner/hopper.jpg"
    etag = put_upload(aws, key, HOPPER)

    assert ingest(upload_notification(aws, key, etag, HOPPER_SIZE), lambda_context) == []

    [job] = stored_jobs(aws)
    assert job.status is JobStatus.PROCESSING
    assert job.owner == DROP_OWNER
    assert frozen_original(aws, job.job_id, DROP_OWNER) == (HOPPER.read_bytes(), "image/jpeg")
    # Its key is its owner's, not the job's: a later write there is a drop with a job of its own.
    assert upload_keys(aws) == [key]


# --- owners' prefixes ----------------------------------------------------------------------------------


def test_given_alices_job_when_its_upload_lands_under_another_owners_prefix_then_it_is_no_upload_of_that_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id: str = create_api_job(lambda_context)["job_id"]
    key = upload_key("bob", job_id)
    etag = put_upload(aws, key, HOPPER)

    assert ingest(upload_notification(aws, key, etag, HOPPER_SIZE), lambda_context) == []

    assert stored_job(aws, job_id).status is JobStatus.AWAITING_UPLOAD
    [message] = fan_out(aws)
    drop = stored_job(aws, message.job_id)
    assert drop.job_id != job_id
    assert (drop.owner, drop.source and drop.source.key) == (DROP_OWNER, key)
    assert media_keys(aws) == [frozen_key(drop.job_id, DROP_OWNER)]


def test_given_a_configured_drop_owner_when_an_object_is_dropped_then_its_job_and_objects_are_that_owners(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIRECT_DROP_OWNER", "partner-backend")
    services.reset()
    key = "uploads/partner/hopper.jpg"
    etag = put_upload(aws, key, HOPPER)

    assert ingest(upload_notification(aws, key, etag, HOPPER_SIZE), lambda_context) == []

    [job] = stored_jobs(aws)
    assert job.owner == "partner-backend"
    assert [message.key for message in fan_out(aws)] == [frozen_key(job.job_id, "partner-backend")]
    assert media_keys(aws) == [original_key("partner-backend", job.job_id)]


def test_given_a_slow_copy_when_an_upload_is_ingested_then_it_is_validated_while_it_is_frozen(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, key, etag = api_upload(aws, lambda_context)
    steps: list[str] = []
    copy, inspect = ObjectStorage.copy, ingest_module.inspect_image

    def slow_copy(self: ObjectStorage, *args: Any, **kwargs: Any) -> None:
        steps.append("freezing")
        time.sleep(0.3)  # S3 copying a large object: the validation goes on meanwhile
        copy(self, *args, **kwargs)
        steps.append("frozen")

    def inspected(data: bytes, limits: ImageLimits) -> ImageInfo:
        info = inspect(data, limits)
        steps.append("validated")
        return info

    monkeypatch.setattr(ObjectStorage, "copy", slow_copy)
    monkeypatch.setattr(ingest_module, "inspect_image", inspected)

    assert ingest(upload_notification(aws, key, etag, HOPPER_SIZE), lambda_context) == []

    assert steps == ["freezing", "validated", "frozen"]
    assert stored_job(aws, job_id).status is JobStatus.PROCESSING
    assert frozen_original(aws, job_id) == (HOPPER.read_bytes(), "image/jpeg")
    assert [message.key for message in fan_out(aws)] == [frozen_key(job_id)]


def test_given_the_copy_fails_when_a_corrupt_upload_is_ingested_then_it_is_rejected_for_its_bytes(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validation refuses before the object's change counts: the rejection is the file's, as it was when
    # the copy came after the validation.
    data = (BAD_INPUTS / "truncated_jpeg.jpg").read_bytes()
    key = "uploads/partner/truncated_jpeg.jpg"
    etag = put_upload(aws, key, data)

    def replaced_meanwhile(self: ObjectStorage, bucket: str, key: str, *args: Any, **kwargs: Any) -> None:
        raise ObjectChangedError(key, deleted=False)

    monkeypatch.setattr(ObjectStorage, "copy", replaced_meanwhile)

    assert ingest(upload_notification(aws, key, etag, len(data)), lambda_context) == []

    [job] = stored_jobs(aws)
    assert job.status is JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == "corrupt_image"
    assert media_keys(aws) == []
