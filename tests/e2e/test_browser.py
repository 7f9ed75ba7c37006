"""The demo page in a real browser, against `imgflow serve` started as users start it.

The page does what a web app does: `POST /uploads`, a multipart POST of the file straight to S3 (through
the local runtime's front door, which checks the POST policy as S3 does), then long polls on the job.
Debian's Chromium drives it: Playwright's own browser download is not used (`scripts/ensure-chromium.sh`).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, Route, ViewportSize, expect, sync_playwright

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

# Whom the runtime's demo page signs in as (imgflow_local.demo.DEMO_OWNER).
DEMO_OWNER = "demo"

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
BAD_INPUTS = ROOT / "tests" / "fixtures" / "images" / "bad-inputs"
ANIMATED_GIF = ROOT / "tests" / "fixtures" / "images" / "animations" / "crossing_24_frames.gif"
CHROMIUM = Path("/usr/bin/chromium")
# No internet here: anything Chromium would fetch on its own in the background only stalls or fails.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_SECONDS = 60
WAIT_MS = 60_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (scripts/ensure-chromium.sh installs it)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser_runtime(chromium_path: Path, pipeline: Pipeline) -> Pipeline:
    """The session's `imgflow serve` (tests/e2e/conftest.py), once Chromium is known to be there."""
    return pipeline


def runtime_log(runtime: Pipeline) -> str:
    return "\n".join(runtime.log[-200:])


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def owner(browser_runtime: Pipeline) -> str:
    """Whom the page signs in as (the runtime's `demo`), with no jobs left by earlier tests: the page lists
    the owner's jobs, and each test sees only its own."""
    listed = browser_runtime.api("GET", "/jobs", owner=DEMO_OWNER, params={"limit": 100})
    for job in listed.json()["jobs"]:
        browser_runtime.api("DELETE", f"/jobs/{job['job_id']}", owner=DEMO_OWNER)
    return DEMO_OWNER


@pytest.fixture
def viewport() -> ViewportSize:
    return {"width": 1100, "height": 900}


def load(page: Page, runtime: Pipeline) -> None:
    """Open (or reload) the demo page and wait until it has listed the owner's jobs."""
    page.goto(runtime.api_url + "/")
    expect(page.locator("#jobs")).to_have_attribute("data-loaded", "true")


@pytest.fixture
def page(browser: Browser, browser_runtime: Pipeline, owner: str, viewport: ViewportSize) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport)
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    uncaught: list[str] = []
    opened.on("pageerror", lambda error: uncaught.append(str(error)))
    load(opened, browser_runtime)
    try:
        yield opened
    finally:
        context.close()
    assert not uncaught, f"the page threw: {uncaught}\nruntime log:\n{runtime_log(browser_runtime)}"


def test_the_page_is_served_at_the_api_origin(page: Page, owner: str) -> None:
    expect(page).to_have_title(re.compile("imgflow"))
    expect(page.locator("input#file[type=file]")).to_have_count(1)
    expect(page.get_by_text("Choose images")).to_be_visible()
    expect(page.locator('[data-role="owner"]')).to_contain_text(f"Signed in locally as {owner}")


def test_the_icon_is_served_and_nothing_the_page_loads_is_missing(browser: Browser, browser_runtime: Pipeline) -> None:
    context = browser.new_context()
    opened = context.new_page()
    failed: list[str] = []
    opened.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    try:
        opened.goto(browser_runtime.api_url + "/")
        expect(opened.locator("#jobs")).to_have_attribute("data-loaded", "true", timeout=WAIT_MS)
        icon = opened.locator('link[rel="icon"]').get_attribute("href")
        answer = opened.request.get(browser_runtime.api_url + (icon or "/favicon.ico"))
        assert answer.status == 200
        assert answer.headers["content-type"] == "image/x-icon"
        assert Image.open(io.BytesIO(answer.body())).format == "ICO"
    finally:
        context.close()
    assert not failed, failed


