"""The operations of an edit recipe, as typed parameters: a pydantic discriminated union on `op`.

Validated where a request is parsed (the api function, which must not load Pillow); applied by
`imgflow.operations`, one small function per operation.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_OPERATIONS = 20
MAX_SIDE = 8192


def _no_control_characters(text: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise ValueError("must not contain control characters (newlines, tabs, ...)")
    return text


RgbColor = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
RgbaColor = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")]
WatermarkText = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control_characters)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
EnhanceFactor = Annotated[float, Field(ge=0, le=10, description="0 gives the flat extreme, 1 leaves the image as is")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Crop(_Strict):
    """Keep a rectangle of the image, in pixels of the image as it is at this step."""

    op: Literal["crop"]
    left: int = Field(ge=0, description="x of the rectangle's left edge, in pixels")
    top: int = Field(ge=0, description="y of the rectangle's top edge, in pixels")
    width: int = Field(ge=1, description="width of the rectangle, in pixels; it must lie within the image")
    height: int = Field(ge=1, description="height of the rectangle, in pixels; it must lie within the image")


class Rotate(_Strict):
    """Turn the image counter-clockwise; quarter turns are exact, other angles interpolate (bicubic)."""

    op: Literal["rotate"]
    degrees: float = Field(gt=-360, lt=360, description="counter-clockwise angle; negative turns clockwise")
    expand: bool = Field(True, description="grow the canvas to hold the whole rotated image (else keep the size)")
    fill: RgbaColor = Field(
        "#00000000",
        description="colour of the uncovered corners, #rrggbb or #rrggbbaa; alpha counts only if the image has alpha",
        examples=["#00000000", "#ffffff"],
    )


class Resize(_Strict):
    """Scale the image (Lanczos). With one side given, the other keeps the aspect ratio."""

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


class Flip(_Strict):
    """Mirror the image."""

    op: Literal["flip"]
    direction: Literal["horizontal", "vertical"] = Field(
        description="'horizontal' swaps left and right, 'vertical' swaps top and bottom"
    )


class Grayscale(_Strict):
    """Grey by luma (ITU-R 601-2), kept in RGB(A) so later steps and encoders see the same modes."""

    op: Literal["grayscale"]


class Blur(_Strict):
    """Gaussian blur."""

    op: Literal["blur"]
    radius: float = Field(gt=0, le=100, description="standard deviation of the Gaussian, in pixels")


class Sharpen(_Strict):
    """Unsharp mask."""

    op: Literal["sharpen"]
    radius: float = Field(2, gt=0, le=50, description="blur radius of the mask, in pixels")
    percent: int = Field(150, ge=1, le=500, description="strength of the sharpening, in percent")
    threshold: int = Field(3, ge=0, le=255, description="smallest brightness difference that gets sharpened")


class Brightness(_Strict):
    """Scale the brightness: 0 is black, 1 the image as is, 2 twice as bright."""

    op: Literal["brightness"]
    factor: EnhanceFactor


class Contrast(_Strict):
    """Scale the contrast around the mean grey: 0 is flat grey, 1 the image as is."""

    op: Literal["contrast"]
    factor: EnhanceFactor


class Watermark(_Strict):
    """Draw a line of text over the image (Pillow's built-in scalable font: Latin script)."""

    op: Literal["watermark"]
    text: WatermarkText = Field(description="one line of text, 1 to 200 characters")
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"] = Field(
        "bottom-right", description="where the text goes; the margin to the edges grows with the size"
    )
    opacity: float = Field(0.5, gt=0, le=1, description="opacity of the text, 1 is opaque")
    size: float = Field(0.05, gt=0, le=0.5, description="font size as a fraction of the image's shorter side")
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
