"""S3 at the edges, through the local runtime: uploads that S3's POST policy refuses, objects dropped into
the uploads bucket directly (odd keys, empty, outside the prefix), notifications delivered twice, and a
poison message that must end in the dead-letter queue while other uploads go on."""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import pytest
import requests
from PIL import Image

from imgflow.keys import upload_key, upload_prefix
from imgflow_local.template import load_template

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
# Objects dropped straight into the bucket belong to this owner (no token made them): DirectDropOwner's default.
DROP_OWNER = "system"
# The owner of the jobs `Pipeline.create_upload` makes (e2e/conftest.py's DEFAULT_OWNER).
API_OWNER = "e2e"

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
HOPPER = (FIXTURES / "images" / "bad-inputs" / "hopper.jpg").read_bytes()
NOTIFICATION = json.loads((FIXTURES / "s3-events" / "s3_duplicate_delivery_a.json").read_text())
TERMINAL = {"succeeded", "failed", "rejected", "expired"}
# The session's runtime takes uploads of at most the template's default, from pages of APP_ORIGIN (and its
# own demo page): the tests that need a body past it send one (26 MB), as test_s3_post_form does.
LIMIT = int(load_template(ROOT / "template.yaml")["Parameters"]["MaxUploadBytes"]["Default"])
APP_ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://elsewhere.example.net"
DEAD_LETTER_SECONDS = 60
EDIT_SECONDS = 120


def s3_error(response: requests.Response) -> dict[str, str]:
    """S3's XML error document as a dict: Code, Message and the details S3 adds."""
    assert response.headers.get("Content-Type", "").startswith("application/xml"), response.headers
    return {element.tag: element.text or "" for element in ET.fromstring(response.content)}


def stored_keys(pipeline: Pipeline, prefix: str) -> list[str]:
    listed = pipeline.s3.list_objects_v2(Bucket=pipeline.uploads_bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def create(pipeline: Pipeline, size: int, content_type: str = "image/jpeg") -> dict[str, Any]:
    response = pipeline.create_upload("photo.jpg", content_type, size)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_still_awaiting_upload(pipeline: Pipeline, created: dict[str, Any]) -> None:
    job_id = created["job_id"]
    assert stored_keys(pipeline, upload_prefix(API_OWNER, job_id)) == [], "S3 stored an upload it refused"
    view = pipeline.view(job_id)
    assert (view["status"], view["version"]) == ("awaiting_upload", 1), view
    assert pipeline.events(job_id) == []


def notification(pipeline: Pipeline, key: str, size: int, etag: str, sequencer: str | None) -> str:
    """The fixture's S3 notification rewritten to this bucket and object; keys are form-encoded, as S3 sends them."""
    body = json.loads(json.dumps(NOTIFICATION))
    record = body["Records"][0]["s3"]
    record["bucket"].update(name=pipeline.uploads_bucket, arn=f"arn:aws:s3:::{pipeline.uploads_bucket}")
    record["object"].update(key=quote_plus(key, safe="/"), size=size, eTag=etag)
    if sequencer is None:
        del record["object"]["sequencer"]
    else:
        record["object"]["sequencer"] = sequencer
    return json.dumps(body)


def send_to_ingest(pipeline: Pipeline, body: str) -> None:
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url("IngestQueue"), MessageBody=body)


def unique_key(name: str) -> str:
    return f"uploads/direct/{uuid.uuid4().hex[:12]}/{name}"


# --- uploads that S3's POST policy refuses ---------------------------------------------------------


def test_the_api_refuses_to_hand_out_an_upload_over_the_limit(pipeline: Pipeline) -> None:
    response = pipeline.create_upload("big.jpg", "image/jpeg", LIMIT + 10_000)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_large_bytes"


