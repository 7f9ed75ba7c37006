"""Deterministic edit recipes: typed operations applied in order to a normalized image.

Every operation is a pydantic model of `imgflow.recipes` (its parameters, validated where the request
is parsed) and one small pure function here, found through a registry keyed by the model type.
Images come in and go out as 8-bit RGB or RGBA; the input is never mutated. What an operation cannot do
with the image in hand (a crop box outside it, a result over the pixel limit, text too large to render)
fails with `EditError("edit_failed", ...)`, before any pixel is worked on where the sizes tell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from imgflow.errors import EditError
from imgflow.recipes import (
    MAX_OPERATIONS,
    MAX_OUTPUT_PIXELS,
    MAX_SIDE,
    Blur,
    Brightness,
    Contrast,
    Crop,
    Flip,
    Grayscale,
    Operation,
    Recipe,
    Resize,
    Rotate,
    Sharpen,
    Watermark,
)

__all__ = ["MAX_OPERATIONS", "MAX_OUTPUT_PIXELS", "MAX_SIDE", "Operation", "Recipe", "apply_recipe"]

_RESIZE_REDUCING_GAP = 3.0
_WATERMARK_MARGIN = 0.5  # of the font size
# What Pillow raises when an operation cannot be done on this image with these parameters. A recipe is
# deterministic: it would raise the same on every retry, so the edit fails at once.
_PERMANENT_FAILURES = (ValueError, OSError, MemoryError, Image.DecompressionBombError)


def apply_recipe(image: Image.Image, recipe: Recipe) -> Image.Image:
    """The image after every operation of the recipe, as a new RGB or RGBA image."""
    try:
        recipe.output_size(image.size)  # the sizes alone can tell that a step will fail: say so before working
    except ValueError as error:
        raise EditError("edit_failed", str(error)) from error
    result = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA" if image.has_transparency_data else "RGB")
    for number, operation in enumerate(recipe.operations, 1):
        try:
            result = _REGISTRY[type(operation)](result, operation)
        except _PERMANENT_FAILURES as error:
            raise EditError("edit_failed", f"operation {number} ({operation.op}): {error}") from error
    return result


def _crop(image: Image.Image, op: Crop) -> Image.Image:
    op.output_size(image.size)  # Pillow would pad a box reaching outside with black
    return image.crop((op.left, op.top, op.left + op.width, op.top + op.height))


_QUARTER_TURNS = {
    90.0: Image.Transpose.ROTATE_90,
    180.0: Image.Transpose.ROTATE_180,
    270.0: Image.Transpose.ROTATE_270,
}


def _rotate(image: Image.Image, op: Rotate) -> Image.Image:
    degrees = op.degrees % 360
    fill = _fill_color(image.mode, op.fill)
    if degrees == 0:
        return image.copy()
    if (turn := _QUARTER_TURNS.get(degrees)) is not None:
        turned = image.transpose(turn)
        if op.expand or turned.size == image.size:
            return turned
        # The turned image centred on a canvas of the original size (offsets rounded down): exact pixels.
        canvas = Image.new(image.mode, image.size, fill)
        canvas.paste(turned, ((image.width - turned.width) // 2, (image.height - turned.height) // 2))
        return canvas
    op.output_size(image.size)  # a canvas over the pixel limit raises before it is made
    if image.mode == "RGBA":
        # Pillow rotates RGBA premultiplied (RGBa), fill colour included.
        red, green, blue, alpha = fill
        fill = (*(round(channel * alpha / 255) for channel in (red, green, blue)), alpha)
    return image.rotate(degrees, Image.Resampling.BICUBIC, expand=op.expand, fillcolor=fill)


def _fill_color(mode: str, color: str) -> tuple[int, ...]:
    rgba = ImageColor.getrgb(color)
    return rgba[:3] if mode == "RGB" else (*rgba[:3], rgba[3] if len(rgba) == 4 else 255)


def _resize(image: Image.Image, op: Resize) -> Image.Image:
    size = op.output_size(image.size)
    box = _cover_box(image.size, size) if op.fit == "cover" else None
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=_RESIZE_REDUCING_GAP)


def _cover_box(size: tuple[int, int], target: tuple[int, int]) -> tuple[float, float, float, float]:
    """The centred region of the source with the target's aspect ratio."""
    width, height = size
    scale = max(target[0] / width, target[1] / height)
    box_width, box_height = target[0] / scale, target[1] / scale
    left, top = (width - box_width) / 2, (height - box_height) / 2
    return left, top, left + box_width, top + box_height


