"""Scan and chunk bombs: files cheap in bytes, costly to decode, refused by their structure before decoding.

The bombs are built here from small images Pillow writes: the structure is what is counted, so the
image itself can stay tiny and every test fast.
"""

from __future__ import annotations

import io
import random
import struct
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from imgflow.errors import ImageRejectedError
from imgflow.imaging import ImageLimits, inspect_image, load_normalized
from imgflow.models import ImageFormat
from imgflow.structure import (
    MAX_JPEG_SCANS,
    MAX_JPEG_STRAY_BYTES,
    MIN_JPEG_SEGMENTS_ALLOWED,
    MIN_PNG_CHUNKS_ALLOWED,
    check_structure,
)

LIMITS = ImageLimits(max_bytes=25 * 1024 * 1024, max_pixels=60_000_000, max_side=16384, max_frames=300)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def progressive_jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, "JPEG", progressive=True, quality=90)
    return buffer.getvalue()


def count_scans(data: bytes) -> int:
    # Entropy-coded data never holds FF DA: an FF there is always followed by 00 or a restart marker.
    return data.count(b"\xff\xda")


def jpeg_with_scans(total: int) -> bytes:
    """A progressive JPEG whose last scan (an AC refinement, a few bytes) is repeated up to `total` scans.

    Each repeat is a pass over every block of the component, which is how a 267 KB file of 1,000 such
    scans took ~34 s to decode at 7000x7000.
    """
    data = progressive_jpeg()
    last_scan = data[data.rindex(b"\xff\xda") : -2]
    return data[:-2] + last_scan * (total - count_scans(data)) + data[-2:]


def jpeg_with_after_app0(inserted: bytes) -> bytes:
    data = progressive_jpeg()
    app0_end = 4 + int.from_bytes(data[4:6], "big")
    return data[:app0_end] + inserted + data[app0_end:]


