"""A fake Gemini API (`models/{model}:generateContent`) on a local port, for the real google-genai SDK.

Point the SDK at it with `HttpOptions(base_url=fake.base_url)` (it still wants a key; any will do).
Every request is recorded. Answers come from scripted replies, first those queued for the request's
model, then those queued for any model; when none is left, the default answer applies the edit
visibly (the input image with its colours inverted, as a PNG) or, for a text request, returns a
plausible text (a JSON list of text pairs when the request asks for JSON). Bodies are shaped as the
real API answers them: camelCase JSON, base64 inline data, errors as `google.rpc.Status`.

    with FakeGemini() as gemini:
        gemini.reply_status(429, retry_delay="7s")
        ...  # the first call is throttled, the next one edits
        assert gemini.requests[0].api_key == "key-1"
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from PIL import Image, ImageOps
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

IMAGE_MODEL = "gemini-2.5-flash-image"
TEXT_MODEL = "gemini-2.5-flash"
DEFAULT_TEXT = "Apply the requested change precisely and leave every other part of the image unchanged."
DEFAULT_PAIRS: list[dict[str, str]] = [{"source": "Hello", "translated": "Hallo"}]
GARBAGE = b"these bytes are not an image"

_ROUTE = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):generateContent$")
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    502: "Bad gateway.",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One `generateContent` request as the fake received it, inline data decoded."""

    model: str
    api_version: str
    api_key: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    texts: tuple[str, ...]
    images: tuple[bytes, ...]
    image_mime_types: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def generation_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.body.get("generationConfig", {})
        return config

    @property
    def response_modalities(self) -> tuple[str, ...]:
        return tuple(m.upper() for m in self.generation_config.get("responseModalities", ()))

    @property
    def response_mime_type(self) -> str | None:
        mime_type: str | None = self.generation_config.get("responseMimeType")
        return mime_type

    @property
    def wants_image(self) -> bool:
        return "IMAGE" in self.response_modalities or (not self.response_modalities and "image" in self.model)


# A scripted reply: given the request, the HTTP status and JSON body to answer with (None: the default).
_Answer = Callable[[RecordedRequest], tuple[int, dict[str, Any]] | None]


@dataclass(frozen=True)
class _Reply:
    answer: _Answer
    delay: float = 0.0