def test_the_presigned_post_pins_the_key_the_type_and_the_size_and_expires_in_minutes(pipeline: Pipeline) -> None:
    created = create(pipeline, size=1000)
    fields = created["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": upload_key(API_OWNER, created["job_id"])} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, LIMIT] in conditions
    assert fields["Content-Type"] == "image/jpeg"
    expires = datetime.fromisoformat(policy["expiration"])
    announced = datetime.fromisoformat(created["upload"]["expires_at"])
    # The API stamps its expiry just before it signs: the form may outlive the announcement by a moment,
    # never the other way round (a client would then send a form that S3 refuses).
    assert announced <= expires <= announced + timedelta(minutes=1), (announced, expires)
    assert timedelta(minutes=1) <= expires - datetime.now(UTC) <= timedelta(hours=1)


def test_s3_refuses_a_policy_changed_after_it_was_signed(pipeline: Pipeline) -> None:
    created = create(pipeline, size=40_000)
    fields = dict(created["upload"]["fields"])
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [
        ["content-length-range", 1, 10 * LIMIT] if isinstance(c, list) and c[0] == "content-length-range" else c
        for c in policy["conditions"]
    ]
    fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    response = pipeline.post_form(created, os.urandom(LIMIT + 1), "big.jpg", fields=fields)
    assert response.status_code == 403, response.text
    assert s3_error(response)["Code"] == "SignatureDoesNotMatch"
    assert_still_awaiting_upload(pipeline, created)


def test_s3_refuses_a_form_whose_policy_has_expired(pipeline: Pipeline) -> None:
    key = unique_key("late.jpg")
    # Signed with the emulator's credentials, as the API signs, but an hour past its expiry.
    late = pipeline.s3.generate_presigned_post(
        Bucket=pipeline.uploads_bucket,
        Key=key,
        Fields={"Content-Type": "image/jpeg"},
        Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 100_000]],
        ExpiresIn=-3600,
    )
    response = requests.post(late["url"], data=late["fields"], files={"file": ("late.jpg", HOPPER)}, timeout=30)
    assert response.status_code == 403, response.text
    error = s3_error(response)
    assert error["Code"] == "AccessDenied"
    assert "expired" in error["Message"]
    assert stored_keys(pipeline, key) == []


def test_s3_refuses_a_body_over_the_limit_whatever_size_was_announced(pipeline: Pipeline) -> None:
    created = create(pipeline, size=40_000)
    response = pipeline.post_form(created, os.urandom(LIMIT + 1), "big.jpg")
    assert response.status_code == 400, response.text
    error = s3_error(response)
    assert error["Code"] == "EntityTooLarge"
    assert error["MaxSizeAllowed"] == str(LIMIT)
    assert_still_awaiting_upload(pipeline, created)


def test_s3_refuses_another_content_type_than_the_policy_pins(pipeline: Pipeline) -> None:
    created = create(pipeline, size=len(HOPPER))
    fields = {**created["upload"]["fields"], "Content-Type": "image/png"}
    response = pipeline.post_form(created, HOPPER, "hopper.png", fields=fields)
    assert response.status_code == 403, response.text
    assert s3_error(response)["Code"] == "AccessDenied"
    assert_still_awaiting_upload(pipeline, created)


def test_s3_refuses_another_key_than_the_policy_pins(pipeline: Pipeline) -> None:
    mine, theirs = create(pipeline, size=len(HOPPER)), create(pipeline, size=len(HOPPER))
    fields = {**mine["upload"]["fields"], "key": theirs["upload"]["fields"]["key"]}
    response = pipeline.post_form(mine, HOPPER, "hopper.jpg", fields=fields)
    assert response.status_code == 403, response.text
    assert s3_error(response)["Code"] == "AccessDenied"
    assert_still_awaiting_upload(pipeline, mine)
    assert_still_awaiting_upload(pipeline, theirs)


def test_s3_refuses_an_empty_file(pipeline: Pipeline) -> None:
    created = create(pipeline, size=1)
    response = pipeline.post_form(created, b"", "empty.jpg")
    assert response.status_code == 400, response.text
    assert s3_error(response)["Code"] == "EntityTooSmall"
    assert_still_awaiting_upload(pipeline, created)


