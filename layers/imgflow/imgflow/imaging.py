"""The imaging core: validate uploads, decode them once, render web variants and a placeholder.

Pure functions on bytes and Pillow images; nothing here knows about AWS. Only the decoders of the
allow-listed formats ever run, and every bound (bytes, pixels, side, frames, container structure) is
checked before pixels are decoded.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import NoReturn

import pillow_heif
from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps, ImageSequence, UnidentifiedImageError

from imgflow import blurhash, hdr, icc
from imgflow.errors import ImageRejectedError
from imgflow.isobmff import read_header, sniff_brand
from imgflow.models import ImageFormat, ImageInfo, ImageLimits, OutputFormat, Placeholder
from imgflow.structure import MAX_ISO_BOXES, check_structure

ACCEPTED_FORMATS = "JPEG, PNG, WebP, GIF, HEIC, AVIF"
_DISPLAY_NAMES: dict[ImageFormat, str] = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "WEBP": "WebP",
    "GIF": "GIF",
    "HEIF": "HEIC",
    "AVIF": "AVIF",
}
# Containers whose parser is a library's (libheif, libavif): a file they cannot open at all, once its
# brands have said what it is, is damaged rather than of another format.
_ISO_FORMATS: frozenset[ImageFormat] = frozenset({"HEIF", "AVIF"})

# Only used to name what was uploaded instead; none of these parsers is ever run.
_FOREIGN_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"II+\x00", "a TIFF image"),
    (b"MM\x00+", "a TIFF image"),
    (b"8BPS", "a Photoshop (PSD) document"),
    (b"%!PS", "an EPS/PostScript document"),
    (b"\xc5\xd0\xd3\xc6", "an EPS/PostScript document"),
    (b"%PDF", "a PDF document"),
    (b"DDS ", "a DDS texture"),
    (b"\x01\xda", "an SGI image"),
    (b"BM", "a BMP image"),
)

# What a hostile or damaged file can make Pillow's parsers and decoders raise; libavif (through Pillow)
# and libheif (through pillow-heif) report a damaged file as a RuntimeError ("Failed to decode ...").
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    RuntimeError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    struct.error,
    zlib.error,
)

# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})
# What exif_transpose does for each EXIF orientation, applied to every frame of an animation alike.
_ORIENTATION_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# The formats whose frames make an animation that variants keep (an AVIF image sequence among them; a HEIF
# of several images is a burst or an edit beside its original, and gives its primary image).
_ANIMATED_FORMATS: frozenset[ImageFormat] = frozenset({"GIF", "WEBP", "AVIF"})
# H.273 code points: P3 primaries with the D65 white (Display P3); the sRGB transfer, and BT.709's,
# which encoders write for sRGB-like content too (the curves differ by a few levels in the shadows).
_CICP_DISPLAY_P3 = 12
_CICP_SRGB_LIKE_TRANSFERS = frozenset({1, 13})
# The encoders' effort, from the bytes-versus-CPU frontier `make bench` measures (README, Performance):
# WebP method 3 writes the bytes and PSNR of the default 4 (within 0.3%, 0.01 dB) for the same or up to
# 10% less CPU; 2 and below skip the rate-distortion search (5-15% more bytes at the same PSNR), 5 and 6
# cost 25-90% more CPU for 2-4% fewer bytes and 0.04-0.1 dB less. AVIF speed 8 takes a third of the CPU of speed 6 for
# 4% more bytes (0.2 dB); 10 saves another 40% of CPU for 1.5-5% more bytes and 0.3 dB less at 1200 px.
_WEBP_METHOD = 3
_AVIF_SPEED = 8
# Animated variants are encoded with less effort than stills: one encode per frame and preset.
_ANIMATION_WEBP_METHOD = 2
_RESIZE_REDUCING_GAP = 3.0
_RESIZE_BAND_BYTES = 4 * 2**20
# The JPEG colour modes libvips decodes as Pillow does (its CMYK goes through a profile of its own).
_LIBVIPS_JPEG_MODES = frozenset({"RGB", "L"})
_BLURHASH_COMPONENTS = (4, 3)
_PLACEHOLDER_EDGE = 32
_DOMINANT_PALETTE_SIZE = 8


@dataclass(frozen=True)
class Animation:
    """Every frame of an animation, upright, sRGB and RGBA at full size, as shown (disposal applied)."""

    frames: list[Image.Image]
    durations_ms: list[int]
    loop: int  # how many times it plays; 0 is forever


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    width: int
    height: int
    content_type: str


def sniff_format(data: bytes) -> ImageFormat | None:
    """The allow-listed format the magic bytes announce, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return sniff_brand(data)


