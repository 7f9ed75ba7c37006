"""The render side of the variants path: resizes in bands (on threads), stills from the next larger size, encodes in
parallel."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from imgflow import variants
from imgflow.imaging import RenderedImage, load_normalized, resize_to_long_edge
from imgflow.models import OutputFormat, VariantPreset
from imgflow.settings import Settings
from imgflow.variants import render_stills

PRESETS = [VariantPreset(name=name, long_edge=edge) for name, edge in (("full", 900), ("large", 300), ("thumb", 60))]


def settings() -> Settings:
    return Settings(jobs_table="jobs", uploads_bucket="uploads", media_bucket="media")


def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Detail in every direction, so a resize that got its rows or bands wrong shows."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
    blue = Image.effect_noise((size[0] // 4, size[1] // 4), 40).resize(size, Image.Resampling.NEAREST)
    image = Image.merge("RGB", (red, green, blue))
    return image.convert(mode) if mode != "RGB" else image


def steps(formats: tuple[OutputFormat, ...] = ("webp",)) -> list[tuple[VariantPreset, OutputFormat]]:
    return [(preset, fmt) for preset in PRESETS for fmt in formats]


def test_given_a_large_image_when_resized_in_bands_then_it_matches_one_resize_of_the_whole() -> None:
    # 2400 x 3600 to 1200 px: an intermediate of 800 x 3600 x 4 bytes, three bands of the 4 MB budget.
    image = gradient((2400, 3600))

    banded = resize_to_long_edge(image, 1200)

    whole = image.resize(banded.size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    assert banded.size == (800, 1200)
    difference = ImageStat.Stat(ImageChops.difference(banded, whole))
    assert max(high for _, high in difference.extrema) <= 1


def test_given_two_threads_when_an_image_resizes_in_bands_then_the_pixels_are_those_of_one() -> None:
    image = gradient((2400, 3600))

    assert resize_to_long_edge(image, 1200, workers=2).tobytes() == resize_to_long_edge(image, 1200).tobytes()


def test_given_a_large_sideways_jpeg_when_loaded_for_a_preset_then_it_is_turned_upright_after_the_resize() -> None:
    # Stored 3600 x 2400 with EXIF orientation 6 (shown 2400 x 3600): resized, then turned.
    stored = gradient((3600, 2400))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif)

    loaded = load_normalized(buffer.getvalue(), settings().image_limits, max_edge=2400)  # no DCT scaling

    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        expected = ImageOps.exif_transpose(decoded).resize(loaded.size, Image.Resampling.LANCZOS)
    assert loaded.size == (1600, 2400)
    # Resized by libvips's lanczos3 and turned after, against Pillow's LANCZOS after turning: the same kernel,
    # its two passes in the other order, each rounding to 8 bits. A level or two apart, the same picture.
    difference = ImageStat.Stat(ImageChops.difference(loaded, expected))
    assert max(high for _, high in difference.extrema) <= 3
    assert max(difference.mean) < 0.2


def test_given_steps_when_stills_render_then_each_comes_once_at_its_size() -> None:
    rendered = list(render_stills(gradient((1200, 800)), steps(("webp", "jpeg")), settings(), workers=2))

    assert sorted((preset.name, fmt) for preset, fmt, _ in rendered) == sorted(
        (p.name, f) for p, f in steps(("webp", "jpeg"))
    )
    for preset, fmt, still in rendered:
        with Image.open(io.BytesIO(still.data)) as decoded:
            assert decoded.format == {"webp": "WEBP", "jpeg": "JPEG"}[fmt]
            assert max(decoded.size) == preset.long_edge
            assert decoded.size == (still.width, still.height)


def test_given_two_workers_when_stills_render_then_the_bytes_are_those_of_one() -> None:
    image = gradient((1200, 800))

    one = {preset.name: still.data for preset, _, still in render_stills(image, steps(), settings(), workers=1)}
    two = {preset.name: still.data for preset, _, still in render_stills(image, steps(), settings(), workers=2)}

    assert one == two


@pytest.mark.parametrize(("alpha", "mode"), [(255, "RGB"), (128, "RGBA")])
def test_given_an_alpha_channel_when_stills_render_then_only_a_transparent_one_is_kept(alpha: int, mode: str) -> None:
    image = gradient((400, 300), "RGBA")
    image.putalpha(alpha)

    _, _, still = next(render_stills(image, steps(), settings()))

    with Image.open(io.BytesIO(still.data)) as decoded:
        assert decoded.mode == mode


def test_given_an_encode_fails_when_stills_render_then_the_failure_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing_render(image: Image.Image, long_edge: int, *args: Any) -> RenderedImage:
        raise OSError(f"encoder failed at {long_edge} px")

    monkeypatch.setattr(variants, "render_variant", failing_render)
    stills = render_stills(gradient((1200, 800)), steps(), settings(), workers=2)

    with pytest.raises(OSError, match="encoder failed at"):
        next(stills)
    assert next(stills, None) is None  # the generator ended: nothing after the failure is handed out


def test_given_two_workers_when_the_largest_encode_is_slow_then_the_smaller_stills_come_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The largest encode finishes only once a smaller still has reached the caller: yielded in step
    # order, the caller would wait on the largest first, and it would give up after 10 s.
    smaller_arrived = threading.Event()
    encode = variants.render_variant

    def slow_largest(image: Image.Image, long_edge: int, *args: Any) -> RenderedImage:
        if long_edge == PRESETS[0].long_edge and not smaller_arrived.wait(timeout=10):
            raise TimeoutError("no smaller still reached the caller while the largest encoded")
        return encode(image, long_edge, *args)

    monkeypatch.setattr(variants, "render_variant", slow_largest)
    arrived = []
    for preset, _, _ in render_stills(gradient((1200, 800)), steps(), settings(), workers=2):
        arrived.append(preset.name)
        smaller_arrived.set()

    assert arrived[-1] == "full"
    assert sorted(arrived) == sorted(preset.name for preset in PRESETS)


def test_given_a_started_callback_when_stills_render_then_it_runs_once_while_the_encodes_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `started` waits for the largest encode to begin, and that encode for `started` to run: called before the
    # encodes were submitted, or only after the first result, one of them gives up after 10 s.
    largest_began, started = threading.Event(), threading.Event()
    calls = []
    encode = variants.render_variant

    def waiting_largest(image: Image.Image, long_edge: int, *args: Any) -> RenderedImage:
        if long_edge == PRESETS[0].long_edge:
            largest_began.set()
            if not started.wait(timeout=10):
                raise TimeoutError("started did not run while the largest encoded")
        return encode(image, long_edge, *args)

    def on_started() -> None:
        calls.append(largest_began.wait(timeout=10))
        started.set()

    monkeypatch.setattr(variants, "render_variant", waiting_largest)
    rendered = list(render_stills(gradient((1200, 800)), steps(), settings(), workers=1, started=on_started))

    assert calls == [True]
    assert sorted(preset.name for preset, _, _ in rendered) == sorted(preset.name for preset in PRESETS)