def test_a_file_of_another_size_than_announced_is_rejected_as_upload_mismatch(pipeline: Pipeline) -> None:
    created = create(pipeline, size=40_000)
    response = pipeline.post_form(created, HOPPER, "hopper.jpg")
    assert response.status_code == 204, response.text
    view = pipeline.wait_for_job(created["job_id"]).final
    assert view["status"] == "rejected", view
    assert view["error"]["code"] == "upload_mismatch"


# --- a form used again after its upload was accepted -----------------------------------------------


def test_a_form_used_again_after_the_job_succeeded_changes_nothing_the_job_serves_or_edits(pipeline: Pipeline) -> None:
    upload = pipeline.upload("hopper.jpg", HOPPER, "image/jpeg")
    done = pipeline.wait_for_job(upload.job_id).final
    assert done["status"] == "succeeded", done
    # The form stays valid for minutes, and S3 stores whatever fits its policy: the key, the type, the size.
    page = b"<!doctype html><html><body><script>alert(document.domain)</script></body></html>"
    reused = pipeline.post_form(upload.created, page, "page.html")
    assert reused.status_code == 204, reused.text

    pipeline.eventually(
        lambda: stored_keys(pipeline, upload.key) == [],
        30,
        lambda: f"{upload.key} still holds the bytes of the reused form",
    )
    pipeline.wait_until_idle("IngestQueue")
    view = pipeline.view(upload.job_id)
    assert (view["status"], view["version"], view["image"]) == ("succeeded", done["version"], done["image"])

    added = pipeline.api("POST", f"/jobs/{upload.job_id}/edits", json={"operations": [{"op": "grayscale"}]})
    assert added.status_code == 202, added.text
    edit_id = added.json()["edit_id"]

    def finished() -> dict[str, Any] | None:
        [edit] = [edit for edit in pipeline.view(upload.job_id)["edits"] if edit["edit_id"] == edit_id]
        return edit if edit["status"] in {"succeeded", "failed"} else None

    edit = pipeline.eventually(finished, EDIT_SECONDS, lambda: f"edit {edit_id} of {upload.job_id} did not finish")
    assert edit["status"] == "succeeded", edit
    with Image.open(io.BytesIO(pipeline.download(edit["url"]).content)) as edited:
        assert edited.size == (128, 128)  # hopper's: the bytes the job accepted, not the page
        red, green, blue = edited.convert("RGB").split()
        assert red.tobytes() == green.tobytes() == blue.tobytes()
    final = pipeline.view(upload.job_id)
    assert (final["status"], final["image"]) == ("succeeded", done["image"])
    kinds = [event["detail-type"] for event in pipeline.events(upload.job_id)]
    assert not {"Job Rejected", "Job Failed"} & set(kinds), kinds
    assert stored_keys(pipeline, upload.key) == []


# --- CORS when one origin is allowed ----------------------------------------------------------------