def test_an_image_goes_through_to_its_variants(page: Page, browser_runtime: Pipeline) -> None:
    page.set_input_files("#file", str(BAD_INPUTS / "hopper.jpg"))

    card = page.locator('#jobs .job[data-filename="hopper.jpg"]')
    expect(card).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    expect(card.locator('[data-role="status"]')).to_have_text("succeeded")
    assert re.fullmatch(r"[0-9a-f]{32}", card.get_attribute("data-job-id") or ""), runtime_log(browser_runtime)

    thumb = card.locator('img[data-role="thumb"]')
    expect(thumb).to_be_visible(timeout=WAIT_MS)
    thumb_handle = thumb.element_handle()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb_handle, timeout=WAIT_MS)
    assert thumb.evaluate("img => img.naturalWidth") > 0

    links = card.locator('a[data-role="variant"]')
    expect(links).to_have_count(4)
    presets = set()
    for index in range(4):
        link = links.nth(index)
        presets.add(link.get_attribute("data-preset"))
        assert (link.get_attribute("href") or "").startswith("http://")
        assert int(link.get_attribute("data-bytes") or 0) > 0
        # hopper.jpg is 128 px square: no variant is ever upscaled.
        assert (link.get_attribute("data-width"), link.get_attribute("data-height")) == ("128", "128")
    assert presets == {"thumb", "small", "large", "full"}
    expect(card.locator('[data-role="variants"]')).to_contain_text("128\u00d7128")

    swatch = card.locator('[data-role="swatch"]')
    assert re.fullmatch(r"#[0-9a-f]{6}", swatch.get_attribute("data-color") or "")
    expect(card.locator('canvas[data-role="blurhash"]')).to_be_visible()
    expect(card.locator('[data-role="error"]')).to_be_hidden()


def test_a_corrupt_image_is_shown_rejected_with_its_code(page: Page) -> None:
    page.set_input_files("#file", str(BAD_INPUTS / "broken_data_stream.png"))

    card = page.locator('#jobs .job[data-filename="broken_data_stream.png"]')
    expect(card).to_have_attribute("data-status", "rejected", timeout=WAIT_MS)
    error = card.locator('[data-role="error"]')
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-code", "corrupt_image")
    expect(error).to_contain_text("rejected — corrupt_image:")
    expect(card.locator('a[data-role="variant"]')).to_have_count(0)


def test_an_upload_that_s3_refuses_is_shown_with_s3s_reason(page: Page) -> None:
    def tamper(route: Route) -> None:
        # Declare another type in the form than the one the policy was signed for: S3 must refuse it.
        response = route.fetch()
        created = response.json()
        created["upload"]["fields"]["Content-Type"] = "image/png"
        route.fulfill(response=response, body=json.dumps(created))

    page.route("**/uploads", tamper)
    page.set_input_files("#file", str(BAD_INPUTS / "hopper.jpg"))

    card = page.locator('#jobs .job[data-filename="hopper.jpg"]')
    expect(card).to_have_attribute("data-status", "upload_refused", timeout=WAIT_MS)
    error = card.locator('[data-role="error"]')
    expect(error).to_have_attribute("data-code", "AccessDenied")
    expect(error).to_contain_text("Invalid according to Policy")


def test_several_files_at_once_and_a_screenshot(page: Page, tmp_path: Path) -> None:
    files = [BAD_INPUTS / name for name in ("hopper.jpg", "broken_data_stream.png", "hopper_orientation_6.jpg")]
    page.set_input_files("#file", [str(path) for path in [*files, ANIMATED_GIF]])

    expected = {
        "hopper.jpg": "succeeded",
        "broken_data_stream.png": "rejected",
        "hopper_orientation_6.jpg": "succeeded",
        ANIMATED_GIF.name: "succeeded",
    }
    for filename, status in expected.items():
        card = page.locator(f'#jobs .job[data-filename="{filename}"]')
        expect(card).to_have_attribute("data-status", status, timeout=WAIT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[data-role=thumb]')].filter(i => i.naturalWidth > 0).length === 3",
        timeout=WAIT_MS,
    )
    # An animation's card links its animated variants and, beside each, the poster still of its first frame.
    animated = page.locator(f'#jobs .job[data-filename="{ANIMATED_GIF.name}"]')
    expect(animated.locator('a[data-role="variant"][data-variant-role="animation"]')).to_have_count(4)
    posters = animated.locator('a[data-role="variant"][data-variant-role="poster"]')
    expect(posters).to_have_count(4)
    expect(posters.first).to_have_text(re.compile(r"^(thumb|small|large|full)\.poster\.webp$"))

    screenshot = tmp_path / "demo-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


# --- edits ---------------------------------------------------------------------------------------


def _edit(card: Locator, **attributes: str) -> Locator:
    selector = "".join(f'[data-{name.replace("_", "-")}="{value}"]' for name, value in attributes.items())
    return card.locator(f'[data-role="edit"]{selector}')


