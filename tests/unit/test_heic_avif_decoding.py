"""HEIC and AVIF uploads: sniffed by their brands, bounded from their header, decoded upright into sRGB.

The fixtures are made by tests/fixtures/images/heic-avif/generate.py: small images whose left half is
warm and right half cool (in Display P3 where a profile is attached), so orientation and colour
conversion can be checked from two pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from imgflow import icc
from imgflow.errors import ErrorCode, ImageRejectedError
from imgflow.imaging import ImageLimits, inspect_image, load_normalized, render_variant, sniff_format
from imgflow.isobmff import Cicp, read_header, sniff_brand
from imgflow.models import OutputFormat
from imgflow.structure import MAX_ISO_BOXES

HEIC_AVIF = Path(__file__).parent.parent / "fixtures" / "images" / "heic-avif"
LIMITS = ImageLimits(max_bytes=25 * 1024 * 1024, max_pixels=60_000_000, max_side=16384, max_frames=300)
P3_WARM, P3_COOL = (180, 100, 60), (60, 100, 180)


def read(name: str) -> bytes:
    return (HEIC_AVIF / name).read_bytes()


def srgb_of_display_p3(rgb: tuple[int, int, int]) -> tuple[int, ...]:
    """What littleCMS makes of a Display P3 colour in sRGB: the colour the output must have."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc.display_p3()))
    target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    converted = ImageCms.profileToProfile(Image.new("RGB", (1, 1), rgb), source, target)
    assert converted is not None
    return tuple(converted.getpixel((0, 0)))  # type: ignore[arg-type]


def close(pixel: object, expected: tuple[int, ...], tolerance: int = 6) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize(
    ("ftyp", "expected"),
    [
        (b"ftypheic\0\0\0\0mif1heic", "HEIF"),
        (b"ftypmif1\0\0\0\0mif1heic", "HEIF"),
        (b"ftypheix\0\0\0\0mif1heix", "HEIF"),
        (b"ftypavif\0\0\0\0avifmif1", "AVIF"),
        (b"ftypavis\0\0\0\0avismsf1", "AVIF"),
        (b"ftypmif1\0\0\0\0mif1miaf", None),  # some HEIF, codec unknown
        (b"ftypisom\0\0\0\0isomiso2", None),  # an MP4 video
        (b"ftypqt  \0\0\0\0qt  \0\0\0\0", None),  # a QuickTime movie
    ],
)
def test_given_ftyp_brands_when_sniffed_then_only_hevc_or_av1_images_are_named(ftyp: bytes, expected: str) -> None:
    data = (8 + len(ftyp)).to_bytes(4, "big") + ftyp + b"\0\0\0\x08free"

    assert sniff_brand(data) == expected
    assert sniff_format(data) == expected


def test_given_an_mp4_when_inspected_then_unsupported_naming_an_iso_media_file() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(b"\0\0\0\x18ftypisom\0\0\0\0isomiso2" + bytes(64), LIMITS)

    assert caught.value.code == "unsupported_format"
    assert "ISO media file" in caught.value.message


@pytest.mark.parametrize("name", ["iphone_p3_orientation6_gps.heic", "orientation6_gps.avif"])
def test_given_a_phone_photo_in_display_p3_with_orientation_6_when_normalized_then_upright_srgb_and_bare(
    name: str,
) -> None:
    data = read(name)

    info = inspect_image(data, LIMITS)
    image = load_normalized(data, LIMITS)

    # Stored 96 x 64 with the warm half on the left; orientation 6 turns it a quarter clockwise, once.
    assert (info.width, info.height, info.frames) == (64, 96, 1)
    assert image.size == (64, 96)
    assert image.mode == "RGB"
    assert close(image.getpixel((32, 10)), srgb_of_display_p3(P3_WARM))
    assert close(image.getpixel((32, 85)), srgb_of_display_p3(P3_COOL))
    # The conversion is real: the sRGB value is not the P3 one read as sRGB.
    assert not close(srgb_of_display_p3(P3_WARM), P3_WARM)
    assert image.info == {}
    assert len(image.getexif()) == 0


def test_given_an_avif_naming_display_p3_only_by_code_points_when_normalized_then_converted_like_the_profile() -> None:
    data = read("p3_as_code_points.avif")

    image = load_normalized(data, LIMITS)

    assert read_header(data, MAX_ISO_BOXES).primary_cicp == Cicp(primaries=12, transfer=13, matrix=1)
    assert close(image.getpixel((10, 32)), srgb_of_display_p3(P3_WARM))
    assert close(image.getpixel((85, 32)), srgb_of_display_p3(P3_COOL))


def test_given_an_image_with_an_icc_profile_when_read_then_no_code_points_are_taken_from_its_header() -> None:
    assert read_header(read("iphone_p3_orientation6_gps.heic"), MAX_ISO_BOXES).primary_cicp is None