def test_the_api_allows_the_configured_origin_only(pipeline: Pipeline) -> None:
    for origin, allowed in ((APP_ORIGIN, APP_ORIGIN), (OTHER_ORIGIN, None)):
        preflight = pipeline.api(
            "OPTIONS", "/uploads", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.headers.get("Access-Control-Allow-Origin") == allowed, (origin, dict(preflight.headers))
        answer = pipeline.api("GET", "/health", headers={"Origin": origin})
        assert answer.headers.get("Access-Control-Allow-Origin") == allowed, (origin, dict(answer.headers))


def test_the_uploads_bucket_refuses_a_preflight_from_another_origin(pipeline: Pipeline) -> None:
    created = create(pipeline, size=10)
    headers = {"Access-Control-Request-Method": "POST"}
    allowed = requests.options(created["upload"]["url"], headers={**headers, "Origin": APP_ORIGIN}, timeout=30)
    assert allowed.status_code == 200
    assert allowed.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN
    refused = requests.options(created["upload"]["url"], headers={**headers, "Origin": OTHER_ORIGIN}, timeout=30)
    # A browser accepts a preflight only with a 2xx status and its origin allowed.
    assert refused.status_code == 403, refused.text


@pytest.mark.parametrize("outcome", ["stored", "refused"])
def test_the_uploads_bucket_gives_another_origin_no_cors_headers(pipeline: Pipeline, outcome: str) -> None:
    created = create(pipeline, size=len(HOPPER))
    fields = dict(created["upload"]["fields"])
    if outcome == "refused":
        fields["Content-Type"] = "image/png"
    # A multipart form POST is a "simple" request: browsers send it without a preflight.
    response = pipeline.post_form(created, HOPPER, "hopper.jpg", fields=fields, headers={"Origin": OTHER_ORIGIN})
    assert response.status_code == (204 if outcome == "stored" else 403), response.text
    assert "Access-Control-Allow-Origin" not in response.headers, dict(response.headers)


@pytest.mark.parametrize("outcome", ["stored", "refused"])
def test_the_uploads_bucket_lets_the_allowed_origin_read_its_answer(pipeline: Pipeline, outcome: str) -> None:
    created = create(pipeline, size=len(HOPPER))
    fields = dict(created["upload"]["fields"])
    if outcome == "refused":
        fields["Content-Type"] = "image/png"
    response = pipeline.post_form(created, HOPPER, "hopper.jpg", fields=fields, headers={"Origin": APP_ORIGIN})
    assert response.status_code == (204 if outcome == "stored" else 403), response.text
    assert response.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN


# --- objects dropped into the uploads bucket directly ----------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["uploads/direct/red flower.jpg", "uploads/direct/café ☕.jpg", "uploads/direct/a+b.jpg"],
    ids=["space", "non-ascii", "literal-plus"],
)
def test_a_direct_drop_gets_a_job_of_its_own_that_succeeds(pipeline: Pipeline, key: str) -> None:
    pipeline.drop(key, HOPPER)
    job = pipeline.wait_for_drop_job(key)
    view = pipeline.wait_for_job(job["job_id"], owner=DROP_OWNER).final
    assert view["status"] == "succeeded", view
    assert view["filename"] == key.rsplit("/", 1)[-1]
    assert sorted(variant["preset"] for variant in view["variants"]) == ["full", "large", "small", "thumb"]
    assert [job["job_id"] for job in pipeline.jobs_for_key(key)] == [job["job_id"]]


def test_an_empty_direct_drop_is_rejected_as_empty_file(pipeline: Pipeline) -> None:
    key = unique_key("empty.jpg")
    pipeline.drop(key, b"")
    view = pipeline.wait_for_job(pipeline.wait_for_drop_job(key)["job_id"], owner=DROP_OWNER).final
    assert view["status"] == "rejected", view
    assert view["error"]["code"] == "empty_file"


def test_an_object_outside_the_upload_prefix_starts_no_job(pipeline: Pipeline) -> None:
    outside = f"other/{uuid.uuid4().hex[:12]}/x.jpg"
    pipeline.drop(outside, HOPPER)
    # Dropped after it, a sentinel shows that ingest has had its chance at the first one.
    sentinel = unique_key("sentinel.jpg")
    pipeline.drop(sentinel, HOPPER)
    pipeline.wait_for_job(pipeline.wait_for_drop_job(sentinel)["job_id"], owner=DROP_OWNER)
    pipeline.wait_until_idle("IngestQueue")
    assert stored_keys(pipeline, outside) == [outside]
    assert pipeline.jobs_for_key(outside) == []


# --- notifications delivered more than once --------------------------------------------------------


