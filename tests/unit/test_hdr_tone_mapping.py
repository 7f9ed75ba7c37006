"""HDR (PQ and HLG) HEIC and AVIF mapped to SDR sRGB: reference white near white, shadows and mid-tones as
BT.2408 puts them, highlights rolled off, colours out of gamut clipped with their hue kept.

The fixtures (tests/fixtures/images/heic-avif/generate.py) are 10-bit, BT.2020, grey patches of known
display luminance over a ramp: PQ at 0, 26 (BT.2408's 18% grey), 100, 203 (reference white) and 1,000
nits; HLG at 0, 38%, 50%, 75% (reference white) and 100% of its signal.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from imgflow import icc
from imgflow.errors import ImageRejectedError
from imgflow.hdr import PQ, HdrSource, to_sdr
from imgflow.imaging import ImageLimits, load_normalized

HEIC_AVIF = Path(__file__).parent.parent / "fixtures" / "images" / "heic-avif"
LIMITS = ImageLimits(max_bytes=25 * 1024 * 1024, max_pixels=60_000_000, max_side=16384, max_frames=300)
PATCH = 16
REFERENCE_WHITE = range(236, 251)  # just under SDR white: room above it for the highlights


def srgb_8bit(linear: float) -> int:
    encoded = 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
    return round(255 * encoded)


def pq_code(nits: float) -> float:
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    power = (nits / 10000) ** m1
    return float(((c1 + c2 * power) / (1 + c3 * power)) ** m2)


def patches(name: str) -> tuple[list[int], list[int], Image.Image]:
    """Each patch's grey level (checked grey) and the ramp's levels, left to right."""
    image = load_normalized((HEIC_AVIF / name).read_bytes(), LIMITS)
    assert (image.mode, image.size) == ("RGB", (5 * PATCH, 2 * PATCH))
    levels = []
    for index in range(5):
        pixel = image.getpixel((index * PATCH + PATCH // 2, PATCH // 2))
        assert isinstance(pixel, tuple)
        assert max(pixel) - min(pixel) <= 2, f"patch {index} is not grey: {pixel}"
        levels.append(pixel[1])
    ramp = [image.getpixel((x, PATCH + PATCH // 2)) for x in range(image.width)]
    return levels, [pixel[1] for pixel in ramp if isinstance(pixel, tuple)], image


@pytest.mark.parametrize(("name", "tolerance"), [("pq_patches.heic", 1), ("pq_patches.avif", 3)])
def test_given_pq_patches_when_normalized_then_shadows_as_bt2408_and_reference_white_near_white(
    name: str, tolerance: int
) -> None:
    (black, grey_18, hundred, white, peak), ramp, _ = patches(name)

    assert black == 0
    # Below the roll-off, display light relative to reference white is kept as it is.
    assert abs(grey_18 - srgb_8bit(26 / 203)) <= tolerance
    assert abs(hundred - srgb_8bit(100 / 203)) <= tolerance
    assert white in REFERENCE_WHITE  # taken as SDR code values it would be 148, a dull grey
    assert peak == 255
    assert ramp == sorted(ramp)
    assert ramp[0] <= 2
    assert ramp[-1] >= 250


def test_given_a_10_bit_pq_heic_when_normalized_then_decoded_at_its_full_depth() -> None:
    # The 100-nit patch is 100.6 nits at 10 bits: 186 in sRGB; its 8 high bits alone read as 104 nits, 188.
    (_, _, hundred, _, _), _, _ = patches("pq_patches.heic")

    assert hundred == 186


def test_given_hlg_patches_when_normalized_then_75_percent_is_reference_white() -> None:
    (black, _, half, white, peak), ramp, _ = patches("hlg_patches.avif")

    assert black == 0
    assert half < white
    assert white in REFERENCE_WHITE
    assert peak == 255
    assert ramp == sorted(ramp)


def test_given_a_saturated_bt2020_green_when_mapped_then_the_most_saturated_srgb_green() -> None:
    code = round(pq_code(203) * 255)
    green = Image.new("RGB", (4, 4), (0, code, 0))

    pixel = to_sdr(green, None, HdrSource(transfer=PQ, primaries=9)).getpixel((0, 0))

    assert pixel == (0, 255, 0)


def test_given_highlights_past_the_peak_when_mapped_then_clipped_with_their_hue_kept() -> None:
    orange = tuple(round(pq_code(nits) * 255) for nits in (4000, 1200, 150))
    image = Image.new("RGB", (4, 4), orange)

    red, green, blue = to_sdr(image, None, HdrSource(transfer=PQ, primaries=1)).getpixel((0, 0))  # type: ignore[misc]

    # Scaled down whole, so the channels keep their ratios; clipping each would give (255, 255, 200).
    assert red == 255
    assert abs(green - srgb_8bit(1200 / 4000)) <= 3
    assert abs(blue - srgb_8bit(150 / 4000)) <= 3


def test_given_16_bit_code_values_when_mapped_then_the_low_bytes_count() -> None:
    value = round(pq_code(100) * 65535)
    high = Image.new("RGB", (4, 4), (value >> 8,) * 3)
    low = Image.new("RGB", (4, 4), (value & 0xFF,) * 3)

    precise = to_sdr(high, low, HdrSource(transfer=PQ, primaries=9)).getpixel((0, 0))

    assert precise == (srgb_8bit(100 / 203),) * 3


def cicp_profile(primaries: int, transfer: int) -> bytes:
    """A bare ICC profile whose one tag is `cicp` (ICC.1:2022), as HDR profiles carry it."""
    tag = b"cicp" + bytes(4) + bytes([primaries, transfer, 0, 1])
    header = (144 + len(tag)).to_bytes(4, "big") + bytes(32) + b"acsp" + bytes(88)
    return header + (1).to_bytes(4, "big") + b"cicp" + (144).to_bytes(4, "big") + len(tag).to_bytes(4, "big") + tag


def test_given_an_icc_profile_then_its_cicp_tag_is_read() -> None:
    assert icc.cicp(cicp_profile(9, 16)) == (9, 16, 0)
    assert icc.cicp(icc.display_p3()) is None  # a matrix/TRC profile: no tag
    assert icc.cicp(b"short") is None


def test_given_a_png_whose_icc_profile_names_pq_when_normalized_then_tone_mapped() -> None:
    grey = Image.new("RGB", (2 * PATCH, PATCH), (round(pq_code(203) * 255),) * 3)
    grey.paste((round(pq_code(26) * 255),) * 3, (PATCH, 0, 2 * PATCH, PATCH))
    buffer = io.BytesIO()
    grey.save(buffer, "PNG", icc_profile=cicp_profile(9, 16))

    image = load_normalized(buffer.getvalue(), LIMITS)

    white, grey_18 = (image.getpixel((x, PATCH // 2)) for x in (PATCH // 2, PATCH + PATCH // 2))
    assert isinstance(white, tuple)
    assert isinstance(grey_18, tuple)
    assert white[1] in REFERENCE_WHITE
    assert abs(grey_18[1] - srgb_8bit(26 / 203)) <= 3


@pytest.mark.parametrize("name", ["pq_patches.heic", "pq_patches.avif"])
def test_given_a_truncated_hdr_file_when_normalized_then_corrupt_image(name: str) -> None:
    data = (HEIC_AVIF / name).read_bytes()

    with pytest.raises(ImageRejectedError) as caught:
        load_normalized(data[: len(data) * 2 // 3], LIMITS)

    assert caught.value.code == "corrupt_image"