def png_chunk(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, in order."""
    chunks, position = [], len(PNG_SIGNATURE)
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append((data[position + 4 : position + 8], data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def png_with_before_idat(inserted: bytes) -> bytes:
    data = small_png()
    idat = data.index(b"IDAT") - 4
    return data[:idat] + inserted + data[idat:]


def noise(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3))


def rechunked_png(data: bytes, idat_bytes: int) -> bytes:
    """The same PNG with its image data split into IDAT chunks of `idat_bytes`, as libpng splits it (8 KB)."""
    chunks = png_chunks(data)
    stream = b"".join(payload for kind, payload in chunks if kind == b"IDAT")
    first_idat = next(index for index, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    before = b"".join(png_chunk(kind, payload) for kind, payload in chunks[:first_idat])
    after = b"".join(png_chunk(kind, payload) for kind, payload in chunks[first_idat:] if kind != b"IDAT")
    idats = b"".join(png_chunk(b"IDAT", stream[i : i + idat_bytes]) for i in range(0, len(stream), idat_bytes))
    return PNG_SIGNATURE + before + idats + after


def too_complex(data: bytes) -> ImageRejectedError:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(data, LIMITS)
    assert caught.value.code == "too_complex"
    return caught.value


# JPEG


def test_given_a_progressive_jpeg_from_pillow_when_inspected_then_it_passes_with_its_few_scans() -> None:
    data = progressive_jpeg()

    assert count_scans(data) < 20
    assert inspect_image(data, LIMITS).width == 64


def test_given_a_jpeg_of_a_thousand_empty_scans_when_inspected_then_too_complex_before_decoding() -> None:
    data = jpeg_with_scans(1000)

    started = time.process_time()
    error = too_complex(data)

    assert time.process_time() - started < 0.5
    assert f"more than {MAX_JPEG_SCANS} scans" in error.message


def test_given_a_jpeg_at_the_scan_limit_when_inspected_then_it_passes_and_one_more_is_too_complex() -> None:
    assert inspect_image(jpeg_with_scans(MAX_JPEG_SCANS), LIMITS).format == "JPEG"
    too_complex(jpeg_with_scans(MAX_JPEG_SCANS + 1))


def test_given_a_scan_bomb_when_normalized_for_variants_then_too_complex_as_well() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        load_normalized(jpeg_with_scans(1000), LIMITS, max_edge=150)

    assert caught.value.code == "too_complex"


@pytest.mark.parametrize(
    ("part", "what"),
    [(b"\xff\xfe\x00\x02", "empty comment"), (b"\xff\xe5\x00\x02", "empty APP5"), (b"\xff\xd0", "restart marker")],
)
def test_given_a_jpeg_of_thousands_of_tiny_segments_when_inspected_then_too_complex(part: bytes, what: str) -> None:
    # Pillow reads every segment before the first scan in Python: six million empty comments took ~12 s.
    error = too_complex(jpeg_with_after_app0(part * (MIN_JPEG_SEGMENTS_ALLOWED + 1)))

    assert "marker segments" in error.message, what


def test_given_a_big_jpeg_when_checked_then_it_may_hold_a_segment_per_kilobyte() -> None:
    # Metadata split into many segments (an ICC profile or XMP in 64 KB pieces) grows with the file.
    many = MIN_JPEG_SEGMENTS_ALLOWED + 500
    two_kilobytes = b"\xff\xe9" + (2046).to_bytes(2, "big") + bytes(2044)

    check_structure(jpeg_with_after_app0(two_kilobytes * many), "JPEG")
    with pytest.raises(ImageRejectedError):
        check_structure(jpeg_with_after_app0(b"\xff\xfe\x00\x02" * many), "JPEG")


def test_given_a_jpeg_with_a_few_stray_bytes_between_segments_when_inspected_then_it_passes() -> None:
    # Damaged writers leave fill bytes and garbage between segments; decoders skip them.
    data = jpeg_with_after_app0(b"\xff" * 16 + b"\x00" * 16)

    assert inspect_image(data, LIMITS).format == "JPEG"


@pytest.mark.parametrize("stray", [b"\xff", b"\x00", b"\xff\x00"])
def test_given_a_jpeg_padded_with_megabytes_of_stray_bytes_when_inspected_then_too_complex(stray: bytes) -> None:
    # Pillow steps through each one in Python before the first scan: 20 MB of fill bytes took ~17 s.
    data = jpeg_with_after_app0(stray * (4 * 2**20 // len(stray)))

    started = time.process_time()
    error = too_complex(data)

    assert time.process_time() - started < 0.5
    assert f"more than {MAX_JPEG_STRAY_BYTES:,} stray bytes" in error.message


def test_given_a_large_noisy_jpeg_when_checked_then_its_entropy_data_is_not_mistaken_for_segments() -> None:
    # Noise puts many FF bytes (stuffed as FF 00) in the scans' data, and restart markers between rows.
    buffer = io.BytesIO()
    noise((1024, 768)).save(buffer, "JPEG", quality=95, progressive=True, restart_marker_rows=1)
    data = buffer.getvalue()

    check_structure(data, "JPEG")
    assert inspect_image(data, LIMITS).width == 1024


# PNG


@pytest.mark.parametrize("kind", [b"prIv", b"tEXt", b"IDAT"])
def test_given_a_png_of_thousands_of_empty_chunks_when_inspected_then_too_complex_before_decoding(
    kind: bytes,
) -> None:
    # Two million of them (24 MB) took ~14 s to validate.
    data = png_with_before_idat(png_chunk(kind) * (MIN_PNG_CHUNKS_ALLOWED + 1))

    started = time.process_time()
    error = too_complex(data)

    assert time.process_time() - started < 0.5
    assert "chunks" in error.message


def test_given_a_png_with_text_chunks_when_inspected_then_it_passes() -> None:
    info = PngImagePlugin.PngInfo()
    for number in range(20):
        info.add_text(f"key{number}", "value" * 10, zip=number % 2 == 0)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buffer, "PNG", pnginfo=info)

    assert inspect_image(buffer.getvalue(), LIMITS).format == "PNG"


def test_given_a_big_png_from_pillow_when_inspected_then_its_hundreds_of_idat_chunks_pass() -> None:
    buffer = io.BytesIO()
    noise((2048, 2048)).save(buffer, "PNG", compress_level=0)
    data = buffer.getvalue()

    assert sum(kind == b"IDAT" for kind, _ in png_chunks(data)) > 150
    assert inspect_image(data, LIMITS).width == 2048


def test_given_a_png_split_as_libpng_splits_it_when_inspected_then_it_passes() -> None:
    buffer = io.BytesIO()
    noise((1024, 1024)).save(buffer, "PNG", compress_level=1)
    # Smaller than libpng's 8 KB, for margin: one chunk per 4 KB of a 3 MB file.
    data = rechunked_png(buffer.getvalue(), 4096)

    assert len(png_chunks(data)) > 700
    assert inspect_image(data, LIMITS).height == 1024


def test_given_a_big_png_when_checked_then_it_may_hold_a_chunk_per_kilobyte() -> None:
    many = MIN_PNG_CHUNKS_ALLOWED + 1000
    kilobyte_and_a_half = png_chunk(b"prIv", bytes(1524))

    check_structure(png_with_before_idat(kilobyte_and_a_half * many), "PNG")
    with pytest.raises(ImageRejectedError):
        check_structure(png_with_before_idat(png_chunk(b"prIv") * many), "PNG")


def test_given_an_animated_png_when_inspected_then_its_frame_chunks_pass() -> None:
    frames = [Image.new("RGB", (16, 16), (index, 0, 0)) for index in range(200)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])

    assert inspect_image(buffer.getvalue(), LIMITS).frames == 200


# Truncated and malformed structures are the decoder's to reject


def cuts(data: bytes) -> list[bytes]:
    return [data[:length] for length in range(len(data))]


@pytest.mark.parametrize(("fmt", "data"), [("JPEG", jpeg_with_scans(12)), ("PNG", small_png())])
def test_given_every_truncation_of_a_file_when_checked_then_the_walk_never_raises(
    fmt: ImageFormat, data: bytes
) -> None:
    for cut in cuts(data):
        check_structure(cut, fmt)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_given_random_bytes_behind_the_signature_when_checked_then_the_walk_ends_without_crashing(
    fmt: ImageFormat,
) -> None:
    signature = b"\xff\xd8" if fmt == "JPEG" else PNG_SIGNATURE
    generator = random.Random(11)
    for _ in range(200):
        body = generator.randbytes(generator.randrange(1, 4096))
        check_structure(signature + body, fmt)


@pytest.mark.parametrize(
    "data",
    [
        jpeg_with_scans(12)[:-300],
        progressive_jpeg()[:200],
        png_with_before_idat(png_chunk(b"tEXt", b"k\0v"))[:-30],
        small_png()[:-6],
    ],
    ids=["jpeg-mid-scan", "jpeg-mid-header", "png-mid-idat", "png-mid-iend"],
)
def test_given_a_truncated_file_when_inspected_then_the_decoder_rejects_it_as_corrupt(data: bytes) -> None:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(data, LIMITS)

    assert caught.value.code == "corrupt_image"


def test_given_a_chunk_declaring_a_huge_length_when_checked_then_the_walk_ends() -> None:
    data = small_png()
    ihdr_end = len(PNG_SIGNATURE) + 25
    lying = data[:ihdr_end] + b"\xff\xff\xff\xf0tEXt" + data[ihdr_end + 8 :]

    check_structure(lying, "PNG")


def test_given_gif_and_webp_when_checked_then_they_are_not_walked() -> None:
    # Their parsers stay linear in bytes (GIF) or run in C (WebP's RIFF chunks); see imgflow.structure.
    check_structure(b"GIF89a" + b"\x21\xfe\x00" * 100_000, "GIF")
    check_structure(b"RIFF\0\0\0\0WEBP" + b"XYZW\0\0\0\0" * 100_000, "WEBP")
