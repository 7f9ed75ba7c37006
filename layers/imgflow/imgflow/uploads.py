"""What the HTTP API does: hand out presigned uploads, show jobs, wait for them to change."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

from imgflow.api_models import (
    AddEditRequest,
    EditView,
    FeedbackView,
    JobView,
    PresignedUpload,
    TaskView,
    UploadRequest,
    UploadResponse,
    VariantView,
)
from imgflow.errors import EditNotFoundError, ImgflowError, JobNotFoundError, TransitionRejectedError
from imgflow.job_store import EDIT_RUNNABLE, JobStore
from imgflow.keys import job_prefix, upload_key, upload_prefix
from imgflow.models import (
    Edit,
    EditFeedback,
    EditMessage,
    FeedbackRating,
    Job,
    JobStatus,
    Task,
    TaskStatus,
    Variant,
    edit_task_name,
)
from imgflow.overdue import UPLOAD_GRACE_SECONDS
from imgflow.queues import TaskQueue
from imgflow.quotas import Quotas, QuotaStore, QuotaUse
from imgflow.recipes import Recipe
from imgflow.settings import Settings
from imgflow.storage import ObjectStorage

MAX_WAIT_SECONDS = 20
_POLL_CAP_SECONDS = 0.1
# Job ids are 32 hex digits (uploads) or derived from the object (drops): far shorter than this.
_MAX_JOB_ID_LENGTH = 128


class UploadTooLargeError(ImgflowError):
    pass


class EmptyUploadError(ImgflowError):
    pass


class InvalidUploadRequestError(ImgflowError):
    """A request that is well-formed but asks for what this deployment does not offer."""


class ChainTooLongError(ImgflowError):
    pass


class ForbiddenError(ImgflowError):
    """The caller's token does not grant what the request asks for (a scope it lacks)."""


@dataclass(frozen=True)
class Caller:
    """Who sends a request, as the authorizer verified it: the token's `sub` and its scopes."""

    owner: str
    scopes: frozenset[str] = frozenset()


class JobNotEditableError(ImgflowError):
    pass


class InvalidCursorError(InvalidUploadRequestError):
    pass


