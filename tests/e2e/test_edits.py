"""Edits end to end: `imgflow serve` in its own process, with Gemini played by a fake endpoint that runs in
this test process (GEMINI_BASE_URL); and `imgflow process` from an environment without any Gemini key."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from fakes.fake_gemini import DEFAULT_PAIRS, IMAGE_MODEL, TEXT_MODEL, FakeGemini, RecordedRequest
from imgflow.imaging import ImageLimits, load_normalized
from imgflow.operations import apply_recipe
from imgflow.recipes import Recipe

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOPPER = ROOT / "tests" / "fixtures" / "images" / "bad-inputs" / "hopper.jpg"
PRESETS = ("thumb", "small", "large", "full")
RECIPE: list[dict[str, Any]] = [
    {"op": "crop", "left": 10, "top": 20, "width": 100, "height": 80},
    {"op": "grayscale"},
    {"op": "rotate", "degrees": 90},
]
FLIP: list[dict[str, Any]] = [{"op": "flip", "direction": "horizontal"}]
# The template's defaults (MaxUploadBytes, MaxPixels, ...): what the edit function decodes with.
LIMITS = ImageLimits(max_bytes=25 * 1024 * 1024, max_pixels=60_000_000, max_side=16_384, max_frames=300)
CLI_SECONDS = 120
JOB_SECONDS = 60
TERMINAL_TASK = {"succeeded", "failed"}


# --- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    """The fake Gemini, started before the server that will call it."""
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="module")
def served(serve_imgflow: Callable[..., AbstractContextManager[Pipeline]], gemini: FakeGemini) -> Iterator[Pipeline]:
    """`imgflow serve` (with `--retry-delay 1`) whose edit function calls the fake with one key."""
    with pytest.MonkeyPatch.context() as patch:
        # The server process inherits this environment.
        patch.setenv("GEMINI_API_KEYS", "test-key")
        patch.setenv("GEMINI_BASE_URL", gemini.base_url)
        # A 429 without a retryDelay rests its key this long (60 s by default), and `--retry-delay 1` brings
        # the message back after 1 s: with a single key the retry would find it resting. No rest here.
        patch.setenv("GEMINI_KEY_COOLDOWN_SECONDS", "0")
        patch.delenv("GEMINI_API_KEYS_SECRET", raising=False)
        with serve_imgflow() as server:
            yield server


@pytest.fixture
def scripted(gemini: FakeGemini) -> Iterator[FakeGemini]:
    """The fake, checked to have used up every reply a test scripted on it."""
    yield gemini
    leftover = {model: len(replies) for model, replies in gemini._replies.items() if replies}
    gemini._replies.clear()
    assert not leftover, f"scripted replies never asked for: {leftover}"


# --- helpers ----------------------------------------------------------------------------------------------------


def clean_environment() -> dict[str, str]:
    """This process's environment without any Gemini setting: a machine where no key was ever configured."""
    return {name: value for name, value in os.environ.items() if not name.startswith("GEMINI_")}


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "WEBP"
        return image.copy()


def assert_same_pixels(actual: Image.Image, expected: Image.Image) -> None:
    assert (actual.mode, actual.size) == (expected.mode, expected.size)
    assert actual.tobytes() == expected.tobytes(), "the pixels differ"


def recipe_applied(data: bytes, *recipes: list[dict[str, Any]]) -> Image.Image:
    image = load_normalized(data, LIMITS)
    for operations in recipes:
        image = apply_recipe(image, Recipe.model_validate({"operations": operations}))
    return image


def requests_with(gemini: FakeGemini, text: str) -> list[RecordedRequest]:
    """The requests the fake received whose texts mention `text` (each test uses prompts of its own)."""
    return [request for request in gemini.requests if text in request.text]


def edit_of(view: dict[str, Any], kind: str) -> dict[str, Any]:
    [edit] = [edit for edit in view["edits"] if edit["kind"] == kind]
    return edit


def wait_for_edit(pipeline: Pipeline, job_id: str, edit_id: str, timeout: float = JOB_SECONDS) -> dict[str, Any]:
    """Long-poll the job (`?wait=&since=`) until the edit has finished; the last view."""
    deadline = time.monotonic() + timeout
    view = pipeline.view(job_id)
    while True:
        [edit] = [edit for edit in view["edits"] if edit["edit_id"] == edit_id]
        if edit["status"] in TERMINAL_TASK:
            return view
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"edit {edit_id} of job {job_id} did not finish within {timeout:.0f} s: {edit}")
        response = pipeline.job(job_id, wait=max(1, min(10, int(remaining))), since=view["version"])
        assert response.status_code == 200, response.text
        view = response.json()


