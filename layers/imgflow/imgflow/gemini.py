"""Google Gemini as the AI edit provider, through the google-genai SDK.

The adapter makes one `generateContent` call per model answer and maps every way it can fail onto
imgflow's errors: throttling and outages are `TransientError` (retried later through the queue, never
here: the SDK's own retries stay off), refusals and safety blocks are a permanent `EditError`.
It returns the provider's bytes as they came; the caller runs them through the strict decoder.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, ConfigDict, TypeAdapter

from imgflow.errors import EditError, ImgflowError, TransientError

logger = logging.getLogger(__name__)

# The REST version the image models are documented on (the SDK's own default is "v1").
API_VERSION = "v1beta"
# Statuses a later attempt may not meet; 429 is handled apart (the key rests).
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# Finish reasons that mean "declined by policy", not "failed": retrying will not change the answer.
_BLOCKING_FINISH_REASONS = frozenset(
    {
        types.FinishReason.SAFETY,
        types.FinishReason.RECITATION,
        types.FinishReason.BLOCKLIST,
        types.FinishReason.PROHIBITED_CONTENT,
        types.FinishReason.SPII,
        types.FinishReason.IMAGE_SAFETY,
        types.FinishReason.IMAGE_PROHIBITED_CONTENT,
        types.FinishReason.IMAGE_RECITATION,
    }
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")
_MAX_QUOTED_TEXT = 300


def _transport_errors() -> tuple[type[Exception], ...]:
    """The network-failure base classes of the HTTP stacks the SDK may use.

    google-genai 3.x sends through httpx2 (a fork of httpx in its own namespace); 1.x, or
    GOOGLE_GENAI_HTTP_CLIENT=httpx, through httpx. Their `TransportError` covers timeouts too.
    """
    found: list[type[Exception]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


@dataclass(frozen=True)
class GeminiConfig:
    api_keys: tuple[str, ...]
    image_model: str = "gemini-2.5-flash-image"
    text_model: str = "gemini-2.5-flash"
    base_url: str | None = None  # a local fake in tests; None = Google's endpoint
    timeout_seconds: float = 120.0
    key_cooldown_seconds: float = 60.0  # a key that answered 429 with no retryDelay rests this long


class KeyPool:
    """API keys handed out round-robin, skipping those resting after a 429. Thread-safe."""

    def __init__(self, keys: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = tuple(dict.fromkeys(k.strip() for k in keys if k.strip()))
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0
        self._resting_until: dict[str, float] = {}

    def acquire(self) -> str:
        if not self._keys:
            raise EditError(
                "provider_unavailable",
                "no Gemini API key is configured: set GEMINI_API_KEYS (comma-separated keys)",
            )
        with self._lock:
            now = self._clock()
            for offset in range(len(self._keys)):
                index = (self._next + offset) % len(self._keys)
                key = self._keys[index]
                if self._resting_until.get(key, now) <= now:
                    self._next = index + 1
                    return key
            wait = min(self._resting_until[key] for key in self._keys) - now
        raise TransientError(f"every Gemini API key is rate limited for {wait:.1f} s more", retry_after=wait)

    def cool_down(self, key: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            self._resting_until[key] = max(until, self._resting_until.get(key, until))


@dataclass(frozen=True)
class ProviderImage:
    data: bytes
    mime_type: str
    model: str
    calls: int  # the HTTP calls made for this result


class TextPair(BaseModel):
    """A piece of text found in an image and its translation."""

    model_config = ConfigDict(frozen=True)

    source: str
    translated: str


_TEXT_PAIRS = TypeAdapter(list[TextPair])

_TRANSLATE_IMAGE = (
    "Translate every piece of text in this image into {target}{source}. Keep the layout, the position and "
    "size of each text, the fonts, the colours, the background and everything else in the image exactly as "
    "they are: only the language of the text changes."
)
_TRANSLATE_PAIRS = (
    "List every piece of text visible in this image{source}, each with its translation into {target}. "
    "`source` is the text exactly as written in the image, `translated` its translation. "
    "Answer with an empty list if the image has no text."
)
_ENHANCE = (
    "You rewrite short image-editing instructions into precise ones for an image-editing model. Keep the "
    "user's intent exactly; add no objects, styles or other content the user did not ask for; say what must "
    "stay unchanged. Answer with the rewritten instruction only, as one paragraph."
)


class GeminiEditor:
    """Edits, translates and prompt-rewriting through Gemini; one cached SDK client per key."""

    provider = "gemini"

    def __init__(self, config: GeminiConfig, key_pool: KeyPool | None = None) -> None:
        self._config = config
        self._keys = key_pool if key_pool is not None else KeyPool(config.api_keys)
        self._clients: dict[str, genai.Client] = {}
        self._clients_lock = threading.Lock()

    def edit(self, image: bytes, mime_type: str, instruction: str) -> ProviderImage:
        """The image edited as `instruction` says: one call to the image model."""
        return self._edit_image(image, mime_type, instruction)

    def translate(
        self, image: bytes, mime_type: str, target_language: str, source_language: str | None = None
    ) -> tuple[ProviderImage, list[TextPair]]:
        """The image with its text translated, and the text pairs (empty if they cannot be read).

        Two calls: the image model translates in place; the text model lists what it translated.
        """
        instruction = _TRANSLATE_IMAGE.format(
            target=target_language, source=f" from {source_language}" if source_language else ""
        )
        translated = self._edit_image(image, mime_type, instruction)
        try:
            key = self._keys.acquire()
        except ImgflowError as error:
            logger.warning("Gemini text pairs skipped: %s", error.message)
            return translated, []
        prompt = _TRANSLATE_PAIRS.format(
            target=target_language, source=f" (written in {source_language})" if source_language else ""
        )
        return replace(translated, calls=translated.calls + 1), self._text_pairs(key, image, mime_type, prompt)

    def enhance_prompt(self, prompt: str) -> str:
        """`prompt` rewritten into a precise edit instruction; on any failure, `prompt` unchanged."""
        config = types.GenerateContentConfig(system_instruction=_ENHANCE, automatic_continuation=False)
        try:
            key = self._keys.acquire()
            response = self._generate(key, self._config.text_model, [prompt], config)
            _raise_if_blocked(response)
        except (ImgflowError, ValueError) as error:  # ValueError: the SDK's own (a response it cannot parse)
            logger.warning("Gemini prompt enhancement skipped: %s", error)
            return prompt
        return _text_of(response).strip() or prompt

    def _edit_image(self, image: bytes, mime_type: str, instruction: str) -> ProviderImage:
        key = self._keys.acquire()
        model = self._config.image_model
        contents: list[types.PartUnionDict] = [types.Part.from_bytes(data=image, mime_type=mime_type), instruction]
        config = types.GenerateContentConfig(response_modalities=["IMAGE"], automatic_continuation=False)
        response = self._generate(key, model, contents, config)
        _raise_if_blocked(response)
        for part in _parts_of(response):
            blob = part.inline_data
            if blob is not None and blob.data and not part.thought:
                return ProviderImage(
                    data=blob.data, mime_type=blob.mime_type or "application/octet-stream", model=model, calls=1
                )
        raise EditError("edit_failed", _no_image_message(response))

    def _text_pairs(self, key: str, image: bytes, mime_type: str, prompt: str) -> list[TextPair]:
        config = types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=list[TextPair], automatic_continuation=False
        )
        contents: list[types.PartUnionDict] = [types.Part.from_bytes(data=image, mime_type=mime_type), prompt]
        try:
            response = self._generate(key, self._config.text_model, contents, config)
            _raise_if_blocked(response)
            return _TEXT_PAIRS.validate_json(_text_of(response))
        except (ImgflowError, ValueError) as error:  # ValueError includes pydantic's ValidationError
            logger.warning("Gemini text pairs unavailable: %s", error)
            return []

    def _generate(
        self, key: str, model: str, contents: list[types.PartUnionDict], config: types.GenerateContentConfig
    ) -> types.GenerateContentResponse:
        """One `generateContent` request, its failures mapped onto imgflow's errors."""
        try:
            return self._client(key).models.generate_content(model=model, contents=contents, config=config)
        except genai_errors.APIError as error:
            raise self._api_error(key, error) from error
        except _TRANSPORT_ERRORS as error:
            raise TransientError(f"Gemini could not be reached: {type(error).__name__}: {error}") from error
        except genai_errors.UnknownApiResponseError as error:
            raise TransientError(f"Gemini answered with an unreadable response: {error}") from error

    def _api_error(self, key: str, error: genai_errors.APIError) -> ImgflowError:
        detail = f"({error.code} {error.status}): {_quote(str(error.message or error.details))}"
        if error.code == 429:
            retry_after = _retry_delay(error.details)
            # The server's delay when it gives one: resting longer would only waste the retry it asked for.
            self._keys.cool_down(key, retry_after if retry_after is not None else self._config.key_cooldown_seconds)
            return TransientError(f"Gemini rate limited the request {detail}", retry_after=retry_after)
        if error.code in _TRANSIENT_STATUSES:
            return TransientError(f"Gemini failed the request {detail}")
        return EditError("edit_failed", f"Gemini refused the request {detail}")

    def _client(self, key: str) -> genai.Client:
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                # No retry_options: the SDK then sends each request once; retries go through the queue.
                options = types.HttpOptions(
                    base_url=self._config.base_url,
                    api_version=API_VERSION,
                    # In milliseconds; 0 would mean "no timeout at all".
                    timeout=max(1, round(self._config.timeout_seconds * 1000)),
                )
                client = self._clients[key] = genai.Client(api_key=key, http_options=options)
            return client