def _wait_until_loaded(page: Page, image: Locator) -> None:
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=WAIT_MS)


def _css_color(page: Page, value: str) -> str:
    color: str = page.evaluate(
        """(value) => {
            const probe = document.body.appendChild(document.createElement("span"));
            probe.style.color = value;
            const color = getComputedStyle(probe).color;
            probe.remove();
            return color;
        }""",
        value,
    )
    return color


def _finished_card(page: Page, filename: str, status: str = "succeeded") -> Locator:
    card = page.locator(f'#jobs .job[data-filename="{filename}"]')
    expect(card).to_have_attribute("data-status", status, timeout=WAIT_MS)
    return card


def test_an_upload_with_the_grayscale_recipe_shows_its_grey_result(page: Page) -> None:
    page.select_option("#upload-recipe", "grayscale")
    page.set_input_files("#file", str(BAD_INPUTS / "hopper.jpg"))

    card = _finished_card(page, "hopper.jpg")
    edit = _edit(card, kind="recipe")
    expect(edit).to_have_count(1)
    expect(edit).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    assert re.fullmatch(r"[0-9a-f]{12}", edit.get_attribute("data-edit-id") or "")
    expect(edit).to_contain_text("Grayscale")
    expect(edit).to_contain_text("128\u00d7128")
    expect(edit.locator('[data-role="edit-error"]')).to_be_hidden()

    image = edit.locator('img[data-role="edit-image"]')
    _wait_until_loaded(page, image)
    expect(image).to_be_visible()
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [128, 128]

    # The card shows the result's small thumb variant and links the lossless master, where a grey image has
    # R == G == B in every pixel.
    assert image.get_attribute("data-preset") == "thumb"
    assert "/thumb." in (image.get_attribute("src") or "")
    # Every variant of the result is linked, as an upload's are.
    links = edit.locator('a[data-role="edit-variant"]')
    expect(links).to_have_count(4)
    assert {links.nth(index).get_attribute("data-preset") for index in range(4)} == {"thumb", "small", "large", "full"}
    assert all((links.nth(index).get_attribute("href") or "").startswith("http://") for index in range(4))
    master = edit.locator('a[data-role="edit-link"]').get_attribute("href") or ""
    assert master.startswith("http://")
    assert master != image.get_attribute("src")
    with urllib.request.urlopen(master, timeout=30) as response:
        result = Image.open(io.BytesIO(response.read())).convert("RGB")
    assert result.size == (128, 128)
    samples = [result.getpixel((x, y)) for x in range(4, 128, 20) for y in range(4, 128, 20)]
    assert all(isinstance(p, tuple) and p[0] == p[1] == p[2] for p in samples), samples
    assert len({p for p in samples}) > 3, "the result should still be a picture, not a flat grey"


def test_without_a_gemini_key_the_page_says_so_before_a_prompt_is_typed(page: Page) -> None:
    # The session's runtime has no GEMINI_API_KEYS: the page knows, and AI inputs are off with the reason shown.
    expect(page.locator('[data-role="ai-off"]')).to_be_visible()
    expect(page.locator('[data-role="ai-off"]')).to_contain_text("GEMINI_API_KEYS=your-key make run")
    for field in ("#upload-prompt", "#upload-translate"):
        expect(page.locator(field)).to_be_disabled()
        expect(page.locator(field)).to_have_attribute("placeholder", re.compile("Gemini key"))
    expect(page.locator("#upload-recipe")).to_be_enabled()  # recipes need no key

    page.set_input_files("#file", str(BAD_INPUTS / "hopper.jpg"))
    card = _finished_card(page, "hopper.jpg")
    expect(card.locator('form[data-role="add-edit"] input[name="prompt"]')).to_be_disabled()