def test_a_notification_delivered_again_makes_no_second_job(pipeline: Pipeline) -> None:
    key = unique_key("twice.jpg")
    pipeline.drop(key, HOPPER)
    job = pipeline.wait_for_drop_job(key)
    pipeline.wait_for_job(job["job_id"], owner=DROP_OWNER)
    pipeline.wait_for_events(job["job_id"], {"Job Accepted", "Job Succeeded"})
    # Redeliveries of the emulator's own notification: same object, size and eTag, and (as the emulator
    # sends it) no sequencer.
    source = job["source"]
    again = notification(pipeline, key, int(source["size"]), source["etag"], source.get("sequencer"))
    send_to_ingest(pipeline, again)
    send_to_ingest(pipeline, again)
    pipeline.wait_until_idle("IngestQueue")

    assert [found["job_id"] for found in pipeline.jobs_for_key(key)] == [job["job_id"]]
    kinds = [event["detail-type"] for event in pipeline.events(job["job_id"])]
    assert kinds.count("Job Accepted") == 1, kinds
    assert pipeline.view(job["job_id"], owner=DROP_OWNER)["status"] == "succeeded"


def test_two_copies_of_a_notification_with_its_sequencer_make_one_job(pipeline: Pipeline) -> None:
    """S3's own shape: every notification has a sequencer, and a redelivery repeats it."""
    key = unique_key("copies.jpg")
    pipeline.drop(key, HOPPER)
    first = pipeline.wait_for_drop_job(key)
    pipeline.wait_for_job(first["job_id"], owner=DROP_OWNER)
    # The emulator's notification (no sequencer) made the job above; S3's copies name the write by its
    # sequencer, so they make one more job between them, never two.
    sequencer = "0055AED6DCD90281E5"
    copy = notification(pipeline, key, len(HOPPER), first["source"]["etag"], sequencer)
    send_to_ingest(pipeline, copy)
    send_to_ingest(pipeline, copy)
    pipeline.wait_until_idle("IngestQueue")

    from_copies = [job for job in pipeline.jobs_for_key(key) if job["source"].get("sequencer") == sequencer]
    assert len(from_copies) == 1, [job["job_id"] for job in from_copies]
    view = pipeline.wait_for_job(from_copies[0]["job_id"], owner=DROP_OWNER).final
    assert view["status"] == "succeeded", view
    events = pipeline.wait_for_events(view["job_id"], {"Job Accepted", "Job Succeeded"})
    kinds = [event["detail-type"] for event in events]
    assert kinds.count("Job Accepted") == 1, kinds


def test_a_notification_for_an_object_that_is_gone_leaves_no_unfinished_job(pipeline: Pipeline) -> None:
    key = unique_key("gone.jpg")
    # As when the object is deleted (or overwritten) before ingest reads it: no later event comes for this write.
    send_to_ingest(pipeline, notification(pipeline, key, len(HOPPER), "1db854baad27869ddec0d0df5f96a599", None))
    pipeline.wait_until_idle("IngestQueue", timeout=45)
    unfinished = {job["job_id"]: job["status"] for job in pipeline.jobs_for_key(key) if job["status"] not in TERMINAL}
    assert not unfinished, f"jobs left unfinished for a vanished object: {unfinished}"


# --- a poison message ------------------------------------------------------------------------------


def test_a_poison_message_ends_in_the_dead_letter_queue_while_uploads_go_on(pipeline: Pipeline) -> None:
    poison = f"{{truncated json {uuid.uuid4().hex}"
    send_to_ingest(pipeline, poison)

    key = unique_key("meanwhile.jpg")
    pipeline.drop(key, HOPPER)
    assert (
        pipeline.wait_for_job(pipeline.wait_for_drop_job(key)["job_id"], owner=DROP_OWNER).final["status"]
        == "succeeded"
    )

    dead_letters = pipeline.queue_url("IngestDeadLetterQueue")

    def poison_in_dead_letter_queue() -> MessageTypeDef | None:
        received = pipeline.sqs.receive_message(
            QueueUrl=dead_letters,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=1,
        )
        return next((m for m in received.get("Messages", []) if m["Body"] == poison), None)

    message = pipeline.eventually(
        poison_in_dead_letter_queue,
        DEAD_LETTER_SECONDS,
        lambda: "the poison message is not in the ingest dead-letter queue",
    )
    pipeline.sqs.delete_message(QueueUrl=dead_letters, ReceiptHandle=message["ReceiptHandle"])
