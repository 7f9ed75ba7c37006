"""The runtime's own pages: the demo page (signed in as `demo`, and told whether AI edits can run here),
the API's docs rendered from its OpenAPI document, and the icon browsers ask for on every load."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path

from werkzeug.wrappers import Request, Response

STATIC = Path(__file__).parent / "static"
# The browser client, served to the demo page (which uses it) and to any web app on this machine.
JS_CLIENT = Path(__file__).resolve().parents[2] / "clients" / "js"
# Whom the demo page signs in as.
DEMO_OWNER = "demo"
# What the edit function reads its Gemini keys from: the keys themselves, or (on AWS) a secret holding them.
GEMINI_KEY_VARIABLES = ("GEMINI_API_KEYS", "GEMINI_API_KEYS_SECRET")


def ai_edits_configured(environments: Iterable[Mapping[str, str]]) -> bool:
    """Whether any function is given a Gemini key (without one, prompt and translation edits fail at once)."""
    return any(environment.get(name) for environment in environments for name in GEMINI_KEY_VARIABLES)


@dataclass(frozen=True)
class DemoPages:
    # A fresh token of the demo owner per page load, as an app's login would give one.
    demo_token: Callable[[], str]
    ai_edits: bool

    def routes(self) -> dict[str, Callable[[Request], Response]]:
        return {
            "/": self.page,
            "/docs": self.docs,
            "/favicon.ico": self.favicon,
            "/client/imgflow.js": self.client_module,
            "/client/imgflow.d.ts": self.client_types,
        }

    def page(self, _: Request) -> Response:
        return self._html("index.html", {"imgflow-token": self.demo_token(), "imgflow-ai-edits": self._ai_state})

    def docs(self, _: Request) -> Response:
        # /openapi.json wants a token like every route but /health: the page fetches it signed in.
        return self._html("docs.html", {"imgflow-token": self.demo_token()})

    def favicon(self, _: Request) -> Response:
        icon = Response((STATIC / "favicon.ico").read_bytes(), content_type="image/x-icon")
        icon.headers["Cache-Control"] = "public, max-age=86400"
        return icon

    def client_module(self, _: Request) -> Response:
        return Response((JS_CLIENT / "imgflow.js").read_bytes(), content_type="text/javascript; charset=utf-8")

    def client_types(self, _: Request) -> Response:
        return Response((JS_CLIENT / "imgflow.d.ts").read_bytes(), content_type="application/typescript; charset=utf-8")

    @property
    def _ai_state(self) -> str:
        return "on" if self.ai_edits else "off"

    @staticmethod
    def _html(name: str, meta: Mapping[str, str]) -> Response:
        tags = "".join(f'\n<meta name="{escape(key)}" content="{escape(value)}">' for key, value in meta.items())
        page = (STATIC / name).read_text().replace("<head>", f"<head>{tags}", 1)
        return Response(page, content_type="text/html; charset=utf-8")
