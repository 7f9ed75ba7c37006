"""The HTTP API's request and response bodies: the public contract of `POST /uploads` and `GET /jobs/{id}`."""

# No `from __future__ import annotations`: it costs the api's cold start (see imgflow.models).

import re
from typing import Annotated, Any, Literal, Self, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict, JsonValue
from pydantic_core import PydanticCustomError

from imgflow.models import (
    EditId,
    EditKind,
    EditSpec,
    FeedbackRating,
    ImageInfo,
    JobError,
    JobStatus,
    LanguageName,
    OutputFormat,
    Placeholder,
    PresetName,
    TaskStatus,
    VariantRole,
    VariantsRequest,
)
from imgflow.recipes import Operation

Filename = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f/\\]+$")]
# The declared type only labels the stored object: the format is decided by the bytes.
CONTENT_TYPE_PATTERN = r"^(image/[a-z0-9.+-]+|application/octet-stream)$"


def _declarable(content_type: str) -> str:
    # Said plainly rather than as the regex: a client with a .txt or .pdf learns what to send instead.
    if not re.fullmatch(CONTENT_TYPE_PATTERN, content_type):
        raise PydanticCustomError(
            "content_type",
            "{given} is neither image/* nor application/octet-stream: the bytes decide the format, so declare any "
            "other file as application/octet-stream (one that is not an image then ends rejected, unsupported_format)",
            {"given": repr(content_type)},
        )
    return content_type


ContentType = Annotated[
    str,
    StringConstraints(max_length=100),
    AfterValidator(_declarable),
    Field(json_schema_extra={"pattern": CONTENT_TYPE_PATTERN}),
]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
# Far more than there are formats or (default) presets to list, so a client that repeats itself is
# forgiven; a longer list can only be a mistake or a flood, and is refused.
MAX_LISTED_VARIANTS = 16

_Listed = TypeVar("_Listed")


# Documented only: the API's own check says what is wrong with a URL better than a regex mismatch would.
_HTTP_URL: JsonDict = {"pattern": "^https?://[A-Za-z0-9._~\\-\\[\\]]+(:[0-9]{1,5})?([/?#]\\S*)?$"}
NotifyUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048),
    Field(
        description="Where to POST this job's lifecycle events, signed like webhooks with the owner's "
        "notify secret (GET /webhooks/secret)",
        json_schema_extra=_HTTP_URL,
    ),
]


class ApiModel(BaseModel):
    # Built when first used (see imgflow.models.Model).
    model_config = ConfigDict(extra="forbid", defer_build=True)


class VariantsRequestBody(VariantsRequest):
    """Which presets, in which formats. A name listed twice is made once: repeats are dropped, first kept."""

    presets: Annotated[tuple[PresetName, ...], Field(max_length=MAX_LISTED_VARIANTS)] | None = Field(
        default=None, description="Presets to make (all of the deployment's when left out)."
    )
    formats: Annotated[tuple[OutputFormat, ...], Field(max_length=MAX_LISTED_VARIANTS)] | None = Field(
        default=None, description="Formats to make each preset in (the deployment's default when left out or empty)."
    )

    @field_validator("presets", "formats")
    @classmethod
    def _drop_repeats(cls, listed: tuple[_Listed, ...] | None) -> tuple[_Listed, ...] | None:
        # Every repeat would be encoded again: ten AVIFs of one image cost ~100 s of CPU.
        return None if listed is None else tuple(dict.fromkeys(listed))


# What `_exactly_one_kind` enforces, as the document states it (a schema-valid edit must be accepted).
_EDIT_KINDS = {"prompt": "string", "translate_to": "string", "operations": "array"}
_ONE_KIND_OF_EDIT: list[JsonValue] = [
    {
        "required": [kind],
        "properties": {
            kind: {"type": json_type},
            **{other: {"type": "null"} for other in _EDIT_KINDS if other != kind},
            **({} if kind == "prompt" else {"enhance_prompt": {"const": False}}),
            **({} if kind == "translate_to" else {"source_language": {"type": "null"}}),
        },
    }
    for kind, json_type in _EDIT_KINDS.items()
]


