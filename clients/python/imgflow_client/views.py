"""The shapes the API answers with (see its OpenAPI document, `GET /openapi.json`). Views are plain
dicts, typed for the fields clients read most; fields the API adds later are kept as they come."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Error(TypedDict):
    code: str
    message: str


class Variant(TypedDict):
    preset: str
    format: str
    width: int
    height: int
    bytes: int
    content_type: str
    # Presigned: expires within minutes of the view that carries it.
    url: str
    # "image" (a still), or for an animation "animation" (animated WebP) and "poster" (its first frame).
    role: NotRequired[str]


class Edit(TypedDict):
    edit_id: str
    kind: str
    status: str
    stage: str
    progress: int
    parent_edit_id: NotRequired[str | None]
    url: NotRequired[str | None]
    text_url: NotRequired[str | None]
    width: NotRequired[int | None]
    height: NotRequired[int | None]
    # The result's web variants; `url` is its lossless master.
    variants: NotRequired[list[Variant]]
    error: NotRequired[Error | None]


class JobView(TypedDict):
    job_id: str
    status: str
    version: int
    filename: NotRequired[str]
    image: NotRequired[dict[str, Any] | None]
    tasks: NotRequired[dict[str, dict[str, Any]]]
    variants: NotRequired[list[Variant]]
    placeholder: NotRequired[dict[str, str] | None]
    edits: NotRequired[list[Edit]]
    error: NotRequired[Error | None]


class JobList(TypedDict):
    jobs: list[JobView]
    next_cursor: NotRequired[str | None]


class EditAccepted(TypedDict):
    edit_id: str
    status_url: str


class UploadForm(TypedDict):
    url: str
    fields: dict[str, str]
    expires_at: str


class UploadCreated(TypedDict):
    job_id: str
    upload: UploadForm
    status_url: str