def _parts_of(response: types.GenerateContentResponse) -> list[types.Part]:
    if not response.candidates or response.candidates[0].content is None:
        return []
    return response.candidates[0].content.parts or []


def _text_of(response: types.GenerateContentResponse) -> str:
    return "".join(part.text for part in _parts_of(response) if part.text and not part.thought)


def _raise_if_blocked(response: types.GenerateContentResponse) -> None:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        why = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        raise EditError(
            "edit_blocked", f"Gemini declined the edit: prompt blocked ({feedback.block_reason.value}){why}"
        )
    candidate = response.candidates[0] if response.candidates else None
    if candidate is not None and candidate.finish_reason in _BLOCKING_FINISH_REASONS:
        why = f": {candidate.finish_message}" if candidate.finish_message else ""
        raise EditError("edit_blocked", f"Gemini declined the edit: {candidate.finish_reason.value}{why}")


def _no_image_message(response: types.GenerateContentResponse) -> str:
    candidate = response.candidates[0] if response.candidates else None
    reason = candidate.finish_reason if candidate is not None else None
    message = "Gemini returned no image"
    if reason is not None and reason != types.FinishReason.STOP:
        message += f" ({reason.value})"
    text = _quote(_text_of(response))
    return f"{message}: {text}" if text else message


def _quote(text: str) -> str:
    """`text` on one line, cut to a length fit for an error message (a proxy's 502 can be a whole page)."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_QUOTED_TEXT else text[: _MAX_QUOTED_TEXT - 1] + "…"


def _retry_delay(details: object) -> float | None:
    """Seconds of the `google.rpc.RetryInfo.retryDelay` in an error body ("17s", "0.5s"), if any."""
    body = details.get("error", details) if isinstance(details, dict) else None
    items = body.get("details") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("/google.rpc.RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            return float(match[1]) if match else None
    return None