class EditRequest(ApiModel):
    """One edit: exactly one of `prompt`, `translate_to` or `operations`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": _ONE_KIND_OF_EDIT})

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = Field(
        default=None, description="A natural-language edit, applied by Gemini's image model."
    )
    enhance_prompt: bool = Field(default=False, description="Let a text model rewrite a terse prompt first.")
    translate_to: LanguageName | None = Field(
        default=None, description="Translate the text inside the image into this language, keeping the layout."
    )
    source_language: LanguageName | None = None
    operations: Annotated[list[Operation], Field(min_length=1, max_length=20)] | None = Field(
        default=None, description="A recipe of deterministic operations, applied in order; no AI involved."
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        given = [name for name in ("prompt", "translate_to", "operations") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"an edit has exactly one of prompt, translate_to or operations (got {given or 'none'})")
        if self.source_language is not None and self.translate_to is None:
            raise ValueError("source_language goes with translate_to")
        if self.enhance_prompt and self.prompt is None:
            raise ValueError("enhance_prompt goes with prompt")
        return self

    def spec(self) -> EditSpec:
        kind: EditKind = "prompt" if self.prompt else "translate" if self.translate_to else "recipe"
        return EditSpec(
            kind=kind,
            prompt=self.prompt,
            enhance_prompt=self.enhance_prompt,
            translate_to=self.translate_to,
            source_language=self.source_language,
            operations=self.operations,
        )


class AddEditRequest(EditRequest):
    parent_edit_id: EditId | None = Field(default=None, description="Apply this edit to that edit's result.")


class EditAccepted(ApiModel):
    edit_id: str
    status_url: str


# Keys outside MetadataKey's pattern are refused: the document must not leave them open.
_ONLY_PATTERNED_KEYS: JsonDict = {"additionalProperties": False}
# An empty file is refused as `empty_file` (its own code, so not by the model's bounds); the document says so.
_NOT_EMPTY: dict[str, Any] = {"json_schema_extra": {"minimum": 1}}


class UploadRequest(ApiModel):
    filename: Filename
    content_type: ContentType
    size: Annotated[int, Field(ge=0, description="The file's size in bytes; the upload must match it.", **_NOT_EMPTY)]
    variants: VariantsRequestBody | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=20)] = Field(
        default_factory=dict, json_schema_extra=_ONLY_PATTERNED_KEYS
    )
    edits: Annotated[list[EditRequest], Field(max_length=10)] = Field(
        default_factory=list, description="Edits of the uploaded image, each applied to the original."
    )
    notify_url: NotifyUrl | None = None


class BatchFile(ApiModel):
    filename: Filename
    content_type: ContentType
    size: Annotated[int, Field(ge=0, **_NOT_EMPTY)]


class BatchUploadRequest(ApiModel):
    """Several files at once; the same variants, metadata, edits and notify_url are asked of each."""

    files: Annotated[list[BatchFile], Field(min_length=1, max_length=10)]
    variants: VariantsRequestBody | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=20)] = Field(
        default_factory=dict, json_schema_extra=_ONLY_PATTERNED_KEYS
    )
    edits: Annotated[list[EditRequest], Field(max_length=10)] = Field(default_factory=list)
    notify_url: NotifyUrl | None = None

    def per_file(self) -> list[UploadRequest]:
        shared = self.model_dump(exclude={"files"})
        return [UploadRequest.model_validate({**file.model_dump(), **shared}) for file in self.files]


class PresignedUpload(ApiModel):
    url: str
    fields: dict[str, str]
    expires_at: str


class UploadResponse(ApiModel):
    job_id: str
    upload: PresignedUpload
    status_url: str


class BatchUploadResponse(ApiModel):
    uploads: list[UploadResponse]


class TaskView(ApiModel):
    status: TaskStatus
    stage: str
    progress: int
    attempts: int
    error: JobError | None = None


class VariantView(ApiModel):
    preset: str
    format: OutputFormat
    width: int
    height: int
    bytes: int
    content_type: str
    url: str
    role: VariantRole = Field(
        default="image",
        description="`image` for a still; for an animation, `animation` (animated WebP, or AVIF) and `poster` "
        "(the still of its first frame, in each requested format)",
    )


class FeedbackRequest(ApiModel):
    # `_down_says_why` as the document states it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"rating": {"const": "down"}}},
            "then": {"required": ["text"], "properties": {"text": {"type": "string", "pattern": "\\S"}}},
        },
    )

    rating: FeedbackRating
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = Field(
        default=None, description="What was wrong or right; required with a down rating"
    )

    @model_validator(mode="after")
    def _down_says_why(self) -> Self:
        if self.rating == "down" and not (self.text and self.text.strip()):
            raise ValueError("text: a down rating needs a text saying what is wrong")
        return self


class FeedbackView(ApiModel):
    rating: FeedbackRating
    text: str | None = None
    given_at: str


class EditView(ApiModel):
    edit_id: str
    kind: EditKind
    parent_edit_id: str | None = None
    status: TaskStatus
    stage: str
    progress: int
    attempts: int
    provider: str | None = None
    model: str | None = None
    provider_calls: int = 0
    duration_ms: int | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    content_type: str | None = None
    url: str | None = None
    text_url: str | None = None
    # The result's web variants and placeholder, like the upload's; `url` above is the lossless master.
    variants: list[VariantView] = Field(default_factory=list)
    placeholder: Placeholder | None = None
    error: JobError | None = None
    feedback: FeedbackView | None = None


class JobView(ApiModel):
    job_id: str
    status: JobStatus
    version: int
    owner: str
    created_at: str
    updated_at: str
    filename: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    image: ImageInfo | None = None
    tasks: dict[str, TaskView] = Field(default_factory=dict)
    variants: list[VariantView] = Field(default_factory=list)
    placeholder: Placeholder | None = None
    edits: list[EditView] = Field(default_factory=list)
    error: JobError | None = None


class JobList(ApiModel):
    """One page of the caller's jobs, newest first; `next_cursor` continues it (absent at the end)."""

    jobs: list[JobView]
    next_cursor: str | None = None