def test_a_job_whose_variants_are_ready_but_an_ai_edit_failed_is_shown_for_what_it_is(
    page: Page, browser_runtime: Pipeline, owner: str
) -> None:
    # As an API client without the page's warning would ask: a recipe and a prompt, with no Gemini key here.
    edits = [{"operations": [{"op": "grayscale"}]}, {"prompt": "make it look like a watercolour"}]
    data = (BAD_INPUTS / "hopper.jpg").read_bytes()
    job_id = browser_runtime.upload("hopper.jpg", data, "image/jpeg", owner=owner, edits=edits).job_id
    assert browser_runtime.wait_for_job(job_id, owner=owner).final["status"] == "failed"

    load(page, browser_runtime)  # the page lists the owner's jobs on load
    card = page.locator(f'#jobs .job[data-job-id="{job_id}"]')
    expect(card).to_have_attribute("data-outcome", "partial", timeout=WAIT_MS)
    expect(card).to_have_attribute("data-status", "failed")  # the API's status, unchanged
    expect(card.locator('[data-role="status"]')).to_have_text("variants ready, one edit failed")
    expect(card.locator('[data-role="error"]')).to_be_hidden()
    expect(card.locator('a[data-role="variant"]')).to_have_count(4)
    expect(_edit(card, kind="recipe")).to_have_attribute("data-status", "succeeded")
    prompt = _edit(card, kind="prompt")
    expect(prompt).to_have_attribute("data-status", "failed")
    error = prompt.locator('[data-role="edit-error"]')
    expect(error).to_have_attribute("data-code", "provider_unavailable")
    expect(error).to_contain_text("provider_unavailable: no Gemini API key is configured")
    # Amber (--warn), not the red (--bad) of a job that produced nothing.
    border = card.evaluate("el => getComputedStyle(el).borderLeftColor")
    assert border == _css_color(page, "var(--warn)") != _css_color(page, "var(--bad)")


def test_jobs_are_listed_again_after_a_reload(page: Page, browser_runtime: Pipeline) -> None:
    page.set_input_files("#file", str(BAD_INPUTS / "hopper.jpg"))
    card = _finished_card(page, "hopper.jpg")
    job_id = card.get_attribute("data-job-id")

    load(page, browser_runtime)
    again = page.locator(f'#jobs .job[data-job-id="{job_id}"]')
    expect(again).to_have_attribute("data-status", "succeeded")
    expect(again.locator('[data-role="name"]')).to_have_text("hopper.jpg")
    expect(again.locator('a[data-role="variant"]')).to_have_count(4)
    expect(page.locator("#jobs .job")).to_have_count(1)


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}])
def test_a_card_fits_a_390_px_wide_phone(page: Page, tmp_path: Path) -> None:
    long_name = tmp_path / ("a-long-file-name-without-any-space-in-it-" * 3 + ".jpg")
    shutil.copy(BAD_INPUTS / "hopper.jpg", long_name)
    page.select_option("#upload-recipe", "grayscale")
    page.set_input_files("#file", str(long_name))
    card = _finished_card(page, long_name.name)
    expect(_edit(card, kind="recipe")).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)

    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    # Nothing of the card may stick out of the list's column (into the page's margin, or off the screen).
    overflowing = page.evaluate(
        """() => {
            const column = document.querySelector('#jobs').getBoundingClientRect().right;
            return [...document.querySelectorAll('.job, .job *')]
                .filter((el) => el.getClientRects().length && el.getBoundingClientRect().right > column + 0.5)
                .map((el) => `${el.tagName}.${el.className}[${el.dataset.role || ''}]`);
        }"""
    )
    assert overflowing == [], overflowing


def test_the_api_docs_are_a_page_rendered_from_the_openapi_document(page: Page, browser_runtime: Pipeline) -> None:
    expect(page.locator('[data-role="openapi"]')).to_have_attribute("href", "/docs")
    elsewhere: list[str] = []
    local = (browser_runtime.api_url, "blob:")
    page.on("request", lambda request: None if request.url.startswith(local) else elsewhere.append(request.url))
    page.locator('[data-role="openapi"]').click()

    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page).to_have_title(re.compile("HTTP API"))
    upload = page.locator('[data-role="operation"][data-method="POST"][data-path="/uploads"]')
    expect(upload).to_contain_text("UploadRequest")
    expect(upload.locator('tr[data-status="201"]')).to_contain_text("UploadResponse")
    job = page.locator('[data-role="operation"][data-method="GET"][data-path="/jobs/{job_id}"]')
    expect(job).to_contain_text("wait")
    expect(job).to_contain_text("since")
    expect(page.locator('[data-role="schema"][data-name="JobView"]')).to_contain_text("variants")
    expect(page.locator('[data-role="operation"][data-path="/health"]')).to_contain_text("No token needed.")
    assert elsewhere == [], elsewhere


