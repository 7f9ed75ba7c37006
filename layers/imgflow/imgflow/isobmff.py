"""HEIF and AVIF containers read from their bytes, without a decoder: the brand and what the header declares.

Both are ISO base media files (ISO/IEC 14496-12): a `ftyp` box names the brands, and a `meta` box lists
the items (coded images, grid and tiles, thumbnails, depth and gain maps, EXIF), the primary item
(`pitm`) and each item's properties (`iprp`: `ispe` gives an image's width and height, `colr` its colour
space). That is enough to bound an upload before libheif or libavif allocates anything (the largest size
any image declares, the number of items), and to learn the colour space of a primary image that names
it by CICP code points (`nclx`) rather than with an ICC profile, which neither decoder converts. An image
sequence (an animated AVIF) has a `moov` box too, whose tracks declare their frame size (`tkhd`), how
many frames they hold (`stsz`) and whether they repeat (`edts`/`elst`). A
structure the walk cannot follow (truncated, malformed) yields what was read so far and is left to the
decoder, which rejects it as corrupt.
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
class Cicp:
    """Colour code points of ITU-T H.273, as an `nclx` colour box gives them."""

    primaries: int
    transfer: int
    matrix: int


@dataclass(frozen=True)
class ContainerHeader:
    """What a HEIF/AVIF header declares: the largest image (width, height), if any, and its counts."""

    largest_size: tuple[int, int] | None
    items: int
    boxes: int
    # The primary image's colour as code points, when that is all it has (no ICC profile).
    primary_cicp: Cicp | None = None
    # An image sequence's frames (its longest track's samples), and how many times it plays (0: forever).
    frames: int | None = None
    plays: int | None = None


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
    properties: list[tuple[bytes, int, int]] = []
    associations: dict[int, list[int]] = {}
    items, primary = 0, None
    tracks: list[_Track] = []
    for box_type, start, end in _boxes(data, 0, len(data), counter):
        if box_type == b"moov":
            tracks += [
                _track(data, s, e, counter) for kind, s, e in _boxes(data, start, end, counter) if kind == b"trak"
            ]
        if box_type != b"meta":
            continue
        for child, child_start, child_end in _boxes(data, start + _FULL_BOX_HEADER, end, counter):
            if child == b"iinf":
                items = max(items, _item_count(data, child_start, child_end))
            elif child == b"pitm":
                primary = _primary_item(data, child_start, child_end)
            elif child == b"iprp":
                for part, part_start, part_end in _boxes(data, child_start, child_end, counter):
                    if part == b"ipco":
                        properties = list(_boxes(data, part_start, part_end, counter))
                    elif part == b"ipma":
                        associations = _associations(data, part_start, part_end)
    sizes = [size for prop, start, end in properties if prop == b"ispe" and (size := _size(data, start, end))]
    sizes += [track.size for track in tracks if track.size is not None]
    largest = max(sizes, key=lambda size: size[0] * size[1], default=None)
    colours = [properties[index - 1] for index in associations.get(primary or 0, []) if 0 < index <= len(properties)]
    longest = max(tracks, key=lambda track: track.samples, default=None)
    return ContainerHeader(
        largest_size=largest,
        items=items,
        boxes=counter.boxes,
        primary_cicp=_cicp_only(data, colours),
        frames=longest.samples if longest else None,
        plays=longest.plays if longest else None,
    )


@dataclass(frozen=True)
class _Track:
    size: tuple[int, int] | None
    samples: int
    plays: int


def _track(data: bytes, start: int, end: int, counter: _Counter) -> _Track:
    """A `trak` box's frame size, sample count and plays, as libavif reads them (ISO/IEC 14496-12 8.3, 8.6.6)."""
    size, duration, samples, plays = None, None, 0, 0  # no edit list: a player loops it
    for box, box_start, box_end in _boxes(data, start, end, counter):
        if box == b"tkhd":
            size, duration = _track_header(data, box_start, box_end)
        elif box == b"mdia":
            for table, table_start, table_end in _descend(
                data, box_start, box_end, counter, (b"minf", b"stbl", b"stsz")
            ):
                if table == b"stsz" and table_start + 12 <= table_end:
                    samples = int.from_bytes(data[table_start + 8 : table_start + 12], "big")
        elif box == b"edts":
            for edits, edits_start, edits_end in _boxes(data, box_start, box_end, counter):
                if edits == b"elst":
                    plays = _plays(data, edits_start, edits_end, duration)
    return _Track(size=size, samples=samples, plays=plays)


