"""HDR pictures (BT.2100 PQ or HLG) mapped to SDR sRGB, for web variants that every screen shows alike.

An image says it is HDR with CICP code points (transfer 16, PQ, or 18, HLG, usually with BT.2020
primaries): a HEIC's or AVIF's `nclx` colour box, or an ICC profile's `cicp` tag. Taking its code values
as sRGB, as for SDR, gives a dull, flat, desaturated picture: PQ puts diffuse white (203 nits, BT.2408)
at 58% of the signal. The mapping here:

1. code values to linear light, relative to the HDR reference white of 203 nits (BT.2408): PQ through
   its EOTF (absolute nits); HLG through its inverse OETF and the OOTF of a 1,000-nit display (system
   gamma 1.2, where 75% HLG is 203 nits);
2. the source primaries to BT.709's (a 3x3 matrix in linear light);
3. luminance tone-mapped: unchanged up to a knee at 80% of reference white, then rolled off to the
   source's peak (an extended Reinhard shoulder, continuous in value and slope at the knee), so reference
   white lands just under SDR white (~243 of 255) and highlights up to the peak keep their gradation;
   colour scaled with its luminance, which keeps hue and saturation;
4. out-of-gamut colour clipped: negative components to 0, and a colour brighter than white scaled down
   whole (its hue kept) rather than per channel;
5. the sRGB transfer, to 8 bits.

The work is Pillow's own float images and ImageMath (C loops), a band of rows at a time to bound memory:
no numpy in the imaging layer for the rare HDR upload. A 12 MP PQ HEIC took 1.5 s of CPU to decode (at 16
bits) and map, against 0.7 s for the decode of an SDR one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image, ImageMath

PQ = 16
HLG = 18
HDR_TRANSFERS = frozenset({PQ, HLG})

REFERENCE_WHITE_NITS = 203.0
# PQ carries absolute nits up to 10,000; mastering displays (and so most content) peak at 1,000, which
# is what the roll-off reaches white at. Brighter highlights are clipped with their hue kept (step 4): the
# content light level a file may declare (`clli`) is not read.
PQ_PEAK_NITS = 1000.0
# HLG is relative: BT.2100's reference display peaks at 1,000 nits, with a system gamma of 1.2.
HLG_PEAK_NITS = 1000.0
HLG_GAMMA = 1.2
KNEE = 0.8

# SMPTE ST 2084.
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
# ARIB STD-B67 / BT.2100 HLG.
_HLG_A, _HLG_B, _HLG_C = 0.17883277, 0.28466892, 0.55991073
# Linear RGB of H.273 primaries to BT.709's (BT.2087 for BT.2020; D65 Display P3 likewise); 1 is BT.709.
_TO_BT709: dict[int, tuple[tuple[float, float, float], ...]] = {
    1: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    9: ((1.6605, -0.5876, -0.0728), (-0.1246, 1.1329, -0.0083), (-0.0182, -0.1006, 1.1187)),
    12: ((1.2249, -0.2247, 0.0), (-0.0420, 1.0419, 0.0), (-0.0197, -0.0786, 1.0979)),
}
_BT709_LUMA = (0.2126, 0.7152, 0.0722)
# Rows per band: three float channels of a 4,000 px row are 48 KB, so a band's temporaries stay ~100 MB.
_BAND_ROWS = 256

Channels = tuple[Image.Image, Image.Image, Image.Image]
# What ImageMath hands an expression: the images by name, and its functions (min, max...).
Ops = dict[str, Any]


@dataclass(frozen=True)
class HdrSource:
    """How an HDR picture's code values are to be read: its transfer and its primaries (H.273 code points)."""

    transfer: int
    primaries: int


def is_hdr(transfer: int) -> bool:
    return transfer in HDR_TRANSFERS


def to_sdr(high: Image.Image, low: Image.Image | None, source: HdrSource) -> Image.Image:
    """An 8-bit sRGB RGB image of HDR code values given as the high bytes `high` (an 8-bit RGB image) and,
    from a decoder that gives more than 8 bits, the low bytes `low` of each 16-bit value."""
    tables = _linear_tables(source.transfer, low is not None)
    result = Image.new("RGB", high.size)
    for top in range(0, high.height, _BAND_ROWS):
        box = (0, top, high.width, min(top + _BAND_ROWS, high.height))
        lows = low.crop(box).split() if low is not None else (None, None, None)
        linear = [_linear(h, lo, tables) for h, lo in zip(high.crop(box).split(), lows, strict=True)]
        result.paste(_map_band(_to_bt709(linear, source.primaries), source.transfer), box[:2])
    return result