def test_edits_added_to_a_finished_job_and_chained_on_an_edit(page: Page, tmp_path: Path) -> None:
    page.set_input_files("#file", str(BAD_INPUTS / "hopper.jpg"))
    card = _finished_card(page, "hopper.jpg")
    expect(card.locator('[data-role="edit"]')).to_have_count(0)

    form = card.locator('form[data-role="add-edit"]')
    expect(form).to_be_visible()
    form.get_by_label("Recipe").select_option("rotate90")
    form.get_by_role("button", name="Add edit").click()
    rotated = _edit(card, kind="recipe")
    expect(rotated).to_have_count(1)
    expect(rotated).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    expect(rotated).to_contain_text("Rotate 90")
    expect(rotated.locator('[data-role="edit-text"]')).to_be_hidden()  # only translations have text pairs
    rotated_id = rotated.get_attribute("data-edit-id") or ""
    assert re.fullmatch(r"[0-9a-f]{12}", rotated_id)
    rotated = _edit(card, edit_id=rotated_id)  # "the recipe edit" is about to match two

    rotated.get_by_role("button", name="Edit this result").click()
    expect(rotated.get_by_role("button", name="Edit this result")).to_have_attribute("aria-pressed", "true")
    expect(form).to_contain_text("Rotate 90")
    form.get_by_label("Recipe").select_option("blur")
    form.get_by_role("button", name="Add edit").click()

    chained = _edit(card, parent_edit_id=rotated_id)
    expect(chained).to_have_count(1)
    expect(chained).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    expect(chained).to_have_attribute("data-kind", "recipe")
    expect(chained).to_contain_text("Blur")
    expect(chained.locator('[data-role="edit-parent"]')).to_contain_text(f"Rotate 90\u00b0 clockwise ({rotated_id})")
    for edit in (rotated, chained):
        _wait_until_loaded(page, edit.locator('img[data-role="edit-image"]'))
    # Edits added later run on their own: the job's status does not change.
    expect(card).to_have_attribute("data-status", "succeeded")
    expect(card.locator('[data-role="edit"]')).to_have_count(2)
    expect(form.get_by_role("button", name="use the original")).to_be_hidden()

    screenshot = tmp_path / "demo-page-edits.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)


def test_the_page_uploads_through_the_browser_client_module_with_byte_progress(
    page: Page, browser_runtime: Pipeline, tmp_path: Path
) -> None:
    exports = page.evaluate("import('/client/imgflow.js').then((module) => Object.keys(module).sort())")
    assert exports == ["Client", "ImgflowError", "isSettled", "postForm", "upload"]
    # A photo of noise (large for its pixels) sent at 1 MB/s, so that S3 takes it in many progress events.
    noise = Image.effect_noise((1200, 1200), 120).convert("RGB")
    photo = tmp_path / "noise.jpg"
    noise.save(photo, quality=95)
    stages: list[str] = []
    page.expose_function("recordStage", lambda text: stages.append(text))
    page.evaluate(
        """() => new MutationObserver(() => {
             for (const stage of document.querySelectorAll('[data-role="stage"]')) recordStage(stage.textContent);
           }).observe(document.getElementById("jobs"), { subtree: true, childList: true, characterData: true })"""
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1024 * 1024},
    )

    page.set_input_files("#file", str(photo))

    card = page.locator('#jobs .job[data-filename="noise.jpg"]')
    expect(card).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    sent = [re.fullmatch(r"sending the file to S3: (.+) of (.+)", stage) for stage in stages]
    partial = {match[1] for match in sent if match and match[1] != match[2]}
    assert len(partial) >= 2, f"byte progress seen: {sorted(partial)} ({photo.stat().st_size} bytes sent)"


def test_the_page_shows_the_owners_figures_from_get_stats(page: Page, browser_runtime: Pipeline) -> None:
    page.set_input_files("#file", str(BAD_INPUTS / "hopper.jpg"))
    card = page.locator('#jobs .job[data-filename="hopper.jpg"]')
    expect(card).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)

    page.locator('[data-role="stats"] summary').click()
    load(page, browser_runtime)  # the figures are read on load (and every 10 s)
    page.locator('[data-role="stats"] summary').click()

    expect(page.locator('[data-figure="Jobs by status"]')).to_contain_text("succeeded 1")
    expect(page.locator('[data-role="stats-summary"]')).to_contain_text("1 uploads, 1 succeeded")


def test_the_client_types_are_served_beside_the_module(browser_runtime: Pipeline) -> None:
    with urllib.request.urlopen(browser_runtime.api_url + "/client/imgflow.d.ts", timeout=10) as response:
        assert "export declare class Client" in response.read().decode()
