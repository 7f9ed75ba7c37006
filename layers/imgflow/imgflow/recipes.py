"""The operations of an edit recipe, as typed parameters: a pydantic discriminated union on `op`.

Validated where a request is parsed (the api function, which must not load Pillow); applied by
`imgflow.operations`, one small function per operation.
"""

# No `from __future__ import annotations`: it costs the api's cold start (see imgflow.models).

import math
import unicodedata
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import JsonDict

MAX_OPERATIONS = 20
MAX_SIDE = 8192
MAX_OUTPUT_PIXELS = 40_000_000
# Wider and taller than any image an edit sees (MaxSide, and JPEG's and GIF's own 65,535): the image's real
# size bounds a crop where it is known; this bound keeps a number that cannot be a coordinate out of storage.
MAX_COORDINATE = 65_535

Size = tuple[int, int]


def _no_control_characters(text: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise ValueError("must not contain control characters (newlines, tabs, ...)")
    return text


def _zero_or_at_least(smallest: float) -> AfterValidator:
    """Refuse a magnitude too small to change a pixel: 1e-200 is no angle, and no number DynamoDB can store."""

    def check(value: float) -> float:
        if value != 0 and abs(value) < smallest:
            raise ValueError(f"must be 0 or at least {smallest:g} in magnitude")
        return value

    return AfterValidator(check)


def _documented_zero_or_at_least(smallest: float) -> Any:
    # The same rule in the OpenAPI document: no number strictly between -smallest and smallest but 0.
    tiny: JsonDict = {"exclusiveMinimum": -smallest, "exclusiveMaximum": smallest, "not": {"const": 0}}
    return Field(json_schema_extra={"not": tiny})


RgbColor = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
RgbaColor = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")]
WatermarkText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
    # Unicode's control characters (Cc) as the document states them; the validator's message says it better.
    Field(json_schema_extra={"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}),
]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
Coordinate = Annotated[int, Field(ge=0, le=MAX_COORDINATE)]
Length = Annotated[int, Field(ge=1, le=MAX_COORDINATE)]
Angle = Annotated[float, Field(gt=-360, lt=360), _zero_or_at_least(0.001), _documented_zero_or_at_least(0.001)]
# A Gaussian narrower than a tenth of a pixel changes no pixel (nor does an unsharp mask made with one).
Radius = Annotated[float, Field(ge=0.1)]
EnhanceFactor = Annotated[
    float,
    Field(ge=0, le=10, description="0 gives the flat extreme, 1 leaves the image as is"),
    _zero_or_at_least(0.001),
    _documented_zero_or_at_least(0.001),
]


class _Strict(BaseModel):
    # Built at first use, as every model is (imgflow.models.Model): most api invocations see no recipe.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class _Operation(_Strict):
    def output_size(self, size: Size) -> Size:
        """The size of what this operation makes of an image of `size`; ValueError if it cannot work on it."""
        return size


def _within_pixel_limit(size: Size) -> Size:
    width, height = size
    if width * height > MAX_OUTPUT_PIXELS:
        raise ValueError(
            f"it would make a {width}x{height} image ({width * height / 1e6:.1f} MP); "
            f"the limit is {MAX_OUTPUT_PIXELS / 1e6:.1f} MP"
        )
    return size


class Crop(_Operation):
    """Keep a rectangle of the image, in pixels of the image as it is at this step."""

    op: Literal["crop"]
    left: Coordinate = Field(description="x of the rectangle's left edge, in pixels")
    top: Coordinate = Field(description="y of the rectangle's top edge, in pixels")
    width: Length = Field(description="width of the rectangle, in pixels; it must lie within the image")
    height: Length = Field(description="height of the rectangle, in pixels; it must lie within the image")

    def output_size(self, size: Size) -> Size:
        if self.left + self.width > size[0] or self.top + self.height > size[1]:
            raise ValueError(
                f"the crop {self.width}x{self.height} at ({self.left}, {self.top}) reaches outside "
                f"the {size[0]}x{size[1]} image"
            )
        return self.width, self.height


class Rotate(_Operation):
    """Turn the image counter-clockwise; quarter turns are exact, other angles interpolate (bicubic)."""

    op: Literal["rotate"]
    degrees: Angle = Field(description="counter-clockwise angle; negative turns clockwise")
    expand: bool = Field(True, description="grow the canvas to hold the whole rotated image (else keep the size)")
    fill: RgbaColor = Field(
        "#00000000",
        description="colour of the uncovered corners, #rrggbb or #rrggbbaa; alpha counts only if the image has alpha",
        examples=["#00000000", "#ffffff"],
    )

    def output_size(self, size: Size) -> Size:
        if not self.expand:
            return size
        degrees = self.degrees % 360
        if degrees in (0.0, 180.0):
            return size
        if degrees in (90.0, 270.0):
            return size[1], size[0]
        return _within_pixel_limit(_rotated_size(size, degrees))


def _rotated_size(size: Size, degrees: float) -> Size:
    """The canvas `Image.rotate(degrees, expand=True)` makes: the same arithmetic as Pillow's."""
    width, height = size
    angle = -math.radians(degrees)
    cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
    center_x, center_y = width / 2, height / 2
    shift_x = -cos * center_x - sin * center_y + center_x
    shift_y = sin * center_x - cos * center_y + center_y
    corners = ((0, 0), (width, 0), (width, height), (0, height))
    xs = [cos * x + sin * y + shift_x for x, y in corners]
    ys = [-sin * x + cos * y + shift_y for x, y in corners]
    return math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))


