"""Domain models: the job, its tasks and results, and the messages between functions.

API request/response models live in `imgflow.api_models`, event models in `imgflow.event_models`,
lifecycle events in `imgflow.lifecycle`. Mapping between them is explicit.
"""

# Annotations are not postponed (no `from __future__ import annotations`) here, in api_models and in
# recipes, the model modules the api imports: pydantic would compile and evaluate each field's annotation
# string at import, 6 ms of the api's cold start for the three (make bench-cold).

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from imgflow.errors import ErrorCode
from imgflow.recipes import Operation

JobId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
EditId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]
LanguageName = Annotated[str, StringConstraints(min_length=2, max_length=40, pattern=r"^[A-Za-z][A-Za-z \-()]*$")]
EditKind = Literal["prompt", "translate", "recipe"]
FeedbackRating = Literal["up", "down"]
PresetName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
OutputFormat = Literal["webp", "avif", "jpeg"]
ImageFormat = Literal["JPEG", "PNG", "WEBP", "GIF", "HEIF", "AVIF"]
# A still of the image; an animated WebP of an animation; the still of an animation's first frame.
VariantRole = Literal["image", "animation", "poster"]
MAX_OWNER_LENGTH = 256
Owner = Annotated[str, StringConstraints(min_length=1, max_length=MAX_OWNER_LENGTH)]
ANONYMOUS = "anonymous"


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    VALIDATING = "validating"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED})


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


OPEN_TASK_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING})


@dataclass(frozen=True)
class ImageLimits:
    """Bounds of an acceptable upload.

    Pillow's own guard (`Image.MAX_IMAGE_PIXELS`, ~89.5 MP: a warning above it, an error above twice
    that) is left at its default, as a second line: `max_pixels` is checked from the header first, so
    below ~89.5 MP Pillow's guard never speaks. A `max_pixels` above ~179 MP would in effect be capped
    there (still reported as `too_many_pixels`).
    """

    max_bytes: int
    max_pixels: int
    max_side: int
    max_frames: int
    # An animation's frames x canvas pixels: every frame is decoded and held at full size while its
    # variants are made (4 bytes a pixel: 100 MP is 400 MB), and encoded once per preset.
    max_animation_pixels: int = 100_000_000


class Model(BaseModel):
    # A model's validator is built when first used, not at import: a cold function builds only the ones
    # its invocation needs (about half the api's import CPU was building every model up front).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class JobError(Model):
    code: ErrorCode
    message: str


class VariantPreset(Model):
    name: PresetName
    long_edge: Annotated[int, Field(ge=16, le=8192)]


class VariantsRequest(Model):
    """What the client asks of the variants task: which presets, in which formats."""

    presets: tuple[PresetName, ...] | None = None
    formats: tuple[OutputFormat, ...] | None = None


class Task(Model):
    status: TaskStatus = TaskStatus.PENDING
    stage: str = "queued"
    progress: Annotated[int, Field(ge=0, le=100)] = 0
    attempts: int = 0
    error: JobError | None = None
    # Failed because its step gave up (its retries ran out: its last attempt said so, or the sweep did,
    # imgflow.sweep), not for a reason of its own: its message, redriven from the dead-letter queue, runs
    # it again.
    gave_up: bool = False


class SourceObject(Model):
    """The uploaded object a job was made from, as S3 reported it."""

    bucket: str
    key: str
    size: int
    etag: str | None = None
    sequencer: str | None = None
    version_id: str | None = None


class ImageInfo(Model):
    """What validation learned from the bytes. Width and height are as displayed (EXIF orientation applied)."""

    format: ImageFormat
    width: int
    height: int
    frames: int = 1
    animated: bool = False  # a GIF or WebP of several frames, kept moving in its variants
    duration_ms: int | None = None  # an animation's total duration (one loop)


class Variant(Model):
    preset: PresetName
    format: OutputFormat
    key: str
    width: int
    height: int
    bytes: int
    content_type: str
    role: VariantRole = "image"

    @property
    def slot(self) -> str:
        """Its name among the job's variants: one per preset, format and role."""
        base = f"{self.preset}_{self.format}"
        return base if self.role == "image" else f"{base}_{self.role}"


class Placeholder(Model):
    blurhash: str
    dominant_color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-f]{6}$")]


class EditSpec(Model):
    """What one edit asks for: exactly one of a prompt, a translation or a recipe of operations."""

    kind: EditKind
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None
    enhance_prompt: bool = False
    translate_to: LanguageName | None = None
    source_language: LanguageName | None = None
    operations: list[Operation] | None = None


class EditResult(Model):
    """An edit's output: `key` is the lossless master (what chains build on, the full-quality download),
    `variants` its web variants in the job's presets and formats, as an upload gets them."""

    key: str
    width: int
    height: int
    bytes: int
    content_type: str
    text_key: str | None = None  # translations: the extracted and translated text pairs, as JSON
    variants: list[Variant] = Field(default_factory=list)
    placeholder: Placeholder | None = None


class EditFeedback(Model):
    """The owner's verdict on an edit's result: what prompt authors tune on."""

    rating: FeedbackRating
    text: str | None = None
    given_at: int


class Edit(Model):
    """An edit of a job's image. Its progress is the task `edit_task_name(edit_id)` in `Job.tasks`."""

    edit_id: EditId
    spec: EditSpec
    parent_edit_id: EditId | None = None
    depth: Annotated[int, Field(ge=1)] = 1
    created_at: int
    seq: int = 0  # the order edits were asked in (a DynamoDB map keeps none)
    provider: str | None = None
    model: str | None = None
    provider_calls: int = 0
    duration_ms: int | None = None
    result: EditResult | None = None
    feedback: EditFeedback | None = None


# The task of a job's variants; each edit has a task of its own (`edit_task_name`).
VARIANTS_TASK = "variants"
_EDIT_TASK_PREFIX = "edit-"


def edit_task_name(edit_id: str) -> str:
    return f"{_EDIT_TASK_PREFIX}{edit_id}"


def task_edit_id(task: str) -> str | None:
    """The edit whose task `task` is, or None when it is not an edit's (the variants task)."""
    return task.removeprefix(_EDIT_TASK_PREFIX) if task.startswith(_EDIT_TASK_PREFIX) else None


class Job(Model):
    job_id: JobId
    owner: Owner = ANONYMOUS
    status: JobStatus
    version: int = 1
    created_at: int
    updated_at: int
    expires_at: int
    upload_expires_at: int | None = None
    filename: str | None = None
    content_type: str | None = None
    declared_size: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    variants_request: VariantsRequest = VariantsRequest()
    source: SourceObject | None = None
    image: ImageInfo | None = None
    tasks: dict[str, Task] = Field(default_factory=dict)
    variants: dict[str, Variant] = Field(default_factory=dict)
    placeholder: Placeholder | None = None
    edits: dict[str, Edit] = Field(default_factory=dict)
    error: JobError | None = None
    # Failed because the ingest step gave up (see Task.gave_up): its redriven notification validates it again.
    gave_up: bool = False


def open_tasks(job: Job) -> list[str]:
    return [name for name, task in job.tasks.items() if task.status in OPEN_TASK_STATUSES]


class VariantsMessage(Model):
    """VariantsQueue message body: make the web variants of one job's original."""

    job_id: JobId
    bucket: str
    key: str
    etag: str | None = None


class EditMessage(Model):
    """EditQueue message body: apply one edit of one job."""

    job_id: JobId
    edit_id: EditId