class FakeGemini:
    """The fake endpoint; a context manager that serves on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._replies: dict[str | None, deque[_Reply]] = {}
        self._response_ids = itertools.count(1)

    def __enter__(self) -> Self:
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietRequestHandler)
        # A short poll interval: shutting down waits for the serving loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-gemini", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGemini is not started: use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    # --- scripted replies (each answers one request; `model=None` answers a request to any model) ------

    def reply(self, status: int, body: dict[str, Any], *, model: str | None = None) -> Self:
        """Answer with this exact status and JSON body."""
        return self._queue(model, lambda _: (status, body))

    def reply_image(self, data: bytes, mime_type: str = "image/png", *, model: str | None = None) -> Self:
        return self._queue(model, lambda r: (200, self._candidate(r, [_inline(data, mime_type)])))

    def reply_garbage_image(self, *, model: str | None = None) -> Self:
        """An image part whose bytes are not an image."""
        return self.reply_image(GARBAGE, "image/png", model=model)

    def reply_text(self, text: str, *, model: str | None = None) -> Self:
        return self._queue(model, lambda r: (200, self._candidate(r, [{"text": text}])))

    def reply_json(self, obj: object, *, model: str | None = None) -> Self:
        return self.reply_text(json.dumps(obj), model=model)

    def reply_status(
        self, status: int, message: str | None = None, *, retry_delay: str | None = None, model: str | None = None
    ) -> Self:
        """An error as Google's APIs return it; `retry_delay` ("7s") adds a `google.rpc.RetryInfo`."""
        return self._queue(model, lambda r: (status, _error(r, status, message, retry_delay)))

    def reply_blocked(self, finish_reason: str = "IMAGE_SAFETY", *, model: str | None = None) -> Self:
        """A 200 whose candidate stopped for a policy reason, without content."""
        return self._queue(model, lambda r: (200, self._candidate(r, None, finish_reason)))

    def reply_prompt_blocked(self, block_reason: str = "SAFETY", *, model: str | None = None) -> Self:
        """A 200 without candidates: the prompt itself was blocked."""

        def answer(request: RecordedRequest) -> tuple[int, dict[str, Any]]:
            feedback = {"blockReason": block_reason, "safetyRatings": _safety_ratings(blocked=True)}
            return 200, {"promptFeedback": feedback, **self._envelope(request)}

        return self._queue(model, answer)

    def reply_no_image(self, text: str | None = None, *, model: str | None = None) -> Self:
        """A 200 without an image: only `text` (finish reason STOP), or nothing at all (NO_IMAGE)."""
        if text is None:
            return self._queue(model, lambda r: (200, self._candidate(r, None, "NO_IMAGE")))
        return self.reply_text(text, model=model)

    def reply_slowly(self, seconds: float, *, model: str | None = None) -> Self:
        """The default answer, after `seconds` (to run into a client's timeout)."""
        return self._queue(model, lambda _: None, delay=seconds)

    def _queue(self, model: str | None, answer: _Answer, delay: float = 0.0) -> Self:
        with self._lock:
            self._replies.setdefault(model, deque()).append(_Reply(answer, delay))
        return self

    def _next_reply(self, model: str) -> _Reply | None:
        with self._lock:
            for queue in (self._replies.get(model), self._replies.get(None)):
                if queue:
                    return queue.popleft()
        return None

    # --- serving -----------------------------------------------------------------------------------------

    def __call__(self, environ: Any, start_response: Any) -> Any:
        response = self._handle(Request(environ))
        return response(environ, start_response)

    def _handle(self, http: Request) -> Response:
        route = _ROUTE.match(http.path)
        if http.method != "POST" or route is None:
            return _json(404, {"error": {"code": 404, "message": f"{http.path} not found", "status": "NOT_FOUND"}})
        try:
            body = json.loads(http.get_data())
        except ValueError:
            return _json(400, {"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}})
        request = _record(route["version"], route["model"], http, body)
        with self._lock:
            self._requests.append(request)
        if not request.api_key:
            message = "Method doesn't allow unregistered callers. Please use API Key or other form of API consumer."
            return _json(403, _error(request, 403, message, None))
        reply = self._next_reply(request.model)
        if reply is not None and reply.delay:
            time.sleep(reply.delay)
        scripted = reply.answer(request) if reply is not None else None
        return _json(*(scripted or self._default(request)))

    def _default(self, request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if request.wants_image:
            edited = _inverted(request.images)
            if edited is None:  # what the real API answers to bytes it cannot read as an image
                return 400, _error(
                    request,
                    400,
                    "Unable to process input image. Please retry or report in "
                    "https://developers.generativeai.google/guide/troubleshooting",
                    None,
                )
            return 200, self._candidate(request, [_inline(edited, "image/png")])
        if request.response_mime_type == "application/json":
            return 200, self._candidate(request, [{"text": json.dumps(DEFAULT_PAIRS)}])
        return 200, self._candidate(request, [{"text": DEFAULT_TEXT}])

    def _candidate(
        self, request: RecordedRequest, parts: list[dict[str, Any]] | None, finish_reason: str = "STOP"
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"finishReason": finish_reason, "index": 0}
        if parts is not None:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish_reason == "SAFETY":
            candidate["safetyRatings"] = _safety_ratings(blocked=True)
        return {"candidates": [candidate], **self._envelope(request)}

    def _envelope(self, request: RecordedRequest) -> dict[str, Any]:
        prompt_tokens = 8 + 1290 * len(request.images)
        output_tokens = 1290 if request.wants_image else 24
        return {
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
            },
            "modelVersion": request.model,
            "responseId": f"fake-response-{next(self._response_ids)}",
        }


class _QuietRequestHandler(WSGIRequestHandler):
    # werkzeug logs every request on its own logger; the recorded requests say more.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _record(version: str, model: str, http: Request, body: dict[str, Any]) -> RecordedRequest:
    texts: list[str] = []
    images: list[bytes] = []
    mime_types: list[str] = []
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            if "text" in part:
                texts.append(part["text"])
            # Protobuf JSON takes both spellings of a field, and the SDK sends `inlineData.mime_type`;
            # it sends URL-safe base64, and the API accepts either alphabet: so does this fake.
            blob = part.get("inlineData") or part.get("inline_data")
            if blob is not None:
                images.append(base64.urlsafe_b64decode(blob["data"]))
                mime_types.append(blob.get("mimeType") or blob.get("mime_type") or "")
    return RecordedRequest(
        model=model,
        api_version=version,
        api_key=http.headers.get("x-goog-api-key") or http.args.get("key"),
        headers=dict(http.headers),
        body=body,
        texts=tuple(texts),
        images=tuple(images),
        image_mime_types=tuple(mime_types),
    )


def _inline(data: bytes, mime_type: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime_type, "data": base64.b64encode(data).decode("ascii")}}


def _inverted(images: tuple[bytes, ...]) -> bytes | None:
    """The (first) input image with its colours inverted, as a PNG (an edit plainly applied); None if the
    input is not an image."""
    if images:
        try:
            with Image.open(io.BytesIO(images[0])) as source:
                result = ImageOps.invert(source.convert("RGB"))
        except (OSError, ValueError):
            return None
    else:
        result = Image.new("RGB", (64, 64), (200, 40, 40))
    out = io.BytesIO()
    result.save(out, format="PNG")
    return out.getvalue()


def _error(request: RecordedRequest, status: int, message: str | None, retry_delay: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": message or _MESSAGES.get(status, "Unknown error."),
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if status == 429:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": request.model},
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
        ]
    if retry_delay is not None:
        error.setdefault("details", []).append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return {"error": error}


def _safety_ratings(*, blocked: bool) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = [
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": blocked},
    ]
    return ratings


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")
