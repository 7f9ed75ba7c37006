"""HEIC and AVIF drops through the ingest and variants functions, against the emulated AWS."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import ingest_handler
import variants_handler
from imgflow.errors import ErrorCode
from imgflow.models import JobStatus
from integration.helpers import IMAGES, as_lambda_event, put_upload, reported_failures, stored_jobs
from support import EmulatedAws, FakeLambdaContext

HEIC_AVIF = IMAGES / "heic-avif"


def drop(aws: EmulatedAws, context: FakeLambdaContext, name: str) -> None:
    put_upload(aws, f"uploads/partner/{name}", HEIC_AVIF / name, content_type="application/octet-stream")
    assert reported_failures(ingest_handler.lambda_handler, as_lambda_event(aws.drain("IngestQueue")), context) == []


@pytest.mark.parametrize(
    ("name", "fmt", "size"),
    [
        ("iphone_p3_orientation6_gps.heic", "HEIF", (64, 96)),
        ("ten_bit_p3.avif", "AVIF", (64, 48)),
        ("grid_of_tiles.heic", "HEIF", (160, 96)),
    ],
)
def test_given_a_heic_or_avif_drop_when_ingested_and_rendered_then_upright_variants_without_metadata(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, name: str, fmt: str, size: tuple[int, int]
) -> None:
    drop(aws, lambda_context, name)

    failures = reported_failures(
        variants_handler.lambda_handler, as_lambda_event(aws.drain("VariantsQueue")), lambda_context
    )

    assert failures == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.SUCCEEDED
    assert job.image is not None
    assert (job.image.format, job.image.width, job.image.height) == (fmt, *size)
    assert job.placeholder is not None
    for variant in job.variants.values():
        body = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=variant.key)["Body"].read()
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == "WEBP"
            assert image.size == (variant.width, variant.height)
            assert image.width <= size[0]  # never upscaled
            assert abs(image.width / image.height - size[0] / size[1]) < 0.02  # upright: portrait stays portrait
            assert not {"exif", "xmp", "icc_profile"} & image.info.keys()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("declares_100000x100000.heic", "too_many_pixels"),
        ("declares_100000x100000.avif", "too_many_pixels"),
        ("truncated.heic", "corrupt_image"),
        ("declares_5000_items.heic", "too_complex"),
    ],
)
def test_given_a_hostile_heic_or_avif_drop_when_ingested_then_rejected_with_its_code(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, name: str, code: ErrorCode
) -> None:
    drop(aws, lambda_context, name)

    [job] = stored_jobs(aws)
    assert job.status is JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == code
    assert aws.drain("VariantsQueue") == []


def test_given_a_pq_hdr_heic_drop_when_rendered_then_tone_mapped_with_reference_white_near_white(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    drop(aws, lambda_context, "pq_patches.heic")

    failures = reported_failures(
        variants_handler.lambda_handler, as_lambda_event(aws.drain("VariantsQueue")), lambda_context
    )

    assert failures == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.SUCCEEDED
    assert job.variants
    for variant in job.variants.values():
        body = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=variant.key)["Body"].read()
        with Image.open(io.BytesIO(body)) as image:
            assert image.size == (80, 32)
            # The 203-nit patch (BT.2408 reference white); read as SDR code values it would be 148.
            white = image.convert("L").getpixel((56, 8))
            assert isinstance(white, int)
            assert 230 <= white <= 252, f"{variant.preset}.{variant.format}: {white}"
