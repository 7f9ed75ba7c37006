from __future__ import annotations

import json
import typing
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from PIL import Image, ImageChops, ImageFont
from pydantic import ValidationError

from imgflow.errors import EditError
from imgflow.operations import (
    MAX_OUTPUT_PIXELS,
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
    apply_recipe,
)

Pixel = tuple[int, ...]
Grid = list[list[Pixel]]

# 4x3, every pixel a different colour; rows top to bottom.
GRID: Grid = [[(10 + 60 * x, 20 + 90 * y, 230 - 30 * x - 50 * y) for x in range(4)] for y in range(3)]

SAMPLES: list[Operation] = [
    Crop(op="crop", left=1, top=0, width=2, height=2),
    Rotate(op="rotate", degrees=30),
    Resize(op="resize", width=8),
    Flip(op="flip", direction="horizontal"),
    Grayscale(op="grayscale"),
    Blur(op="blur", radius=1),
    Sharpen(op="sharpen"),
    Brightness(op="brightness", factor=1.5),
    Contrast(op="contrast", factor=0.5),
    Watermark(op="watermark", text="imgflow", size=0.5, opacity=1),
]


def image_of(grid: Grid, mode: str = "RGB") -> Image.Image:
    image = Image.new(mode, (len(grid[0]), len(grid)))
    for y, row in enumerate(grid):
        for x, pixel in enumerate(row):
            image.putpixel((x, y), pixel)
    return image


def grid_of(image: Image.Image) -> Grid:
    return [[pixel_at(image, x, y) for x in range(image.width)] for y in range(image.height)]


def pixel_at(image: Image.Image, x: int, y: int) -> Pixel:
    pixel = image.getpixel((x, y))
    assert isinstance(pixel, tuple)
    return tuple(int(channel) for channel in pixel)


def rgba_grid() -> Grid:
    """GRID with an alpha that differs per pixel, the first column fully transparent."""
    return [[(*pixel, 0 if x == 0 else 100 + 50 * y) for x, pixel in enumerate(row)] for y, row in enumerate(GRID)]


def apply(image: Image.Image, *operations: dict[str, Any]) -> Image.Image:
    return apply_recipe(image, Recipe.model_validate({"operations": list(operations)}))


def striped(size: tuple[int, int] = (300, 100)) -> Image.Image:
    """Red, green and blue vertical thirds."""
    image = Image.new("RGB", size, (255, 0, 0))
    third = size[0] // 3
    image.paste((0, 255, 0), (third, 0, 2 * third, size[1]))
    image.paste((0, 0, 255), (2 * third, 0, size[0], size[1]))
    return image