def prompt_job(pipeline: Pipeline, *edits: dict[str, Any]) -> dict[str, Any]:
    """hopper.jpg uploaded as a web app does, with `edits`; the job's final view."""
    upload = pipeline.upload(HOPPER.name, HOPPER.read_bytes(), "image/jpeg", edits=list(edits))
    return pipeline.wait_for_job(upload.job_id, timeout=JOB_SECONDS).final


def event_types(pipeline: Pipeline, job_id: str, **wanted: int) -> list[str]:
    """The job's lifecycle event types once at least `wanted[type]` of each have arrived (`Edit_Succeeded=2`)."""
    deadline = time.monotonic() + 20
    while True:
        kinds = [event["detail-type"] for event in pipeline.events(job_id)]
        if all(kinds.count(kind.replace("_", " ")) >= count for kind, count in wanted.items()):
            return kinds
        if time.monotonic() > deadline:
            pytest.fail(f"events of {job_id}: wanted {wanted}, got {kinds}")
        time.sleep(0.2)


# --- `imgflow process` without any key ------------------------------------------------------------------------------


def test_process_without_gemini_keys_saves_the_recipe_and_the_variants_and_fails_the_prompt(
    imgflow_cli: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [
        *imgflow_cli,
        "process",
        str(HOPPER),
        "--edit",
        json.dumps({"operations": RECIPE}),
        "--prompt",
        "make it blue",
        "--json",
        "--out",
        str(out),
    ]

    done = subprocess.run(
        command, cwd=ROOT, env=clean_environment(), capture_output=True, text=True, timeout=CLI_SECONDS, check=False
    )

    explain = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr[-3000:]}"
    assert done.returncode == 1, explain
    [view] = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert view["status"] == "failed", explain
    assert view["error"]["code"] == "provider_unavailable"
    recipe, prompt = view["edits"]  # in the order they were asked for
    assert (recipe["kind"], recipe["status"], recipe["attempts"]) == ("recipe", "succeeded", 1)
    assert (prompt["kind"], prompt["status"], prompt["attempts"]) == ("prompt", "failed", 1)
    assert prompt["error"]["code"] == "provider_unavailable"
    assert "GEMINI_API_KEYS" in prompt["error"]["message"]
    folder = out / HOPPER.stem
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        ["edit-1-recipe.webp", "edit-1-recipe", *(f"{preset}.webp" for preset in PRESETS)]
    )
    # The recipe's result's own web variants, in a folder beside its lossless master.
    assert sorted(path.name for path in (folder / "edit-1-recipe").iterdir()) == sorted(f"{p}.webp" for p in PRESETS)
    assert_same_pixels(
        decoded((folder / "edit-1-recipe.webp").read_bytes()), recipe_applied(HOPPER.read_bytes(), RECIPE)
    )


# --- `imgflow serve` with Gemini ------------------------------------------------------------------------------------


def test_a_prompt_and_a_translation_asked_with_the_upload_succeed_with_downloadable_results(
    served: Pipeline, scripted: FakeGemini
) -> None:
    prompt = "make the sky a deep blue"

    view = prompt_job(served, {"prompt": prompt}, {"translate_to": "German"})

    assert view["status"] == "succeeded", view
    assert sorted(variant["preset"] for variant in view["variants"]) == sorted(PRESETS)
    edited, translated = edit_of(view, "prompt"), edit_of(view, "translate")
    for edit in (edited, translated):
        assert (edit["status"], edit["attempts"], edit["error"]) == ("succeeded", 1, None), edit
        assert (edit["provider"], edit["model"]) == ("gemini", IMAGE_MODEL)
        image = decoded(served.download(edit["url"]).content)
        assert image.size == (edit["width"], edit["height"]) == (128, 128)
    assert edited["provider_calls"] == 1
    assert translated["provider_calls"] == 2
    assert translated["text_url"]
    assert served.download(translated["text_url"]).json() == {"pairs": DEFAULT_PAIRS}

    [edit_request] = requests_with(scripted, prompt)
    assert (edit_request.model, edit_request.api_key) == (IMAGE_MODEL, "test-key")
    assert edit_request.images[0] != HOPPER.read_bytes()
    with Image.open(io.BytesIO(edit_request.images[0])) as sent:
        assert (sent.format, sent.size) == ("PNG", (128, 128))
        assert not sent.getexif()
    translation_requests = requests_with(scripted, "German")
    assert sorted(request.model for request in translation_requests) == sorted([IMAGE_MODEL, TEXT_MODEL])

    kinds = event_types(served, view["job_id"], Edit_Succeeded=2, Job_Succeeded=1)
    assert kinds.count("Edit Succeeded") == 2
    assert kinds.count("Job Succeeded") == 1


