"""The `imgflow` command as users run it: `imgflow process` starts a fresh local runtime of its own,
pushes files through it and saves the results; `imgflow serve` stops cleanly when asked to."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from PIL import ExifTags, Image, ImageCms

if TYPE_CHECKING:
    from e2e.conftest import OutputImage, Pipeline

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "fixtures" / "images"
PHOTO = IMAGES / "photos" / "friends_by_Aitzol_Berasategi.jpg"
BAD_INPUTS = IMAGES / "bad-inputs"
CLI_SECONDS = 180
# Stored 4000x3000 with EXIF orientation 6 (rotate 90° clockwise to display): shown 3000x4000.
STORED = (4000, 3000)
DISPLAYED = (3000, 4000)
# The stored top-left corner is painted red; orientation 6 shows it at the top right.
MARKER = (STORED[0] // 10, STORED[1] // 10)
LONG_EDGES = {"thumb": 150, "small": 600, "large": 1200, "full": 4000}


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    out: Path
    # Processes the run started (its functions' loaders and containers) still alive after it exited.
    leftovers: list[int]

    @property
    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"


@pytest.fixture(scope="module")
def run_process(imgflow_cli: list[str], tmp_path_factory: pytest.TempPathFactory) -> Callable[..., CliRun]:
    def run(*arguments: str | Path) -> CliRun:
        out = tmp_path_factory.mktemp("imgflow-out")
        command = [*imgflow_cli, "process", *map(str, arguments), "--out", str(out), "--json"]
        # Every process the run starts inherits this: what still has it after the run is left behind.
        mark = f"IMGFLOW_E2E_RUN={uuid.uuid4().hex}"
        environment = {**os.environ, "IMGFLOW_E2E_RUN": mark.partition("=")[2]}
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=CLI_SECONDS, check=False, env=environment
        )
        return CliRun(done.returncode, done.stdout, done.stderr, out, processes_marked(mark.encode()))

    return run


def processes_marked(mark: bytes, patience: float = 5) -> list[int]:
    """The processes whose environment holds `mark`, once none is left or `patience` seconds have passed
    (a killed process lingers a moment until it is reaped)."""
    deadline = time.monotonic() + patience
    while True:
        marked = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            with contextlib.suppress(OSError):
                if mark in environ.read_bytes().split(b"\0"):
                    marked.append(int(environ.parent.name))
        if not marked or time.monotonic() > deadline:
            return marked
        time.sleep(0.1)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 MP camera-style JPEG: stored landscape with orientation 6, GPS position, an ICC profile."""
    with Image.open(PHOTO) as photo:
        image = photo.convert("RGB").resize(STORED, Image.Resampling.BILINEAR)
    image.paste((255, 0, 0), (0, 0, *MARKER))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "imgflow-e2e"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update(
        {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (43.0, 18.0, 36.0),
            ExifTags.GPS.GPSLongitudeRef: "W",
            ExifTags.GPS.GPSLongitude: (1.0, 58.0, 48.0),
        }
    )
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path_factory.mktemp("camera") / "portrait-12mp.jpg"
    image.save(path, quality=90, exif=exif, icc_profile=icc)
    with Image.open(path) as saved:
        assert saved.size == STORED
        assert saved.getexif()[ExifTags.Base.Orientation] == 6
        assert saved.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert saved.info.get("icc_profile") == icc
    return path


@pytest.fixture(scope="module")
def portrait_run(run_process: Callable[..., CliRun], portrait: Path) -> CliRun:
    return run_process(portrait)


def test_process_leaves_no_process_of_its_functions_behind(portrait_run: CliRun) -> None:
    # It exits without waiting out its pollers and servers, but every loader and container is gone.
    assert portrait_run.returncode == 0, portrait_run.explain()
    assert portrait_run.leftovers == []


def test_process_prints_one_json_line_that_says_succeeded(portrait_run: CliRun) -> None:
    assert portrait_run.returncode == 0, portrait_run.explain()
    assert len(portrait_run.json_lines) == 1, portrait_run.explain()
    (view,) = portrait_run.json_lines
    assert view["status"] == "succeeded", view
    assert view["image"] == {
        "format": "JPEG",
        "width": DISPLAYED[0],
        "height": DISPLAYED[1],
        "frames": 1,
        "animated": False,
        "duration_ms": None,
    }
    assert sorted(variant["preset"] for variant in view["variants"]) == sorted(LONG_EDGES)
    assert re.fullmatch(r"#[0-9a-f]{6}", view["placeholder"]["dominant_color"])
    assert view["placeholder"]["blurhash"]


