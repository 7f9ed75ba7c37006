"""HEIF and AVIF containers read from their bytes, without a decoder: the brand and what the header declares.

Both are ISO base media files (ISO/IEC 14496-12): a `ftyp` box names the brands, and a `meta` box lists
the items (coded images, grid and tiles, thumbnails, depth and gain maps, EXIF), the primary item
(`pitm`) and each item's properties (`iprp`: `ispe` gives an image's width and height). That is enough
to bound an upload before libheif or libavif allocates anything: the largest size any image declares
and the number of items. A structure the walk cannot follow (truncated, malformed) yields what was
read so far and is left to the decoder, which rejects it as corrupt.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

IsoImageFormat = Literal["HEIF", "AVIF"]

# Major or compatible brands (ISO/IEC 23008-12 for HEVC in HEIF; AV1 Image File Format for AVIF).
# `mif1`/`msf1` alone say "some HEIF", not which codec, so they decide nothing by themselves.
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_AV1_BRANDS = frozenset({b"avif", b"avis"})
_BOX_HEADER = 8
_FULL_BOX_HEADER = 4  # version and flags


@dataclass(frozen=True)
class ContainerHeader:
    """What a HEIF/AVIF header declares: the largest image (width, height), if any, and its counts."""

    largest_size: tuple[int, int] | None
    items: int
    boxes: int


def sniff_brand(data: bytes) -> IsoImageFormat | None:
    """HEIF (HEVC) or AVIF by the `ftyp` box's brands, the major brand first; None for any other ISO file."""
    if data[4:8] != b"ftyp" or len(data) < 16:
        return None
    ftyp_end = min(len(data), max(16, int.from_bytes(data[0:4], "big")))
    major = data[8:12]
    compatible = [data[offset : offset + 4] for offset in range(16, ftyp_end - 3, 4)]
    for brand in (major, *compatible):
        if brand in _AV1_BRANDS:
            return "AVIF"
        if brand in _HEVC_BRANDS:
            return "HEIF"
    return None


def read_header(data: bytes, max_boxes: int) -> ContainerHeader:
    """The sizes and counts the `meta` box declares; walks only box headers and a few small boxes.

    The walk stops after `max_boxes` boxes (then `boxes` is one more): a file of millions of empty
    boxes would otherwise cost seconds of Python.
    """
    counter = _Counter(max_boxes)
    sizes: list[tuple[int, int]] = []
    items = 0
    for box_type, start, end in _boxes(data, 0, len(data), counter):
        if box_type != b"meta":
            continue
        for child, child_start, child_end in _boxes(data, start + _FULL_BOX_HEADER, end, counter):
            if child == b"iinf":
                items = max(items, _item_count(data, child_start, child_end))
            elif child == b"iprp":
                sizes.extend(_image_sizes(data, child_start, child_end, counter))
    largest = max(sizes, key=lambda size: size[0] * size[1], default=None)
    return ContainerHeader(largest_size=largest, items=items, boxes=counter.boxes)


class _Counter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.boxes = 0


def _boxes(data: bytes, start: int, end: int, counter: _Counter) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box between start and end, stopping where the structure breaks."""
    position = start
    while position + _BOX_HEADER <= end:
        size = int.from_bytes(data[position : position + 4], "big")
        box_type = data[position + 4 : position + 8]
        header = _BOX_HEADER
        if size == 1:  # a 64-bit size follows
            if position + 16 > end:
                return
            size, header = int.from_bytes(data[position + 8 : position + 16], "big"), 16
        elif size == 0:  # to the end of the enclosing box
            size = end - position
        counter.boxes += 1
        if size < header or counter.boxes > counter.limit:
            return
        # A box reaching past its parent is truncated: its header still counts, its payload is cut.
        yield box_type, position + header, min(position + size, end)
        position += size


def _item_count(data: bytes, start: int, end: int) -> int:
    version = data[start] if start < end else 0
    width = 2 if version == 0 else 4
    first = start + _FULL_BOX_HEADER
    return int.from_bytes(data[first : first + width], "big") if first + width <= end else 0


def _image_sizes(data: bytes, start: int, end: int, counter: _Counter) -> Iterator[tuple[int, int]]:
    for child, child_start, child_end in _boxes(data, start, end, counter):
        if child != b"ipco":
            continue
        for prop, prop_start, prop_end in _boxes(data, child_start, child_end, counter):
            first = prop_start + _FULL_BOX_HEADER
            if prop == b"ispe" and first + 8 <= prop_end:
                yield int.from_bytes(data[first : first + 4], "big"), int.from_bytes(data[first + 4 : first + 8], "big")