def _linear(high: Image.Image, low: Image.Image | None, tables: tuple[list[float], list[float]]) -> Image.Image:
    """A channel's code values to linear light, by table: of the high byte, plus the low byte's share of
    the step to the next high byte (the curves are smooth enough that this is exact to ~0.1%)."""
    at, step = tables
    base = high.point(at, "F")
    if low is None:
        return base
    return _eval(lambda e: e["a"] + e["d"] * e["l"] / 256.0, a=base, d=high.point(step, "F"), l=low.convert("F"))


@cache
def _linear_tables(transfer: int, sixteen_bits: bool) -> tuple[list[float], list[float]]:
    """Linear light of each high byte's code value (and the step to the next) for a transfer: PQ in
    multiples of reference white, HLG as scene light in [0, 1]."""
    curve = _pq_relative if transfer == PQ else _hlg_inverse_oetf
    if not sixteen_bits:
        return [curve(high / 255) for high in range(256)], [0.0] * 256
    at = [curve(high * 256 / 65535) for high in range(257)]
    at[256] = curve(1.0)
    return at[:256], [at[high + 1] - at[high] for high in range(256)]


def _map_band(linear: Channels, transfer: int) -> Image.Image:
    """Linear BT.709 light (PQ: display light, HLG: scene light) of a band to 8-bit sRGB."""
    red, green, blue = linear
    hlg = transfer == HLG
    peak = (HLG_PEAK_NITS if hlg else PQ_PEAK_NITS) / REFERENCE_WHITE_NITS
    shoulder = (peak - KNEE) / (1 - KNEE)  # the roll-off's input at the peak, where it reaches 1

    def gain(e: Ops) -> Any:
        scene = e["max"](e["r"] * _BT709_LUMA[0] + e["g"] * _BT709_LUMA[1] + e["b"] * _BT709_LUMA[2], 0.0)
        # HLG's OOTF gives display luminance from scene luminance (one gain for a pixel's three channels,
        # so hue is kept); PQ's light is display light already.
        luminance = peak * scene**HLG_GAMMA if hlg else scene
        over = e["max"](luminance - KNEE, 0.0) / (1 - KNEE)
        rolled = over * (over / (shoulder * shoulder) + 1.0) / (over + 1.0)
        mapped = e["min"](luminance, KNEE) + (1 - KNEE) * rolled
        return mapped / e["max"](scene, 1e-6)

    scale = _eval(gain, r=red, g=green, b=blue)
    red, green, blue = (_eval(lambda e: e["max"](e["c"] * e["k"], 0.0), c=c, k=scale) for c in (red, green, blue))
    brightest = _eval(lambda e: e["max"](e["max"](e["max"](e["r"], e["g"]), e["b"]), 1.0), r=red, g=green, b=blue)
    encoded = [
        _eval(lambda e: e["c"] / e["m"] * 65535.0 + 0.5, c=c, m=brightest).convert("I").point(_srgb_table(), "L")
        for c in (red, green, blue)
    ]
    return Image.merge("RGB", encoded)


def _eval(expression: Callable[[Ops], Any], **images: Image.Image) -> Image.Image:
    result = ImageMath.lambda_eval(expression, **images)
    if not isinstance(result, Image.Image):
        raise TypeError("ImageMath gave no image")
    return result


def _to_bt709(channels: Sequence[Image.Image], primaries: int) -> Channels:
    # Primaries other than these (unspecified, BT.601...) are close enough to BT.709 to take as it.
    red_row, green_row, blue_row = _TO_BT709.get(primaries, _TO_BT709[1])
    return _mix(channels, red_row), _mix(channels, green_row), _mix(channels, blue_row)


def _mix(channels: Sequence[Image.Image], weights: tuple[float, float, float]) -> Image.Image:
    red, green, blue = weights
    return _eval(lambda e: e["r"] * red + e["g"] * green + e["b"] * blue, r=channels[0], g=channels[1], b=channels[2])


def _pq_relative(value: float) -> float:
    """PQ's EOTF: a code value to display light, in multiples of reference white."""
    power = value ** (1 / _PQ_M2)
    return (max(power - _PQ_C1, 0.0) / (_PQ_C2 - _PQ_C3 * power)) ** (1 / _PQ_M1) * 10000 / REFERENCE_WHITE_NITS


def _hlg_inverse_oetf(value: float) -> float:
    """HLG's inverse OETF: a code value to scene light in [0, 1]."""
    if value <= 0.5:
        return value * value / 3
    return (math.exp((value - _HLG_C) / _HLG_A) + _HLG_B) / 12


@cache
def _srgb_table() -> list[int]:
    """The sRGB transfer of linear light in 65,536 steps, to 8 bits."""
    table = []
    for step in range(65536):
        linear = step / 65535
        encoded = 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
        table.append(round(encoded * 255))
    return table
