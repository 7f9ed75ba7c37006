"""The HTTP API function, invoked as API Gateway (HTTP API, payload v2) invokes it."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from PIL import Image

import api_handler
import ingest_handler
import variants_handler
from imgflow.keys import upload_key, variant_key
from imgflow.models import JobStatus
from imgflow.services import uploads_service
from integration.helpers import (
    API_OWNER,
    BAD_INPUTS,
    HOPPER,
    accepted_api_job,
    call_api,
    create_api_job,
    create_upload_event,
    get_event,
    get_job_event,
    put_upload,
    reported_failures,
    stored_job,
    upload_notification,
    variants_message_event,
)
from support import EmulatedAws, FakeLambdaContext

UPLOAD_URL_TTL_SECONDS = 900


def max_upload_bytes(aws: EmulatedAws) -> int:
    return int(aws.env["MAX_UPLOAD_BYTES"])  # template.yaml: MaxUploadBytes


def upload_request(**changes: Any) -> dict[str, Any]:
    """The body of events/api_create_upload.json, changed."""
    body: dict[str, Any] = json.loads(create_upload_event()["body"])
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def policy_conditions(fields: dict[str, str]) -> list[Any]:
    policy: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    conditions: list[Any] = policy["conditions"]
    return conditions


# --- POST /uploads ----------------------------------------------------------------------------------------


def test_given_an_image_to_upload_when_an_upload_is_created_then_a_presigned_post_pins_key_type_and_size(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    before = time.time()

    status, body = call_api(create_upload_event(), lambda_context)

    assert status == 201
    job_id = body["job_id"]
    assert len(job_id) == 32
    assert int(job_id, 16) >= 0
    key = upload_key(API_OWNER, job_id)
    upload = body["upload"]
    assert aws.uploads_bucket in upload["url"]
    fields = upload["fields"]
    assert fields["key"] == key
    assert fields["Content-Type"] == "image/jpeg"
    conditions = policy_conditions(fields)
    assert ["content-length-range", 1, max_upload_bytes(aws)] in conditions
    assert {"key": key} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert {"bucket": aws.uploads_bucket} in conditions
    expires_at = datetime.fromisoformat(upload["expires_at"].replace("Z", "+00:00"))
    assert expires_at.tzinfo == UTC
    assert before + UPLOAD_URL_TTL_SECONDS - 5 <= expires_at.timestamp() <= time.time() + UPLOAD_URL_TTL_SECONDS
    assert body["status_url"] == f"https://abc123.execute-api.us-east-1.amazonaws.com/jobs/{job_id}"
    job = stored_job(aws, job_id)
    assert job.status is JobStatus.AWAITING_UPLOAD
    assert (job.filename, job.content_type, job.declared_size) == ("hopper.jpg", "image/jpeg", 6412)


def test_given_two_uploads_when_created_then_their_job_ids_differ(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    ids = {call_api(create_upload_event(), lambda_context)[1]["job_id"] for _ in range(3)}

    assert len(ids) == 3


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(upload_request(filename=None), id="missing-filename"),
        pytest.param(upload_request(size=-1), id="size-negative"),
        pytest.param(upload_request(content_type="text/html"), id="content-type-text-html"),
        pytest.param(upload_request(colour="red"), id="unknown-field"),
        pytest.param(upload_request(filename="../../etc/passwd"), id="filename-with-slash"),
        pytest.param(upload_request(variants={"formats": ["gif"]}), id="unknown-output-format"),
    ],
)
def test_given_an_invalid_upload_request_when_posted_then_400_invalid_request(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, body: dict[str, Any]
) -> None:
    status, answer = call_api(create_upload_event(body), lambda_context)

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert answer["error"]["message"]
    assert aws.table().scan()["Items"] == []


def test_given_a_body_that_is_not_json_when_posted_then_400_invalid_request(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, answer = call_api(create_upload_event("{not json"), lambda_context)

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"


def test_given_a_file_above_the_limit_when_an_upload_is_asked_then_413_too_large_bytes(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, answer = call_api(create_upload_event(upload_request(size=max_upload_bytes(aws) + 1)), lambda_context)

    assert status == 413
    assert answer["error"]["code"] == "too_large_bytes"
    assert aws.table().scan()["Items"] == []


def test_given_a_file_of_exactly_the_limit_when_an_upload_is_asked_then_201(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, _ = call_api(create_upload_event(upload_request(size=max_upload_bytes(aws))), lambda_context)

    assert status == 201


def test_given_an_unknown_preset_when_an_upload_is_asked_then_400_invalid_request(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, answer = call_api(create_upload_event(upload_request(variants={"presets": ["poster"]})), lambda_context)

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"


# --- GET /jobs/{job_id} -----------------------------------------------------------------------------------


def test_given_no_such_job_when_it_is_asked_for_then_404_not_found(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, answer = call_api(get_job_event("0123456789abcdef0123456789abcdef"), lambda_context)

    assert status == 404
    assert answer["error"]["code"] == "not_found"
    assert answer["error"]["message"]


def test_given_another_owners_job_when_it_is_asked_for_then_404_not_found(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id = call_api(create_upload_event(), lambda_context)[1]["job_id"]
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET #o = :o",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": "someone-else"},
    )

    status, answer = call_api(get_job_event(job_id), lambda_context)

    assert status == 404
    assert answer["error"]["code"] == "not_found"


def test_given_a_new_job_when_it_is_asked_for_then_it_awaits_its_upload(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id = call_api(create_upload_event(), lambda_context)[1]["job_id"]

    status, view = call_api(get_job_event(job_id), lambda_context)

    assert status == 200
    assert (view["job_id"], view["status"], view["version"]) == (job_id, "awaiting_upload", 1)
    assert view["filename"] == "hopper.jpg"
    assert view["variants"] == []


def test_given_a_processed_job_when_it_is_asked_for_then_its_variants_come_with_download_urls(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, key, etag = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    failures = reported_failures(
        variants_handler.lambda_handler, variants_message_event(aws, job_id, key, etag), lambda_context
    )
    assert failures == []

    status, view = call_api(get_job_event(job_id), lambda_context)

    assert status == 200
    assert view["status"] == "succeeded"
    assert view["image"] == {
        "format": "JPEG",
        "width": 128,
        "height": 128,
        "frames": 1,
        "animated": False,
        "duration_ms": None,
    }
    assert view["tasks"]["variants"]["status"] == "succeeded"
    assert view["tasks"]["variants"]["progress"] == 100
    assert view["placeholder"]["blurhash"]
    assert view["placeholder"]["dominant_color"].startswith("#")
    assert sorted(variant["preset"] for variant in view["variants"]) == ["full", "large", "small", "thumb"]
    for variant in view["variants"]:
        url = urlparse(variant["url"])
        assert aws.media_bucket in url.netloc + url.path
        assert url.path.endswith(variant_key(API_OWNER, job_id, variant["preset"], "webp"))
        assert "X-Amz-Signature" in parse_qs(url.query)
        download = requests.get(variant["url"], timeout=5)
        assert download.status_code == 200
        with Image.open(io.BytesIO(download.content)) as image:
            assert image.format == "WEBP"
            assert image.size == (variant["width"], variant["height"])


def test_given_an_unchanged_job_when_long_polled_since_its_version_then_it_answers_the_same_version(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id = call_api(create_upload_event(), lambda_context)[1]["job_id"]
    version = stored_job(aws, job_id).version

    status, view = call_api(get_job_event(job_id, wait=1, since=version), lambda_context)

    assert status == 200
    assert (view["status"], view["version"]) == ("awaiting_upload", version)


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"the long poll waited ({seconds} s) where it should have answered at once")


def test_given_a_job_newer_than_since_when_long_polled_then_it_answers_with_the_newer_version(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    monkeypatch.setattr(uploads_service(), "sleep", never_sleep)

    status, view = call_api(get_job_event(job_id, wait=20, since=1), lambda_context)

    assert status == 200
    assert view["version"] > 1
    assert view["status"] == "processing"


def rejected_job(aws: EmulatedAws, lambda_context: FakeLambdaContext) -> str:
    """A rejected job: a PNG arrived where hopper.jpg (6412 bytes) was announced."""
    job_id: str = call_api(create_upload_event(), lambda_context)[1]["job_id"]
    png = (BAD_INPUTS / "hopper.png").read_bytes()
    key = upload_key(API_OWNER, job_id)
    etag = put_upload(aws, key, png, "image/png")
    notification = upload_notification(aws, key, etag, len(png))
    assert reported_failures(ingest_handler.lambda_handler, notification, lambda_context) == []
    return job_id


def test_given_a_terminal_job_when_long_polled_without_since_then_it_answers_at_once(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = rejected_job(aws, lambda_context)
    monkeypatch.setattr(uploads_service(), "sleep", never_sleep)

    status, view = call_api(get_job_event(job_id, wait=20), lambda_context)

    assert status == 200
    assert view["status"] == "rejected"
    assert view["error"]["code"] == "upload_mismatch"


def test_given_a_terminal_job_when_long_polled_since_its_version_then_it_waits_for_a_change_that_may_still_come(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Edits added after the end change a terminal job, so `since` is honoured for it too.
    job_id = rejected_job(aws, lambda_context)
    version = stored_job(aws, job_id).version
    slept: list[float] = []
    service = uploads_service()
    monkeypatch.setattr(service, "monotonic", lambda: sum(slept))  # a clock that moves only when it sleeps
    monkeypatch.setattr(service, "sleep", slept.append)

    status, view = call_api(get_job_event(job_id, wait=20, since=version), lambda_context)

    assert status == 200
    assert (view["status"], view["version"]) == ("rejected", version)
    assert sum(slept) == pytest.approx(20)  # it waited the whole 20 s for a change
    assert max(slept) <= 0.25  # reading often enough that a change is seen within a quarter second


@pytest.mark.parametrize("query", [{"wait": 21}, {"wait": -1}, {"since": -1}, {"wait": "soon"}])
def test_given_an_out_of_range_long_poll_when_asked_then_400_invalid_request(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, query: dict[str, Any]
) -> None:
    job_id = call_api(create_upload_event(), lambda_context)[1]["job_id"]

    status, answer = call_api(get_job_event(job_id, **query), lambda_context)

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"


def test_given_an_upload_that_never_came_when_the_job_is_asked_for_then_it_is_expired(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id = call_api(create_upload_event(), lambda_context)[1]["job_id"]
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET upload_expires_at = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 86400},
    )

    status, view = call_api(get_job_event(job_id), lambda_context)

    assert status == 200
    assert view["status"] == "expired"
    assert stored_job(aws, job_id).status is JobStatus.EXPIRED


def test_given_a_job_past_its_retention_when_it_is_asked_for_then_404_not_found(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    # DynamoDB's TTL deletes lazily: the code must not show what the table still holds.
    job_id = call_api(create_upload_event(), lambda_context)[1]["job_id"]
    aws.table().update_item(
        Key={"pk": job_id},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 60},
    )

    status, answer = call_api(get_job_event(job_id), lambda_context)

    assert status == 404
    assert answer["error"]["code"] == "not_found"


# --- the rest -----------------------------------------------------------------------------------------------


def test_given_the_api_when_health_is_asked_then_200_ok(aws: EmulatedAws, lambda_context: FakeLambdaContext) -> None:
    status, body = call_api(get_event("/health"), lambda_context)

    assert (status, body) == (200, {"status": "ok"})


def test_given_the_api_when_its_openapi_document_is_asked_then_it_describes_uploads_and_jobs(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, document = call_api(get_event("/openapi.json"), lambda_context)

    assert status == 200
    assert document["openapi"].startswith("3.")
    assert "post" in document["paths"]["/uploads"]
    assert "get" in document["paths"]["/jobs/{job_id}"]


def test_given_an_unknown_route_when_asked_then_404_not_found(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, answer = call_api(get_event("/nowhere"), lambda_context)

    assert status == 404
    assert answer["error"]["code"] == "not_found"


def test_given_the_api_function_when_it_is_loaded_then_it_does_not_import_pillow() -> None:
    # DESIGN.md: the api function stays light; only what template.yaml packages for it is on its path.
    root = Path(__file__).resolve().parents[2]
    probe = "import sys, api_handler; sys.exit('PIL' in sys.modules)"
    environment = {"PYTHONPATH": f"{root / 'layers' / 'imgflow'}:{root / 'functions' / 'api'}", "PATH": ""}

    loaded = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, timeout=60)

    assert loaded.returncode == 0, loaded.stderr.decode()


def test_given_an_empty_file_when_an_upload_is_asked_then_400_empty_file(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, answer = call_api(create_upload_event(upload_request(size=0)), lambda_context)

    assert status == 400
    assert answer["error"]["code"] == "empty_file"
    assert aws.table().scan()["Items"] == []


# --- variants asked for: repeats and floods -----------------------------------------------------------------


def test_given_a_format_listed_ten_times_when_an_upload_is_created_then_the_job_asks_for_it_once(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    # Each repeat used to be encoded again: ten AVIFs of one image took ~100 s of CPU.
    body = upload_request(variants={"formats": ["avif"] * 10})

    status, created = call_api(create_upload_event(body), lambda_context)

    assert status == 201
    assert stored_job(aws, created["job_id"]).variants_request.formats == ("avif",)


def test_given_repeated_presets_and_formats_when_an_upload_is_created_then_each_is_kept_once_in_first_seen_order(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    body = upload_request(variants={"presets": ["small", "thumb", "small"], "formats": ["webp", "avif", "webp"]})

    status, created = call_api(create_upload_event(body), lambda_context)

    assert status == 201
    asked = stored_job(aws, created["job_id"]).variants_request
    assert (asked.presets, asked.formats) == (("small", "thumb"), ("webp", "avif"))


@pytest.mark.parametrize(("field", "value"), [("formats", "avif"), ("presets", "thumb")])
def test_given_a_variant_listed_a_thousand_times_when_an_upload_is_asked_then_400_invalid_request_and_no_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, field: str, value: str
) -> None:
    body = upload_request(variants={field: [value] * 1000})

    status, answer = call_api(create_upload_event(body), lambda_context)

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert f"variants.{field}" in answer["error"]["message"]
    assert aws.table().scan()["Items"] == []


# --- malformed bodies: a 400 invalid_request in our shape, never a 500 or Powertools' own answer ---------------


def upload_json(**raw_fields: str) -> str:
    """A valid POST /uploads body as JSON text, with fields spelled out raw (what json.dumps cannot write)."""
    fields = {name: json.dumps(value) for name, value in json.loads(create_upload_event()["body"]).items()}
    fields.update(raw_fields)
    return "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(nested(100_000), "nested more than 32 deep", id="an-array-nested-100000-deep"),
        pytest.param('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested more than 32 deep", id="objects-100000-deep"),
        pytest.param(upload_json(metadata=nested(500)), "nested more than 32 deep", id="a-field-nested-500-deep"),
        pytest.param('{"size": 1, "size": 2}', "the key 'size' is given twice", id="a-key-twice"),
        pytest.param(upload_json(size="NaN"), "NaN is not a JSON number", id="nan"),
        pytest.param(upload_json(size="-Infinity"), "-Infinity is not a JSON number", id="infinity"),
        pytest.param(upload_json(size="9" * 5000), "a number of 5000 digits is too long", id="a-5000-digit-number"),
        pytest.param(upload_json(size="1e400"), "body.size", id="a-number-beyond-any-float"),
        pytest.param("[1, 2]", "body", id="a-list"),
        pytest.param('"an upload"', "body", id="a-string"),
        pytest.param("{not json", "not JSON", id="not-json"),
    ],
)
def test_given_a_malformed_body_when_posted_then_400_invalid_request_and_no_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, body: str, expected: str
) -> None:
    status, answer = call_api(create_upload_event(body), lambda_context)

    assert (status, answer["error"]["code"]) == (400, "invalid_request"), answer
    assert expected in answer["error"]["message"]
    assert aws.table().scan()["Items"] == []


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "application/xml"])
def test_given_json_sent_as_another_content_type_when_posted_then_400_invalid_request_in_our_shape(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, content_type: str
) -> None:
    event = create_upload_event()
    event["headers"]["content-type"] = content_type

    status, answer = call_api(event, lambda_context)

    assert status == 400
    assert answer == {
        "error": {"code": "invalid_request", "message": f"body: send JSON as application/json (not {content_type})"}
    }
    assert aws.table().scan()["Items"] == []


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8"])
def test_given_json_without_a_content_type_or_with_a_charset_when_posted_then_it_is_read_as_json(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, content_type: str | None
) -> None:
    event = create_upload_event()
    event["headers"].pop("content-type")
    if content_type is not None:
        event["headers"]["content-type"] = content_type

    status, answer = call_api(event, lambda_context)

    assert status == 201, answer


def test_given_a_body_that_is_not_utf8_when_posted_then_400_invalid_request(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    event = create_upload_event()
    # API Gateway hands over a body that is not text base64-encoded.
    event["body"] = base64.b64encode(upload_json(filename='"caf\xe9.jpg"').encode("latin-1")).decode()
    event["isBase64Encoded"] = True

    status, answer = call_api(event, lambda_context)

    assert status == 400
    assert answer == {"error": {"code": "invalid_request", "message": "body: not UTF-8 text"}}
    assert aws.table().scan()["Items"] == []


def test_given_a_base64_encoded_utf8_body_when_posted_then_it_is_read_as_json(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    event = create_upload_event()
    event["body"] = base64.b64encode(upload_json(filename='"café.jpg"').encode()).decode()
    event["isBase64Encoded"] = True

    status, created = call_api(event, lambda_context)

    assert status == 201, created
    assert stored_job(aws, created["job_id"]).filename == "café.jpg"


def test_given_a_size_of_forty_digits_when_an_upload_is_asked_then_413_and_nothing_is_stored(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    status, answer = call_api(create_upload_event(upload_json(size="9" * 40)), lambda_context)

    assert (status, answer["error"]["code"]) == (413, "too_large_bytes")
    assert aws.table().scan()["Items"] == []


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        pytest.param(
            {"op": "crop", "left": 10**40, "top": 0, "width": 1, "height": 1}, "crop.left", id="crop-40-digits"
        ),
        pytest.param({"op": "rotate", "degrees": 1e-200}, "rotate.degrees", id="rotate-1e-200"),
        pytest.param({"op": "blur", "radius": 1e-200}, "blur.radius", id="blur-1e-200"),
        pytest.param({"op": "sharpen", "radius": 1e-200}, "sharpen.radius", id="sharpen-1e-200"),
        pytest.param({"op": "brightness", "factor": 1e-200}, "brightness.factor", id="brightness-1e-200"),
        pytest.param({"op": "watermark", "text": "x", "opacity": 1e-200}, "watermark.opacity", id="opacity-1e-200"),
        pytest.param({"op": "watermark", "text": "x", "size": 1e-200}, "watermark.size", id="font-size-1e-200"),
    ],
)
def test_given_a_recipe_number_dynamodb_cannot_store_when_an_upload_asks_for_it_then_400_naming_it_and_no_job(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, operation: dict[str, Any], field: str
) -> None:
    body = upload_request(edits=[{"operations": [operation]}])

    status, answer = call_api(create_upload_event(body), lambda_context)

    assert (status, answer["error"]["code"]) == (400, "invalid_request"), answer
    assert f"body.edits.0.operations.0.{field}" in answer["error"]["message"]
    assert aws.table().scan()["Items"] == []


@pytest.mark.parametrize(
    ("claims", "reason"),
    [(None, "needs a token"), ({"sub": ""}, "needs a token"), ({"sub": "x" * 257}, "longer than 256")],
)
def test_given_no_usable_sub_reaches_the_function_when_called_then_401_and_nothing_is_made(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, claims: dict[str, str] | None, reason: str
) -> None:
    event = create_upload_event()
    if claims is None:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"]["jwt"]["claims"] = claims

    status, body = call_api(event, lambda_context)

    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert reason in body["error"]["message"]
    assert aws.table().scan()["Items"] == []


def test_given_the_openapi_document_then_it_states_the_codes_and_headers_the_api_answers(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    _, document = call_api(get_event("/openapi.json"), lambda_context)

    paths = document["paths"]
    assert set(paths["/uploads"]["post"]["responses"]) == {"201", "400", "401", "403", "413", "429"}
    assert set(paths["/jobs/{job_id}"]["delete"]["responses"]) == {"204", "401", "404"}
    assert set(paths["/jobs"]["get"]["responses"]) == {"200", "400", "401"}
    assert set(paths["/quota"]["get"]["responses"]) == {"200", "401"}
    assert {"RateLimit", "RateLimit-Policy", "Retry-After"} <= set(
        paths["/jobs/{job_id}/edits"]["post"]["responses"]["429"]["headers"]
    )
    assert "RateLimit" in paths["/uploads"]["post"]["responses"]["201"]["headers"]
    assert "WWW-Authenticate" in paths["/jobs"]["get"]["responses"]["401"]["headers"]
    assert not [path for path, ops in paths.items() for op in ops.values() if "422" in op["responses"]]
    assert document["security"] == [{"bearer": []}]
    assert paths["/health"]["get"]["security"] == []


def test_given_a_refused_request_on_a_limited_route_then_it_still_carries_the_ratelimit_fields(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    create_api_job(lambda_context)
    refused = api_handler.lambda_handler(create_upload_event({"filename": "x.jpg"}), lambda_context)
    health = api_handler.lambda_handler(get_event("/health"), lambda_context)

    assert refused["statusCode"] == 400
    assert refused["headers"]["RateLimit"].startswith('"uploads-hour";r=99;t=')
    assert '"uploads-hour";q=100;w=3600' in refused["headers"]["RateLimit-Policy"]
    assert "RateLimit" not in health["headers"]


# --- GET /stats ---------------------------------------------------------------------------------------------


def stats_event(sub: str, scope: str = "openid", **query: str) -> dict[str, Any]:
    event = get_event("/stats")
    claims = {**create_upload_event()["requestContext"]["authorizer"]["jwt"]["claims"], "sub": sub, "scope": scope}
    event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event["queryStringParameters"] = query or None
    return event


def test_given_jobs_of_two_owners_then_stats_show_the_callers_and_an_admin_sees_everyone_and_the_queues(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    accepted = create_api_job(lambda_context)["job_id"]
    rejected_job(aws, lambda_context)
    bob = create_upload_event()
    bob["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "bob"
    assert call_api(bob, lambda_context)[0] == 201

    status, mine = call_api(stats_event("alice"), lambda_context)

    assert status == 200, mine
    assert (mine["scope"], mine["owner"], mine["uploads"]) == ("owner", "alice", 2)
    assert mine["jobs_by_status"] == {"awaiting_upload": 1, "rejected": 1}
    assert mine["errors_by_code"] == {"upload_mismatch": 1}
    assert mine["queues"] is None
    assert accepted

    status, everyone = call_api(stats_event("ops", "openid imgflow/admin"), lambda_context)

    assert (status, everyone["scope"], everyone["owner"], everyone["uploads"]) == (200, "everyone", None, 3)
    names = {queue["name"] for queue in everyone["queues"]}
    assert {"ingest", "variants", "edit", "webhook-deliveries", "edit-dlq", "publisher-dlq"} <= names


def test_given_a_window_out_of_bounds_then_stats_are_400(lambda_context: FakeLambdaContext) -> None:
    status, body = call_api(stats_event("alice", hours="0"), lambda_context)
    assert (status, body["error"]["code"]) == (400, "invalid_request")
