"""Animated GIF and AVIF through the ingest and variants functions: animated variants and poster stills."""

from __future__ import annotations

import io

from PIL import Image, ImageSequence

import ingest_handler
import variants_handler
from imgflow.keys import poster_key, variant_key
from imgflow.models import JobStatus
from integration.helpers import (
    IMAGES,
    accepted_api_job,
    as_lambda_event,
    put_upload,
    reported_failures,
    stored_job,
    stored_jobs,
    variants_message_event,
)
from support import EmulatedAws, FakeLambdaContext

GIF = IMAGES / "animations" / "crossing_24_frames.gif"
AVIF_SEQUENCE = IMAGES / "animations" / "crossing_8_frames.avif"


def test_given_an_animated_gif_drop_when_rendered_then_animated_webp_and_posters_at_every_preset(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    put_upload(aws, "uploads/partner/crossing.gif", GIF, content_type="image/gif")
    assert (
        reported_failures(ingest_handler.lambda_handler, as_lambda_event(aws.drain("IngestQueue")), lambda_context)
        == []
    )

    failures = reported_failures(
        variants_handler.lambda_handler, as_lambda_event(aws.drain("VariantsQueue")), lambda_context
    )

    assert failures == []
    [job] = stored_jobs(aws)
    assert job.status is JobStatus.SUCCEEDED
    assert job.image is not None
    assert (job.image.animated, job.image.frames, job.image.duration_ms) == (True, 24, 1200)
    roles = sorted((v.preset, v.format, v.role) for v in job.variants.values())
    presets = ("full", "large", "small", "thumb")
    assert roles == sorted([*((p, "webp", "animation") for p in presets), *((p, "webp", "poster") for p in presets)])
    for variant in job.variants.values():
        place = variant_key if variant.role == "animation" else poster_key
        assert variant.key == place(job.owner, job.job_id, variant.preset, "webp")
        body = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=variant.key)["Body"].read()
        with Image.open(io.BytesIO(body)) as image:
            durations = []
            for frame in ImageSequence.Iterator(image):
                frame.load()
                durations.append(frame.info.get("duration", 0))
            expected_frames = 24 if variant.role == "animation" else 1
            assert len(durations) == expected_frames
            assert image.size == (variant.width, variant.height)
            if variant.role == "animation":
                assert sum(durations) == 1200


def test_given_an_animated_gif_asked_in_webp_and_avif_when_rendered_then_it_moves_in_both(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, key, etag = accepted_api_job(
        aws,
        lambda_context,
        GIF.read_bytes(),
        filename="crossing.gif",
        content_type="image/gif",
        variants={"presets": ["thumb"], "formats": ["webp", "avif"]},
    )

    failures = reported_failures(
        variants_handler.lambda_handler, variants_message_event(aws, job_id, key, etag), lambda_context
    )

    assert failures == []
    job = stored_job(aws, job_id)
    made = sorted((v.format, v.role) for v in job.variants.values())
    assert made == [("avif", "animation"), ("avif", "poster"), ("webp", "animation"), ("webp", "poster")]
    animated_avif = job.variants["thumb_avif_animation"]
    body = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=animated_avif.key)["Body"].read()
    with Image.open(io.BytesIO(body)) as image:
        assert (image.format, getattr(image, "n_frames", 1)) == ("AVIF", 24)


def test_given_an_avif_image_sequence_when_rendered_then_it_moves_in_webp_and_avif_with_its_durations(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id, key, etag = accepted_api_job(
        aws,
        lambda_context,
        AVIF_SEQUENCE.read_bytes(),
        filename="crossing.avif",
        content_type="image/avif",
        variants={"presets": ["thumb"], "formats": ["webp", "avif"]},
    )

    failures = reported_failures(
        variants_handler.lambda_handler, variants_message_event(aws, job_id, key, etag), lambda_context
    )

    assert failures == []
    job = stored_job(aws, job_id)
    assert job.image is not None
    assert (job.image.format, job.image.animated, job.image.frames, job.image.duration_ms) == ("AVIF", True, 8, 720)
    made = sorted((v.format, v.role) for v in job.variants.values())
    assert made == [("avif", "animation"), ("avif", "poster"), ("webp", "animation"), ("webp", "poster")]
    for name in ("thumb_webp_animation", "thumb_avif_animation"):
        body = aws.client("s3").get_object(Bucket=aws.media_bucket, Key=job.variants[name].key)["Body"].read()
        with Image.open(io.BytesIO(body)) as image:
            durations = []
            for frame in ImageSequence.Iterator(image):
                frame.load()
                durations.append(frame.info.get("duration", 0))
        assert durations == [60, 120] * 4, name
