"""The runtime's own pages: the demo page is told whether AI edits can run before anyone types a prompt."""

from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from imgflow_local.demo import DemoPages, ai_edits_configured


@pytest.mark.parametrize(
    ("environments", "expected"),
    [
        ([{"GEMINI_API_KEYS": ""}, {"GEMINI_API_KEYS_SECRET": ""}], False),
        ([{}, {"GEMINI_API_KEYS": "key1,key2"}], True),
        ([{"GEMINI_API_KEYS_SECRET": "imgflow/gemini"}], True),
    ],
)
def test_ai_edits_are_configured_when_a_function_has_a_key_or_a_secret(
    environments: list[dict[str, str]], expected: bool
) -> None:
    assert ai_edits_configured(environments) is expected


@pytest.mark.parametrize(("ai_edits", "state"), [(True, "on"), (False, "off")])
def test_the_demo_page_carries_its_token_and_whether_ai_edits_are_on(ai_edits: bool, state: str) -> None:
    pages = DemoPages(lambda: "a.b.c", ai_edits)
    page = pages.routes()["/"](Request(EnvironBuilder(path="/").get_environ())).get_data(as_text=True)
    assert '<meta name="imgflow-token" content="a.b.c">' in page
    assert f'<meta name="imgflow-ai-edits" content="{state}">' in page


def test_the_icon_and_the_docs_page_are_served() -> None:
    routes = DemoPages(lambda: "a.b.c", ai_edits=False).routes()
    request = Request(EnvironBuilder(path="/favicon.ico").get_environ())
    icon = routes["/favicon.ico"](request)
    assert (icon.status_code, icon.content_type) == (200, "image/x-icon")
    assert icon.get_data()[:4] == b"\x00\x00\x01\x00"  # an ICO header
    docs = routes["/docs"](request).get_data(as_text=True)
    assert '<meta name="imgflow-token" content="a.b.c">' in docs
    assert "/openapi.json" in docs
