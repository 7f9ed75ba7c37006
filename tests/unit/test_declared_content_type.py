"""What `POST /uploads` says to a declared type it cannot take: what to send instead, not its regex."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imgflow.api_models import UploadRequest


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/svg+xml", "application/octet-stream"])
def test_image_types_and_bytes_are_declarable(content_type: str) -> None:
    assert UploadRequest(filename="a", content_type=content_type, size=1).content_type == content_type


@pytest.mark.parametrize("content_type", ["text/plain", "application/pdf", "IMAGE/JPEG", ""])
def test_any_other_type_is_refused_with_what_to_send_instead(content_type: str) -> None:
    with pytest.raises(ValidationError) as refused:
        UploadRequest(filename="a", content_type=content_type, size=1)
    (error,) = refused.value.errors()
    assert error["loc"] == ("content_type",)
    assert error["msg"].startswith(f"{content_type!r} is neither image/* nor application/octet-stream")
    assert "declare any other file as application/octet-stream" in error["msg"]
    assert "pattern" not in error["msg"]


def test_the_openapi_schema_still_states_the_pattern() -> None:
    schema = UploadRequest.model_json_schema()["properties"]["content_type"]
    assert schema["pattern"] == r"^(image/[a-z0-9.+-]+|application/octet-stream)$"
    assert schema["maxLength"] == 100