def textured(mode: str = "RGB") -> Image.Image:
    """A 32x32 checkerboard of 4 px squares, for filters to act on."""
    image = Image.new(mode, (32, 32), (0, 0, 0, 255)[: len(mode)])
    for y in range(0, 32, 4):
        for x in range((y // 4) % 2 * 4, 32, 8):
            image.paste((255, 255, 255, 255)[: len(mode)], (x, y, x + 4, y + 4))
    return image


def validation_error(body: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Recipe.model_validate(body)
    return caught.value


# Crop


def test_given_a_box_inside_the_image_when_cropping_then_exactly_those_pixels_remain() -> None:
    result = apply(image_of(GRID), {"op": "crop", "left": 1, "top": 1, "width": 2, "height": 2})

    assert grid_of(result) == [row[1:3] for row in GRID[1:3]]


def test_given_the_whole_image_as_box_when_cropping_then_the_image_is_unchanged() -> None:
    result = apply(image_of(GRID), {"op": "crop", "left": 0, "top": 0, "width": 4, "height": 3})

    assert grid_of(result) == GRID


@pytest.mark.parametrize(
    ("left", "top", "width", "height"),
    [(0, 0, 5, 3), (0, 0, 4, 4), (3, 0, 2, 1), (0, 2, 1, 2), (4, 3, 1, 1)],
)
def test_given_a_box_reaching_outside_when_cropping_then_the_edit_fails(
    left: int, top: int, width: int, height: int
) -> None:
    with pytest.raises(EditError) as caught:
        apply(image_of(GRID), {"op": "crop", "left": left, "top": top, "width": width, "height": height})

    assert caught.value.code == "edit_failed"
    assert "4x3" in caught.value.message


# Flip


def test_given_a_horizontal_flip_when_applied_then_each_row_is_mirrored() -> None:
    result = apply(image_of(GRID), {"op": "flip", "direction": "horizontal"})

    assert grid_of(result) == [row[::-1] for row in GRID]


def test_given_a_vertical_flip_when_applied_then_the_rows_are_reversed() -> None:
    result = apply(image_of(GRID), {"op": "flip", "direction": "vertical"})

    assert grid_of(result) == GRID[::-1]


# Rotate (counter-clockwise, like Pillow)


def turned_left(grid: Grid) -> Grid:
    return [list(column) for column in zip(*grid, strict=True)][::-1]


def turned_right(grid: Grid) -> Grid:
    return [list(column)[::-1] for column in zip(*grid, strict=True)]


@pytest.mark.parametrize(
    ("degrees", "expected"),
    [
        (90, turned_left(GRID)),
        (-270, turned_left(GRID)),
        (180, [row[::-1] for row in GRID[::-1]]),
        (-180, [row[::-1] for row in GRID[::-1]]),
        (270, turned_right(GRID)),
        (-90, turned_right(GRID)),
        (0, GRID),
    ],
)
def test_given_a_quarter_turn_when_rotating_then_the_pixels_move_exactly(degrees: float, expected: Grid) -> None:
    result = apply(image_of(GRID), {"op": "rotate", "degrees": degrees})

    assert grid_of(result) == expected


def test_given_no_expand_when_turning_a_wide_image_then_the_turn_is_centred_on_the_same_canvas() -> None:
    result = apply(image_of(GRID), {"op": "rotate", "degrees": 90, "expand": False, "fill": "#ff0000"})

    turned = turned_left(GRID)  # 3 wide, 4 high: placed at x 0, its rows 1..3 kept
    assert result.size == (4, 3)
    assert grid_of(result) == [[*row, (255, 0, 0)] for row in turned[1:4]]


def test_given_an_odd_angle_when_rotating_an_rgb_image_then_the_canvas_grows_and_corners_are_black() -> None:
    image = Image.new("RGB", (40, 20), (200, 100, 50))

    result = apply(image, {"op": "rotate", "degrees": 30})

    assert result.mode == "RGB"
    assert result.size == image.rotate(30, expand=True).size
    assert result.size[0] > 40
    assert result.size[1] > 20
    assert pixel_at(result, 0, 0) == (0, 0, 0)
    assert pixel_at(result, result.width // 2, result.height // 2) == (200, 100, 50)


def test_given_an_odd_angle_when_rotating_an_rgba_image_then_corners_are_transparent() -> None:
    image = Image.new("RGBA", (40, 20), (200, 100, 50, 255))

    result = apply(image, {"op": "rotate", "degrees": -17.5})

    assert result.mode == "RGBA"
    assert pixel_at(result, 0, 0)[3] == 0
    assert pixel_at(result, result.width // 2, result.height // 2) == (200, 100, 50, 255)


def test_given_a_fill_colour_with_alpha_when_rotating_an_rgba_image_then_the_corners_get_that_colour() -> None:
    image = Image.new("RGBA", (40, 20), (0, 0, 255, 255))

    result = apply(image, {"op": "rotate", "degrees": 45, "fill": "#80402080"})

    red, green, blue, alpha = pixel_at(result, 0, 0)
    assert alpha == 128
    assert abs(red - 128) <= 2
    assert abs(green - 64) <= 2
    assert abs(blue - 32) <= 2


def test_given_no_expand_when_rotating_by_an_odd_angle_then_the_size_is_kept() -> None:
    result = apply(image_of(GRID), {"op": "rotate", "degrees": 10, "expand": False})

    assert result.size == (4, 3)


def test_given_a_rotation_whose_canvas_exceeds_the_pixel_limit_when_applied_then_the_edit_fails() -> None:
    image = Image.new("RGB", (40_000, 1))  # 45 degrees: about 28285 x 28285

    with pytest.raises(EditError) as caught:
        apply(image, {"op": "rotate", "degrees": 45})

    assert caught.value.code == "edit_failed"
    assert "rotate" in caught.value.message


# Resize


def test_given_fill_when_resizing_then_the_image_is_stretched_to_exactly_the_box() -> None:
    result = apply(striped(), {"op": "resize", "width": 70, "height": 90, "fit": "fill"})

    assert result.size == (70, 90)
    assert result.mode == "RGB"


@pytest.mark.parametrize(
    ("box", "expected"),
    [((60, 60), (60, 20)), ((600, 100), (300, 100)), ((30, 1000), (30, 10)), ((900, 300), (900, 300))],
)
def test_given_contain_when_resizing_then_the_image_fits_the_box_with_its_aspect_ratio(
    box: tuple[int, int], expected: tuple[int, int]
) -> None:
    result = apply(striped(), {"op": "resize", "width": box[0], "height": box[1]})

    assert result.size == expected


def test_given_cover_when_resizing_then_the_box_is_filled_from_the_centre() -> None:
    image = Image.new("RGB", (300, 100), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, 75, 100))
    image.paste((0, 0, 255), (225, 0, 300, 100))

    result = apply(image, {"op": "resize", "width": 50, "height": 50, "fit": "cover"})

    assert result.size == (50, 50)
    # The centred 100x100 square of the source lies inside its green middle.
    assert {pixel_at(result, x, y) for x in range(50) for y in range(50)} == {(0, 255, 0)}


def test_given_cover_for_a_tall_box_when_resizing_then_the_centre_columns_are_kept() -> None:
    result = apply(striped(), {"op": "resize", "width": 10, "height": 100, "fit": "cover"})

    assert result.size == (10, 100)
    assert {pixel_at(result, x, 50) for x in range(10)} == {(0, 255, 0)}


@pytest.mark.parametrize(
    ("side", "expected"),
    [({"width": 150}, (150, 50)), ({"height": 50}, (150, 50)), ({"width": 3}, (3, 1)), ({"height": 400}, (1200, 400))],
)
def test_given_one_side_when_resizing_then_the_other_keeps_the_aspect_ratio(
    side: dict[str, int], expected: tuple[int, int]
) -> None:
    result = apply(striped(), {"op": "resize", **side, "fit": "cover"})

    assert result.size == expected


def test_given_a_one_pixel_side_when_shrinking_then_no_side_drops_to_zero() -> None:
    result = apply(Image.new("RGB", (1000, 1)), {"op": "resize", "width": 10})

    assert result.size == (10, 1)


@pytest.mark.parametrize(
    ("size", "resize"),
    [((4, 3), {"width": 8192, "height": 8192, "fit": "fill"}), ((1, 100), {"width": 8192})],
)
def test_given_a_resize_over_the_pixel_limit_when_applied_then_the_edit_fails(
    size: tuple[int, int], resize: dict[str, Any]
) -> None:
    with pytest.raises(EditError) as caught:
        apply(Image.new("RGB", size), {"op": "resize", **resize})

    assert caught.value.code == "edit_failed"
    assert f"{MAX_OUTPUT_PIXELS / 1e6:.1f} MP" in caught.value.message


# Grayscale


def test_given_known_colours_when_grayscaling_then_each_pixel_is_its_luma_in_three_channels() -> None:
    colours: list[Pixel] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (128, 128, 128)]
    # L = R*299/1000 + G*587/1000 + B*114/1000
    luma = [76, 150, 29, 255, 0, 128]

    result = apply(image_of([colours]), {"op": "grayscale"})

    assert result.mode == "RGB"
    assert grid_of(result) == [[(value, value, value) for value in luma]]


def test_given_an_rgba_image_when_grayscaling_then_the_alpha_is_kept() -> None:
    colours: Grid = [[(255, 0, 0, 0), (0, 255, 0, 77), (0, 0, 255, 255)]]

    result = apply(image_of(colours, "RGBA"), {"op": "grayscale"})

    assert grid_of(result) == [[(76, 76, 76, 0), (150, 150, 150, 77), (29, 29, 29, 255)]]


# Brightness and contrast


def test_given_brightness_zero_when_applied_then_the_image_is_black_with_its_alpha() -> None:
    result = apply(image_of(rgba_grid(), "RGBA"), {"op": "brightness", "factor": 0})

    assert grid_of(result) == [[(0, 0, 0, pixel[3]) for pixel in row] for row in rgba_grid()]


@pytest.mark.parametrize("op", ["brightness", "contrast"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_given_factor_one_when_enhancing_then_the_image_is_unchanged(op: str, mode: str) -> None:
    grid = GRID if mode == "RGB" else rgba_grid()

    result = apply(image_of(grid, mode), {"op": op, "factor": 1})

    assert grid_of(result) == grid


def test_given_contrast_zero_when_applied_then_the_image_is_one_flat_grey() -> None:
    result = apply(image_of(GRID), {"op": "contrast", "factor": 0})

    assert len({pixel for row in grid_of(result) for pixel in row}) == 1


def test_given_brightness_two_when_applied_then_the_channels_double() -> None:
    result = apply(image_of([[(10, 100, 200)]]), {"op": "brightness", "factor": 2})

    assert grid_of(result) == [[(20, 200, 255)]]


# Blur and sharpen


@pytest.mark.parametrize("operation", [{"op": "blur", "radius": 1.5}, {"op": "sharpen"}])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_given_a_filter_when_applied_then_pixels_change_but_size_and_mode_do_not(
    operation: dict[str, Any], mode: str
) -> None:
    image = textured(mode)
    if operation["op"] == "sharpen":
        image = image.resize((16, 16), Image.Resampling.BILINEAR)  # soft edges for the mask to sharpen

    result = apply(image, operation)

    assert result.size == image.size
    assert result.mode == mode
    assert result.tobytes() != image.tobytes()


def test_given_a_transparent_neighbour_when_blurring_then_its_colour_does_not_bleed_in() -> None:
    image = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (0, 0, 10, 20))  # left half: transparent blue

    result = apply(image, {"op": "blur", "radius": 3})

    red, green, blue, alpha = pixel_at(result, 10, 10)
    assert 0 < alpha < 255
    assert (red, green, blue) == (255, 0, 0)


# Watermark


WATERMARK_CANVAS = (400, 200)


def changed_box(before: Image.Image, after: Image.Image) -> tuple[int, int, int, int]:
    box = ImageChops.difference(before, after).getbbox()
    assert box is not None, "the watermark changed no pixel"
    return box


@pytest.mark.parametrize(
    ("position", "region"),
    [
        ("top-left", (0, 0, 200, 100)),
        ("top-right", (200, 0, 400, 100)),
        ("bottom-left", (0, 100, 200, 200)),
        ("bottom-right", (200, 100, 400, 200)),
        ("center", (100, 50, 300, 150)),
    ],
)
def test_given_a_position_when_watermarking_then_only_pixels_there_change(
    position: str, region: tuple[int, int, int, int]
) -> None:
    image = Image.new("RGB", WATERMARK_CANVAS, (40, 40, 40))

    result = apply(image, {"op": "watermark", "text": "imgflow", "position": position, "size": 0.1})

    left, top, right, bottom = changed_box(image, result)
    assert left >= region[0]
    assert top >= region[1]
    assert right <= region[2]
    assert bottom <= region[3]
    assert result.size == image.size
    assert result.mode == "RGB"


def test_given_a_size_when_watermarking_then_the_text_height_follows_the_shorter_side() -> None:
    image = Image.new("RGB", WATERMARK_CANVAS, (40, 40, 40))

    result = apply(image, {"op": "watermark", "text": "Hxg", "size": 0.2})  # a 40 px font

    _, top, right, bottom = changed_box(image, result)
    assert 20 <= bottom - top <= 45
    assert right < WATERMARK_CANVAS[0] - 10  # the margin grows with the size
    assert bottom < WATERMARK_CANVAS[1] - 10


def test_given_full_opacity_and_a_colour_when_watermarking_then_the_text_is_drawn_in_that_colour() -> None:
    image = Image.new("RGB", WATERMARK_CANVAS, (0, 0, 0))

    result = apply(image, {"op": "watermark", "text": "IIII", "opacity": 1, "color": "#ff8000", "size": 0.3})

    colours = {pixel_at(result, x, y) for x in range(result.width) for y in range(result.height)}
    assert (255, 128, 0) in colours
    assert all(green <= red and blue == 0 for red, green, blue in colours)


def test_given_half_opacity_when_watermarking_then_no_pixel_gets_the_full_colour() -> None:
    image = Image.new("RGB", WATERMARK_CANVAS, (0, 0, 0))

    result = apply(image, {"op": "watermark", "text": "IIII", "opacity": 0.5, "size": 0.3})

    assert result.getextrema() == ((0, 128), (0, 128), (0, 128))


def test_given_the_same_watermark_twice_when_applied_then_the_bytes_are_identical() -> None:
    image = striped((320, 240))
    operation = {"op": "watermark", "text": "© imgflow 2025", "position": "center", "size": 0.1}

    assert apply(image, operation).tobytes() == apply(image, operation).tobytes()


def test_given_text_larger_than_the_image_when_watermarking_then_it_is_clipped() -> None:
    image = Image.new("RGB", (20, 10), (0, 0, 0))

    result = apply(image, {"op": "watermark", "text": "a very long watermark", "size": 0.5, "opacity": 1})

    assert result.size == (20, 10)
    assert result.getbbox() is not None


def test_given_a_transparent_image_when_watermarking_then_the_text_becomes_visible() -> None:
    image = Image.new("RGBA", WATERMARK_CANVAS, (0, 0, 0, 0))

    result = apply(image, {"op": "watermark", "text": "imgflow", "opacity": 1, "size": 0.2})

    alpha = result.getchannel("A")
    assert alpha.getextrema() == (0, 255)
    assert pixel_at(result, 0, 0) == (0, 0, 0, 0)


# Every operation


def test_given_the_samples_then_they_cover_every_operation() -> None:
    union = typing.get_args(typing.get_args(Operation)[0])

    assert {type(sample) for sample in SAMPLES} == set(union)


@pytest.mark.parametrize("operation", SAMPLES, ids=lambda operation: operation.op)
def test_given_an_rgba_image_when_any_operation_runs_then_alpha_is_kept(operation: Operation) -> None:
    image = image_of(rgba_grid(), "RGBA")

    result = apply_recipe(image, Recipe(operations=[operation]))

    assert result.mode == "RGBA"
    assert result.getchannel("A").getextrema() != (255, 255)


@pytest.mark.parametrize("operation", SAMPLES, ids=lambda operation: operation.op)
def test_given_an_rgb_image_when_any_operation_runs_then_it_stays_rgb(operation: Operation) -> None:
    result = apply_recipe(image_of(GRID), Recipe(operations=[operation]))

    assert result.mode == "RGB"


@pytest.mark.parametrize("operation", SAMPLES, ids=lambda operation: operation.op)
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_given_any_operation_when_applied_then_the_input_is_not_mutated(operation: Operation, mode: str) -> None:
    image = image_of(GRID if mode == "RGB" else rgba_grid(), mode)
    before = image.tobytes()

    result = apply_recipe(image, Recipe(operations=[operation]))

    assert image.tobytes() == before
    assert image.size == (4, 3)
    assert image.mode == mode
    assert result is not image


def test_given_a_palette_image_when_applied_then_it_is_converted_to_rgb_first() -> None:
    image = image_of(GRID).convert("P")

    result = apply(image, {"op": "flip", "direction": "vertical"})

    assert result.mode == "RGB"
    assert grid_of(result) == grid_of(image.convert("RGB"))[::-1]


def test_given_a_recipe_of_several_operations_when_applied_then_it_is_their_composition() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "crop", "left": 0, "top": 0, "width": 3, "height": 2},
        {"op": "rotate", "degrees": -90},
        {"op": "flip", "direction": "horizontal"},
        {"op": "grayscale"},
    ]
    image = image_of(GRID)

    result = apply(image, *steps)

    one_by_one = image
    for step in steps:
        one_by_one = apply(one_by_one, step)
    assert result.tobytes() == one_by_one.tobytes()
    # Cropped, turned clockwise and mirrored: the transpose of the crop.
    transposed = [list(column) for column in zip(*[row[:3] for row in GRID[:2]], strict=True)]
    expected = apply(image_of(transposed), {"op": "grayscale"})
    assert grid_of(result) == grid_of(expected)
    assert result.size == (2, 3)


# Validation


def test_given_an_unknown_op_when_parsing_then_the_tag_is_reported() -> None:
    error = validation_error({"operations": [{"op": "sepia"}]})

    assert error.errors()[0]["loc"] == ("operations", 0)
    assert error.errors()[0]["type"] == "union_tag_invalid"
    assert "'crop'" in str(error)


def test_given_an_unknown_field_when_parsing_then_the_field_is_named() -> None:
    error = validation_error({"operations": [{"op": "flip", "direction": "vertical", "angle": 3}]})

    assert error.errors()[0]["loc"] == ("operations", 0, "flip", "angle")
    assert error.errors()[0]["type"] == "extra_forbidden"


def test_given_an_unknown_top_level_field_when_parsing_then_the_field_is_named() -> None:
    error = validation_error({"operations": [{"op": "grayscale"}], "quality": 90})

    assert error.errors()[0]["loc"] == ("quality",)


def test_given_a_resize_without_width_or_height_when_parsing_then_both_are_named() -> None:
    error = validation_error({"operations": [{"op": "resize", "fit": "cover"}]})

    assert error.errors()[0]["loc"] == ("operations", 0, "resize")
    assert "width, height or both" in error.errors()[0]["msg"]


@pytest.mark.parametrize("count", [0, 21])
def test_given_too_few_or_too_many_operations_when_parsing_then_operations_is_named(count: int) -> None:
    error = validation_error({"operations": [{"op": "grayscale"}] * count})

    assert error.errors()[0]["loc"] == ("operations",)
    assert error.errors()[0]["type"] == ("too_short" if count == 0 else "too_long")


def test_given_twenty_operations_when_parsing_then_the_recipe_is_accepted() -> None:
    recipe = Recipe.model_validate({"operations": [{"op": "grayscale"}] * 20})

    assert len(recipe.operations) == 20


@pytest.mark.parametrize(
    ("operation", "loc", "error_type"),
    [
        ({"op": "blur", "radius": 0}, ("blur", "radius"), "greater_than_equal"),
        ({"op": "blur"}, ("blur", "radius"), "missing"),
        ({"op": "watermark", "text": "x" * 201}, ("watermark", "text"), "string_too_long"),
        ({"op": "watermark", "text": ""}, ("watermark", "text"), "string_too_short"),
        ({"op": "watermark", "text": "two\nlines"}, ("watermark", "text"), "value_error"),
        ({"op": "watermark", "text": "hi", "color": "white"}, ("watermark", "color"), "string_pattern_mismatch"),
        ({"op": "watermark", "text": "hi", "size": 0.6}, ("watermark", "size"), "less_than_equal"),
        ({"op": "rotate", "degrees": 360}, ("rotate", "degrees"), "less_than"),
        ({"op": "rotate", "degrees": 10, "fill": "#abc"}, ("rotate", "fill"), "string_pattern_mismatch"),
        ({"op": "resize", "width": 8193}, ("resize", "width"), "less_than_equal"),
        ({"op": "resize", "width": 10, "fit": "stretch"}, ("resize", "fit"), "literal_error"),
        ({"op": "crop", "left": -1, "top": 0, "width": 1, "height": 1}, ("crop", "left"), "greater_than_equal"),
        ({"op": "crop", "left": 0, "top": 0, "width": 0, "height": 1}, ("crop", "width"), "greater_than_equal"),
        ({"op": "sharpen", "percent": 0}, ("sharpen", "percent"), "greater_than_equal"),
        ({"op": "brightness", "factor": 11}, ("brightness", "factor"), "less_than_equal"),
        ({"op": "contrast", "factor": -0.5}, ("contrast", "factor"), "greater_than_equal"),
        ({"op": "flip", "direction": "diagonal"}, ("flip", "direction"), "literal_error"),
        # numbers no operation can use, which DynamoDB cannot store either (Inexact, Underflow)
        ({"op": "crop", "left": 10**40, "top": 0, "width": 1, "height": 1}, ("crop", "left"), "less_than_equal"),
        ({"op": "crop", "left": 0, "top": 0, "width": 1, "height": 65_536}, ("crop", "height"), "less_than_equal"),
        ({"op": "rotate", "degrees": 1e-200}, ("rotate", "degrees"), "value_error"),
        ({"op": "rotate", "degrees": -1e-200}, ("rotate", "degrees"), "value_error"),
        ({"op": "blur", "radius": 1e-200}, ("blur", "radius"), "greater_than_equal"),
        ({"op": "blur", "radius": 10**6}, ("blur", "radius"), "less_than_equal"),
        ({"op": "sharpen", "radius": 1e-200}, ("sharpen", "radius"), "greater_than_equal"),
        ({"op": "brightness", "factor": 1e-200}, ("brightness", "factor"), "value_error"),
        ({"op": "contrast", "factor": 1e-200}, ("contrast", "factor"), "value_error"),
        ({"op": "watermark", "text": "hi", "opacity": 1e-200}, ("watermark", "opacity"), "greater_than_equal"),
        ({"op": "watermark", "text": "hi", "size": 1e-200}, ("watermark", "size"), "greater_than_equal"),
        ({"op": "watermark", "text": "x" * 10_000}, ("watermark", "text"), "string_too_long"),
        ({"op": "resize", "width": 100_000, "height": 100_000}, ("resize", "width"), "less_than_equal"),
    ],
)
def test_given_an_invalid_parameter_when_parsing_then_the_field_is_named(
    operation: dict[str, Any], loc: tuple[str, ...], error_type: str
) -> None:
    error = validation_error({"operations": [operation]})

    assert error.errors()[0]["loc"] == ("operations", 0, *loc)
    assert error.errors()[0]["type"] == error_type


def test_given_a_recipe_as_json_when_parsing_then_defaults_are_filled_in() -> None:
    recipe = Recipe.model_validate_json(
        '{"operations": [{"op": "resize", "width": 800}, {"op": "watermark", "text": "imgflow"},'
        ' {"op": "rotate", "degrees": 90}]}'
    )

    resize, watermark, rotate = recipe.operations
    assert resize == Resize(op="resize", width=800, fit="contain")
    assert watermark == Watermark(op="watermark", text="imgflow", position="bottom-right", opacity=0.5, size=0.05)
    assert rotate == Rotate(op="rotate", degrees=90, expand=True, fill="#00000000")


def test_given_the_recipe_model_when_asking_for_its_json_schema_then_every_op_is_described() -> None:
    schema = Recipe.model_json_schema()

    operations = schema["properties"]["operations"]
    assert operations["minItems"] == 1
    assert operations["maxItems"] == 20
    assert set(operations["items"]["discriminator"]["mapping"]) == {
        "crop",
        "rotate",
        "resize",
        "flip",
        "grayscale",
        "blur",
        "sharpen",
        "brightness",
        "contrast",
        "watermark",
    }
    assert schema["$defs"]["Blur"]["properties"]["radius"]["minimum"] == 0.1
    assert schema["$defs"]["Crop"]["additionalProperties"] is False


# Edges: whatever the parameters, an operation makes a bounded image or fails as an edit, at once


def serialize_for_dynamodb(operation: Operation) -> None:
    """The operation as the job store writes it: JSON, with fractions as Decimal, through boto3's serializer."""
    TypeSerializer().serialize(json.loads(operation.model_dump_json(), parse_float=Decimal))


NUMBERS_DYNAMODB_CANNOT_STORE = [10**40, -(10**40), 1e-200, -1e-200, 1e200, -1e200, 1e-131]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda operation: operation.op)
def test_given_any_number_in_any_numeric_field_when_an_operation_accepts_it_then_dynamodb_can_store_it(
    sample: Operation,
) -> None:
    properties = type(sample).model_json_schema()["properties"]
    numeric = [
        name
        for name, schema in properties.items()
        if {"integer", "number"} & {kind.get("type") for kind in schema.get("anyOf", [schema])}
    ]
    assert bool(numeric) == (sample.op not in {"flip", "grayscale"})
    for name in numeric:
        for number in NUMBERS_DYNAMODB_CANNOT_STORE:
            try:
                operation = type(sample).model_validate({**sample.model_dump(), name: number})
            except ValidationError:
                continue
            serialize_for_dynamodb(operation)  # Inexact, Rounded or Underflow here would be a 500 at the API


def test_given_text_far_larger_than_the_image_when_watermarking_then_the_edit_fails_at_once_naming_the_size() -> None:
    image = Image.new("RGB", (3000, 3000))  # a 1500 px font: Pillow would render the whole line before clipping it

    with pytest.raises(EditError) as caught:
        apply(image, {"op": "watermark", "text": "W" * 200, "size": 0.5})

    assert caught.value.code == "edit_failed"
    assert caught.value.message.startswith("operation 1 (watermark): the text would be 285600x")
    assert caught.value.message.endswith("use a smaller size or a shorter text")


def test_given_pillow_fails_inside_an_operation_then_it_is_a_permanent_edit_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def raster_overflow(*args: Any, **kwargs: Any) -> Any:
        raise OSError("raster overflow")

    monkeypatch.setattr(ImageFont.FreeTypeFont, "getbbox", raster_overflow)

    with pytest.raises(EditError) as caught:
        apply(image_of(GRID), {"op": "watermark", "text": "imgflow"})

    assert caught.value.code == "edit_failed"
    assert caught.value.message == "operation 1 (watermark): raster overflow"


EDGES: list[dict[str, Any]] = [
    {"op": "crop", "left": 65_535, "top": 65_535, "width": 65_535, "height": 65_535},
    {"op": "crop", "left": 0, "top": 0, "width": 1, "height": 1},
    {"op": "rotate", "degrees": 359.999},
    {"op": "rotate", "degrees": -0.001, "fill": "#ff000080"},
    {"op": "rotate", "degrees": 45, "expand": False},
    {"op": "resize", "width": 8192, "height": 8192, "fit": "fill"},
    {"op": "resize", "width": 8192, "height": 8192, "fit": "cover"},
    {"op": "resize", "width": 1, "height": 1, "fit": "cover"},
    {"op": "resize", "width": 8192},
    {"op": "resize", "height": 8192},
    {"op": "flip", "direction": "vertical"},
    {"op": "grayscale"},
    {"op": "blur", "radius": 100},
    {"op": "blur", "radius": 0.1},
    {"op": "sharpen", "radius": 50, "percent": 500, "threshold": 0},
    {"op": "sharpen", "radius": 0.1, "percent": 1, "threshold": 255},
    {"op": "brightness", "factor": 10},
    {"op": "brightness", "factor": 0.001},
    {"op": "contrast", "factor": 10},
    {"op": "contrast", "factor": 0},
    {"op": "watermark", "text": "W" * 200, "size": 0.5, "opacity": 1},
    {"op": "watermark", "text": "W" * 200, "size": 0.001, "opacity": 0.01, "position": "top-left"},
    {"op": "watermark", "text": "\u0301" * 200, "size": 0.5, "position": "center"},
    {"op": "watermark", "text": "\U0001f600" * 200, "size": 0.5},
    {"op": "watermark", "text": " ", "size": 0.5},
]


def outcome(image: Image.Image, operation: dict[str, Any]) -> Image.Image | EditError:
    try:
        return apply(image, operation)
    except EditError as failure:
        return failure


@pytest.mark.parametrize("size", [(1, 1), (1200, 1), (1, 1200), (300, 200)], ids=lambda size: "x".join(map(str, size)))
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_given_parameters_at_their_edges_when_applied_then_a_bounded_image_or_an_edit_failure_and_nothing_else(
    size: tuple[int, int], mode: str
) -> None:
    image = Image.new(mode, size, (10, 20, 30, 40)[: len(mode)])
    for operation in EDGES:
        result = outcome(image, operation)
        if isinstance(result, EditError):
            assert result.code == "edit_failed"
            assert result.message.startswith("operation 1 ("), result.message
        else:
            assert result.mode == mode, operation
            assert result.width * result.height <= MAX_OUTPUT_PIXELS, operation


def test_given_a_recipe_then_each_step_is_planned_on_the_size_the_steps_before_it_make() -> None:
    recipe = Recipe.model_validate(
        {
            "operations": [
                {"op": "resize", "width": 200},
                {"op": "rotate", "degrees": 90},
                {"op": "crop", "left": 0, "top": 0, "width": 100, "height": 200},
                {"op": "watermark", "text": "imgflow"},
            ]
        }
    )

    assert recipe.output_size((400, 300)) == (100, 200)
    assert apply_recipe(Image.new("RGB", (400, 300)), recipe).size == (100, 200)


def test_given_a_step_that_cannot_work_on_what_the_steps_before_it_make_then_it_is_named() -> None:
    recipe = Recipe.model_validate(
        {
            "operations": [
                {"op": "resize", "width": 100},
                {"op": "crop", "left": 0, "top": 0, "width": 200, "height": 10},
            ]
        }
    )

    with pytest.raises(ValueError, match=r"^operation 2 \(crop\): the crop 200x10 at \(0, 0\) reaches outside"):
        recipe.output_size((400, 300))
    with pytest.raises(EditError) as caught:
        apply_recipe(Image.new("RGB", (400, 300)), recipe)
    assert caught.value.message.startswith("operation 2 (crop): the crop 200x10 at (0, 0) reaches outside the 100x75")