@pytest.mark.parametrize("fmt", ["webp", "avif"])
@pytest.mark.parametrize("name", ["iphone_p3_orientation6_gps.heic", "orientation6_gps.avif"])
def test_given_a_phone_photo_when_rendered_then_no_exif_gps_or_icc_is_written(name: str, fmt: OutputFormat) -> None:
    variant = render_variant(load_normalized(read(name), LIMITS), 48, fmt, 80)

    with Image.open(io.BytesIO(variant.data)) as output:
        assert (output.width, output.height) == (32, 48)
        assert not {"exif", "xmp", "icc_profile", "XML:com.adobe.xmp"} & output.info.keys()
        assert len(output.getexif()) == 0


@pytest.mark.parametrize(("name", "fmt"), [("ten_bit.heic", "HEIF"), ("ten_bit_p3.avif", "AVIF")])
def test_given_a_10_bit_image_when_normalized_then_8_bit_rgb_keeping_the_gradient(name: str, fmt: str) -> None:
    info = inspect_image(read(name), LIMITS)
    image = load_normalized(read(name), LIMITS)

    assert info.format == fmt
    assert (image.mode, image.size) == ("RGB", (64, 48))
    red_left, red_right = image.getpixel((0, 24)), image.getpixel((63, 24))
    assert isinstance(red_left, tuple)
    assert isinstance(red_right, tuple)
    assert red_left[0] < 20 < 230 < red_right[0]


@pytest.mark.parametrize("name", ["alpha.heic", "alpha.avif"])
def test_given_an_image_with_alpha_when_normalized_then_rgba_with_its_translucency(name: str) -> None:
    image = load_normalized(read(name), LIMITS)

    assert image.mode == "RGBA"
    left, right = image.getpixel((5, 16)), image.getpixel((43, 16))
    assert isinstance(left, tuple)
    assert isinstance(right, tuple)
    assert left[3] == 255
    assert abs(right[3] - 128) <= 4


def test_given_a_heic_of_two_images_when_normalized_then_the_primary_one_is_used() -> None:
    image = load_normalized(read("two_images_primary_second.heic"), LIMITS)

    assert image.size == (48, 32)
    assert close(image.getpixel((24, 16)), (0, 160, 0))


def test_given_a_heic_grid_of_tiles_when_normalized_then_the_whole_image_is_assembled() -> None:
    data = read("grid_of_tiles.heic")

    image = load_normalized(data, LIMITS)

    assert read_header(data, MAX_ISO_BOXES).items == 7  # the grid and its 3 x 2 tiles
    assert image.size == (160, 96)
    assert close(image.getpixel((10, 90)), P3_WARM)
    assert close(image.getpixel((150, 5)), P3_COOL)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("truncated.heic", "corrupt_image"),
        ("truncated.avif", "corrupt_image"),
        ("declares_100000x100000.heic", "too_many_pixels"),
        ("declares_100000x100000.avif", "too_many_pixels"),
        ("declares_5000_items.heic", "too_complex"),
    ],
)
def test_given_a_hostile_heic_or_avif_when_inspected_then_rejected(name: str, code: ErrorCode) -> None:
    for check in (inspect_image, load_normalized):
        with pytest.raises(ImageRejectedError) as caught:
            check(read(name), LIMITS)
        assert caught.value.code == code


def test_given_a_header_declaring_100000x100000_when_inspected_then_refused_before_any_decoder_opens_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decoder was reached")

    monkeypatch.setattr(Image, "open", no_decoder)

    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(read("declares_100000x100000.heic"), LIMITS)

    assert caught.value.code == "too_many_pixels"
    assert "100000x100000" in caught.value.message


def test_given_a_heic_whose_image_is_over_the_side_limit_when_inspected_then_too_many_pixels() -> None:
    limits = ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=LIMITS.max_pixels, max_side=90, max_frames=300)

    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(read("iphone_p3_orientation6_gps.heic"), limits)

    assert caught.value.code == "too_many_pixels"


def test_given_a_file_of_endless_empty_boxes_when_read_then_the_walk_stops_at_the_limit() -> None:
    data = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0\0\0\x08free" * (MAX_ISO_BOXES * 3)

    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(data, LIMITS)

    assert caught.value.code == "too_complex"


@pytest.mark.parametrize("name", ["alpha.avif", "iphone_p3_orientation6_gps.heic", "grid_of_tiles.heic"])
def test_given_coded_data_overwritten_when_inspected_then_corrupt_image_whatever_the_decoder_raises(name: str) -> None:
    # libavif and libheif report such damage as a RuntimeError ("Decoding of color planes failed").
    data = bytearray(read(name))
    start = data.index(b"mdat") + 4
    data[start:] = b"\x5a" * (len(data) - start)

    for check in (inspect_image, load_normalized):
        with pytest.raises(ImageRejectedError) as caught:
            check(bytes(data), LIMITS)
        assert caught.value.code == "corrupt_image"
