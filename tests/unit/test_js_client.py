"""The browser client's types stay the API's: clients/js/imgflow.d.ts is what scripts/openapi_types.py makes
of the OpenAPI document the api function serves, and it declares exactly what clients/js/imgflow.js exports."""

from __future__ import annotations

import re

from openapi_types import OUTPUT, declarations, openapi_document
from support import ROOT

CLIENT = ROOT / "clients" / "js" / "imgflow.js"


def test_given_the_api_then_the_checked_in_types_are_the_generated_ones() -> None:
    assert OUTPUT.read_text() == declarations(openapi_document()), "run `make types`"


def test_given_the_module_then_the_types_declare_exactly_its_exports() -> None:
    exported = set(re.findall(r"^export (?:async )?(?:function|class|const) (\w+)", CLIENT.read_text(), re.M))
    declared = set(re.findall(r"^export declare (?:function|class) (\w+)", OUTPUT.read_text(), re.M))
    assert exported == declared == {"Client", "ImgflowError", "isSettled", "postForm", "upload"}


def test_given_the_types_then_every_body_of_the_api_has_one() -> None:
    types = OUTPUT.read_text()
    for name in ("UploadRequest", "UploadResponse", "JobView", "EditView", "WebhookCreated", "StatsReport"):
        assert re.search(rf"^export interface {name} \{{", types, re.M), name
    assert "HTTPValidationError" not in types  # Powertools' 422, which the API never answers
