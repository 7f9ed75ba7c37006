"""The HTTP API's request and response bodies: the public contract of `POST /uploads` and `GET /jobs/{id}`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from imgflow.models import (
    ImageInfo,
    JobError,
    JobStatus,
    OutputFormat,
    Placeholder,
    TaskStatus,
    VariantsRequest,
)

Filename = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f/\\]+$")]
# The declared type only labels the stored object: the format is decided by the bytes.
ContentType = Annotated[
    str, StringConstraints(max_length=100, pattern=r"^(image/[a-z0-9.+-]+|application/octet-stream)$")
]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UploadRequest(ApiModel):
    filename: Filename
    content_type: ContentType
    size: Annotated[int, Field(ge=1, description="The file's size in bytes; the upload must match it.")]
    variants: VariantsRequest | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=20)] = Field(default_factory=dict)


class PresignedUpload(ApiModel):
    url: str
    fields: dict[str, str]
    expires_at: str


class UploadResponse(ApiModel):
    job_id: str
    upload: PresignedUpload
    status_url: str


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
    error: JobError | None = None


class ErrorBody(ApiModel):
    code: str
    message: str


class ErrorResponse(ApiModel):
    error: ErrorBody


class Health(ApiModel):
    status: str = "ok"