def test_a_throttled_edit_is_retried_through_the_queue_and_succeeds(served: Pipeline, scripted: FakeGemini) -> None:
    prompt = "add a small red kite in the sky"
    # No retryDelay: `--retry-delay 1` brings the message back after 1 s whatever the function asked for, and a
    # retryDelay would rest the only key for longer than that (each early retry then burns an attempt).
    scripted.reply_status(429, model=IMAGE_MODEL)

    view = prompt_job(served, {"prompt": prompt})

    assert view["status"] == "succeeded", view
    edit = edit_of(view, "prompt")
    assert (edit["status"], edit["attempts"], edit["stage"]) == ("succeeded", 2, "done"), edit
    assert [request.api_key for request in requests_with(scripted, prompt)] == ["test-key", "test-key"]
    assert served.download(edit["url"]).content


@pytest.mark.parametrize(
    ("script", "code", "message"),
    [
        pytest.param(
            lambda g: g.reply_blocked("IMAGE_SAFETY", model=IMAGE_MODEL),
            "edit_blocked",
            "IMAGE_SAFETY",
            id="image-safety",
        ),
        pytest.param(
            lambda g: g.reply_status(400, message="Unable to process input image.", model=IMAGE_MODEL),
            "edit_failed",
            "Unable to process input image.",
            id="bad-request",
        ),
    ],
)
def test_a_refused_edit_fails_at_once_with_its_reason(
    served: Pipeline,
    scripted: FakeGemini,
    script: Callable[[FakeGemini], object],
    code: str,
    message: str,
) -> None:
    prompt = f"replace the hat with a crown ({code})"
    script(scripted)

    view = prompt_job(served, {"prompt": prompt})

    assert view["status"] == "failed", view
    assert view["error"]["code"] == code
    edit = edit_of(view, "prompt")
    assert (edit["status"], edit["attempts"], edit["url"]) == ("failed", 1, None), edit
    assert edit["error"]["code"] == code
    assert message in edit["error"]["message"]
    assert len(requests_with(scripted, prompt)) == 1
    assert sorted(variant["preset"] for variant in view["variants"]) == sorted(PRESETS)  # results stay visible
    event_types(served, view["job_id"], Edit_Failed=1, Job_Failed=1)
    [failed] = [event for event in served.events(view["job_id"]) if event["detail-type"] == "Edit Failed"]
    assert failed["detail"]["error"]["code"] == code
    assert failed["detail"]["edit"]["edit_id"] == edit["edit_id"]


def test_an_edit_added_over_http_on_an_earlier_edit_builds_on_its_result(
    served: Pipeline, scripted: FakeGemini
) -> None:
    view = prompt_job(served, {"prompt": "turn the background green"})
    assert view["status"] == "succeeded", view
    parent = edit_of(view, "prompt")

    response = served.api(
        "POST", f"/jobs/{view['job_id']}/edits", json={"operations": FLIP, "parent_edit_id": parent["edit_id"]}
    )

    assert response.status_code == 202, response.text
    child_id = response.json()["edit_id"]
    final = wait_for_edit(served, view["job_id"], child_id)
    [child] = [edit for edit in final["edits"] if edit["edit_id"] == child_id]
    assert (child["status"], child["parent_edit_id"], child["kind"]) == ("succeeded", parent["edit_id"], "recipe")
    assert final["status"] == "succeeded"  # a settled job keeps its status
    assert final["version"] > view["version"]
    parent_pixels = served.download(parent["url"]).content
    assert_same_pixels(decoded(served.download(child["url"]).content), recipe_applied(parent_pixels, FLIP))
    # Beside the lossless master, the result's web variants, downloadable like the upload's.
    assert {variant["preset"] for variant in child["variants"]} == {"thumb", "small", "large", "full"}
    for variant in child["variants"]:
        download = served.download(variant["url"])
        assert download.status_code == 200
        assert decoded(download.content).size == (variant["width"], variant["height"])
    assert child["placeholder"]["blurhash"]
    kinds = event_types(served, view["job_id"], Edit_Succeeded=2, Job_Succeeded=1)
    assert kinds.count("Edit Succeeded") == 2
    assert kinds.count("Job Succeeded") == 1

    refused = served.api(
        "POST", f"/jobs/{view['job_id']}/edits", json={"operations": FLIP, "parent_edit_id": "0123456789ab"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"
