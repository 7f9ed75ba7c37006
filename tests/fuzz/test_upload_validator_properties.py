"""The upload validator, on any bytes: an upload is accepted within the limits or rejected with one of its
stable codes, never anything else (an exception of Pillow's, a hang, an image over a limit let through)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fuzz.fuzzing import replayable
from imgflow.errors import ImageRejectedError
from imgflow.imaging import inspect_image, sniff_format
from imgflow.models import ImageLimits
from imgflow.structure import check_structure

IMAGES = Path(__file__).resolve().parents[1] / "fixtures" / "images" / "bad-inputs"
SEEDS = [(IMAGES / name).read_bytes() for name in ("hopper.jpg", "hopper.png", "iss634.webp", "dispose_bgnd.gif")]
# Small bounds, so that a mutated header claiming a huge image is refused rather than decoded.
LIMITS = ImageLimits(max_bytes=1024 * 1024, max_pixels=1_000_000, max_side=2048, max_frames=50)
REJECTIONS = {
    "unsupported_format",
    "empty_file",
    "too_large_bytes",
    "too_many_pixels",
    "too_many_frames",
    "too_complex",
    "corrupt_image",
}


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A real image with a few bytes changed, a slice cut out or inserted: what a fuzzer learns most from."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        change = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if change == "flip":
            data[at] = draw(st.integers(0, 255))
        elif change == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif change == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[at:]
        if not data:
            break
    return bytes(data)


uploads = st.one_of(mutated_images(), st.binary(max_size=256), st.sampled_from(SEEDS))


@replayable
@given(uploads)
def test_an_upload_is_accepted_within_the_limits_or_rejected_with_a_stable_code(data: bytes) -> None:
    try:
        info = inspect_image(data, LIMITS)
    except ImageRejectedError as rejected:
        code: str | None = rejected.code
    else:
        code = None
        assert info.format == sniff_format(data)
        assert 1 <= info.width <= LIMITS.max_side
        assert 1 <= info.height <= LIMITS.max_side
        assert info.width * info.height <= LIMITS.max_pixels
        assert 1 <= info.frames <= LIMITS.max_frames
    assert code is None or code in REJECTIONS, code


@replayable
@given(uploads)
def test_the_structure_check_passes_or_says_too_complex(data: bytes) -> None:
    fmt = sniff_format(data)
    if fmt is None:
        return
    try:
        check_structure(data, fmt)
    except ImageRejectedError as rejected:
        code: str | None = rejected.code
    else:
        code = None
    assert code in {None, "too_complex"}, code