def _flip(image: Image.Image, op: Flip) -> Image.Image:
    method = Image.Transpose.FLIP_LEFT_RIGHT if op.direction == "horizontal" else Image.Transpose.FLIP_TOP_BOTTOM
    return image.transpose(method)


def _grayscale(image: Image.Image, op: Grayscale) -> Image.Image:
    luma = image.convert("L")
    alpha = (image.getchannel("A"),) if image.mode == "RGBA" else ()
    return Image.merge(image.mode, (luma, luma, luma, *alpha))


def _premultiplied_filter(image: Image.Image, kernel: ImageFilter.Filter) -> Image.Image:
    # Filtering straight alpha would bleed the colour of transparent pixels into their neighbours.
    if image.mode == "RGBA":
        return image.convert("RGBa").filter(kernel).convert("RGBA")
    return image.filter(kernel)


def _blur(image: Image.Image, op: Blur) -> Image.Image:
    return _premultiplied_filter(image, ImageFilter.GaussianBlur(op.radius))


def _sharpen(image: Image.Image, op: Sharpen) -> Image.Image:
    return _premultiplied_filter(image, ImageFilter.UnsharpMask(op.radius, op.percent, op.threshold))


def _brightness(image: Image.Image, op: Brightness) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(op.factor)


def _contrast(image: Image.Image, op: Contrast) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(op.factor)


def _watermark(image: Image.Image, op: Watermark) -> Image.Image:
    font_size = max(1, round(op.size * min(image.size)))
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = (round(edge) for edge in font.getbbox(op.text))
    text_pixels = (right - left) * (bottom - top)
    # Pillow renders the whole line before any of it is clipped: its cost is the text's, not the image's.
    if text_pixels > MAX_OUTPUT_PIXELS:
        raise ValueError(
            f"the text would be {right - left}x{bottom - top} pixels ({text_pixels / 1e6:.1f} MP) at this size, "
            f"the limit is {MAX_OUTPUT_PIXELS / 1e6:.1f} MP: use a smaller size or a shorter text"
        )
    x, y = _text_origin(op.position, image.size, (right - left, bottom - top), round(font_size * _WATERMARK_MARGIN))
    # Only the part of the text's box inside the image is composited; the rest is clipped.
    box = (max(0, x), max(0, y), min(image.width, x + right - left), min(image.height, y + bottom - top))
    result = image.copy()
    if box[0] >= box[2] or box[1] >= box[3]:
        return result
    coverage = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(coverage).text((x - box[0] - left, y - box[1] - top), op.text, font=font, fill=255)
    overlay = Image.new("RGBA", coverage.size, ImageColor.getrgb(op.color))
    overlay.putalpha(coverage.point(lambda value: round(value * op.opacity)))
    region = Image.alpha_composite(image.crop(box).convert("RGBA"), overlay)
    result.paste(region.convert(image.mode), box[:2])
    return result


def _text_origin(position: str, size: tuple[int, int], text: tuple[int, int], margin: int) -> tuple[int, int]:
    """The top-left corner of the text's box."""
    vertical, _, horizontal = position.partition("-") if position != "center" else ("center", "", "center")
    x = {"left": margin, "right": size[0] - margin - text[0], "center": (size[0] - text[0]) // 2}[horizontal]
    y = {"top": margin, "bottom": size[1] - margin - text[1], "center": (size[1] - text[1]) // 2}[vertical]
    return x, y


_REGISTRY: dict[type[Operation], Callable[[Image.Image, Any], Image.Image]] = {
    Crop: _crop,
    Rotate: _rotate,
    Resize: _resize,
    Flip: _flip,
    Grayscale: _grayscale,
    Blur: _blur,
    Sharpen: _sharpen,
    Brightness: _brightness,
    Contrast: _contrast,
    Watermark: _watermark,
}
