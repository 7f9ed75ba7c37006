"""Bounds on the container structure of an upload, read from its bytes before any decoder runs.

A file can be cheap in bytes and still costly to decode: every JPEG scan is a pass over every block
of a component, however little data it holds, and Pillow reads each JPEG marker segment before the
first scan, each stray byte between them and each PNG chunk in Python. A 267 KB progressive JPEG of
1,000 empty scans took ~34 s to decode, a 24 MB PNG of two million empty chunks ~14 s. Real encoders
write a handful of these parts, so a file with far more is refused (`too_complex`) before decoding.

The walk only counts: a structure it cannot follow (truncated, malformed) is left to the decoder,
which rejects it as corrupt.

HEIF and AVIF are walked as far as their `meta` box and an image sequence's track tables (imgflow.isobmff):
libheif and libavif build an object per box, per item and per sample while parsing, before any pixel.

GIF and WebP are not walked. WebP's chunks are parsed by libwebp in C (two million empty chunks, or
half a million frames, take ~0.1 s), and the GIF parser's worst case stays linear in the bytes, so
the byte limit bounds it (25 MB of empty comment blocks or frames takes ~3 s).
"""

from __future__ import annotations

import re

from imgflow.errors import ImageRejectedError
from imgflow.isobmff import read_header
from imgflow.models import ImageFormat

# A progressive JPEG from libjpeg has 10 scans (6 in greyscale, 18 in CMYK); optimizing encoders
# (mozjpeg, jpegli) write a few more. Each scan costs a pass over its component, up to ~40 ms on a
# 60 MP image, so this bounds the wasted work at a few seconds.
MAX_JPEG_SCANS = 100
# Marker segments (metadata, tables, scans) and PNG chunks: real files have tens, or hundreds when
# big metadata is split into 64 KB JPEG segments or image data into libpng's 8 KB IDAT chunks. So
# the limit is this many, or one part per KB of file when that allows more; Pillow spends a few
# microseconds on each part, a fraction of a second at the byte limit.
MIN_JPEG_SEGMENTS_ALLOWED = 1_000
# Higher for PNG: an animated PNG spends two chunks on each frame.
MIN_PNG_CHUNKS_ALLOWED = 10_000
BYTES_PER_PART = 1024
# Fill or garbage bytes between JPEG segments: decoders skip them, a few at a time in damaged files,
# but Pillow reads those before the first scan one by one in Python (~1 µs each).
MAX_JPEG_STRAY_BYTES = 65_536

# Items of a HEIF/AVIF: an iPhone's 12 MP photo has about 60 (48 tiles of a grid, a thumbnail, EXIF,
# depth and gain maps), a 48 MP one about 200.
MAX_ISO_ITEMS = 1_000
# Boxes walked at the top level, in `meta` and in its property container: real files have tens.
MAX_ISO_BOXES = 10_000

_PNG_SIGNATURE_LENGTH = 8
_PNG_CHUNK_OVERHEAD = 12  # length, type and CRC
_JPEG_SOS = 0xDA
_JPEG_EOI = 0xD9
_JPEG_SOI = 0xD8
# RSTn and TEM carry no length. Restart markers belong inside a scan's data; anywhere else they
# are parts of their own, each read by Pillow before the first scan.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
# Between segments, the next marker is the next 0xFF followed by neither 0x00 (a stuffed byte) nor
# 0xFF (fill), as libjpeg looks for it.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xff]")
# A scan's entropy-coded data runs to the first marker that is not a restart marker.
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def check_structure(data: bytes, fmt: ImageFormat) -> None:
    """Refuse a JPEG, PNG, HEIF or AVIF made of far more parts than any encoder writes; other formats pass."""
    if fmt == "JPEG":
        _check_jpeg(data)
    elif fmt == "PNG":
        _check_png(data)
    elif fmt in ("HEIF", "AVIF"):
        _check_iso(data)


def _parts_allowed(data: bytes, minimum: int) -> int:
    return max(minimum, len(data) // BYTES_PER_PART)


def _check_jpeg(data: bytes) -> None:
    max_segments = _parts_allowed(data, MIN_JPEG_SEGMENTS_ALLOWED)
    segments = scans = stray = 0
    position = 2  # past SOI
    while True:
        # Only as far as the stray bytes left allow: a run of fill bytes is slow to search.
        window_end = position + MAX_JPEG_STRAY_BYTES - stray + 2
        if (found := _JPEG_NEXT_MARKER.search(data, position, window_end)) is None:
            if window_end < len(data):
                raise _too_complex(f"the JPEG has more than {MAX_JPEG_STRAY_BYTES:,} stray bytes between its segments")
            return
        stray += found.start() - position
        marker = data[found.end() - 1]
        position = found.end()
        if marker in (_JPEG_EOI, _JPEG_SOI):
            return
        segments += 1
        if segments > max_segments:
            raise _too_complex(f"the JPEG has more than {max_segments:,} marker segments")
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if position + 2 > len(data):
            return
        position += int.from_bytes(data[position : position + 2], "big")
        if marker == _JPEG_SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise _too_complex(f"the JPEG has more than {MAX_JPEG_SCANS} scans (progressive passes)")
            if (scan_end := _JPEG_SCAN_END.search(data, position)) is None:
                return
            position = scan_end.start()


def _check_png(data: bytes) -> None:
    max_chunks = _parts_allowed(data, MIN_PNG_CHUNKS_ALLOWED)
    chunks = 0
    position = _PNG_SIGNATURE_LENGTH
    while position + _PNG_CHUNK_OVERHEAD <= len(data):
        chunks += 1
        if chunks > max_chunks:
            raise _too_complex(f"the PNG is split into more than {max_chunks:,} chunks")
        if data[position + 4 : position + 8] == b"IEND":
            return
        position += _PNG_CHUNK_OVERHEAD + int.from_bytes(data[position : position + 4], "big")


def _check_iso(data: bytes) -> None:
    header = read_header(data, MAX_ISO_BOXES)
    if header.boxes > MAX_ISO_BOXES:
        raise _too_complex(f"the file has more than {MAX_ISO_BOXES:,} boxes")
    if header.items > MAX_ISO_ITEMS:
        raise _too_complex(f"the file declares {header.items:,} items (images, tiles, metadata)")


def _too_complex(what: str) -> ImageRejectedError:
    return ImageRejectedError(
        "too_complex", f"{what}, far more than real encoders write; it would be too costly to decode"
    )