class Resize(_Operation):
    """Scale the image (Lanczos). With one side given, the other keeps the aspect ratio."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["width"], "properties": {"width": {"type": "integer"}}},
                {"required": ["height"], "properties": {"height": {"type": "integer"}}},
            ]
        }
    )

    op: Literal["resize"]
    width: Side | None = Field(None, description="target width in pixels")
    height: Side | None = Field(None, description="target height in pixels")
    fit: Literal["contain", "cover", "fill"] = Field(
        "contain",
        description="with both sides: 'contain' fits inside the box, 'cover' fills it and crops the centre, "
        "'fill' stretches to it",
    )

    @model_validator(mode="after")
    def _needs_a_side(self) -> Self:
        if self.width is None and self.height is None:
            raise ValueError("resize needs width, height or both")
        return self

    def output_size(self, size: Size) -> Size:
        if self.width is not None and self.height is not None and self.fit != "contain":
            return _within_pixel_limit((self.width, self.height))
        # One side given, or "contain": the largest scale that keeps the image within what was given.
        width, height = size
        scale = min(bound / side for bound, side in ((self.width, width), (self.height, height)) if bound is not None)
        return _within_pixel_limit((max(1, round(width * scale)), max(1, round(height * scale))))


class Flip(_Operation):
    """Mirror the image."""

    op: Literal["flip"]
    direction: Literal["horizontal", "vertical"] = Field(
        description="'horizontal' swaps left and right, 'vertical' swaps top and bottom"
    )


class Grayscale(_Operation):
    """Grey by luma (ITU-R 601-2), kept in RGB(A) so later steps and encoders see the same modes."""

    op: Literal["grayscale"]


class Blur(_Operation):
    """Gaussian blur."""

    op: Literal["blur"]
    radius: Radius = Field(le=100, description="standard deviation of the Gaussian, in pixels")


class Sharpen(_Operation):
    """Unsharp mask."""

    op: Literal["sharpen"]
    radius: Radius = Field(2, le=50, description="blur radius of the mask, in pixels")
    percent: int = Field(150, ge=1, le=500, description="strength of the sharpening, in percent")
    threshold: int = Field(3, ge=0, le=255, description="smallest brightness difference that gets sharpened")


class Brightness(_Operation):
    """Scale the brightness: 0 is black, 1 the image as is, 2 twice as bright."""

    op: Literal["brightness"]
    factor: EnhanceFactor


class Contrast(_Operation):
    """Scale the contrast around the mean grey: 0 is flat grey, 1 the image as is."""

    op: Literal["contrast"]
    factor: EnhanceFactor


class Watermark(_Operation):
    """Draw a line of text over the image (Pillow's built-in scalable font: Latin script)."""

    op: Literal["watermark"]
    text: WatermarkText = Field(description="one line of text, 1 to 200 characters")
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"] = Field(
        "bottom-right", description="where the text goes; the margin to the edges grows with the size"
    )
    # Below 1 % the text is next to invisible (under 1/255 it draws nothing at all).
    opacity: float = Field(0.5, ge=0.01, le=1, description="opacity of the text, 1 is opaque")
    size: float = Field(0.05, ge=0.001, le=0.5, description="font size as a fraction of the image's shorter side")
    color: RgbColor = Field("#ffffff", description="text colour, #rrggbb", examples=["#ffffff"])


Operation = Annotated[
    Crop | Rotate | Resize | Flip | Grayscale | Blur | Sharpen | Brightness | Contrast | Watermark,
    Field(discriminator="op"),
]


class Recipe(_Strict):
    """Deterministic operations, applied in order."""

    operations: list[Operation] = Field(
        min_length=1, max_length=MAX_OPERATIONS, description=f"1 to {MAX_OPERATIONS} operations, applied in order"
    )

    def output_size(self, size: Size) -> Size:
        """The size of the result on an image of `size`, step by step; ValueError naming the first step that
        cannot work on what the steps before it make (a crop outside, a result over the pixel limit)."""
        for number, operation in enumerate(self.operations, 1):
            try:
                size = operation.output_size(size)
            except ValueError as error:
                raise ValueError(f"operation {number} ({operation.op}): {error}") from error
        return size
