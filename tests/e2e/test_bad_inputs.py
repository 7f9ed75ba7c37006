"""Every file of the bad-inputs corpus through the local runtime over HTTP, as a web app uploads it, with
the outcome its MANIFEST.md row expects: REJECT rows end `rejected` with a stable code, ACCEPT rows end
`succeeded` with clean variants. The uploads run concurrently, once, and each row is checked on its own."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import ImageChops, ImageStat

if TYPE_CHECKING:
    from e2e.conftest import OutputImage, Pipeline

pytestmark = pytest.mark.e2e

BAD_INPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "images" / "bad-inputs"
NOT_INPUTS = {"MANIFEST.md", "PILLOW_LICENSE.txt"}
# The manifest names the reference decoder's failure; the API reports imgflow's stable codes.
CODE_FOR_REASON = {
    "decode_error": "corrupt_image",
    "decompression_bomb": "too_many_pixels",
    "unidentified": "unsupported_format",
    "unsupported_format": "unsupported_format",
}
PRESETS = {"thumb": 150, "small": 600, "large": 1200, "full": 4096}
CONTENT_TYPE = re.compile(r"^image/[a-z0-9.+-]+$")
WORKERS = 8
TERMINAL = {"succeeded", "failed", "rejected", "expired"}


@dataclass(frozen=True)
class ManifestRow:
    file: str
    expected: str
    observed: str

    @property
    def verdict(self) -> str:
        return self.expected.split()[0].strip(";:,")

    @property
    def reason(self) -> str | None:
        words = self.expected.split()
        return words[1].strip(";:,()") if self.verdict == "REJECT" and len(words) > 1 else None

    @property
    def observed_image(self) -> tuple[str, int, int] | None:
        """The format and displayed size the reference decoder saw (`ACCEPT JPEG RGB 2x1->1x2`)."""
        match = re.fullmatch(r"ACCEPT (\w+) \S+ \d+x\d+->(\d+)x(\d+)", self.observed)
        return (match[1], int(match[2]), int(match[3])) if match else None


def manifest_rows() -> list[ManifestRow]:
    rows = []
    for line in (BAD_INPUTS / "MANIFEST.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            rows.append(ManifestRow(cells[0].strip("`"), cells[4], cells[5]))
    return rows


ROWS = manifest_rows()


def content_type_for(name: str) -> str:
    guessed = mimetypes.guess_type(name)[0]
    return guessed if guessed and CONTENT_TYPE.fullmatch(guessed) else "application/octet-stream"


@dataclass
class Outcome:
    row: ManifestRow
    job_id: str | None = None
    view: dict[str, Any] | None = None
    outputs: dict[str, OutputImage] = field(default_factory=dict)
    problem: str | None = None


def _run(pipeline: Pipeline, open_image: Callable[[bytes], OutputImage], row: ManifestRow) -> Outcome:
    outcome = Outcome(row)
    try:
        return _follow(pipeline, open_image, outcome)
    except (Exception, pytest.fail.Exception) as error:
        # One file's failure is that file's to report; the other files still get their verdicts.
        outcome.problem = f"{type(error).__name__}: {error}"
        return outcome


def _follow(pipeline: Pipeline, open_image: Callable[[bytes], OutputImage], outcome: Outcome) -> Outcome:
    row = outcome.row
    data = (BAD_INPUTS / row.file).read_bytes()
    created = pipeline.create_upload(row.file, content_type_for(row.file), len(data))
    if created.status_code != 201:
        outcome.problem = f"POST /uploads answered {created.status_code}: {created.text}"
        return outcome
    outcome.job_id = created.json()["job_id"]
    posted = pipeline.post_form(created.json(), data, row.file)
    if posted.status_code != 204:
        outcome.problem = f"S3 refused the upload: {posted.status_code} {posted.text}"
        return outcome
    outcome.view = pipeline.wait_for_job(outcome.job_id).final
    for variant in outcome.view["variants"]:
        outcome.outputs[variant["preset"]] = open_image(pipeline.download(variant["url"]).content)
    return outcome


@pytest.fixture(scope="module")
def outcomes(pipeline: Pipeline, open_image: Callable[[bytes], OutputImage]) -> dict[str, Outcome]:
    """Every corpus file uploaded at once, each followed to the end of its job."""
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="bad-input") as pool:
        done = pool.map(lambda row: _run(pipeline, open_image, row), ROWS)
        return {outcome.row.file: outcome for outcome in done}


def test_the_manifest_lists_every_file_of_the_corpus() -> None:
    on_disk = {path.name for path in BAD_INPUTS.iterdir() if path.is_file()} - NOT_INPUTS
    assert {row.file for row in ROWS} == on_disk
    assert {row.verdict for row in ROWS} == {"ACCEPT", "REJECT"}
    assert {row.reason for row in ROWS if row.verdict == "REJECT"} <= set(CODE_FOR_REASON)


@pytest.mark.parametrize("row", ROWS, ids=[row.file for row in ROWS])
def test_each_file_ends_as_its_manifest_row_expects(row: ManifestRow, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[row.file]
    assert outcome.problem is None, f"{row.file}: {outcome.problem}"
    view = outcome.view
    assert view is not None
    mismatches: list[str] = []
    if row.verdict == "REJECT":
        expected_code = CODE_FOR_REASON[row.reason or ""]
        error = view["error"] or {}
        if view["status"] != "rejected":
            mismatches.append(f"status {view['status']!r}, expected 'rejected'")
        if error.get("code") != expected_code:
            mismatches.append(f"error code {error.get('code')!r}, expected {expected_code!r}")
        if not error.get("message"):
            mismatches.append("no error message")
        if view["variants"]:
            mismatches.append(f"{len(view['variants'])} variants were made of a rejected file")
    else:
        mismatches += _accepted_mismatches(row, view, outcome.outputs)
    assert not mismatches, f"{row.file} ({row.expected}):\n  " + "\n  ".join(mismatches) + f"\njob view: {view}"


def _accepted_mismatches(row: ManifestRow, view: dict[str, Any], outputs: dict[str, OutputImage]) -> list[str]:
    if view["status"] != "succeeded":
        return [f"status {view['status']!r}, expected 'succeeded' (error: {view['error']})"]
    mismatches = []
    image = view["image"]
    if row.observed_image is not None:
        fmt, width, height = row.observed_image
        if (image["format"], image["width"], image["height"]) != (fmt, width, height):
            mismatches.append(f"image {image}, the reference decoder saw {fmt} {width}x{height}")
    if sorted(outputs) != sorted(PRESETS):
        mismatches.append(f"variants {sorted(outputs)}, expected {sorted(PRESETS)}")
    for variant in view["variants"]:
        preset, output = variant["preset"], outputs.get(variant["preset"])
        long_edge = min(PRESETS.get(preset, 0), max(image["width"], image["height"]))
        stated = (variant["width"], variant["height"])
        if max(stated) != long_edge:
            mismatches.append(f"{preset}: {stated}, expected a long edge of {long_edge}")
        if (image["width"] > image["height"]) != (stated[0] > stated[1]):
            mismatches.append(f"{preset}: {stated} is not oriented like the image {image['width']}x{image['height']}")
        if output is None:
            continue
        if (output.format, output.size) != ("WEBP", stated):
            mismatches.append(f"{preset}: downloaded {output.format} {output.size}, the job says WEBP {stated}")
        if output.metadata:
            mismatches.append(f"{preset}: still carries {sorted(output.metadata)}")
    return mismatches


def test_a_2x1_image_with_orientation_8_is_reported_1x2(outcomes: dict[str, Outcome]) -> None:
    view = outcomes["orientation_rectangle.jpg"].view
    assert view is not None
    assert (view["image"]["width"], view["image"]["height"]) == (1, 2)
    assert {(variant["width"], variant["height"]) for variant in view["variants"]} == {(1, 2)}


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_exif_orientation_comes_out_upright(orientation: int, outcomes: dict[str, Outcome]) -> None:
    """The hopper_orientation_N files store hopper.jpg transformed and tagged to be shown upright."""
    upright = outcomes["hopper.jpg"].outputs["full"].pixels
    output = outcomes[f"hopper_orientation_{orientation}.jpg"].outputs["full"].pixels
    assert output.size == upright.size
    # Oriented, the two differ by JPEG noise (~5 per channel); unoriented by 50 or more.
    difference = ImageStat.Stat(ImageChops.difference(upright, output)).mean
    assert max(difference) < 20, f"orientation {orientation}: mean difference per channel {difference}"


def test_every_job_of_the_corpus_is_terminal_in_jobs_table(pipeline: Pipeline, outcomes: dict[str, Outcome]) -> None:
    ours = {outcome.job_id: name for name, outcome in outcomes.items() if outcome.job_id}
    assert len(ours) == len(ROWS)
    stored = {job["job_id"]: job["status"] for job in pipeline.jobs() if job["job_id"] in ours}
    unfinished = {ours[job_id]: status for job_id, status in stored.items() if status not in TERMINAL}
    assert set(stored) == set(ours), f"missing from JobsTable: {sorted(ours[j] for j in set(ours) - set(stored))}"
    assert not unfinished, f"jobs left unfinished: {unfinished}"


def test_every_job_of_the_corpus_publishes_its_lifecycle_events_once(
    pipeline: Pipeline, outcomes: dict[str, Outcome]
) -> None:
    expected = {
        outcome.job_id: (
            ["Job Rejected"]
            if outcome.view and outcome.view["status"] == "rejected"
            else ["Job Accepted", "Job Succeeded", "Variants Ready"]
        )
        for outcome in outcomes.values()
        if outcome.job_id
    }

    def seen() -> dict[str, list[str]]:
        kinds: dict[str, list[str]] = {job_id: [] for job_id in expected}
        for event in pipeline.events():
            job_id = event["detail"].get("job_id")
            if job_id in kinds:
                kinds[job_id].append(event["detail-type"])
        return {job_id: sorted(found) for job_id, found in kinds.items()}

    names = {outcome.job_id: name for name, outcome in outcomes.items()}

    def differences() -> str:
        actual = seen()
        wrong = {names[job_id]: actual[job_id] for job_id in expected if actual[job_id] != expected[job_id]}
        return f"lifecycle events that differ from one per step: {wrong}"

    pipeline.eventually(lambda: seen() == expected, 20, differences)
