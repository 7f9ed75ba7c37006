"""HEIC and AVIF as phones and browsers send them (and an animated GIF and an AVIF sequence beside them),
through `imgflow process` and through the HTTP flow.

Small fixtures (tests/fixtures/images/heic-avif): an iPhone-style HEIC (Display P3, orientation 6, GPS
in EXIF; stored 96 x 64, shown 64 x 96 with its warm half on top), a 10-bit AVIF, a 10-bit PQ (HDR) HEIC
of grey patches, and a HEIC whose header declares 100,000 x 100,000 pixels.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

if TYPE_CHECKING:
    from e2e.conftest import OutputImage, Pipeline

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HEIC_AVIF = ROOT / "tests" / "fixtures" / "images" / "heic-avif"
IPHONE = HEIC_AVIF / "iphone_p3_orientation6_gps.heic"
TEN_BIT = HEIC_AVIF / "ten_bit_p3.avif"
HDR = HEIC_AVIF / "pq_patches.heic"
HUGE_HEADER = HEIC_AVIF / "declares_100000x100000.heic"
ANIMATED_GIF = ROOT / "tests" / "fixtures" / "images" / "animations" / "crossing_24_frames.gif"
AVIF_SEQUENCE = ROOT / "tests" / "fixtures" / "images" / "animations" / "crossing_8_frames.avif"
CLI_SECONDS = 180


def assert_upright_warm_on_top(output: OutputImage, what: str) -> None:
    width, height = output.size
    assert height > width, f"{what}: {output.size} is not portrait"
    top, bottom = (
        output.pixels.getpixel((width // 2, height // 8)),
        output.pixels.getpixel((width // 2, height * 7 // 8)),
    )
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[0] > top[2] + 60, f"{what}: the top is not the warm half: {top}"
    assert bottom[2] > bottom[0] + 60, f"{what}: the bottom is not the cool half: {bottom}"


def test_process_takes_a_heic_and_a_10_bit_avif_and_rejects_a_header_bomb_without_decoding(
    imgflow_cli: list[str], tmp_path: Path, open_image: Callable[[bytes], OutputImage]
) -> None:
    files = [IPHONE, TEN_BIT, HDR, HUGE_HEADER, ANIMATED_GIF, AVIF_SEQUENCE]
    command = [*imgflow_cli, "process", *map(str, files), "--out", str(tmp_path), "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=CLI_SECONDS, check=False)

    explain = f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    views = {Path(view["file"]).name: view for view in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == 1, explain  # one file was rejected
    iphone, ten_bit, bomb = views[IPHONE.name], views[TEN_BIT.name], views[HUGE_HEADER.name]
    assert iphone["status"] == "succeeded", iphone
    assert iphone["image"] == {
        "format": "HEIF",
        "width": 64,
        "height": 96,
        "frames": 1,
        "animated": False,
        "duration_ms": None,
    }
    assert ten_bit["status"] == "succeeded", ten_bit
    assert ten_bit["image"] == {
        "format": "AVIF",
        "width": 64,
        "height": 48,
        "frames": 1,
        "animated": False,
        "duration_ms": None,
    }
    assert bomb["status"] == "rejected", bomb
    assert bomb["error"]["code"] == "too_many_pixels"
    # HDR tone-mapped to SDR: the 203-nit patch (reference white) near white, not the dull 148 of PQ code values.
    hdr = views[HDR.name]
    assert hdr["status"] == "succeeded", hdr
    for variant in hdr["variants"]:
        white = open_image(Path(variant["path"]).read_bytes()).pixels.convert("L").getpixel((56, 8))
        assert isinstance(white, int)
        assert 230 <= white <= 252, f"{variant['preset']}: {white}"
    # The animations (a GIF, an AVIF image sequence) and their poster stills, side by side.
    assert views[AVIF_SEQUENCE.name]["image"]["animated"] is True, views[AVIF_SEQUENCE.name]
    for source, frames in ((ANIMATED_GIF, 24), (AVIF_SEQUENCE, 8)):
        for preset in ("thumb", "small", "large", "full"):
            with (
                Image.open(tmp_path / source.stem / f"{preset}.webp") as animation,
                Image.open(tmp_path / source.stem / f"{preset}.poster.webp") as poster,
            ):
                assert (getattr(animation, "n_frames", 1), getattr(poster, "n_frames", 1)) == (frames, 1)
    for variant in iphone["variants"]:
        output = open_image(Path(variant["path"]).read_bytes())
        assert output.format == "WEBP"
        assert not output.metadata, f"{variant['preset']} carries {sorted(output.metadata)}"
        assert_upright_warm_on_top(output, variant["preset"])


def test_an_iphone_heic_through_the_http_flow_gives_upright_webp_and_avif_without_metadata(
    pipeline: Pipeline, open_image: Callable[[bytes], OutputImage]
) -> None:
    requested: dict[str, Any] = {"presets": ["thumb", "small"], "formats": ["webp", "avif"]}
    upload = pipeline.upload(IPHONE.name, IPHONE.read_bytes(), "image/heic", variants=requested)

    view = pipeline.wait_for_job(upload.job_id).final

    assert view["status"] == "succeeded", view
    assert view["image"]["format"] == "HEIF"
    made = sorted((variant["preset"], variant["format"]) for variant in view["variants"])
    assert made == [("small", "avif"), ("small", "webp"), ("thumb", "avif"), ("thumb", "webp")]
    for variant in view["variants"]:
        output = open_image(pipeline.download(variant["url"]).content)
        assert output.format == variant["format"].upper()
        assert output.size == (variant["width"], variant["height"]) == (64, 96)
        assert not output.metadata, f"{variant['preset']}.{variant['format']} carries {sorted(output.metadata)}"
        assert_upright_warm_on_top(output, f"{variant['preset']}.{variant['format']}")
