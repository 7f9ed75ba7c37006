"""Animated GIF, WebP and AVIF: counted, timed and bounded at inspection, kept moving in their variants.

Fixtures from tests/fixtures/images/animations/generate.py: a red square crossing a white field.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageSequence

from imgflow.errors import ImageRejectedError
from imgflow.imaging import ImageLimits, animated_formats, inspect_image, load_animation, render_animation
from imgflow.models import OutputFormat

ANIMATIONS = Path(__file__).parent.parent / "fixtures" / "images" / "animations"
LIMITS = ImageLimits(max_bytes=25 * 1024 * 1024, max_pixels=60_000_000, max_side=16384, max_frames=300)
GIF = ANIMATIONS / "crossing_24_frames.gif"
WEBP = ANIMATIONS / "crossing_12_frames_alpha.webp"
AVIF = ANIMATIONS / "crossing_8_frames.avif"


def frames_and_durations(data: bytes) -> tuple[int, list[int], int | None]:
    with Image.open(io.BytesIO(data)) as image:
        durations = []
        for frame in ImageSequence.Iterator(image):
            frame.load()
            durations.append(int(frame.info["duration"]))
        return len(durations), durations, image.info.get("loop")


@pytest.mark.parametrize(
    ("path", "fmt", "frames", "duration"), [(GIF, "GIF", 24, 1200), (WEBP, "WEBP", 12, 900), (AVIF, "AVIF", 8, 720)]
)
def test_given_an_animation_when_inspected_then_animated_with_its_frames_and_duration(
    path: Path, fmt: str, frames: int, duration: int
) -> None:
    info = inspect_image(path.read_bytes(), LIMITS)

    assert (info.format, info.width, info.height) == (fmt, 160, 96)
    assert (info.animated, info.frames, info.duration_ms) == (True, frames, duration)


def test_given_a_still_when_inspected_then_not_animated() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")

    info = inspect_image(buffer.getvalue(), LIMITS)

    assert (info.animated, info.frames, info.duration_ms) == (False, 1, None)


@pytest.mark.parametrize(("path", "loop"), [(GIF, 0), (WEBP, 3), (AVIF, 0)])
def test_given_an_animation_when_rendered_then_every_frame_duration_and_the_loop_are_kept(
    path: Path, loop: int
) -> None:
    animation = load_animation(path.read_bytes(), LIMITS)

    rendered = render_animation(animation, 80, "webp", 85)

    frames, durations, rendered_loop = frames_and_durations(rendered.data)
    source_frames, source_durations, _ = frames_and_durations(path.read_bytes())
    assert (rendered.width, rendered.height, rendered.content_type) == (80, 48, "image/webp")
    assert frames == source_frames == len(animation.frames)
    assert durations == source_durations
    assert rendered_loop == loop
    with Image.open(io.BytesIO(rendered.data)) as output:
        assert not {"exif", "icc_profile", "xmp"} & output.info.keys()


def test_given_a_forever_looping_gif_when_rendered_as_avif_then_every_frame_and_duration_are_kept() -> None:
    animation = load_animation(GIF.read_bytes(), LIMITS)

    rendered = render_animation(animation, 80, "avif", 60)

    frames, durations, _ = frames_and_durations(rendered.data)
    assert (rendered.width, rendered.height, rendered.content_type) == (80, 48, "image/avif")
    assert frames == 24
    assert durations == frames_and_durations(GIF.read_bytes())[1]


@pytest.mark.parametrize(
    ("path", "requested", "expected"),
    [
        (GIF, ("webp",), ["webp"]),
        (GIF, ("webp", "avif", "jpeg"), ["webp", "avif"]),
        (GIF, ("jpeg",), ["webp"]),
        (WEBP, ("avif",), ["webp"]),  # plays three times: an AVIF sequence would play forever
        (AVIF, ("avif", "webp"), ["webp", "avif"]),
    ],
)
def test_given_requested_formats_then_an_animation_moves_in_webp_and_in_avif_only_when_it_loops_forever(
    path: Path, requested: tuple[OutputFormat, ...], expected: list[str]
) -> None:
    assert animated_formats(load_animation(path.read_bytes(), LIMITS), requested) == expected


def test_given_a_gif_without_a_loop_extension_when_loaded_then_it_plays_once() -> None:
    frames = [Image.new("L", (8, 8), shade) for shade in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)

    assert load_animation(buffer.getvalue(), LIMITS).loop == 1


def test_given_an_avif_sequence_whose_edit_list_does_not_repeat_when_loaded_then_it_plays_once() -> None:
    data = AVIF.read_bytes()
    flags = data.index(b"elst") + 7  # the last byte of the edit list's flags: 1 is "repeat"
    assert data[flags] == 1

    animation = load_animation(data[:flags] + b"\0" + data[flags + 1 :], LIMITS)

    assert (animation.loop, len(animation.frames)) == (1, 8)


@pytest.mark.parametrize("path", [GIF, AVIF])
def test_given_an_animation_when_loaded_then_the_square_moves_across_the_frames(path: Path) -> None:
    animation = load_animation(path.read_bytes(), LIMITS)

    def red_column(frame: Image.Image) -> int:
        pixels = [frame.getpixel((x, 48)) for x in range(frame.width)]
        return next(x for x, pixel in enumerate(pixels) if isinstance(pixel, tuple) and pixel[0] > 200 > pixel[1])

    assert red_column(animation.frames[0]) < 10
    assert red_column(animation.frames[-1]) > 120
    assert all(frame.mode == "RGBA" and frame.size == (160, 96) for frame in animation.frames)


def test_given_an_animated_webp_with_exif_orientation_6_when_loaded_then_every_frame_is_upright() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    frames = [Image.new("RGB", (40, 20), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100, exif=exif.tobytes())

    animation = load_animation(buffer.getvalue(), LIMITS)

    assert [frame.size for frame in animation.frames] == [(20, 40), (20, 40)]


def test_given_a_3000_frame_gif_when_inspected_then_too_many_frames_quickly() -> None:
    started = time.monotonic()

    with pytest.raises(ImageRejectedError) as caught:
        inspect_image((ANIMATIONS / "3000_frames.gif").read_bytes(), LIMITS)

    assert caught.value.code == "too_many_frames"
    assert time.monotonic() - started < 2


def test_given_an_avif_sequence_declaring_5000_frames_when_inspected_then_refused_before_libavif_opens_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decoder opened the file")

    monkeypatch.setattr(Image, "open", no_decoder)

    with pytest.raises(ImageRejectedError) as caught:
        inspect_image((ANIMATIONS / "declares_5000_frames.avif").read_bytes(), LIMITS)

    assert caught.value.code == "too_many_frames"


def test_given_an_avif_sequence_over_the_frames_by_pixels_budget_when_inspected_then_refused_from_its_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 8 frames of 160 x 96: 122,880 pixels in all.
    limits = ImageLimits(LIMITS.max_bytes, LIMITS.max_pixels, 16384, 300, max_animation_pixels=100_000)
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: pytest.fail("a decoder opened the file"))

    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(AVIF.read_bytes(), limits)

    assert caught.value.code == "too_many_pixels"
    assert "8 frames of 160x96" in caught.value.message


def test_given_an_animation_over_the_frames_by_pixels_budget_when_inspected_then_too_many_pixels() -> None:
    # 24 frames of 160 x 96: 368,640 pixels in all.
    limits = ImageLimits(
        max_bytes=LIMITS.max_bytes,
        max_pixels=LIMITS.max_pixels,
        max_side=16384,
        max_frames=300,
        max_animation_pixels=300_000,
    )

    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(GIF.read_bytes(), limits)

    assert caught.value.code == "too_many_pixels"
    assert "24 frames of 160x96" in caught.value.message
