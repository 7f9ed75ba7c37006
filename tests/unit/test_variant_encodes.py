"""Variants are encoded on several threads at once: each encode must have an image object of its own,
since Pillow keeps a save's options on the image while it encodes (`encoderinfo`) and puts the old ones
back after, so two encodes of one object read each other's options, or none (WebP at its default
quality and method: content that changes from one run to the next, found by `imgflow soak`)."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from imgflow import variants
from imgflow.models import OutputFormat, VariantPreset
from imgflow.settings import Settings

FULL, LARGE, THUMB = (VariantPreset(name=n, long_edge=e) for n, e in (("full", 4096), ("large", 1200), ("thumb", 150)))
STEPS: list[tuple[VariantPreset, OutputFormat]] = [(FULL, "webp"), (LARGE, "webp"), (THUMB, "webp")]
TWO_FORMATS: list[tuple[VariantPreset, OutputFormat]] = [(LARGE, "webp"), (LARGE, "jpeg"), (THUMB, "webp")]


@pytest.mark.parametrize(
    ("size", "steps"),
    [((160, 96), STEPS), ((2000, 1000), STEPS), ((2000, 1000), TWO_FORMATS)],
    ids=["sizes a small image has", "every size resized", "two formats of one size"],
)
def test_given_steps_that_need_no_resize_then_each_encode_gets_an_image_object_of_its_own(
    size: tuple[int, int], steps: list[tuple[VariantPreset, OutputFormat]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(jobs_table="jobs", uploads_bucket="uploads", media_bucket="media")
    encoded: list[Image.Image] = []
    real = variants.render_variant

    def recording(image: Image.Image, *args: Any) -> Any:
        encoded.append(image)
        return real(image, *args)

    monkeypatch.setattr(variants, "render_variant", recording)

    list(variants.render_stills(Image.new("RGB", size, (200, 30, 30)), steps, settings, workers=2))

    assert len(encoded) == 3
    assert len({id(image) for image in encoded}) == 3