class QuotaView(ApiModel):
    name: str
    limit: int
    used: int
    remaining: int
    window_seconds: int
    per_owner: bool
    resets_at: str


class QuotaReport(ApiModel):
    owner: str
    quotas: list[QuotaView]


class ErrorBody(ApiModel):
    code: str
    message: str


class ErrorResponse(ApiModel):
    error: ErrorBody


class UnauthorizedResponse(ApiModel):
    """API Gateway's 401 (`message` only, on AWS); the local runtime adds our `error` beside it."""

    message: str
    error: ErrorBody | None = None


class Health(ApiModel):
    status: str = "ok"


# --- webhooks ---------------------------------------------------------------------------------------------

# The lifecycle events' detail-types (imgflow.lifecycle.DETAIL_TYPES; a unit test keeps the two in step).
EventType = Literal[
    "Job Accepted",
    "Job Rejected",
    "Variants Ready",
    "Job Succeeded",
    "Job Failed",
    "Edit Succeeded",
    "Edit Failed",
    "Edit Feedback",
    "Job Expired",
    "Job Deleted",
]


class WebhookRequest(ApiModel):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2048)] = Field(
        description="Where to POST each event: a public https URL (the local runtime also takes http and loopback)",
        json_schema_extra=_HTTP_URL,
    )
    events: list[EventType] | None = Field(
        default=None,
        min_length=1,
        max_length=len(get_args(EventType)),
        description="Detail-types to deliver (repeats count once); every lifecycle event when absent",
    )
    description: Annotated[str, StringConstraints(max_length=256)] | None = None

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(events)) if events else events


class WebhookView(ApiModel):
    id: str
    url: str
    events: list[str] | None = None
    description: str | None = None
    created_at: str


class WebhookCreated(WebhookView):
    secret: str = Field(description="whsec_...: verifies each delivery's webhook-signature (Standard Webhooks)")


class NotifySecret(ApiModel):
    secret: str = Field(description="whsec_...: verifies what is POSTed to the notify_url of the caller's jobs")


class WebhookList(ApiModel):
    webhooks: list[WebhookView]


class DeliveryView(ApiModel):
    message_id: str = Field(description="The webhook-id header: the same on every attempt and replay")
    type: str
    job_id: str
    status: str = Field(description="pending, succeeded, failed (schedule exhausted) or refused (never sendable)")
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: str
    updated_at: str


class DeliveryList(ApiModel):
    deliveries: list[DeliveryView]
    next_cursor: str | None = None


class ReplayRequest(ApiModel):
    since: Annotated[int, Field(ge=0, lt=2**40)] = Field(
        description="Epoch seconds: deliver again every event recorded for the webhook since then"
    )


class ReplayAccepted(ApiModel):
    replayed: int
    more: bool = Field(description="More events than one replay takes remain: replay again from the last one")


# --- stats --------------------------------------------------------------------------------------------------


class QueueDepthView(ApiModel):
    name: str
    waiting: int
    in_flight: int
    delayed: int


class StatsReport(ApiModel):
    """What the dashboard shows, from the jobs created since `since`: the caller's, or everyone's for a
    token with the admin scope (which also sees the queues)."""

    scope: Literal["owner", "everyone"]
    owner: str | None = None
    since: str
    truncated: bool = Field(description="More jobs than one report reads: the figures cover the newest")
    uploads: int
    jobs_by_status: dict[str, int]
    errors_by_code: dict[str, int]
    edits_by_kind: dict[str, int]
    edits_by_status: dict[str, int]
    provider_calls: int
    spend_estimate_usd: float
    feedback: dict[str, int]
    job_seconds_p50: int | None = Field(description="Upload asked to job ended, of the jobs that ended")
    job_seconds_p95: int | None
    edit_ms_p50: int | None
    edit_ms_p95: int | None
    webhook_deliveries_by_status: dict[str, int]
    queues: list[QueueDepthView] | None = None