def _descend(
    data: bytes, start: int, end: int, counter: _Counter, path: tuple[bytes, ...]
) -> Iterator[tuple[bytes, int, int]]:
    """The boxes at the end of `path` (a box type per level) below start..end."""
    for box, box_start, box_end in _boxes(data, start, end, counter):
        if box == path[0]:
            if len(path) == 1:
                yield box, box_start, box_end
            else:
                yield from _descend(data, box_start, box_end, counter, path[1:])


def _track_header(data: bytes, start: int, end: int) -> tuple[tuple[int, int] | None, int | None]:
    """A `tkhd`'s width and height (16.16 fixed point, its last 8 bytes) and duration (None: indefinite)."""
    wide = start < end and data[start] == 1
    # Past the creation and modification times, the track id and a reserved word.
    at, width = start + _FULL_BOX_HEADER + (16 if wide else 8) + 8, 8 if wide else 4
    duration = int.from_bytes(data[at : at + width], "big") if at + width <= end else None
    if duration == 2 ** (8 * width) - 1:
        duration = None
    size = None
    if end - start >= _FULL_BOX_HEADER + 80:
        size = int.from_bytes(data[end - 8 : end - 6], "big"), int.from_bytes(data[end - 4 : end - 2], "big")
    return size, duration


def _plays(data: bytes, start: int, end: int, track_duration: int | None) -> int:
    """How many times an edit list makes a track play: once unless it repeats (flag 1), then as often as its
    first segment fits in the track's duration, or forever (0) when that is indefinite."""
    if start + 8 > end or not data[start + 3] & 1:
        return 1
    width = 8 if data[start] == 1 else 4
    first = start + 8
    segment = int.from_bytes(data[first : first + width], "big") if first + width <= end else 0
    if track_duration is None or segment == 0:
        return 0
    return max(1, -(-track_duration // segment))


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


def _size(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    first = start + _FULL_BOX_HEADER
    if first + 8 > end:
        return None
    return int.from_bytes(data[first : first + 4], "big"), int.from_bytes(data[first + 4 : first + 8], "big")


def _primary_item(data: bytes, start: int, end: int) -> int | None:
    width = 2 if start < end and data[start] == 0 else 4
    first = start + _FULL_BOX_HEADER
    return int.from_bytes(data[first : first + width], "big") if first + width <= end else None


def _associations(data: bytes, start: int, end: int) -> dict[int, list[int]]:
    """Item id -> the 1-based indexes of its properties in `ipco`, as `ipma` lists them."""
    if start + 8 > end:
        return {}
    version, wide_indexes = data[start], data[start + 3] & 1
    id_width, index_width = (2 if version == 0 else 4), (2 if wide_indexes else 1)
    index_mask = 0x7FFF if wide_indexes else 0x7F  # the top bit says "essential"
    entries = int.from_bytes(data[start + 4 : start + 8], "big")
    position, found = start + 8, {}
    for _ in range(entries):
        if position + id_width + 1 > end:
            break
        item = int.from_bytes(data[position : position + id_width], "big")
        count = data[position + id_width]
        position += id_width + 1
        indexes = [
            int.from_bytes(data[at : at + index_width], "big") & index_mask
            for at in range(position, min(position + count * index_width, end), index_width)
        ]
        found[item] = indexes
        position += count * index_width
    return found


def _cicp_only(data: bytes, properties: list[tuple[bytes, int, int]]) -> Cicp | None:
    """The `nclx` code points among an image's colour properties, unless it also has an ICC profile."""
    colours = [(data[start : start + 4], start, end) for prop, start, end in properties if prop == b"colr"]
    if any(kind in (b"prof", b"rICC") for kind, _, _ in colours):
        return None
    for kind, start, end in colours:
        if kind == b"nclx" and start + 10 <= end:
            codes = [int.from_bytes(data[at : at + 2], "big") for at in (start + 4, start + 6, start + 8)]
            return Cicp(*codes)
    return None
