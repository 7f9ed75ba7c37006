"""A real photo through the local runtime over HTTP, as a web app sends it: `POST /uploads`, the browser's
presigned POST straight to S3, long polls on `GET /jobs/{id}` until it ends, then the variants downloaded
from their URLs. Plus what a browser needs around that: CORS on the API and on the uploads bucket."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from PIL import Image

from imgflow.keys import job_prefix, original_key, upload_key, upload_prefix, variant_key

if TYPE_CHECKING:
    from e2e.conftest import JobWatch, OutputImage, Pipeline, Upload

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "tests" / "fixtures" / "images" / "photos" / "friends_by_Aitzol_Berasategi.jpg"
HOPPER = ROOT / "tests" / "fixtures" / "images" / "bad-inputs" / "hopper.jpg"
PRESETS = {"thumb": 150, "small": 600, "large": 1200, "full": 4096}
ORIGIN = "https://app.example.com"
# blurhash's base-83 alphabet
BLURHASH = re.compile(r"^[0-9A-Za-z#$%*+,\-.:;=?@\[\]^_{|}~]{6,}$")
HEX_COLOUR = re.compile(r"^#[0-9a-f]{6}$")


def fitted(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """`size` scaled so that its long edge is at most `long_edge` (never enlarged)."""
    width, height = size
    scale = min(1.0, long_edge / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def assert_fits(actual: tuple[int, int], original: tuple[int, int], long_edge: int, what: str) -> None:
    expected = fitted(original, long_edge)
    assert max(actual) == max(expected), f"{what}: long edge {actual}, expected {expected} from {original}"
    assert all(abs(a - e) <= 1 for a, e in zip(actual, expected, strict=True)), (
        f"{what}: {actual} does not keep the aspect ratio of {original} (expected about {expected})"
    )


@dataclass
class PhotoJob:
    upload: Upload
    watch: JobWatch
    original: tuple[int, int]
    size: int


@pytest.fixture(scope="module")
def photo_job(pipeline: Pipeline) -> PhotoJob:
    """The 6.3 MP photo uploaded once as a web app does, and every view of its job until it ended."""
    data = PHOTO.read_bytes()
    with Image.open(PHOTO) as image:
        original = image.size
    upload = pipeline.upload(PHOTO.name, data, "image/jpeg")
    return PhotoJob(upload, pipeline.wait_for_job(upload.job_id), original, len(data))


def test_a_photo_sent_with_the_presigned_post_ends_succeeded_with_four_webp_variants(photo_job: PhotoJob) -> None:
    view = photo_job.watch.final
    assert view["status"] == "succeeded", view
    assert view["error"] is None
    assert view["job_id"] == photo_job.upload.job_id
    assert view["filename"] == PHOTO.name
    assert view["image"] == {
        "format": "JPEG",
        "width": photo_job.original[0],
        "height": photo_job.original[1],
        "frames": 1,
        "animated": False,
        "duration_ms": None,
    }
    variants = {variant["preset"]: variant for variant in view["variants"]}
    assert sorted(variants) == sorted(PRESETS), view["variants"]
    for preset, long_edge in PRESETS.items():
        variant = variants[preset]
        assert (variant["format"], variant["content_type"]) == ("webp", "image/webp"), variant
        assert variant["bytes"] > 0
        assert_fits((variant["width"], variant["height"]), photo_job.original, long_edge, preset)
    # The photo's long edge is under 4096: `full` keeps it as it is.
    assert (variants["full"]["width"], variants["full"]["height"]) == photo_job.original


def test_every_variant_url_downloads_a_metadata_free_webp_of_the_stated_size(
    pipeline: Pipeline, photo_job: PhotoJob, open_image: Callable[[bytes], OutputImage]
) -> None:
    for variant in photo_job.watch.final["variants"]:
        response = pipeline.download(variant["url"])
        assert response.headers["Content-Type"] == "image/webp"
        assert len(response.content) == variant["bytes"], variant["preset"]
        output = open_image(response.content)
        assert output.format == "WEBP", variant["preset"]
        assert output.size == (variant["width"], variant["height"]), variant["preset"]
        assert not output.metadata, f"{variant['preset']} still carries {sorted(output.metadata)}"


def test_the_placeholder_has_a_blurhash_and_a_hex_colour(photo_job: PhotoJob) -> None:
    placeholder = photo_job.watch.final["placeholder"]
    assert placeholder is not None
    assert BLURHASH.fullmatch(placeholder["blurhash"]), placeholder
    assert HEX_COLOUR.fullmatch(placeholder["dominant_color"]), placeholder


def test_a_client_long_polling_with_since_sees_the_job_progress(photo_job: PhotoJob) -> None:
    versions = photo_job.watch.versions
    assert versions == sorted(versions), f"the version went back: {versions}"
    assert len(set(versions)) >= 3, f"the job went through too few versions to show progress: {versions}"
    progress = [view["tasks"]["variants"]["progress"] for view in photo_job.watch.views if view["tasks"]]
    assert progress == sorted(progress), f"progress went back: {progress}"
    final_task = photo_job.watch.final["tasks"]["variants"]
    assert final_task == {"status": "succeeded", "stage": "done", "progress": 100, "attempts": 1, "error": None}
    statuses = [view["status"] for view in photo_job.watch.views]
    assert statuses[-1] == "succeeded"
    assert "processing" in statuses, statuses


def test_the_job_publishes_each_lifecycle_event_once(pipeline: Pipeline, photo_job: PhotoJob) -> None:
    job_id = photo_job.upload.job_id
    events = pipeline.wait_for_events(job_id, {"Job Accepted", "Variants Ready", "Job Succeeded"})
    kinds = [event["detail-type"] for event in events]
    assert sorted(kinds) == ["Job Accepted", "Job Succeeded", "Variants Ready"], kinds
    by_kind = {event["detail-type"]: event for event in events}
    assert {event["source"] for event in events} == {"imgflow"}
    accepted, ready, done = (by_kind[kind]["detail"] for kind in ("Job Accepted", "Variants Ready", "Job Succeeded"))
    assert accepted["version"] < ready["version"] < done["version"] == photo_job.watch.final["version"]
    assert accepted["image"] == photo_job.watch.final["image"]
    assert {variant["preset"] for variant in ready["variants"]} == set(PRESETS)
    assert (done["status"], done["owner"]) == ("succeeded", photo_job.watch.final["owner"])


def test_the_emulator_holds_the_original_the_variants_and_the_job(pipeline: Pipeline, photo_job: PhotoJob) -> None:
    job_id = photo_job.upload.job_id
    owner = photo_job.watch.final["owner"]
    # Every key of the job is under its owner's prefix, in both buckets.
    assert photo_job.upload.key == upload_key(owner, job_id)
    # Accepted, the original is frozen in the media bucket and the upload key released (a reused form
    # can no longer change what the job serves).
    uploads = pipeline.s3.list_objects_v2(Bucket=pipeline.uploads_bucket, Prefix=upload_prefix(owner, job_id))
    assert uploads.get("KeyCount", 0) == 0
    original = pipeline.s3.head_object(Bucket=pipeline.media_bucket, Key=original_key(owner, job_id))
    assert original["ContentLength"] == photo_job.size

    listed = pipeline.s3.list_objects_v2(Bucket=pipeline.media_bucket, Prefix=f"{job_prefix(owner, job_id)}variants/")
    keys = sorted(item["Key"] for item in listed.get("Contents", []))
    assert keys == sorted(variant_key(owner, job_id, preset, "webp") for preset in PRESETS)
    for key in keys:
        assert pipeline.s3.head_object(Bucket=pipeline.media_bucket, Key=key)["ContentType"] == "image/webp"

    item = pipeline.jobs_table.get_item(Key={"pk": job_id}, ConsistentRead=True)["Item"]
    assert item["status"] == "succeeded"
    assert item["version"] == photo_job.watch.final["version"]


def test_the_status_url_answers_with_the_job(pipeline: Pipeline, photo_job: PhotoJob) -> None:
    status_url = photo_job.upload.created["status_url"]
    assert status_url == f"{pipeline.api_url}/jobs/{photo_job.upload.job_id}"
    response = pipeline.api("GET", status_url.removeprefix(pipeline.api_url))
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["job_id"], view["status"]) == (photo_job.upload.job_id, "succeeded")


def test_health(pipeline: Pipeline) -> None:
    response = pipeline.api("GET", "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_an_unknown_job_is_a_404_with_a_json_error(pipeline: Pipeline) -> None:
    response = pipeline.job(uuid.uuid4().hex)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"


def test_a_long_poll_on_a_job_that_does_not_change_answers_with_the_job_as_it_is(pipeline: Pipeline) -> None:
    created = pipeline.create_upload("later.jpg", "image/jpeg", 1000).json()
    response = pipeline.job(created["job_id"], wait=1, since=1)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["version"]) == ("awaiting_upload", 1)


def test_the_api_answers_a_cors_preflight(pipeline: Pipeline) -> None:
    preflight = pipeline.api(
        "OPTIONS",
        "/uploads",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert 200 <= preflight.status_code < 300, preflight.text
    assert preflight.headers.get("Access-Control-Allow-Origin") in {"*", ORIGIN}
    assert "POST" in preflight.headers.get("Access-Control-Allow-Methods", "")
    assert "content-type" in preflight.headers.get("Access-Control-Allow-Headers", "").lower()

    created = pipeline.api(
        "POST",
        "/uploads",
        json={"filename": "cors.jpg", "content_type": "image/jpeg", "size": 10},
        headers={"Origin": ORIGIN},
    )
    assert created.status_code == 201
    assert created.headers.get("Access-Control-Allow-Origin") in {"*", ORIGIN}


def test_the_uploads_bucket_answers_a_cors_preflight_from_its_rules(pipeline: Pipeline) -> None:
    created = pipeline.create_upload("cors.jpg", "image/jpeg", 10).json()
    # What a browser asks before it POSTs the form cross-origin to the bucket.
    preflight = requests.options(
        created["upload"]["url"],
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers.get("Access-Control-Allow-Origin") in {"*", ORIGIN}
    assert "POST" in preflight.headers.get("Access-Control-Allow-Methods", "")


def test_avif_and_jpeg_variants_when_the_client_asks_for_them(
    pipeline: Pipeline, open_image: Callable[[bytes], OutputImage]
) -> None:
    requested: dict[str, Any] = {"presets": ["thumb", "small"], "formats": ["webp", "avif", "jpeg"]}
    upload = pipeline.upload(HOPPER.name, HOPPER.read_bytes(), "image/jpeg", variants=requested)
    view = pipeline.wait_for_job(upload.job_id).final
    assert view["status"] == "succeeded", view
    made = sorted((variant["preset"], variant["format"]) for variant in view["variants"])
    assert made == [(preset, fmt) for preset in ("small", "thumb") for fmt in ("avif", "jpeg", "webp")]
    for variant in view["variants"]:
        output = open_image(pipeline.download(variant["url"]).content)
        assert output.format == variant["format"].upper()
        assert output.size == (variant["width"], variant["height"]) == (128, 128)
        assert not output.metadata, f"{variant['preset']}.{variant['format']} carries {sorted(output.metadata)}"


@pytest.mark.parametrize("presets", [["poster"], ["thumb", "poster"], []], ids=["unknown", "one-unknown", "none"])
def test_variant_presets_the_deployment_lacks_are_refused_up_front(pipeline: Pipeline, presets: list[str]) -> None:
    # Accepted, they would fail only after every retry of the variants task, with nothing made.
    response = pipeline.create_upload("h.jpg", "image/jpeg", 6412, variants={"presets": presets})
    assert response.status_code == 400, f"{response.status_code} {response.text}"
    assert response.json()["error"]["code"] == "invalid_request"