def test_process_saves_every_variant_upright_at_its_preset_size(
    portrait_run: CliRun, portrait: Path, open_image: Callable[[bytes], OutputImage]
) -> None:
    (view,) = portrait_run.json_lines
    stated = {variant["preset"]: (variant["width"], variant["height"]) for variant in view["variants"]}
    for preset, long_edge in LONG_EDGES.items():
        output = open_image((portrait_run.out / portrait.stem / f"{preset}.webp").read_bytes())
        assert output.format == "WEBP"
        width, height = output.size
        assert output.size == stated[preset]
        # Portrait, as displayed: the long edge is the height, the width keeps the 3:4 ratio.
        assert height == long_edge, f"{preset}: {output.size}"
        assert abs(width - height * DISPLAYED[0] / DISPLAYED[1]) <= 1, f"{preset}: {output.size}"


def test_the_stored_top_left_corner_is_shown_top_right(
    portrait_run: CliRun, portrait: Path, open_image: Callable[[bytes], OutputImage]
) -> None:
    def is_red(pixel: object) -> bool:
        assert isinstance(pixel, tuple), pixel
        red, green, blue = pixel[:3]
        return red > 200 and green < 70 and blue < 70

    for preset in LONG_EDGES:
        pixels = open_image((portrait_run.out / portrait.stem / f"{preset}.webp").read_bytes()).pixels
        width, height = pixels.size
        # Halfway into where the marker must be, and the same spot in the other three corners.
        x, y = width * 0.05, height * 0.05
        corners = {
            "top right": (width - 1 - x, y),
            "top left": (x, y),
            "bottom left": (x, height - 1 - y),
            "bottom right": (width - 1 - x, height - 1 - y),
        }
        red = {name for name, (cx, cy) in corners.items() if is_red(pixels.getpixel((int(cx), int(cy))))}
        assert red == {"top right"}, f"{preset}: red in {red or 'no corner'}"


def test_no_exif_gps_or_icc_profile_reaches_the_outputs(
    portrait_run: CliRun, portrait: Path, open_image: Callable[[bytes], OutputImage]
) -> None:
    for preset in LONG_EDGES:
        output = open_image((portrait_run.out / portrait.stem / f"{preset}.webp").read_bytes())
        assert not output.metadata, f"{preset} still carries {sorted(output.metadata)}"


def test_a_bad_file_exits_1_with_a_json_line_that_says_rejected(run_process: Callable[..., CliRun]) -> None:
    run = run_process(BAD_INPUTS / "truncated_jpeg.jpg")
    assert run.returncode == 1, run.explain()
    assert len(run.json_lines) == 1, run.explain()
    (view,) = run.json_lines
    assert view["status"] == "rejected", view
    assert view["error"]["code"] == "corrupt_image"
    assert view["error"]["message"]


def test_stdout_holds_only_json_lines_with_the_local_path_of_every_result(portrait_run: CliRun, portrait: Path) -> None:
    (view,) = portrait_run.json_lines  # every stdout line parses: no warning or log line among them
    folder = portrait_run.out / portrait.stem
    assert view["file"] == str(portrait)
    assert view["out"] == str(folder)
    # The URLs die with the command's runtime; the paths are what stays.
    assert {variant["path"] for variant in view["variants"]} == {str(folder / f"{p}.webp") for p in LONG_EDGES}
    assert all(Path(variant["path"]).stat().st_size == variant["bytes"] for variant in view["variants"])


def test_the_runtime_start_and_the_job_progress_are_told_on_stderr(portrait_run: CliRun, portrait: Path) -> None:
    lines = portrait_run.stderr.splitlines()
    assert lines[0].startswith("imgflow: starting the local runtime"), portrait_run.explain()
    assert re.fullmatch(r"imgflow: ready after \d+\.\d s; processing 1 file\(s\)", lines[1]), portrait_run.explain()
    assert any(line.startswith(f"{portrait.name}: processing (variants:") for line in lines), portrait_run.explain()
    assert lines[-1].startswith(f"{portrait.name}: succeeded"), portrait_run.explain()


