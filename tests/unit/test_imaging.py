from __future__ import annotations

import contextlib
import io
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pyvips
from PIL import ExifTags, Image, ImageChops, ImageCms, ImageFile, ImageStat, JpegImagePlugin

from imgflow import icc
from imgflow.errors import ErrorCode, ImageRejectedError
from imgflow.imaging import (
    ImageLimits,
    inspect_image,
    load_normalized,
    placeholder,
    render_variant,
    resize_to_long_edge,
    sniff_format,
)
from imgflow.models import OutputFormat

IMAGES = Path(__file__).parent.parent / "fixtures" / "images"
BAD_INPUTS = IMAGES / "bad-inputs"
PHOTOS = IMAGES / "photos"
LIMITS = ImageLimits(max_bytes=25 * 1024 * 1024, max_pixels=60_000_000, max_side=16384, max_frames=300)
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("webp", "avif", "jpeg")

MANIFEST_REASONS: dict[str, ErrorCode] = {
    "decode_error": "corrupt_image",
    "decompression_bomb": "too_many_pixels",
    "unidentified": "unsupported_format",
    "unsupported_format": "unsupported_format",
    "format_mismatch": "unsupported_format",
}

# A 4 x 3 blurhash: 28 characters of its base-83 alphabet.
BLURHASH_4X3 = re.compile(r"[0-9A-Za-z#$%*+,\-.:;=?@\[\]^_{|}~]{28}")


def manifest_rows() -> list[tuple[str, str]]:
    """(file, expected) of every row of the bad-inputs manifest table."""
    rows = []
    for line in (BAD_INPUTS / "MANIFEST.md").read_text().splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append((cells[0].strip("`"), cells[4]))
    return rows


ROWS = manifest_rows()
REJECTED = [
    (name, MANIFEST_REASONS[match[1]]) for name, expected in ROWS if (match := re.match(r"REJECT (\w+)", expected))
]
ACCEPTED = [name for name, expected in ROWS if expected.startswith("ACCEPT")]