def inspect_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Validate an upload by its bytes, decoding its first frame to prove it decodes (every pixel; for a
    JPEG, every coefficient)."""
    with _opened(data, limits) as (image, fmt):
        width, height = image.size
        if fmt == "JPEG":
            # Every coefficient is still entropy-decoded, which is where a damaged or cut-off JPEG fails
            # (the same outcome as a full decode for every cut and bit flip tried); only the inverse DCT
            # runs at 1/8 scale: 0.03 s of CPU for a 24 MP baseline JPEG instead of 0.11, and 1.5 MB
            # instead of 96. Progressive files save less (12 MP: 0.10 s against 0.14).
            image.draft(image.mode, (math.ceil(width / 8), math.ceil(height / 8)))
        image.load()
        if _orientation(image) in _ROTATED_ORIENTATIONS:
            width, height = height, width
        frames = _frame_count(image)
        # An animation's every frame is decoded too: its variants will need them all.
        duration = sum(_frame_durations(image)) if _is_animation(fmt, frames) else None
    return ImageInfo(
        format=fmt, width=width, height=height, frames=frames, animated=duration is not None, duration_ms=duration
    )


def load_animation(data: bytes, limits: ImageLimits) -> Animation:
    """Decode every frame of a GIF, WebP or AVIF animation once: upright, sRGB, RGBA, no metadata."""
    with _opened(data, limits) as (image, fmt):
        if not _is_animation(fmt, _frame_count(image)):
            raise ValueError("not an animation")
        icc_profile = image.info.get("icc_profile") or _profile_from_code_points(data, fmt)
        transpose = _ORIENTATION_TRANSPOSES.get(_orientation(image))
        loop = _plays(image, data, fmt)
        frames, durations = [], []
        for frame in ImageSequence.Iterator(image):
            frame.load()
            durations.append(int(frame.info.get("duration", 0)))
            # Pillow hands each frame over as shown: GIF disposal and WebP blending are already applied.
            still = _to_srgb(frame.convert("RGBA"), icc_profile)
            frames.append(still.transpose(transpose) if transpose is not None else still)
    return Animation(frames=frames, durations_ms=durations, loop=loop)


def animated_formats(animation: Animation, requested: Collection[OutputFormat]) -> list[OutputFormat]:
    """The formats an animation's variants move in: WebP always, AVIF too when asked for and it can loop.

    Pillow writes an AVIF sequence with no repetition count (it plays forever), so only an animation
    that loops forever keeps its behaviour as AVIF. JPEG has no animation.
    """
    avif: list[OutputFormat] = ["avif"] if "avif" in requested and animation.loop == 0 else []
    return ["webp", *avif]


def render_animation(animation: Animation, long_edge: int, fmt: OutputFormat, quality: int) -> RenderedImage:
    """Encode an animated variant: every frame and its duration kept (and the loop count in WebP), no metadata."""
    frames = [resize_to_long_edge(frame, long_edge) for frame in animation.frames]
    buffer = io.BytesIO()
    metadata = {"exif": b"", "xmp": b"", "icc_profile": b""}
    if fmt == "webp":
        options: dict[str, object] = {"loop": animation.loop, "method": _ANIMATION_WEBP_METHOD}
    elif fmt == "avif":
        options = {"speed": 8}
    else:
        raise ValueError(f"no animated {fmt}")
    frames[0].save(
        buffer,
        format=fmt.upper(),
        save_all=True,
        append_images=frames[1:],
        duration=animation.durations_ms,
        quality=quality,
        **options,
        **metadata,
    )
    return RenderedImage(buffer.getvalue(), frames[0].width, frames[0].height, f"image/{fmt}")


def load_normalized(data: bytes, limits: ImageLimits, max_edge: int | None = None, workers: int = 1) -> Image.Image:
    """Decode the first frame once: upright, sRGB, 8-bit RGB or RGBA, no metadata, at most `max_edge`
    (resized on up to `workers` threads)."""
    with _opened(data, limits) as (image, fmt):
        hdr_source = _hdr_source(image, data, fmt)
        # Turned upright after the resize: the same pixels, and turning the smaller image costs less.
        transpose = _ORIENTATION_TRANSPOSES.get(_orientation(image))
        # A JPEG is decoded at the scale it is needed at; any other format at full size, then resized.
        jpeg_size = None
        if fmt == "JPEG" and max_edge is not None and max(image.size) > max_edge:
            jpeg_size = _long_edge_size(image.size, max_edge)
        if hdr_source is not None:
            # HDR is decoded and tone-mapped by _load_hdr, from 16 bits where it can: not loaded here at 8.
            if jpeg_size is not None:
                image.draft("RGB", jpeg_size)  # the largest 1/2^n scale that keeps both sides at least this
            icc_profile, normalized = None, _load_hdr(image, data, hdr_source)
        else:
            icc_profile = image.info.get("icc_profile") or _profile_from_code_points(data, fmt)
            decoded: Image.Image = image
            if jpeg_size is not None and image.mode in _LIBVIPS_JPEG_MODES:
                # Pillow has read the header (profile, orientation) and never decodes the pixels.
                decoded, max_edge = _shrink_jpeg(data, image.size, jpeg_size, workers), None
            elif jpeg_size is not None:
                image.draft("RGB", jpeg_size)
            decoded.load()
            normalized = _colour_managed_mode(decoded)
            del decoded
    del image  # often what `normalized` is: the full decode goes as soon as it is resized
    if max_edge is not None:
        normalized = resize_to_long_edge(normalized, max_edge, workers)
    # Into sRGB after the resize, as libvips's thumbnail does: the transform costs per pixel (0.45 s of
    # CPU for a 24 MP Display P3 photo, 0.2 s at 4096 px). The two orders differ only where colours
    # change sharply, as resizing in gamma space does anyway: 44-50 dB PSNR between them at 400-1200 px,
    # well under what the encoders take away (38-42 dB at q85).
    normalized = _to_srgb(normalized, icc_profile)
    if transpose is not None:
        normalized = normalized.transpose(transpose)
    normalized.info.clear()
    return normalized


def resize_to_long_edge(image: Image.Image, long_edge: int, workers: int = 1) -> Image.Image:
    """The image with its long edge at `long_edge`; the image itself when it is no larger. With `workers`
    above 1, bands of rows are resized on that many threads (Pillow's resize releases the GIL)."""
    width, height = image.size
    if max(width, height) <= long_edge:
        return image
    size = _long_edge_size(image.size, long_edge)
    # Under 2x, LANCZOS's outer lobes cost half as much again as BICUBIC for 0.9 dB at 57-58 dB PSNR
    # (24 MP to 4096 px, make bench), far below what the encoders take away (42 dB at WebP q85).
    resample = Image.Resampling.BICUBIC if max(width, height) < 2 * long_edge else Image.Resampling.LANCZOS
    # Pillow resizes along rows first, into an image of the new width and the whole old height (65 MB
    # from 24 MP to 4096 px, beside the decode and the result): a band of rows at a time, it is a few MB.
    # Each band's filter reads the rows around its box, so the bands join as the whole would.
    bands = math.ceil(size[0] * height * 4 / _RESIZE_BAND_BYTES)
    if bands < 2 or image.mode == "P":
        return image.resize(size, resample, reducing_gap=_RESIZE_REDUCING_GAP)
    edges = [size[1] * band // bands for band in range(bands + 1)]
    tops, bottoms = edges[:-1], edges[1:]

    def resize_band(top: int, bottom: int) -> Image.Image:
        box = (0.0, top * height / size[1], float(width), bottom * height / size[1])
        return image.resize((size[0], bottom - top), resample, box=box, reducing_gap=_RESIZE_REDUCING_GAP)

    resized = Image.new(image.mode, size, None)  # every row is pasted over: no need to clear it first
    # On more than one CPU the bands resize on threads: this resize is on the critical path of every
    # variant (the largest encode cannot start before it), and two threads halve it (24 MP to 4096 px,
    # 0.46 -> 0.23 s). Pasting a band takes a fraction of resizing one, so few wait to be pasted.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for top, band in zip(tops, pool.map(resize_band, tops, bottoms), strict=True):
            resized.paste(band, (0, top))
    return resized


def _long_edge_size(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    width, height = size
    if width >= height:
        return long_edge, max(1, round(height * long_edge / width))
    return max(1, round(width * long_edge / height)), long_edge


def _shrink_jpeg(data: bytes, stored: tuple[int, int], size: tuple[int, int], workers: int) -> Image.Image:
    """A JPEG of `stored` size decoded straight to `size` by libvips on `workers` threads, as a Pillow image
    in the JPEG's own colours.

    libvips streams the decode through the resize a few rows at a time, so the full-size pixels never sit
    in memory (96 MB in Pillow for 24 MP), and its vectorised lanczos3 costs less than half of Pillow's
    resize (24 MP to 4096 px: decode and resize 0.20 s of CPU where Pillow takes 0.35 s). It decodes at
    1/2, 1/4 or 1/8 scale (the DCT scaling of Pillow's draft()) where that still leaves twice the size
    asked for: libvips's thumbnail rule, as the block shrink sharpens and the lanczos3 after it takes
    that back. On damaged bytes it is the more lenient of the two (a test damages JPEGs in 60 places
    and loads each that Pillow accepts), so what ingest accepted decodes here.
    """
    vips = _libvips()
    # Its threads are the budget image_threads() gives, not one per core: two take this step from 0.20 to
    # 0.14 s of wall time at 24 MP, for 3-5% more CPU, which is all a second thread adds on one vCPU's share.
    vips.concurrency_set(workers)
    factor = min(stored[0] / size[0], stored[1] / size[1])
    shrink = next(shrink for shrink in (8, 4, 2, 1) if factor >= 2 * shrink or shrink == 1)
    try:
        # Its JPEG loader by name, never its guess at the format; fail_on="truncated": refuse what Pillow
        # refuses (by default libvips fills a cut-off file with grey).
        source = vips.Image.jpegload_buffer(data, access="sequential", shrink=shrink, fail_on="truncated")
        resized = source.resize(size[0] / source.width, vscale=size[1] / source.height, kernel="lanczos3")
        pixels = resized.write_to_memory()
    except vips.Error as exc:
        # Mapped with Pillow's decode errors, by the one handler every decode goes through.
        raise OSError(f"libvips: {exc.message}") from exc
    mode = "L" if resized.bands == 1 else "RGB"
    return Image.frombytes(mode, (resized.width, resized.height), pixels)


@cache
def _libvips() -> ModuleType:
    """pyvips, loaded on the first JPEG that is shrunk: ingest never shrinks, and need not load libvips."""
    import pyvips

    # libvips caches the last operations and their pixels to reuse them; each upload is decoded once.
    pyvips.cache_set_max(0)
    return pyvips


def render_variant(image: Image.Image, long_edge: int, fmt: OutputFormat, quality: int) -> RenderedImage:
    """Encode one web variant, with no EXIF, XMP or ICC profile in it whatever the image carries."""
    variant = _to_rgb_or_rgba(resize_to_long_edge(image, long_edge))
    buffer = io.BytesIO()
    # Explicit empty metadata: the AVIF encoder would otherwise copy the image's own ICC profile.
    metadata = {"exif": b"", "xmp": b"", "icc_profile": b""}
    if fmt == "webp":
        variant.save(buffer, format="WEBP", quality=quality, method=_WEBP_METHOD, **metadata)
    elif fmt == "jpeg":
        # For old clients and e-mail: no alpha (flattened on white), progressive so a slow link shows the
        # whole picture early, optimized Huffman tables (a few % smaller, a few ms more).
        variant = _flatten_on_white(variant)
        variant.save(buffer, format="JPEG", quality=quality, progressive=True, optimize=True, **metadata)
    else:
        variant.save(buffer, format="AVIF", quality=quality, speed=_AVIF_SPEED, **metadata)
    return RenderedImage(
        data=buffer.getvalue(),
        width=variant.width,
        height=variant.height,
        content_type=f"image/{fmt}",
    )


def placeholder(image: Image.Image) -> Placeholder:
    """A blurhash and the dominant colour, computed on a tiny copy flattened on white."""
    tiny = _flatten_on_white(resize_to_long_edge(image, _PLACEHOLDER_EDGE))
    x_components, y_components = _BLURHASH_COMPONENTS
    hash_ = blurhash.encode(tiny, x_components, y_components)
    return Placeholder(blurhash=hash_, dominant_color=_dominant_color(tiny))


@contextmanager
def _opened(data: bytes, limits: ImageLimits) -> Iterator[tuple[ImageFile.ImageFile, ImageFormat]]:
    """The image opened by the one decoder its magic bytes name, every bound checked, decode errors mapped."""
    if not data:
        raise ImageRejectedError("empty_file", "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejectedError(
            "too_large_bytes",
            f"the file is {_mebibytes(len(data))} MB; the limit is {_mebibytes(limits.max_bytes)} MB",
        )
    fmt = sniff_format(data)
    if fmt is None:
        _reject_foreign(data)
    if fmt == "HEIF":
        _register_heif_opener()
    # Pillow reads a file's structure before its pixels, some of it in Python, and so does
    # _declared_size: count the parts first.
    check_structure(data, fmt)
    # Bound the size the header declares before Pillow sees the file: its WebP plugin allocates the
    # canvas while opening, and its own bomb guard would answer first, without the size, above ~179 MP.
    if (declared := _declared_size(data, fmt)) is not None:
        _check_dimensions(declared, limits)
        # An AVIF sequence's frames, from its sample table: libavif reads every sample's place on opening.
        if fmt == "AVIF" and (declared_frames := read_header(data, MAX_ISO_BOXES).frames):
            _check_frames(fmt, declared_frames, declared, limits)
    with _rejecting_decode_errors(fmt, limits), Image.open(io.BytesIO(data), formats=[fmt]) as image:
        # Again on what Pillow found: a GIF frame may reach past its screen, a JPEG header may be odd.
        _check_dimensions(image.size, limits)
        frames = _frame_count(image)
        _check_frames(fmt, frames, image.size, limits)
        if fmt == "GIF" and frames > 1:
            # Each GIF frame has extents of its own, which Pillow checks against its bomb guard only on
            # seeking to it: seek to each now, so a frame reaching far past the screen is refused here.
            for index in range(1, frames):
                image.seek(index)
                _check_dimensions(image.size, limits)
            image.seek(0)
        if fmt == "PNG":
            # load() stops after the image data and forgives a damaged tail; verify() does not.
            with Image.open(io.BytesIO(data), formats=["PNG"]) as probe:
                probe.verify()
        yield image, fmt


@contextmanager
def _rejecting_decode_errors(fmt: ImageFormat, limits: ImageLimits) -> Iterator[None]:
    name = _DISPLAY_NAMES[fmt]
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejectedError(
            "too_many_pixels",
            f"the image declares far more pixels than the limit of {_megapixels(limits.max_pixels)} MP",
        ) from exc
    except UnidentifiedImageError as exc:
        if fmt in _ISO_FORMATS:
            raise ImageRejectedError("corrupt_image", f"the {name} image is corrupt or truncated") from exc
        raise ImageRejectedError(
            "unsupported_format", f"the file has a {name} signature but is not a readable {name} image"
        ) from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejectedError("corrupt_image", f"the {name} image is corrupt or truncated") from exc


def _reject_foreign(data: bytes) -> NoReturn:
    kind = next((kind for magic, kind in _FOREIGN_SIGNATURES if data.startswith(magic)), None)
    if kind is None and data[4:8] == b"ftyp":
        kind = "an ISO media file (a video, or a HEIF image in a codec other than HEVC or AV1)"
    if kind is None:
        message = f"the file is not an image in an accepted format ({ACCEPTED_FORMATS})"
    else:
        message = f"the file is {kind}; accepted formats are {ACCEPTED_FORMATS}"
    raise ImageRejectedError("unsupported_format", message)


def _check_dimensions(size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageRejectedError(
            "too_many_pixels",
            f"the image is {width}x{height} pixels ({_megapixels(width * height)} MP); "
            f"the limit is {_megapixels(limits.max_pixels)} MP",
        )
    if max(width, height) > limits.max_side:
        raise ImageRejectedError(
            "too_many_pixels",
            f"the image is {width}x{height} pixels; no side may be longer than {limits.max_side} pixels",
        )


def _check_frames(fmt: ImageFormat, frames: int, size: tuple[int, int], limits: ImageLimits) -> None:
    if frames > limits.max_frames:
        raise ImageRejectedError("too_many_frames", f"the image has {frames} frames; the limit is {limits.max_frames}")
    width, height = size
    if _is_animation(fmt, frames) and frames * width * height > limits.max_animation_pixels:
        raise ImageRejectedError(
            "too_many_pixels",
            f"the animation is {frames} frames of {width}x{height} pixels "
            f"({_megapixels(frames * width * height)} MP in all); "
            f"the limit is {_megapixels(limits.max_animation_pixels)} MP in all",
        )


def _declared_size(data: bytes, fmt: ImageFormat) -> tuple[int, int] | None:
    """The size the header announces, when it can be read without a decoder."""
    if fmt == "PNG":
        return _png_size(data)
    if fmt == "GIF":
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if fmt == "WEBP":
        return _webp_size(data)
    if fmt in _ISO_FORMATS:
        # The largest image the container declares (the primary, its tiles, thumbnails, depth maps):
        # every one of them is something libheif or libavif may allocate.
        return read_header(data, MAX_ISO_BOXES).largest_size
    return _jpeg_size(data)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walks the marker segments to the first start-of-frame; gives up (None) on anything unusual.
    position = 2
    while position + 9 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
        elif marker in _JPEG_STANDALONE_MARKERS:
            position += 2
        elif marker in _JPEG_SOF_MARKERS:
            return (
                int.from_bytes(data[position + 7 : position + 9], "big"),
                int.from_bytes(data[position + 5 : position + 7], "big"),
            )
        else:
            position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


def _frame_count(image: Image.Image) -> int:
    # Pillow opens a JPEG with an MPO index (phones add gain maps, depth maps, previews) as several
    # frames; only the first is ever shown, so a JPEG is one frame. pillow-heif likewise shows a HEIC's
    # top-level images (a burst, an edit beside its original) as frames, and the primary one is the
    # picture; how many items a HEIC may hold is bounded from its header (structure.MAX_ISO_ITEMS).
    if image.format in ("MPO", "HEIF"):
        return 1
    return int(getattr(image, "n_frames", 1))


def _profile_from_code_points(data: bytes, fmt: ImageFormat) -> bytes | None:
    """Display P3 for a HEIC or AVIF that says so only with CICP code points (`nclx`), else None.

    HDR (PQ or HLG) is tone-mapped instead (_load_hdr); other spaces named that way (BT.2020 SDR) are
    taken as sRGB.
    """
    if fmt not in _ISO_FORMATS:
        return None
    cicp = read_header(data, MAX_ISO_BOXES).primary_cicp
    if cicp is not None and cicp.primaries == _CICP_DISPLAY_P3 and cicp.transfer in _CICP_SRGB_LIKE_TRANSFERS:
        return icc.display_p3()
    return None


def _hdr_source(image: Image.Image, data: bytes, fmt: ImageFormat) -> hdr.HdrSource | None:
    """How to read an image that says with CICP code points that it is HDR (PQ or HLG), else None: in its
    ICC profile's `cicp` tag (any format), or, in a HEIC or AVIF without a profile, in its `nclx` box."""
    if profile := image.info.get("icc_profile"):
        codes = icc.cicp(profile)
    elif fmt in _ISO_FORMATS and (cicp := read_header(data, MAX_ISO_BOXES).primary_cicp) is not None:
        codes = cicp.primaries, cicp.transfer, cicp.matrix
    else:
        return None
    if codes is None or not hdr.is_hdr(codes[1]):
        return None
    return hdr.HdrSource(transfer=codes[1], primaries=codes[0])


def _load_hdr(image: ImageFile.ImageFile, data: bytes, source: hdr.HdrSource) -> Image.Image:
    """An HDR first frame, decoded once and tone-mapped to 8-bit sRGB RGB or RGBA (not yet upright).

    At 16 bits where the decoder gives them: pillow-heif decodes HEVC at its full depth (the same libheif,
    limits and irot/imir transforms as the plugin's 8-bit decode, which then never runs); Pillow's AVIF
    decoder gives 8 bits only, so an AVIF's ramps are coarser.
    """
    high = low = None
    if image.format == "HEIF":
        decoded = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        base = decoded.mode.removesuffix(";16")
        if decoded.mode.endswith(";16") and base in ("RGB", "RGBA"):
            # Native (little-endian) 16-bit samples: Pillow's unpackers give their high and low bytes.
            high = Image.frombytes(base, decoded.size, decoded.data, "raw", f"{base};16L", decoded.stride)
            low = Image.frombytes(base, decoded.size, decoded.data, "raw", f"{base};16B", decoded.stride)
    if high is None:
        image.load()
        high = image.convert("RGBA" if image.has_transparency_data else "RGB")
    mapped = hdr.to_sdr(_rgb_only(high), _rgb_only(low) if low is not None else None, source)
    if high.mode == "RGBA":
        mapped.putalpha(high.getchannel("A"))
    return mapped


def _rgb_only(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _is_animation(fmt: ImageFormat, frames: int) -> bool:
    return fmt in _ANIMATED_FORMATS and frames > 1


def _plays(image: Image.Image, data: bytes, fmt: ImageFormat) -> int:
    """How many times an animation plays; 0 is forever."""
    if fmt == "AVIF":
        # Pillow does not say; the track's edit list does (a sequence without one loops, as browsers play it).
        return read_header(data, MAX_ISO_BOXES).plays or 0
    # A GIF without the NETSCAPE extension plays once; Pillow names the extension's count `loop`.
    return int(image.info.get("loop", 1 if fmt == "GIF" else 0))


def _frame_durations(image: Image.Image) -> list[int]:
    """Each frame's duration in ms, decoding every frame (strictly: a damaged later frame is refused)."""
    durations = []
    for frame in ImageSequence.Iterator(image):
        frame.load()
        durations.append(int(frame.info.get("duration", 0)))
    image.seek(0)
    return durations


@cache
def _register_heif_opener() -> None:
    # Once, on first use rather than at import. Thumbnails, depth and auxiliary images are never used:
    # not listing them saves libheif's work on each. The decoder stays strict (its security limits on,
    # incorrect headers refused), and 10-bit and 12-bit images come out as 8-bit.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _orientation(image: Image.Image) -> int:
    # Unreadable EXIF is treated as no EXIF, the same way _apply_orientation treats it.
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except _DECODE_ERRORS:
        return 1


def _apply_orientation(image: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except _DECODE_ERRORS:
        return


def _colour_managed_mode(image: Image.Image) -> Image.Image:
    """8 bits a channel in a mode littleCMS takes as it is: L, RGB and CMYK, or RGBA where there is alpha.

    Any other mode holds its colours in the same source space, so it becomes RGB(A), still in that space.
    """
    if image.mode in ("I", "I;16", "I;16L", "I;16B"):
        image = _gray16_to_8bit(image)
    if image.has_transparency_data:
        return image if image.mode == "RGBA" else image.convert("RGBA")
    return image if image.mode in ("L", "RGB", "CMYK") else image.convert("RGB")


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """A _colour_managed_mode image as 8-bit RGB or RGBA in sRGB, through its profile when it is usable."""
    target = "RGBA" if image.mode == "RGBA" else "RGB"
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(image, source, _srgb_profile(), outputMode=target)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None
        if converted is not None:
            return converted
    # Already in its mode, the decode itself: convert() would copy it (96 MB for 24 MP).
    return image if image.mode == target else image.convert(target)


def _gray16_to_8bit(image: Image.Image) -> Image.Image:
    # convert("L") clips 16-bit values at 255; scale the range instead (rounding to nearest).
    gray = image.convert("I").point(lambda value: value * (1 / 257) + 0.5).convert("L")
    if not image.has_transparency_data:
        return gray
    # Pillow's transparency conversion compares the full 16-bit value against tRNS.
    alpha = image.convert("LA").getchannel("A")
    return Image.merge("LA", (gray, alpha))


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "RGBA"):
        return image
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _flatten_on_white(image: Image.Image) -> Image.Image:
    rgba = _to_rgb_or_rgba(image)
    if rgba.mode == "RGB":
        return rgba
    background = Image.new("RGBA", rgba.size, "white")
    return Image.alpha_composite(background, rgba).convert("RGB")


def _dominant_color(image: Image.Image) -> str:
    quantized = image.quantize(_DOMINANT_PALETTE_SIZE, method=Image.Quantize.MEDIANCUT)
    counts = quantized.histogram()
    index = max(range(len(counts)), key=counts.__getitem__)
    palette = quantized.getpalette() or [0, 0, 0]
    red, green, blue = palette[3 * index : 3 * index + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"


def _mebibytes(size: int) -> str:
    return f"{size / 2**20:.1f}"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}"
