from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from imgflow import blurhash

FIXTURES = Path(__file__).parent.parent / "fixtures" / "blurhash"

# The reference implementation's published vectors (woltapp/blurhash-python tests/test_encode.py).
PUBLISHED = [
    ("pic2.png", 4, 3, "LlMF%n00%#MwS|WCWEM{R*bbWBbH"),
    ("pic2_bw.png", 4, 3, "LjIY5?00?bIUofWBWBM{WBofWBj["),
]
# The reference C encoder's answers (blurhash-python 1.2.2) for other component counts.
REFERENCE = [
    ("pic2.png", 1, 1, "00MF%n"),
    ("pic2.png", 3, 7, "ulMF%n00%#S|WCWER*bbWBRjofs.s:ofjss:jsWCWVf8j@"),
    ("pic2.png", 1, 5, "a5MF%n8D9t4T^j"),
    (
        "pic2.png",
        9,
        9,
        "|lMF%n00%#Mwo}wbtRjFoeS|WCWEM{a$s.WBazjFR*bbWBbHflaxt7aeWVRjofs.R*R+axR+WBofs:ofjsofbFWBflfjogs:jsWCfQ"
        "jZWCbHkCWVWVf8j@jsjsa|ayj@j[oLj[azj?j[f6oLayWVWBayj[jtf6azWCafoL",
    ),
    ("pic2_bw.png", 3, 7, "ujIY5?00?bofWBWBWBofWBRjofofofofj[t7fQWBayayj["),
    ("pic2_bw.png", 1, 5, "a5IY5?%MD%00-;"),
]


def rgb(name: str) -> Image.Image:
    # The reference drops alpha (convert("RGB")), and so do its vectors.
    with Image.open(FIXTURES / name) as image:
        return image.convert("RGB")


@pytest.mark.parametrize(("name", "x_components", "y_components", "expected"), PUBLISHED + REFERENCE)
def test_given_the_reference_images_when_encoded_then_the_reference_hashes(
    name: str, x_components: int, y_components: int, expected: str
) -> None:
    assert blurhash.encode(rgb(name), x_components, y_components) == expected


def test_given_a_solid_colour_when_encoded_then_the_dc_is_that_colour_as_the_reference_has_it() -> None:
    result = blurhash.encode(Image.new("RGB", (32, 21), (255, 0, 0)), 4, 3)

    # "TI:j" is #ff0000 in base 83. The reference samples its cosines at pixel edges, not centres, so odd
    # components are not zero even on a flat image; its C encoder answers exactly this (blurhash-python 1.2.2).
    assert result[2:6] == "TI:j"
    assert result == "LFTI:j;$fQ;$|co1fQo1fQfQfQfQ"


@pytest.mark.parametrize(("x_components", "y_components"), [(0, 3), (10, 3), (4, 0), (4, 10)])
def test_given_components_outside_1_to_9_when_encoded_then_value_error(x_components: int, y_components: int) -> None:
    with pytest.raises(ValueError, match="components"):
        blurhash.encode(Image.new("RGB", (4, 4)), x_components, y_components)


def test_given_a_non_rgb_image_when_encoded_then_value_error() -> None:
    with pytest.raises(ValueError, match="RGB"):
        blurhash.encode(Image.new("RGBA", (4, 4)), 4, 3)


def test_given_a_placeholder_sized_image_when_encoded_then_it_takes_well_under_ten_milliseconds() -> None:
    # It runs on every upload on a ~32 px image (about 0.4 ms on a laptop core); a generous bound for loaded CI.
    image = rgb("pic2.png").resize((32, 18))
    blurhash.encode(image, 4, 3)

    started = time.process_time()
    for _ in range(10):
        blurhash.encode(image, 4, 3)

    assert (time.process_time() - started) / 10 < 0.01