def test_a_missing_file_exits_2_and_says_what_to_pass(run_process: Callable[..., CliRun], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jpg"
    run = run_process(missing)
    assert run.returncode == 2, run.explain()
    assert f"no such file or directory: {missing}" in run.stderr
    assert "a directory of images, or a glob such as 'photos/*.jpg'" in run.stderr
    assert run.stdout == ""


@pytest.fixture(scope="module")
def folders_run(run_process: Callable[..., CliRun], tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """A directory, a quoted glob and a text file in one run (each run starts a runtime of its own):
    the directory's hopper.jpg and the glob's hopper.png share a stem."""
    inputs = tmp_path_factory.mktemp("inputs")
    photos, more = inputs / "photos", inputs / "more"
    photos.mkdir()
    more.mkdir()
    shutil.copy(BAD_INPUTS / "hopper.jpg", photos / "hopper.jpg")
    (photos / "notes.md").write_text("not an image: a directory's other files are left out\n")
    shutil.copy(BAD_INPUTS / "hopper.png", more / "hopper.png")
    text = inputs / "notes.txt"
    text.write_text("named on purpose: sent, and rejected as a renamed file is\n")
    # The glob quoted, as a shell that found no match (or none at all) passes it on.
    return run_process(photos, str(more / "*.png"), text)


def test_directories_give_their_images_and_globs_their_matches_and_text_is_unsupported(folders_run: CliRun) -> None:
    run = folders_run

    assert run.returncode == 1, run.explain()
    by_file = {Path(view["file"]).name: view for view in run.json_lines}
    assert sorted(by_file) == ["hopper.jpg", "hopper.png", "notes.txt"], run.explain()
    assert by_file["hopper.jpg"]["status"] == by_file["hopper.png"]["status"] == "succeeded"
    assert by_file["notes.txt"]["status"] == "rejected"
    assert by_file["notes.txt"]["error"]["code"] == "unsupported_format"
    assert "out" not in by_file["notes.txt"]


def test_a_failure_line_says_results_only_where_results_were_written(imgflow_cli: list[str], tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    out = tmp_path / "out"
    command = [*imgflow_cli, "process", str(text), str(BAD_INPUTS / "hopper.jpg"), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=CLI_SECONDS, check=False)

    assert done.returncode == 1, done.stderr[-4000:]
    text_line, photo_line = done.stdout.splitlines()
    assert text_line.startswith(f"{text}: rejected - unsupported_format: "), done.stdout
    assert "results in" not in text_line
    assert photo_line == f"{BAD_INPUTS / 'hopper.jpg'}: succeeded; results in {out / 'hopper'}"
    assert not (out / "notes").exists()


@pytest.mark.parametrize(("flag", "role"), [("--port", "the HTTP API"), ("--aws-port", "the AWS endpoint")])
def test_serve_on_a_busy_port_names_it_and_the_flag_that_moves_it(imgflow_cli: list[str], flag: str, role: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {"--port": "0", "--aws-port": "0", flag: str(busy)}
        started = time.monotonic()
        done = subprocess.run(
            [*imgflow_cli, "serve", *[item for pair in ports.items() for item in pair]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 30
    assert f"port {busy} ({role}" in done.stderr
    assert f"imgflow serve {flag} {busy + 1}" in done.stderr
    assert f'make run ARGS="{flag} {busy + 1}"' in done.stderr
    assert "Traceback" not in done.stderr


def test_files_with_the_same_stem_keep_their_results_apart(folders_run: CliRun) -> None:
    run = folders_run
    by_file = {Path(view["file"]).name: view for view in run.json_lines}
    assert [by_file[name]["status"] for name in ("hopper.jpg", "hopper.png")] == ["succeeded", "succeeded"]
    assert by_file["hopper.jpg"]["out"] != by_file["hopper.png"]["out"], run.explain()
    # The text file was rejected and wrote nothing: every result is one of the two photos'.
    saved = sorted(path.relative_to(run.out) for path in run.out.rglob("*.webp"))
    assert len(saved) == 8, f"two files x four variants, found {[str(path) for path in saved]}"


def test_files_the_api_refuses_are_reported_as_json_lines_not_a_traceback(
    run_process: Callable[..., CliRun], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    oversize = tmp_path / "oversize.jpg"
    oversize.write_bytes(os.urandom(60_000))
    run = run_process("--parameter", "MaxUploadBytes=50000", empty, oversize, BAD_INPUTS / "hopper.jpg")
    assert run.returncode == 1, run.explain()
    assert "Traceback" not in run.stderr, run.explain()
    lines = run.json_lines
    assert len(lines) == 3, run.explain()
    assert lines[0].get("status") != "succeeded", lines[0]
    assert lines[0]["error"]["code"], lines[0]
    assert lines[1]["error"]["code"] == "too_large_bytes", lines[1]
    assert lines[2]["status"] == "succeeded", lines[2]


def test_serve_stops_cleanly_on_sigterm(serve_imgflow: Callable[..., AbstractContextManager[Pipeline]]) -> None:
    with serve_imgflow() as served:
        assert requests.get(f"{served.api_url}/health", timeout=30).status_code == 200
        served.process.send_signal(signal.SIGTERM)
        try:
            returncode = served.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("imgflow serve was still running 30 s after SIGTERM")
        assert returncode == 0, "\n".join(served.log[-50:])
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{served.api_url}/health", timeout=5)


def test_process_with_format_jpeg_saves_progressive_jpeg_variants_without_metadata(
    run_process: Callable[..., CliRun],
) -> None:
    hopper = ROOT / "tests" / "fixtures" / "images" / "bad-inputs" / "hopper.jpg"

    run = run_process(hopper, "--format", "jpeg", "--format", "webp")

    assert run.returncode == 0, run.explain()
    (view,) = run.json_lines
    assert {(variant["preset"], variant["format"]) for variant in view["variants"]} >= {
        ("thumb", "jpeg"),
        ("thumb", "webp"),
    }
    with Image.open(run.out / "hopper" / "thumb.jpeg") as thumb:
        assert thumb.format == "JPEG"
        assert thumb.info.get("progressive") or thumb.info.get("progression")
        assert not thumb.getexif()
        assert "icc_profile" not in thumb.info
