"""The Gemini adapter through the real google-genai SDK, against a fake Gemini endpoint on a local port."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from fakes.fake_gemini import DEFAULT_TEXT, GARBAGE, IMAGE_MODEL, TEXT_MODEL, FakeGemini
from imgflow.errors import EditError, TransientError
from imgflow.gemini import GeminiConfig, GeminiEditor, KeyPool, TextPair

INSTRUCTION = "make the sky purple"
Script = Callable[[FakeGemini], object]  # queues replies on the fake


def sample_png(size: tuple[int, int] = (32, 24), colour: tuple[int, int, int] = (10, 120, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def editor_for(
    gemini: FakeGemini, *keys: str, timeout_seconds: float = 120.0, key_cooldown_seconds: float = 60.0
) -> GeminiEditor:
    config = GeminiConfig(
        api_keys=keys,
        base_url=gemini.base_url,
        timeout_seconds=timeout_seconds,
        key_cooldown_seconds=key_cooldown_seconds,
    )
    return GeminiEditor(config)


@pytest.fixture
def editor(gemini: FakeGemini) -> GeminiEditor:
    return editor_for(gemini, "key-1")


# --- edit ---------------------------------------------------------------------------------------------------


def test_given_an_image_when_edited_then_one_request_carries_the_key_the_instruction_and_the_exact_bytes(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    image = sample_png()

    result = editor.edit(image, "image/png", INSTRUCTION)

    [request] = gemini.requests
    assert (request.api_version, request.model) == ("v1beta", IMAGE_MODEL)
    assert request.api_key == "key-1"
    assert request.texts == (INSTRUCTION,)
    assert request.images == (image,)
    assert request.image_mime_types == ("image/png",)
    assert request.response_modalities == ("IMAGE",)
    assert request.headers["X-Server-Timeout"] == "120"  # HttpOptions.timeout is in milliseconds
    assert (result.mime_type, result.model, result.calls) == ("image/png", IMAGE_MODEL, 1)
    with Image.open(io.BytesIO(result.data)) as edited:
        assert edited.size == (32, 24)
        assert edited.getpixel((0, 0)) == (245, 135, 15)  # the fake's edit: colours inverted


def test_given_the_model_answers_some_bytes_when_edited_then_they_are_returned_undecoded(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    gemini.reply_garbage_image()

    result = editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert (result.data, result.mime_type) == (GARBAGE, "image/png")


def test_given_one_editor_when_it_edits_twice_then_both_requests_reach_the_endpoint(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    gemini.reply_image(b"\xff\xd8first", "image/jpeg").reply_image(b"\xff\xd8second", "image/jpeg")

    first = editor.edit(sample_png(), "image/png", INSTRUCTION)
    second = editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert (first.data, second.data) == (b"\xff\xd8first", b"\xff\xd8second")
    assert len(gemini.requests) == 2


# --- translate ------------------------------------------------------------------------------------------------


def test_given_an_image_with_text_when_translated_then_one_image_call_and_one_text_call_give_image_and_pairs(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    image = sample_png()

    result, pairs = editor.translate(image, "image/png", "German", source_language="English")

    image_call, text_call = gemini.requests
    assert image_call.model == IMAGE_MODEL
    assert image_call.images == (image,)
    assert "into German from English" in image_call.text
    assert "layout" in image_call.text
    assert text_call.model == TEXT_MODEL
    assert text_call.images == (image,)  # the original, not the translated image
    assert text_call.response_mime_type == "application/json"
    assert text_call.generation_config["responseSchema"]["type"] == "ARRAY"
    assert pairs == [TextPair(source="Hello", translated="Hallo")]
    assert (result.model, result.calls) == (IMAGE_MODEL, 2)
    assert Image.open(io.BytesIO(result.data)).size == (32, 24)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(lambda g: g.reply_status(500, model=TEXT_MODEL), id="server-error"),
        pytest.param(lambda g: g.reply_status(429, retry_delay="3s", model=TEXT_MODEL), id="throttled"),
        pytest.param(lambda g: g.reply_text("Hello -> Hallo", model=TEXT_MODEL), id="not-json"),
        pytest.param(lambda g: g.reply_json([{"source": "Hello"}], model=TEXT_MODEL), id="wrong-shape"),
        pytest.param(lambda g: g.reply_blocked("SAFETY", model=TEXT_MODEL), id="blocked"),
    ],
)
def test_given_the_text_call_fails_when_translated_then_the_image_comes_back_without_pairs(
    gemini: FakeGemini, editor: GeminiEditor, script: Script
) -> None:
    script(gemini)

    result, pairs = editor.translate(sample_png(), "image/png", "German")

    assert pairs == []
    assert Image.open(io.BytesIO(result.data)).size == (32, 24)
    assert len(gemini.requests) == result.calls == 2


def test_given_the_image_call_is_throttled_when_translated_then_it_is_transient_and_no_text_call_is_made(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    gemini.reply_status(429, retry_delay="7s", model=IMAGE_MODEL)

    with pytest.raises(TransientError) as caught:
        editor.translate(sample_png(), "image/png", "German")

    assert caught.value.retry_after == 7
    assert [r.model for r in gemini.requests] == [IMAGE_MODEL]


# --- enhance_prompt ---------------------------------------------------------------------------------------------


def test_given_a_terse_prompt_when_enhanced_then_the_text_model_rewrites_it(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    gemini.reply_text("  Turn the sky a saturated purple; keep everything else unchanged.\n")

    enhanced = editor.enhance_prompt(INSTRUCTION)

    assert enhanced == "Turn the sky a saturated purple; keep everything else unchanged."
    [request] = gemini.requests
    assert request.model == TEXT_MODEL
    assert request.texts == (INSTRUCTION,)
    assert "one paragraph" in request.body["systemInstruction"]["parts"][0]["text"]


def test_given_nothing_scripted_when_enhanced_then_the_fake_answers_a_plausible_text(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    assert editor.enhance_prompt(INSTRUCTION) == DEFAULT_TEXT


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(lambda g: g.reply_status(500), id="server-error"),
        pytest.param(lambda g: g.reply_status(429, retry_delay="7s"), id="throttled"),
        pytest.param(lambda g: g.reply_status(400, message="bad"), id="refused"),
        pytest.param(lambda g: g.reply_prompt_blocked("SAFETY"), id="blocked"),
        pytest.param(lambda g: g.reply_text("   "), id="empty"),
    ],
)
def test_given_the_text_call_fails_when_enhanced_then_the_prompt_comes_back_unchanged(
    gemini: FakeGemini, editor: GeminiEditor, script: Script
) -> None:
    script(gemini)

    assert editor.enhance_prompt(INSTRUCTION) == INSTRUCTION
    assert len(gemini.requests) == 1


def test_given_no_key_when_enhanced_then_the_prompt_comes_back_unchanged_without_a_request(
    gemini: FakeGemini,
) -> None:
    assert editor_for(gemini).enhance_prompt(INSTRUCTION) == INSTRUCTION
    assert gemini.requests == []


# --- throttling and outages ----------------------------------------------------------------------------------


def test_given_a_429_with_retry_delay_when_edited_then_transient_after_that_delay_and_the_key_rests(
    gemini: FakeGemini,
) -> None:
    editor = editor_for(gemini, "key-1", "key-2")
    gemini.reply_status(429, retry_delay="7s")

    with pytest.raises(TransientError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)
    editor.edit(sample_png(), "image/png", INSTRUCTION)
    editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert caught.value.retry_after == 7
    assert "RESOURCE_EXHAUSTED" in caught.value.message
    assert [r.api_key for r in gemini.requests] == ["key-1", "key-2", "key-2"]  # key-1 rests, no SDK retry


def test_given_a_429_without_retry_delay_when_edited_then_transient_without_retry_after(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    gemini.reply_status(429)

    with pytest.raises(TransientError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert caught.value.retry_after is None
    assert len(gemini.requests) == 1


def test_given_every_key_rests_when_edited_then_transient_with_a_positive_retry_after_and_no_request(
    gemini: FakeGemini,
) -> None:
    editor = editor_for(gemini, "key-1", "key-2", key_cooldown_seconds=30.0)
    gemini.reply_status(429, retry_delay="2s").reply_status(429, retry_delay="45s")
    for _ in range(2):
        with pytest.raises(TransientError):
            editor.edit(sample_png(), "image/png", INSTRUCTION)

    with pytest.raises(TransientError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 2  # key-1 rests exactly its retryDelay, the first to be free
    assert len(gemini.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_given_a_server_error_when_edited_then_transient_without_retry_after_and_not_retried_by_the_sdk(
    gemini: FakeGemini, editor: GeminiEditor, status: int
) -> None:
    gemini.reply_status(status)

    with pytest.raises(TransientError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert caught.value.retry_after is None
    assert str(status) in caught.value.message
    assert len(gemini.requests) == 1


def test_given_nothing_listens_when_edited_then_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    editor = GeminiEditor(GeminiConfig(api_keys=("key-1",), base_url=f"http://127.0.0.1:{port}"))

    with pytest.raises(TransientError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert "ConnectError" in caught.value.message
    assert caught.value.retry_after is None


def test_given_the_model_is_slower_than_the_timeout_when_edited_then_transient(gemini: FakeGemini) -> None:
    editor = editor_for(gemini, "key-1", timeout_seconds=0.3)
    gemini.reply_slowly(1.0)

    with pytest.raises(TransientError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert "Timeout" in caught.value.message


# --- refusals and blocks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Unable to process input image. Please retry or report in https://developers.generativeai.google"),
        (403, "Your API key was reported as leaked. Please use another API key."),
        (404, "models/gemini-2.5-flash-image is not found for API version v1beta"),
    ],
)
def test_given_a_client_error_when_edited_then_edit_failed_with_the_provider_message(
    gemini: FakeGemini, editor: GeminiEditor, status: int, message: str
) -> None:
    gemini.reply_status(status, message=message)

    with pytest.raises(EditError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert caught.value.code == "edit_failed"
    assert caught.value.message.startswith(f"Gemini refused the request ({status} ")
    assert message in caught.value.message
    assert len(gemini.requests) == 1


def test_given_a_very_long_provider_message_when_refused_then_the_error_quotes_it_on_one_short_line(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    gemini.reply_status(400, message="Invalid\n" + "argument " * 200)

    with pytest.raises(EditError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert len(caught.value.message) < 400
    assert "\n" not in caught.value.message
    assert caught.value.message.endswith("…")


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        pytest.param(lambda g: g.reply_prompt_blocked("SAFETY"), "prompt blocked (SAFETY)", id="prompt-blocked"),
        pytest.param(lambda g: g.reply_prompt_blocked("OTHER"), "prompt blocked (OTHER)", id="prompt-other"),
        pytest.param(lambda g: g.reply_blocked("IMAGE_SAFETY"), "IMAGE_SAFETY", id="image-safety"),
        pytest.param(lambda g: g.reply_blocked("PROHIBITED_CONTENT"), "PROHIBITED_CONTENT", id="prohibited"),
        pytest.param(lambda g: g.reply_blocked("SAFETY"), "SAFETY", id="safety"),
        pytest.param(lambda g: g.reply_blocked("IMAGE_PROHIBITED_CONTENT"), "IMAGE_PROHIBITED_CONTENT", id="image"),
        pytest.param(lambda g: g.reply_blocked("RECITATION"), "RECITATION", id="recitation"),
    ],
)
def test_given_a_blocked_answer_when_edited_then_edit_blocked_after_one_request(
    gemini: FakeGemini, editor: GeminiEditor, script: Script, reason: str
) -> None:
    script(gemini)

    with pytest.raises(EditError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert caught.value.code == "edit_blocked"
    assert caught.value.message == f"Gemini declined the edit: {reason}"
    assert len(gemini.requests) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "Gemini returned no image (NO_IMAGE)"),
        ("I can't edit people in images.", "Gemini returned no image: I can't edit people in images."),
    ],
)
def test_given_an_answer_without_an_image_when_edited_then_edit_failed(
    gemini: FakeGemini, editor: GeminiEditor, text: str | None, expected: str
) -> None:
    gemini.reply_no_image(text)

    with pytest.raises(EditError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert (caught.value.code, caught.value.message) == ("edit_failed", expected)


def test_given_a_long_text_answer_when_edited_then_the_message_quotes_it_truncated(
    gemini: FakeGemini, editor: GeminiEditor
) -> None:
    gemini.reply_no_image("word " * 500)

    with pytest.raises(EditError) as caught:
        editor.edit(sample_png(), "image/png", INSTRUCTION)

    assert len(caught.value.message) < 400
    assert caught.value.message.endswith("…")


def test_given_no_key_when_edited_then_provider_unavailable_without_a_request(gemini: FakeGemini) -> None:
    with pytest.raises(EditError) as caught:
        editor_for(gemini).edit(sample_png(), "image/png", INSTRUCTION)

    assert caught.value.code == "provider_unavailable"
    assert "GEMINI_API_KEYS" in caught.value.message
    assert gemini.requests == []


# --- KeyPool --------------------------------------------------------------------------------------------------


def test_given_three_keys_when_acquired_then_round_robin() -> None:
    pool = KeyPool(["a", "b", "c"], clock=FakeClock())

    assert [pool.acquire() for _ in range(5)] == ["a", "b", "c", "a", "b"]


def test_given_a_resting_key_when_acquired_then_it_is_skipped_until_its_cooldown_ends() -> None:
    clock = FakeClock()
    pool = KeyPool(["a", "b"], clock=clock)
    pool.cool_down("a", 60)

    assert [pool.acquire() for _ in range(3)] == ["b", "b", "b"]
    clock.now += 60
    assert [pool.acquire() for _ in range(2)] == ["a", "b"]


def test_given_every_key_rests_when_acquired_then_transient_until_the_first_is_usable() -> None:
    clock = FakeClock()
    pool = KeyPool(["a", "b"], clock=clock)
    pool.cool_down("a", 60)
    pool.cool_down("b", 20)
    clock.now += 5

    with pytest.raises(TransientError) as caught:
        pool.acquire()

    assert caught.value.retry_after == 15
    clock.now += 15
    assert pool.acquire() == "b"


def test_given_a_shorter_cooldown_when_a_key_already_rests_then_the_longer_one_holds() -> None:
    clock = FakeClock()
    pool = KeyPool(["a"], clock=clock)
    pool.cool_down("a", 60)
    pool.cool_down("a", 1)
    clock.now += 30

    with pytest.raises(TransientError):
        pool.acquire()


@pytest.mark.parametrize("keys", [[], ["", "  "]])
def test_given_no_usable_key_when_acquired_then_provider_unavailable(keys: list[str]) -> None:
    with pytest.raises(EditError) as caught:
        KeyPool(keys).acquire()

    assert caught.value.code == "provider_unavailable"
