"""A BlurHash encoder (https://blurha.sh): the reference algorithm of woltapp/blurhash, on Pillow's bytes.

It runs once per upload on a placeholder-sized image (about 32 x 21 px), so plain Python is fast enough
and spares the layer a compiled dependency (blurhash-python ships no wheels for every Lambda runtime).
What keeps it fast: the sRGB-to-linear table and the cosines are computed once, and each 2-D basis
function cos(πix/w)·cos(πjy/h) is applied as two 1-D passes (rows, then columns), so a pixel is touched
x_components times per channel rather than x_components x y_components times.
"""

from __future__ import annotations

import math
from functools import cache
from operator import mul

from PIL import Image

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
_MAX_COMPONENTS = 9


def _srgb_to_linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_SRGB_TO_LINEAR = tuple(_srgb_to_linear(value) for value in range(256))


def encode(image: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """The blurhash of an RGB image with x_components x y_components components (each 1-9)."""
    if not (1 <= x_components <= _MAX_COMPONENTS and 1 <= y_components <= _MAX_COMPONENTS):
        raise ValueError(f"components must be 1-{_MAX_COMPONENTS}, not {x_components} x {y_components}")
    if image.mode != "RGB":
        raise ValueError(f"the image must be RGB, not {image.mode}")
    width, height = image.size
    pixels = image.tobytes()
    # factors[j * x_components + i] is the (r, g, b) weight of basis function (i, j), as the format orders them.
    per_channel = [
        _channel_factors(pixels[channel::3], width, height, x_components, y_components) for channel in range(3)
    ]
    factors = list(zip(*per_channel, strict=True))
    dc, ac = factors[0], factors[1:]

    size_flag = (x_components - 1) + (y_components - 1) * 9
    if ac:
        actual_maximum = max(abs(value) for factor in ac for value in factor)
        quantised_maximum = int(max(0, min(82, math.floor(actual_maximum * 166 - 0.5))))
        maximum = (quantised_maximum + 1) / 166
    else:
        quantised_maximum, maximum = 0, 1.0
    return (
        _base83(size_flag, 1)
        + _base83(quantised_maximum, 1)
        + _base83(_encode_dc(dc), 4)
        + "".join(_base83(_encode_ac(factor, maximum), 2) for factor in ac)
    )


def _channel_factors(channel: bytes, width: int, height: int, x_components: int, y_components: int) -> list[float]:
    """One channel's weight of every basis function, in the format's order (j outer, i inner)."""
    linear = list(map(_SRGB_TO_LINEAR.__getitem__, channel))
    x_cosines, y_cosines = _cosines(x_components, width), _cosines(y_components, height)
    rows = [linear[y * width : (y + 1) * width] for y in range(height)]
    # row_sums[i][y]: row y weighted by the horizontal cosine i.
    row_sums = [[sum(map(mul, cosine, row)) for row in rows] for cosine in x_cosines]
    pixel_count = width * height
    factors = []
    for j, y_cosine in enumerate(y_cosines):
        for i in range(x_components):
            normalisation = 1 if i == j == 0 else 2
            factors.append(sum(map(mul, y_cosine, row_sums[i])) * normalisation / pixel_count)
    return factors


@cache
def _cosines(components: int, length: int) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(math.cos(math.pi * c * n / length) for n in range(length)) for c in range(components))


def _encode_dc(rgb: tuple[float, ...]) -> int:
    red, green, blue = (_linear_to_srgb(value) for value in rgb)
    return (red << 16) + (green << 8) + blue


def _encode_ac(rgb: tuple[float, ...], maximum: float) -> int:
    red, green, blue = (
        int(max(0, min(18, math.floor(math.copysign(math.sqrt(abs(value / maximum)), value) * 9 + 9.5))))
        for value in rgb
    )
    return red * 19 * 19 + green * 19 + blue


def _linear_to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    # int() truncates after the + 0.5, as the reference does.
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[value // 83 ** (length - 1 - position) % 83] for position in range(length))
