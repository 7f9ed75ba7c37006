"""What the HTTP API does: hand out presigned uploads, show jobs, wait for them to change."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from imgflow.api_models import JobView, PresignedUpload, TaskView, UploadRequest, UploadResponse, VariantView
from imgflow.errors import ImgflowError, JobNotFoundError, TransitionRejectedError
from imgflow.job_store import JobStore
from imgflow.keys import upload_key
from imgflow.lifecycle import EventPublisher, job_expired
from imgflow.models import Job, JobStatus
from imgflow.settings import Settings
from imgflow.storage import ObjectStorage

MAX_WAIT_SECONDS = 20
# An upload that starts just before its policy expires may take a while to land and be noticed.
_EXPIRY_GRACE_SECONDS = 300


class UploadTooLargeError(ImgflowError):
    pass


class InvalidUploadRequestError(ImgflowError):
    """A request that is well-formed but asks for what this deployment does not offer."""


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass
class UploadsService:
    store: JobStore
    storage: ObjectStorage
    settings: Settings
    events: EventPublisher
    sleep: Callable[[float], None] = field(default=time.sleep)
    monotonic: Callable[[], float] = field(default=time.monotonic)

    def create_upload(self, request: UploadRequest, owner: str, status_url: Callable[[str], str]) -> UploadResponse:
        s = self.settings
        if request.size > s.max_upload_bytes:
            raise UploadTooLargeError(f"the file is {request.size} bytes; the limit is {s.max_upload_bytes} bytes")
        self._check_presets(request)
        job_id = uuid.uuid4().hex
        now = self.store.now()
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
        )
        self.store.create(job)
        post = self.storage.presigned_post(
            s.uploads_bucket,
            upload_key(job_id),
            request.content_type,
            s.max_upload_bytes,
            s.upload_url_ttl_seconds,
        )
        return UploadResponse(
            job_id=job_id,
            upload=PresignedUpload(url=post.url, fields=post.fields, expires_at=iso(upload_expires_at)),
            status_url=status_url(job_id),
        )

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

    def get_job(self, job_id: str, owner: str) -> Job:
        job = self.store.get(job_id)
        # Another owner's job, or one past its retention (TTL deletes lazily), is simply not there.
        if job is None or job.owner != owner or job.expires_at < self.store.now():
            raise JobNotFoundError(job_id)
        upload_deadline = (job.upload_expires_at or 0) + _EXPIRY_GRACE_SECONDS
        if job.status is JobStatus.AWAITING_UPLOAD and job.upload_expires_at and self.store.now() > upload_deadline:
            # The scheduled sweep may not have come by yet: a reader never sees a form that can no longer work.
            return self._expire(job_id) or self.store.require(job_id)
        return job

    def expire_overdue(self) -> list[str]:
        """End every job whose upload form expired (plus a grace period) with no upload: `expired`."""
        overdue = self.store.overdue_uploads(self.store.now() - _EXPIRY_GRACE_SECONDS)
        return [job_id for job_id in overdue if self._expire(job_id) is not None]

    def _expire(self, job_id: str) -> Job | None:
        try:
            job = self.store.expire(job_id)
        except TransitionRejectedError:
            return None  # the upload arrived meanwhile
        self.events.publish(job_expired(job))
        return job

    def wait_for_job(self, job_id: str, owner: str, wait: float, since: int | None) -> Job:
        """The job once it changed past version `since` (or, without `since`, once it is terminal),
        or as it is when `wait` seconds have passed."""
        deadline = self.monotonic() + min(max(wait, 0.0), MAX_WAIT_SECONDS)
        delay = 0.1
        while True:
            job = self.get_job(job_id, owner)
            changed = job.version > since if since is not None else False
            if changed or job.status.is_terminal or self.monotonic() >= deadline:
                return job
            self.sleep(min(delay, max(deadline - self.monotonic(), 0.0)))
            delay = min(delay * 1.5, 1.0)

    def view(self, job: Job) -> JobView:
        s = self.settings
        variants = sorted(job.variants.values(), key=lambda v: (v.width * v.height, v.format))
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
            tasks={name: TaskView(**task.model_dump()) for name, task in job.tasks.items()},
            variants=[
                VariantView(
                    preset=v.preset,
                    format=v.format,
                    width=v.width,
                    height=v.height,
                    bytes=v.bytes,
                    content_type=v.content_type,
                    url=self.storage.presigned_get(s.media_bucket, v.key, s.download_url_ttl_seconds),
                )
                for v in variants
            ],
            placeholder=job.placeholder,
            error=job.error,
        )
