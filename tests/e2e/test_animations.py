"""Animated GIF and WebP through the HTTP flow: animated WebP variants with every frame and the same
duration, poster stills beside them, and the job view saying how long the animation is."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image, ImageSequence

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

ANIMATIONS = Path(__file__).resolve().parents[1] / "fixtures" / "images" / "animations"
SIZES = {"thumb": (150, 90), "small": (160, 96)}  # 160 x 96, never upscaled


@pytest.mark.parametrize(
    ("name", "content_type", "frames", "duration_ms"),
    [("crossing_24_frames.gif", "image/gif", 24, 1200), ("crossing_12_frames_alpha.webp", "image/webp", 12, 900)],
)
def test_an_animation_gets_animated_webp_variants_and_posters(
    pipeline: Pipeline, name: str, content_type: str, frames: int, duration_ms: int
) -> None:
    data = (ANIMATIONS / name).read_bytes()
    upload = pipeline.upload(name, data, content_type, variants={"presets": ["thumb", "small"]})

    view = pipeline.wait_for_job(upload.job_id).final

    assert view["status"] == "succeeded", view
    assert view["image"]["animated"] is True
    assert (view["image"]["frames"], view["image"]["duration_ms"]) == (frames, duration_ms)
    made = sorted((v["preset"], v["role"]) for v in view["variants"])
    assert made == [("small", "animation"), ("small", "poster"), ("thumb", "animation"), ("thumb", "poster")]
    for variant in view["variants"]:
        with Image.open(io.BytesIO(pipeline.download(variant["url"]).content)) as image:
            assert image.format == "WEBP"
            assert image.size == (variant["width"], variant["height"]) == SIZES[variant["preset"]]
            durations = []
            for frame in ImageSequence.Iterator(image):
                frame.load()
                durations.append(frame.info.get("duration", 0))
        if variant["role"] == "animation":
            assert len(durations) == frames
            assert abs(sum(durations) - duration_ms) <= 10
        else:
            assert len(durations) == 1