def encode_cursor(last_key: dict[str, object]) -> str:
    """An opaque cursor: the page's last key, which the owner index needs to continue."""
    return base64.urlsafe_b64encode(json.dumps(last_key, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, owner: str) -> dict[str, object]:
    """The key a cursor holds, if it is one of ours and for this owner's jobs (anything else is a 400)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursorError("cursor: not a cursor this API gave out") from None
    if (
        not isinstance(key, dict)
        or set(key) != {"pk", "owner", "created_at"}
        or key["owner"] != owner
        or not isinstance(key["pk"], str)
        or len(key["pk"]) > _MAX_JOB_ID_LENGTH
        # Epoch seconds, as the owner index sorts them; anything else DynamoDB would refuse with an error.
        or not re.fullmatch(r"[0-9]{1,12}", str(key["created_at"]))
    ):
        raise InvalidCursorError("cursor: not a cursor this API gave out")
    key["created_at"] = int(key["created_at"])
    return key


def _check_job_id(job_id: str) -> None:
    if len(job_id) > _MAX_JOB_ID_LENGTH:
        # No job has such an id, and DynamoDB refuses keys past 2 KB with an error (a 500) rather than a miss.
        raise JobNotFoundError(job_id[:_MAX_JOB_ID_LENGTH] + "...")


def _check_recipe_fits(job: Job, request: AddEditRequest) -> None:
    """Refuse a recipe that cannot work on the image it would edit, where that image's size is known now:
    the accepted original (as the job view shows it), or the result of the edit it builds on. An image not
    there yet is checked by the edit function, which fails such an edit at once."""
    spec = request.spec()
    if spec.kind != "recipe":
        return
    size: tuple[int, int] | None = None
    if request.parent_edit_id is None:
        size = (job.image.width, job.image.height) if job.image else None
    elif (result := job.edits[request.parent_edit_id].result) is not None:
        size = (result.width, result.height)
    if size is None:
        return
    try:
        Recipe(operations=spec.operations or []).output_size(size)
    except ValueError as error:
        raise InvalidUploadRequestError(
            f"operations: {error} (the image it would edit is {size[0]}x{size[1]})"
        ) from error


def new_edit_id() -> str:
    return uuid.uuid4().hex[:12]


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass
class UploadsService:
    store: JobStore
    storage: ObjectStorage
    settings: Settings
    edit_queue: TaskQueue
    quota_store: QuotaStore
    sleep: Callable[[float], None] = field(default=time.sleep)
    monotonic: Callable[[], float] = field(default=time.monotonic)

    def create_upload(self, request: UploadRequest, owner: str, status_url: Callable[[str], str]) -> UploadResponse:
        s = self.settings
        self.check_upload(request)
        job_id = uuid.uuid4().hex
        now = self.store.now()
        edits = [
            Edit(edit_id=new_edit_id(), spec=edit.spec(), created_at=now, seq=number)
            for number, edit in enumerate(request.edits)
        ]
        upload_expires_at = now + s.upload_url_ttl_seconds
        job = Job(
            job_id=job_id,
            owner=owner,
            status=JobStatus.AWAITING_UPLOAD,
            created_at=now,
            updated_at=now,
            expires_at=now + s.job_retention_days * 86400,
            upload_expires_at=upload_expires_at,
            filename=request.filename,
            content_type=request.content_type,
            declared_size=request.size,
            metadata=request.metadata,
            variants_request=request.variants or Job.model_fields["variants_request"].get_default(),
            # Edits asked with the upload start when ingest accepts the image.
            edits={edit.edit_id: edit for edit in edits},
            tasks={edit_task_name(edit.edit_id): Task() for edit in edits},
        )
        self.store.create(job)
        post = self.storage.presigned_post(
            s.uploads_bucket,
            upload_key(owner, job_id),
            request.content_type,
            s.max_upload_bytes,
            s.upload_url_ttl_seconds,
        )
        return UploadResponse(
            job_id=job_id,
            upload=PresignedUpload(url=post.url, fields=post.fields, expires_at=iso(upload_expires_at)),
            status_url=status_url(job_id),
        )

    def check_upload(self, request: UploadRequest) -> None:
        """Refuse what this deployment will not take, before any job exists."""
        s = self.settings
        if request.size == 0:
            raise EmptyUploadError(f"{request.filename} is empty; there is nothing to upload")
        if request.size > s.max_upload_bytes:
            raise UploadTooLargeError(
                f"{request.filename} is {request.size} bytes; the limit is {s.max_upload_bytes} bytes"
            )
        self._check_presets(request)
        if len(request.edits) > s.max_edits_per_request:
            raise InvalidUploadRequestError(f"edits: at most {s.max_edits_per_request} edits per request")

    # --- owners and their limits --------------------------------------------------------------------

    @property
    def quotas(self) -> Quotas:
        return Quotas.from_settings(self.settings)

    def charge_uploads(self, caller: Caller, requests: Sequence[UploadRequest]) -> list[QuotaUse]:
        """Check the caller may ask this, and charge its quotas: before any job exists."""
        edits = [edit.spec().kind for request in requests for edit in request.edits]
        ai_edits = sum(1 for kind in edits if kind != "recipe")
        self._require_edit_scope(caller, ai_edits)
        total_bytes = sum(request.size for request in requests)
        charges = self.quotas.for_uploads(len(requests), total_bytes, len(edits), ai_edits)
        return self.quota_store.charge(caller.owner, charges)

    def quota_usage(self, owner: str) -> list[QuotaUse]:
        return self.quota_store.usage(owner, self.quotas.all())

    def _require_edit_scope(self, caller: Caller, ai_edits: int) -> None:
        if ai_edits and self.settings.edit_scope not in caller.scopes:
            raise ForbiddenError(
                f"AI edits (prompts, translations) need a token with the scope {self.settings.edit_scope}; "
                "recipes of operations do not"
            )

    # --- the owner's jobs ----------------------------------------------------------------------------

    def list_jobs(
        self, owner: str, limit: int, cursor: str | None, status: JobStatus | None
    ) -> tuple[list[Job], str | None]:
        after = decode_cursor(cursor, owner) if cursor else None
        jobs, last = self.store.list_for_owner(owner, limit, after, status)
        now = self.store.now()
        # Past their retention, jobs are gone even before TTL removes them.
        return [job for job in jobs if job.expires_at >= now], encode_cursor(last) if last else None

    def delete_job(self, job_id: str, owner: str) -> None:
        """Remove the job and every object of it; a job that is not there (deleted already) is a 404."""
        _check_job_id(job_id)
        # Remembered as deleted while its upload form could still be used (with the expiry sweep's grace).
        remember_until = self.store.now() + self.settings.upload_url_ttl_seconds + UPLOAD_GRACE_SECONDS
        job = self.store.delete(job_id, owner, remember_until)
        if job is None:
            raise JobNotFoundError(job_id)
        # The item goes first, so no task can record new results; then the objects, all of them.
        self.storage.delete_prefix(self.settings.uploads_bucket, upload_prefix(owner, job_id))
        self.storage.delete_prefix(self.settings.media_bucket, job_prefix(owner, job_id))
        source = job.source
        if source is not None and source.key != upload_key(owner, job_id):
            # A drop's object, which stays where it was dropped while its job lives, goes with the job (only
            # that very object: a later write to its key is a drop of its own).
            self.storage.delete(
                self.settings.uploads_bucket, source.key, etag=source.etag, version_id=source.version_id
            )

    def add_edit(
        self, job_id: str, caller: Caller, request: AddEditRequest, status_url: Callable[[str], str]
    ) -> tuple[str, str, list[QuotaUse]]:
        """Add one edit to a job, on its original or on an earlier edit; returns the edit id, the status URL
        and the caller's quotas as charged. Only an edit that passed every check is charged."""
        owner = caller.owner
        ai_edits = 0 if request.spec().kind == "recipe" else 1
        self._require_edit_scope(caller, ai_edits)
        job = self.get_job(job_id, owner)
        if job.status not in EDIT_RUNNABLE | {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}:
            raise JobNotEditableError(f"the job is {job.status}: there is no image to edit")
        depth = 1
        if request.parent_edit_id is not None:
            parent = job.edits.get(request.parent_edit_id)
            if parent is None:
                raise InvalidUploadRequestError(f"parent_edit_id: the job has no edit {request.parent_edit_id}")
            if job.tasks[edit_task_name(parent.edit_id)].status is TaskStatus.FAILED:
                raise InvalidUploadRequestError(f"parent_edit_id: edit {parent.edit_id} failed, nothing to build on")
            depth = parent.depth + 1
        if len(job.edits) >= self.settings.max_edits_per_job:
            raise InvalidUploadRequestError(
                f"the job has {len(job.edits)} edits; the limit is {self.settings.max_edits_per_job}"
            )
        if depth > self.settings.max_edit_chain:
            raise ChainTooLongError(
                f"this edit would be number {depth} in a chain; the limit is {self.settings.max_edit_chain}"
            )
        _check_recipe_fits(job, request)
        uses = self.quota_store.charge(owner, self.quotas.for_edits(1, ai_edits))
        edit = Edit(
            edit_id=new_edit_id(),
            spec=request.spec(),
            parent_edit_id=request.parent_edit_id,
            depth=depth,
            created_at=self.store.now(),
            seq=len(job.edits),
        )
        try:
            updated = self.store.add_edits(
                job_id,
                [edit],
                parent_task=edit_task_name(edit.parent_edit_id) if edit.parent_edit_id else None,
                max_edits=self.settings.max_edits_per_job,
            )
        except TransitionRejectedError as race:
            # Re-read to say which condition failed: the job ended, the parent failed, or the job filled up.
            return self._explain_refused_edit(job_id, owner, edit, race)
        if self._ready_to_run(updated, edit):
            self.edit_queue.send(EditMessage(job_id=job_id, edit_id=edit.edit_id))
        return edit.edit_id, status_url(job_id), uses

    def _explain_refused_edit(self, job_id: str, owner: str, edit: Edit, race: TransitionRejectedError) -> NoReturn:
        job = self.get_job(job_id, owner)
        if len(job.edits) >= self.settings.max_edits_per_job:
            raise InvalidUploadRequestError(
                f"the job has {len(job.edits)} edits; the limit is {self.settings.max_edits_per_job}"
            ) from race
        if (
            edit.parent_edit_id is not None
            and job.tasks[edit_task_name(edit.parent_edit_id)].status is TaskStatus.FAILED
        ):
            raise InvalidUploadRequestError(
                f"parent_edit_id: edit {edit.parent_edit_id} failed, nothing to build on"
            ) from race
        raise JobNotEditableError(f"the job is {job.status}: there is no image to edit") from race

    @staticmethod
    def _ready_to_run(job: Job, edit: Edit) -> bool:
        """Whether to queue the edit now. Otherwise ingest queues it on acceptance, or its parent on success:
        the parent's write and this one are ordered, so exactly one of the two sees the other and sends."""
        if job.status not in EDIT_RUNNABLE:
            return False
        if edit.parent_edit_id is None:
            return True
        return job.tasks[edit_task_name(edit.parent_edit_id)].status is TaskStatus.SUCCEEDED

    def _check_presets(self, request: UploadRequest) -> None:
        wanted = request.variants.presets if request.variants else None
        if wanted is None:
            return
        offered = [preset.name for preset in self.settings.variant_presets]
        unknown = sorted(set(wanted) - set(offered))
        if not wanted or unknown:
            raise InvalidUploadRequestError(
                f"variants.presets: unknown preset(s) {', '.join(unknown) or '(none asked)'}; "
                f"this deployment offers {', '.join(offered)}"
            )

    def give_feedback(self, job_id: str, owner: str, edit_id: str, rating: FeedbackRating, text: str | None) -> Job:
        """Record the owner's rating of a finished edit (replacing an earlier one)."""
        job = self.get_job(job_id, owner)
        if edit_id not in job.edits:
            raise EditNotFoundError(f"the job has no edit {edit_id}")
        if job.tasks[edit_task_name(edit_id)].status in {TaskStatus.PENDING, TaskStatus.RUNNING}:
            raise JobNotEditableError(f"edit {edit_id} has not finished: rate its result once it has one")
        feedback = EditFeedback(rating=rating, text=text, given_at=self.store.now())
        try:
            updated = self.store.give_feedback(job_id, owner, edit_id, feedback)
        except TransitionRejectedError:
            raise JobNotFoundError(job_id) from None  # deleted meanwhile
        return updated

    def get_job(self, job_id: str, owner: str) -> Job:
        _check_job_id(job_id)
        job = self.store.get(job_id)
        # Another owner's job, or one past its retention (TTL deletes lazily), is simply not there.
        if job is None or job.owner != owner or job.expires_at < self.store.now():
            raise JobNotFoundError(job_id)
        upload_deadline = (job.upload_expires_at or 0) + UPLOAD_GRACE_SECONDS
        if job.status is JobStatus.AWAITING_UPLOAD and job.upload_expires_at and self.store.now() > upload_deadline:
            # The scheduled sweep may not have come by yet: a reader never sees a form that can no longer work,
            # unless its upload did come in time and waits for ingest (the sweep judges that one).
            if self.storage.exists(self.settings.uploads_bucket, upload_key(job.owner, job_id)):
                return job
            return self._expire(job_id) or self.store.require(job_id)
        return job

    def _expire(self, job_id: str) -> Job | None:
        try:
            job = self.store.expire(job_id)
        except TransitionRejectedError:
            return None  # the upload arrived meanwhile
        return job

    def wait_for_job(self, job_id: str, owner: str, wait: float, since: int | None) -> Job:
        """The job once its version passed `since`, or (without `since`) once it is terminal, or as it is when
        `wait` seconds have passed. With `since`, a terminal job is waited on too: edits added after the end
        still change it."""
        deadline = self.monotonic() + min(max(wait, 0.0), MAX_WAIT_SECONDS)
        delay = 0.1
        while True:
            job = self.get_job(job_id, owner)
            done = job.version > since if since is not None else job.status.is_terminal
            if done or self.monotonic() >= deadline:
                return job
            self.sleep(min(delay, max(deadline - self.monotonic(), 0.0)))
            # At most 0.1 s between reads: a change is seen 0.05 s after it on average (a 1 s cap added
            # ~0.5 s to upload -> succeeded, 0.25 s ~0.1 s). Ten consistent reads a second of a job's item
            # under 4 KB (a read unit each) cost about a fifth as much as the function's own time, which the
            # wait holds anyway (512 MB on arm64).
            delay = min(delay * 1.5, _POLL_CAP_SECONDS)

    def view(self, job: Job) -> JobView:
        return JobView(
            job_id=job.job_id,
            status=job.status,
            version=job.version,
            owner=job.owner,
            created_at=iso(job.created_at),
            updated_at=iso(job.updated_at),
            filename=job.filename,
            metadata=job.metadata,
            image=job.image,
            # `gave_up` is how the pipeline knows a redriven step may run again; the error says it to clients.
            tasks={name: TaskView(**task.model_dump(exclude={"gave_up"})) for name, task in job.tasks.items()},
            variants=self._variant_views(job.variants.values()),
            placeholder=job.placeholder,
            edits=[
                self.edit_view(job, edit.edit_id)
                for edit in sorted(job.edits.values(), key=lambda e: (e.seq, e.edit_id))
            ],
            error=job.error,
        )

    def _variant_views(self, variants: Iterable[Variant]) -> list[VariantView]:
        """Smallest first, each with a download URL."""
        return [
            VariantView(
                preset=v.preset,
                format=v.format,
                width=v.width,
                height=v.height,
                bytes=v.bytes,
                content_type=v.content_type,
                url=self._download_url(v.key),
                role=v.role,
            )
            for v in sorted(variants, key=lambda v: (v.width * v.height, v.format, v.role))
        ]

    def _download_url(self, key: str) -> str:
        return self.storage.presigned_get(self.settings.media_bucket, key, self.settings.download_url_ttl_seconds)

    def edit_view(self, job: Job, edit_id: str) -> EditView:
        edit = job.edits[edit_id]
        task = job.tasks.get(edit_task_name(edit.edit_id), Task())
        result = edit.result
        return EditView(
            edit_id=edit.edit_id,
            kind=edit.spec.kind,
            parent_edit_id=edit.parent_edit_id,
            status=task.status,
            stage=task.stage,
            progress=task.progress,
            attempts=task.attempts,
            provider=edit.provider,
            model=edit.model,
            provider_calls=edit.provider_calls,
            duration_ms=edit.duration_ms,
            width=result.width if result else None,
            height=result.height if result else None,
            bytes=result.bytes if result else None,
            content_type=result.content_type if result else None,
            url=self._download_url(result.key) if result else None,
            text_url=self._download_url(result.text_key) if result and result.text_key else None,
            variants=self._variant_views(result.variants) if result else [],
            placeholder=result.placeholder if result else None,
            error=task.error,
            feedback=FeedbackView(
                rating=edit.feedback.rating, text=edit.feedback.text, given_at=iso(edit.feedback.given_at)
            )
            if edit.feedback
            else None,
        )