def read(path: Path) -> bytes:
    return path.read_bytes()


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def reopen(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rejection(data: bytes, limits: ImageLimits = LIMITS) -> ImageRejectedError:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(data, limits)
    return caught.value


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / len(first.getbands())


def is_red(pixel: Any) -> bool:
    red, green, blue = pixel[:3]
    return bool(red > 200 and green < 60 and blue < 60)


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    """A JPEG as a phone writes it: stored landscape with Orientation 6, a GPS IFD and an ICC profile.

    The stored top-left corner is red, so once upright it must sit at the top right.
    """
    stored = Image.new("RGB", (120, 80), "blue")
    stored.paste((255, 0, 0), (0, 0, 30, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "imgflow-test"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (51.0, 30.0, 0.0),
    }
    icc_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=icc_profile)


def test_given_the_bad_inputs_folder_then_every_file_has_a_manifest_row() -> None:
    on_disk = {path.name for path in BAD_INPUTS.iterdir()} - {"MANIFEST.md", "PILLOW_LICENSE.txt"}

    assert on_disk == {name for name, _ in ROWS}
    assert len(REJECTED) + len(ACCEPTED) == len(ROWS) == 45


@pytest.mark.parametrize(("name", "code"), REJECTED)
def test_given_a_manifest_reject_file_when_inspected_then_rejected_with_the_mapped_code(
    name: str, code: ErrorCode
) -> None:
    error = rejection(read(BAD_INPUTS / name))

    assert error.code == code
    assert error.message


@pytest.mark.parametrize(("name", "code"), REJECTED)
def test_given_a_manifest_reject_file_when_normalized_then_rejected_with_the_same_code(
    name: str, code: ErrorCode
) -> None:
    with pytest.raises(ImageRejectedError) as caught:
        load_normalized(read(BAD_INPUTS / name), LIMITS, max_edge=600)

    assert caught.value.code == code


@pytest.mark.parametrize("name", ACCEPTED)
def test_given_a_manifest_accept_file_when_processed_then_a_small_webp_variant_comes_out(name: str) -> None:
    data = read(BAD_INPUTS / name)

    info = inspect_image(data, LIMITS)
    image = load_normalized(data, LIMITS)
    variant = render_variant(image, 150, "webp", 85)

    assert info.format == sniff_format(data)
    assert image.size == (info.width, info.height)
    assert image.mode in ("RGB", "RGBA")
    assert image.info == {}
    assert max(variant.width, variant.height) == min(150, max(image.size))
    assert reopen(variant.data).format == "WEBP"


def test_given_a_jpeg_with_orientation_8_when_inspected_then_width_and_height_swap() -> None:
    data = read(BAD_INPUTS / "orientation_rectangle.jpg")

    info = inspect_image(data, LIMITS)

    assert (info.width, info.height) == (1, 2)
    assert load_normalized(data, LIMITS).size == (1, 2)


@pytest.mark.parametrize("progressive", [False, True])
def test_given_damaged_jpegs_when_inspected_at_one_eighth_scale_then_each_fares_as_in_a_full_decode(
    progressive: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # inspect_image entropy-decodes every coefficient but runs the inverse DCT at 1/8 scale: a damaged file
    # must fare as it does with a full decode, cut anywhere or with bytes changed anywhere.
    buffer = io.BytesIO()
    Image.effect_noise((640, 480), 50).convert("RGB").save(buffer, format="JPEG", quality=90, progressive=progressive)
    whole = buffer.getvalue()
    cut = [whole[:length] for length in range(700, len(whole), len(whole) // 25)]
    overwritten = []
    for start in range(700, len(whole) - 64, len(whole) // 25):
        damaged = bytearray(whole)
        damaged[start : start + 64 : 8] = bytes(range(0xF8, 0x100))  # 8 bytes, among them markers
        overwritten.append(bytes(damaged))

    def outcome(data: bytes) -> str:
        try:
            return f"{inspect_image(data, LIMITS).width} px"
        except ImageRejectedError as rejected:
            return rejected.code

    drafts: list[tuple[int, int]] = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: Any) -> Any:
        drafts.append(size)
        return original_draft(self, mode, size)

    with monkeypatch.context() as full_decode:
        full_decode.setattr(JpegImagePlugin.JpegImageFile, "draft", lambda self, mode, size: None)
        expected = [outcome(data) for data in [whole, *cut, *overwritten]]
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)

    assert [outcome(data) for data in [whole, *cut, *overwritten]] == expected
    assert expected[0] == "640 px"
    assert drafts[0] == (80, 60)
    assert expected.count("corrupt_image") >= len(cut)  # every cut at least: the comparison has failures in it


@pytest.mark.parametrize("orientation", range(2, 9))
def test_given_hopper_stored_in_each_orientation_when_normalized_then_it_looks_like_upright_hopper(
    orientation: int,
) -> None:
    upright = load_normalized(read(BAD_INPUTS / "hopper.jpg"), LIMITS)
    path = BAD_INPUTS / f"hopper_orientation_{orientation}.jpg"

    normalized = load_normalized(read(path), LIMITS)

    assert mean_difference(normalized, upright) < 10
    assert mean_difference(Image.open(path).convert("RGB"), upright) > 40


def test_given_a_phone_photo_when_inspected_then_the_displayed_size_is_reported(phone_photo: bytes) -> None:
    info = inspect_image(phone_photo, LIMITS)

    assert (info.format, info.width, info.height, info.frames) == ("JPEG", 80, 120, 1)


def test_given_a_phone_photo_when_normalized_then_the_image_is_upright_and_bare(phone_photo: bytes) -> None:
    image = load_normalized(phone_photo, LIMITS)

    assert image.size == (80, 120)
    assert image.mode == "RGB"
    assert is_red(image.getpixel((75, 5)))
    assert not is_red(image.getpixel((5, 5)))
    assert image.info == {}
    assert len(image.getexif()) == 0


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_given_a_phone_photo_when_rendered_then_the_output_has_no_exif_xmp_or_icc(
    phone_photo: bytes, fmt: OutputFormat
) -> None:
    variant = render_variant(load_normalized(phone_photo, LIMITS), 60, fmt, 80)

    output = reopen(variant.data)
    assert output.format == fmt.upper()
    assert (output.width, output.height) == (variant.width, variant.height) == (40, 60)
    assert variant.content_type == f"image/{fmt}"
    assert not {"exif", "xmp", "icc_profile", "XML:com.adobe.xmp"} & output.info.keys()
    assert len(output.getexif()) == 0
    assert is_red(output.getpixel((37, 2)))


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_given_an_image_still_carrying_metadata_when_rendered_then_none_is_written(fmt: OutputFormat) -> None:
    with Image.open(BAD_INPUTS / "icc_profile_big.jpg") as source:
        source.load()
        source.info["exif"] = read(BAD_INPUTS / "exif-200dpcm.jpg")[6:1200]
        source.info["xmp"] = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"

        output = reopen(render_variant(source, 100, fmt, 70).data)

    assert not {"exif", "xmp", "icc_profile", "XML:com.adobe.xmp"} & output.info.keys()
    assert len(output.getexif()) == 0


def test_given_a_jpeg_with_a_foreign_icc_profile_when_normalized_then_colours_are_converted_to_srgb() -> None:
    data = read(BAD_INPUTS / "icc_profile_big.jpg")
    naive = Image.open(io.BytesIO(data)).convert("RGB")

    normalized = load_normalized(data, LIMITS)

    assert normalized.size == naive.size
    assert mean_difference(normalized, naive) > 2


def test_given_a_display_p3_photo_when_normalized_smaller_then_as_if_converted_to_srgb_before_the_resize() -> None:
    # The profile is applied after the resize (the cheaper order): the colours must be those of
    # converting the whole decode first (but at strong colour edges, where the orders differ by up to
    # a tenth of the range), and clearly not the unconverted P3 values.
    with Image.open(IMAGES / "photos" / "sunset_by_Aitzol_Berasategi.jpg") as photo:
        photo.draft("RGB", (1068, 712))
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=95, icc_profile=icc.display_p3())
    data = buffer.getvalue()
    full = Image.open(io.BytesIO(data))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    converted_first = ImageCms.profileToProfile(full, ImageCms.ImageCmsProfile(io.BytesIO(icc.display_p3())), srgb)
    assert converted_first is not None

    normalized = load_normalized(data, LIMITS, max_edge=400)

    assert normalized.size == (400, 267)
    assert mean_difference(normalized, resize_to_long_edge(converted_first, 400)) < 1
    assert mean_difference(normalized, resize_to_long_edge(full.convert("RGB"), 400)) > 2


@pytest.mark.parametrize("max_edge", [None, 50])
def test_given_a_cmyk_jpeg_when_normalized_then_rgb_like_pillows_own_conversion(max_edge: int | None) -> None:
    # Shrunk by Pillow (its draft()), not libvips: libvips would take CMYK through a profile of its own.
    data = read(BAD_INPUTS / "pil_sample_cmyk.jpg")

    normalized = load_normalized(data, LIMITS, max_edge=max_edge)

    with Image.open(io.BytesIO(data)) as decoded:
        if max_edge:
            decoded.draft("RGB", (max_edge, max_edge))  # 100 x 100 at 1/2 scale
        expected = decoded.convert("RGB")
    assert (normalized.mode, normalized.size) == ("RGB", expected.size)
    assert mean_difference(normalized, expected) < 1


def test_given_a_palette_png_with_trns_when_normalized_then_rgba_with_the_same_transparent_pixels() -> None:
    data = read(BAD_INPUTS / "p_trns_single.png")
    source = Image.open(io.BytesIO(data))
    transparent_index = source.info["transparency"]
    expected_clear = source.get_flattened_data().count(transparent_index)

    normalized = load_normalized(data, LIMITS)

    assert normalized.mode == "RGBA"
    assert 0 < expected_clear == normalized.getchannel("A").get_flattened_data().count(0)


def test_given_an_rgba_image_when_rendered_then_alpha_is_kept_in_webp_and_avif() -> None:
    image = load_normalized(read(BAD_INPUTS / "p_trns_single.png"), LIMITS)

    for fmt in ("webp", "avif"):
        output = reopen(render_variant(image, 64, fmt, 80).data)
        assert output.mode == "RGBA"
        assert output.getchannel("A").getextrema() == (0, 255)


def test_given_an_rgba_image_when_rendered_as_jpeg_then_flattened_on_white_progressive_and_bare() -> None:
    image = Image.new("RGBA", (200, 100), (0, 0, 255, 255))
    image.paste((0, 0, 0, 0), (100, 0, 200, 100))

    variant = render_variant(image, 100, "jpeg", 82)

    output = reopen(variant.data)
    assert (output.format, output.mode, output.size) == ("JPEG", "RGB", (100, 50))
    assert variant.content_type == "image/jpeg"
    assert output.info.get("progressive") == 1
    transparent, blue = output.getpixel((90, 25)), output.getpixel((10, 25))
    assert isinstance(transparent, tuple)
    assert isinstance(blue, tuple)
    assert min(transparent) > 240  # on white
    assert blue[2] > 200
    assert not {"exif", "icc_profile", "xmp"} & output.info.keys()


def test_given_a_16_bit_gradient_png_when_normalized_then_values_are_scaled_not_clipped() -> None:
    ramp = Image.frombytes("I;16", (256, 1), b"".join((v * 257).to_bytes(2, "little") for v in range(256)))
    data = encode(ramp.resize((256, 8)), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"

    normalized = load_normalized(data, LIMITS)

    reds = normalized.getchannel("R").get_flattened_data()
    assert normalized.mode == "RGB"
    assert min(reds) == 0
    assert max(reds) == 255
    assert len(set(reds)) > 250


def test_given_i_trns_png_when_normalized_then_alpha_kept_and_16_bit_values_scaled() -> None:
    # i_trns.png stores 16-bit samples 0..255 (of 65535): scaled properly they are near black, where
    # clipping would have spread them over the whole 8-bit range.
    data = read(BAD_INPUTS / "i_trns.png")
    source = Image.open(io.BytesIO(data))
    expected_clear = source.get_flattened_data().count(source.info["transparency"])

    normalized = load_normalized(data, LIMITS)

    assert normalized.mode == "RGBA"
    assert normalized.getchannel("A").get_flattened_data().count(0) == expected_clear > 0
    assert normalized.getchannel("R").getextrema() == (0, 1)


def test_given_a_small_image_when_rendered_larger_then_it_is_never_upscaled() -> None:
    image = load_normalized(read(BAD_INPUTS / "hopper.jpg"), LIMITS)

    variant = render_variant(image, 600, "webp", 85)

    assert (variant.width, variant.height) == (128, 128)
    assert resize_to_long_edge(image, 4096).size == (128, 128)
    assert load_normalized(read(BAD_INPUTS / "hopper.jpg"), LIMITS, max_edge=4096).size == (128, 128)


@pytest.mark.parametrize("long_edge", [150, 600, 1200])
def test_given_a_portrait_photo_when_rendered_then_the_long_edge_is_exact(long_edge: int) -> None:
    image = load_normalized(read(PHOTOS / "friends_by_Aitzol_Berasategi.jpg"), LIMITS, max_edge=1200)

    variant = render_variant(image, long_edge, "webp", 85)

    assert variant.height == long_edge
    assert abs(variant.width - 2056 * long_edge / 3088) <= 1
    assert reopen(variant.data).size == (variant.width, variant.height)


@pytest.mark.parametrize("max_edge", [100, 257, 700, 1500, 3088, 5000])
def test_given_a_large_jpeg_when_loaded_for_an_edge_then_libvips_decodes_it_at_a_scale_that_leaves_twice_that_edge(
    max_edge: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    shrinks: list[int] = []
    original_load = pyvips.Image.jpegload_buffer

    def recording_load(data: bytes, **kwargs: Any) -> Any:
        shrinks.append(kwargs.get("shrink", 1))
        return original_load(data, **kwargs)

    monkeypatch.setattr(pyvips.Image, "jpegload_buffer", staticmethod(recording_load))

    image = load_normalized(read(PHOTOS / "friends_by_Aitzol_Berasategi.jpg"), LIMITS, max_edge=max_edge)

    assert max(image.size) == min(max_edge, 3088)
    if max_edge >= 3088:
        assert shrinks == []  # no smaller than it is: Pillow decodes it, nothing to resize
        return
    # Scaled by a power of two down to 1/8 at most, leaving lanczos3 at least a factor of two (a block
    # shrink to just above the edge would alias), and no more than four, bar that floor.
    [shrink] = shrinks
    decoded_long_edge = -(-3088 // shrink)
    assert shrink == 1 or decoded_long_edge >= 2 * max_edge
    assert shrink == 8 or decoded_long_edge < 4 * max_edge


@pytest.mark.parametrize("progressive", [False, True])
def test_given_damaged_jpegs_that_ingest_accepts_when_shrunk_by_libvips_then_each_loads(progressive: bool) -> None:
    # Ingest's check is Pillow's; a JPEG it accepts must not fail in libvips's decode later (libvips is the
    # more lenient of the two on damaged bytes, and refuses a cut-off file as Pillow does: the test below).
    buffer = io.BytesIO()
    Image.effect_noise((1200, 900), 50).convert("RGB").save(buffer, format="JPEG", quality=90, progressive=progressive)
    whole = buffer.getvalue()
    damaged = []
    for start in range(700, len(whole) - 64, len(whole) // 30):
        markers = bytearray(whole)
        markers[start : start + 64 : 8] = bytes(range(0xF8, 0x100))
        flipped = bytearray(whole)
        flipped[start] ^= 0x55
        damaged += [bytes(markers), bytes(flipped)]
    accepted = 0
    for data in damaged:
        try:
            inspect_image(data, LIMITS)
        except ImageRejectedError:
            continue
        accepted += 1
        assert load_normalized(data, LIMITS, max_edge=300).size == (300, 225)
    assert accepted >= len(damaged) // 2  # damaged yet decodable: what the test is about


def test_given_a_large_grayscale_jpeg_when_loaded_for_an_edge_then_rgb_at_that_edge_like_pillows_resize() -> None:
    gray = Image.linear_gradient("L").resize((3000, 2000))
    buffer = io.BytesIO()
    gray.save(buffer, format="JPEG", quality=95)

    image = load_normalized(buffer.getvalue(), LIMITS, max_edge=600)

    assert (image.mode, image.size) == ("RGB", (600, 400))
    expected = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").resize((600, 400), Image.Resampling.LANCZOS)
    assert mean_difference(image, expected) < 1


def test_given_a_jpeg_cut_short_when_loaded_for_a_smaller_edge_then_rejected_as_corrupt_like_a_full_decode() -> None:
    whole = io.BytesIO()
    Image.effect_noise((3000, 2000), 60).convert("RGB").save(whole, format="JPEG", quality=90)
    cut = whole.getvalue()[: len(whole.getvalue()) // 2]

    for max_edge in (1000, None):  # libvips's shrinking decode, and Pillow's full one
        with pytest.raises(ImageRejectedError) as rejected:
            load_normalized(cut, LIMITS, max_edge=max_edge)
        assert rejected.value.code == "corrupt_image"


def test_given_a_rotated_jpeg_when_loaded_for_a_small_edge_then_the_drafted_image_is_upright_at_that_edge(
    phone_photo: bytes,
) -> None:
    image = load_normalized(phone_photo, LIMITS, max_edge=30)

    assert image.size == (20, 30)
    assert is_red(image.getpixel((18, 1)))


def test_given_an_animation_when_inspected_then_all_frames_are_counted() -> None:
    assert inspect_image(read(BAD_INPUTS / "iss634.webp"), LIMITS).frames == 42
    assert inspect_image(read(BAD_INPUTS / "dispose_bgnd.gif"), LIMITS).frames == 5
    assert inspect_image(read(BAD_INPUTS / "apng_delay.png"), LIMITS).frames == 5


def test_given_a_jpeg_with_an_mpo_index_when_inspected_then_it_is_one_frame() -> None:
    # Phones write their gain or depth maps as further MPO images after the photo.
    photo = Image.new("RGB", (64, 48), "red")
    data = encode(photo, "MPO", save_all=True, append_images=[Image.new("RGB", (32, 24), "blue")])

    info = inspect_image(data, replace(LIMITS, max_frames=1))

    assert (info.format, info.width, info.height, info.frames) == ("JPEG", 64, 48, 1)
    assert is_red(load_normalized(data, LIMITS).getpixel((60, 40)))


@pytest.mark.parametrize("name", ["dispose_bgnd.gif", "iss634.webp", "apng_delay.png"])
def test_given_an_animation_over_the_frame_limit_when_inspected_then_too_many_frames(name: str) -> None:
    error = rejection(read(BAD_INPUTS / name), replace(LIMITS, max_frames=2))

    assert error.code == "too_many_frames"


def test_given_a_file_over_the_byte_limit_when_inspected_then_too_large_bytes() -> None:
    error = rejection(read(BAD_INPUTS / "hopper.jpg"), replace(LIMITS, max_bytes=1000))

    assert error.code == "too_large_bytes"


def test_given_no_bytes_when_inspected_then_empty_file() -> None:
    assert rejection(b"").code == "empty_file"


def test_given_an_image_over_the_pixel_limit_when_inspected_then_too_many_pixels() -> None:
    error = rejection(read(BAD_INPUTS / "hopper.png"), replace(LIMITS, max_pixels=10_000))

    assert error.code == "too_many_pixels"
    assert error.message == "the image is 128x128 pixels (0.0 MP); the limit is 0.0 MP"


def test_given_an_image_over_the_side_limit_when_inspected_then_too_many_pixels_naming_the_side() -> None:
    error = rejection(read(BAD_INPUTS / "hopper.png"), replace(LIMITS, max_side=100))

    assert error.code == "too_many_pixels"
    assert "side" in error.message


def png_declaring(width: int, height: int) -> bytes:
    header = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + header + b"\0\0\0\0"


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(read(BAD_INPUTS / "hopper.jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("data", [png_declaring(20000, 20000), jpeg_declaring(20000, 20000)])
def test_given_a_header_declaring_a_huge_image_when_inspected_then_too_many_pixels_with_its_size(
    data: bytes,
) -> None:
    error = rejection(data)

    assert error.code == "too_many_pixels"
    assert error.message == "the image is 20000x20000 pixels (400.0 MP); the limit is 60.0 MP"


def test_given_pillows_own_bomb_limit_is_lower_when_inspected_then_too_many_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)

    assert rejection(read(BAD_INPUTS / "hopper.png")).code == "too_many_pixels"


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_given_bomb_warnings_raised_as_errors_when_inspected_then_too_many_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)

    assert rejection(read(BAD_INPUTS / "hopper.png")).code == "too_many_pixels"


@pytest.mark.parametrize(
    ("name", "named_as"),
    [
        ("hopper_bigtiff.tif", "TIFF"),
        ("misleading_tiff_g4.png", "TIFF"),
        ("misleading_eps_zero_bb.jpg", "PostScript"),
        ("psd-oob-write-overflow.psd", "PSD"),
        ("timeout-c60a3d7314213624607bfb3e38d551a8b24a7435.dds", "DDS"),
    ],
)
def test_given_a_foreign_format_when_inspected_then_the_message_names_it(name: str, named_as: str) -> None:
    error = rejection(read(BAD_INPUTS / name))

    assert error.code == "unsupported_format"
    assert named_as in error.message
    assert "accepted formats are JPEG, PNG, WebP, GIF" in error.message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"GIF87a\x01\x00", "GIF"),
        (b"GIF89a\x01\x00", "GIF"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"II*\x00\x08\x00\x00\x00", None),
        (b"\x00\x00\x00\x14ftypavif\x00\x00\x00\x00avif", "AVIF"),
        (b"\x00\x00\x00\x14ftypheic\x00\x00\x00\x00heic", "HEIF"),
        (b"\x00\x00\x00\x14ftypisom\x00\x00\x00\x00isom", None),
        (b"PNG\r\n\x1a\n", None),
        (b"", None),
    ],
)
def test_given_magic_bytes_when_sniffed_then_only_allow_listed_formats_are_named(
    data: bytes, expected: str | None
) -> None:
    assert sniff_format(data) == expected


def test_given_the_whole_corpus_when_inspected_then_pillows_truncated_loading_stays_off() -> None:
    for name, _ in ROWS:
        with contextlib.suppress(ImageRejectedError):
            inspect_image(read(BAD_INPUTS / name), LIMITS)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_given_the_same_image_when_rendered_twice_then_the_bytes_are_identical(fmt: OutputFormat) -> None:
    image = load_normalized(read(PHOTOS / "goldfish.png"), LIMITS, max_edge=600)

    first = render_variant(image, 400, fmt, 75)
    second = render_variant(image, 400, fmt, 75)

    assert first.data == second.data
    assert (first.width, first.height) == (400, 264)


def test_given_a_solid_red_image_when_placeholdered_then_red_dominates_and_the_blurhash_is_valid() -> None:
    result = placeholder(Image.new("RGB", (300, 200), (255, 0, 0)))

    red, green, blue = (int(result.dominant_color[i : i + 2], 16) for i in (1, 3, 5))
    assert red >= 250
    assert green <= 5
    assert blue <= 5
    assert BLURHASH_4X3.fullmatch(result.blurhash)


def test_given_a_transparent_image_when_placeholdered_then_it_is_seen_on_white() -> None:
    result = placeholder(Image.new("RGBA", (40, 40), (0, 0, 0, 0)))

    assert result.dominant_color == "#ffffff"


def test_given_a_tiny_image_when_placeholdered_then_the_callers_image_stays_usable() -> None:
    image = Image.new("RGB", (8, 8), (0, 128, 255))

    placeholder(image)

    assert image.getpixel((0, 0)) == (0, 128, 255)


def test_given_a_photo_when_placeholdered_then_a_valid_blurhash_and_colour_and_the_photo_untouched() -> None:
    image = load_normalized(read(PHOTOS / "goldfish.png"), LIMITS, max_edge=600)

    result = placeholder(image)

    assert BLURHASH_4X3.fullmatch(result.blurhash)
    assert re.fullmatch(r"#[0-9a-f]{6}", result.dominant_color)
    assert image.size == (600, 396)
    assert image.getpixel((0, 0)) is not None
