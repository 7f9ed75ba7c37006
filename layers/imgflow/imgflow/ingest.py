"""Ingest: turn one uploaded object into a job that is either rejected (with a reason) or processing.

Called once per S3 record. Redelivered notifications are filtered before this (idempotency on the
object's identity); what remains here is ordering (sequencers), safety of keys and validation by bytes.

Acceptance freezes the image: the validated object is copied to the media bucket (`original_key`), and
everything after reads that copy. An API upload's key is then released (deleted): its presigned form stays
valid for minutes and can write the key again, and such a later write is removed and never changes the job.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from imgflow.errors import ErrorCode, ImageRejectedError, TransientError, TransitionRejectedError
from imgflow.imaging import inspect_image, sniff_format
from imgflow.job_store import JobStore
from imgflow.keys import UPLOAD_PREFIX, is_safe_upload_key, original_key, owner_segment, upload_key
from imgflow.models import (
    VARIANTS_TASK,
    EditMessage,
    ImageInfo,
    Job,
    JobError,
    JobStatus,
    SourceObject,
    Task,
    TaskStatus,
    VariantsMessage,
    edit_task_name,
)
from imgflow.queues import TaskQueue
from imgflow.settings import Settings
from imgflow.storage import ObjectChangedError, ObjectStorage

_API_UPLOAD_KEY = re.compile(r"^uploads/(?P<owner_segment>[0-9a-f]{32})/(?P<job_id>[0-9a-f]{32})/original$")
# Direct drops get a job id derived from the object's identity, so a redelivery finds the same job.
_DROP_NAMESPACE = uuid.UUID("6f1d9a4e-3c1b-4d8e-9a53-0c2f6f4b7e21")


class IngestOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IGNORED_PREFIX = "ignored_prefix"
    UNSAFE_KEY = "unsafe_key"
    STALE = "stale"
    ALREADY_STARTED = "already_started"
    OVERWRITE_REMOVED = "overwrite_removed"
    DELETED_JOB = "deleted_job"


@dataclass(frozen=True)
class IngestResult:
    outcome: IngestOutcome
    job_id: str | None = None
    # What an operator should hear of although the outcome is fine (an abuse, a leftover): logged as a warning.
    warning: str | None = None
    # Why a job was rejected (its error code), for the outcome-by-code metrics.
    code: str | None = None


def drop_job_id(source: SourceObject) -> str:
    identity = f"{source.bucket}\n{source.key}\n{source.sequencer or source.version_id or source.etag or ''}"
    return uuid.uuid5(_DROP_NAMESPACE, identity).hex


def job_id_of(source: SourceObject) -> str:
    """The job an uploaded object is for: an API upload's, named in its key, else the drop's own."""
    match = _API_UPLOAD_KEY.match(source.key)
    return match["job_id"] if match else drop_job_id(source)


def _same_write(accepted: SourceObject, event: SourceObject) -> bool:
    """Whether an event names the very object a job accepted (not a later overwrite of its key)."""
    return (accepted.sequencer, accepted.etag, accepted.version_id) == (event.sequencer, event.etag, event.version_id)


@dataclass
class IngestService:
    store: JobStore
    storage: ObjectStorage
    variants_queue: TaskQueue
    edit_queue: TaskQueue
    settings: Settings

    def ingest(self, source: SourceObject) -> IngestResult:
        if not source.key.startswith(UPLOAD_PREFIX):
            return IngestResult(IngestOutcome.IGNORED_PREFIX)
        if not is_safe_upload_key(source.key):
            return IngestResult(IngestOutcome.UNSAFE_KEY)
        existing = self._find_job(source)
        if existing is None and (deleted := self._deleted_job_of(source)):
            return self._remove_upload_of_deleted_job(deleted, source)
        job_id = existing.job_id if existing else drop_job_id(source)
        # Claim before creating anything: a stale event must leave no job behind.
        if source.sequencer and not self.store.claim_object(source.bucket, source.key, source.sequencer, job_id):
            return IngestResult(IngestOutcome.STALE, job_id)
        job = existing or self._create_drop_job(job_id, source)
        if job.gave_up and job.image is None:
            # Validation gave up (its last attempt or the sweep failed the job); its notification is back.
            job = self.store.reopen(job)
        if job.image is not None:
            return self._after_acceptance(job, source)
        if job.status not in {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}:
            return IngestResult(IngestOutcome.ALREADY_STARTED, job.job_id)
        try:
            job = self.store.start_validation(job.job_id, source)
        except TransitionRejectedError:
            return IngestResult(IngestOutcome.ALREADY_STARTED, job.job_id)
        return self._validate(job, source)

    def give_up(self, source: SourceObject, reason: str) -> str | None:
        """End the job of `source` as failed after its last attempt, so that no job stays unfinished."""
        job = self._find_job(source)
        if job is None or job.status.is_terminal:
            return None
        if job.image is not None and (job.source is None or not _same_write(job.source, source)):
            # A later write to an accepted job's key: failing to remove it is no failure of the job.
            return None
        try:
            self.store.fail(job.job_id, JobError(code="internal_error", message=reason), gave_up=True)
        except TransitionRejectedError:
            return None
        return job.job_id

    def _validate(self, job: Job, source: SourceObject) -> IngestResult:
        try:
            self._check_declared(job, source)
            data = self.storage.read(
                source.bucket, source.key, max_bytes=self.settings.max_upload_bytes, etag=source.etag
            )
            image = self._inspect_while_freezing(job, source, data)
        except ObjectChangedError as change:
            if not change.deleted and job.job_id != drop_job_id(source):
                # An API job's key was written again: the newer write's event carries this same job on.
                return IngestResult(IngestOutcome.STALE, job.job_id)
            # A drop job belongs to one write (the newer one has its own job), and a deleted object has no
            # future event: either way this job ends here.
            what = "deleted" if change.deleted else "overwritten by a newer upload, which has its own job"
            return self._reject(job, "upload_mismatch", f"the object was {what} before it could be validated")
        except ImageRejectedError as rejection:
            return self._reject(job, rejection.code, rejection.message)
        accepted = self.store.accept(job.job_id, image, {VARIANTS_TASK: Task()})
        # The upload is released after the fan-out, not before: nothing waits on its removal.
        self._fan_out(accepted)
        return IngestResult(IngestOutcome.ACCEPTED, job.job_id, self._release_upload(accepted, source))

    def _inspect_while_freezing(self, job: Job, source: SourceObject, data: bytes) -> ImageInfo:
        """Validate `data` while the object it was read from is frozen in the media bucket: exactly that
        object (S3 checks its eTag in the copy; a redelivery copies the same bytes again).

        The copy waits on S3 and the validation on the CPU, so they run side by side: the copy's round
        trip (10-20 ms on the local emulator, tens of ms on S3 for a photo's megabytes) comes off every
        upload's path. What the validation refuses is removed again (two requests more, on a rejection
        only); it is refused as before, its rejection first, and a change to the object fails the copy.
        """
        fmt = sniff_format(data)
        if fmt is None:
            return inspect_image(data, self.settings.image_limits)  # refused before anything is copied
        bucket, frozen_key = self.settings.media_bucket, original_key(job.owner, job.job_id)
        with ThreadPoolExecutor(max_workers=1) as copier:
            frozen = copier.submit(
                self.storage.copy,
                source.bucket,
                source.key,
                bucket,
                frozen_key,
                etag=source.etag,
                version_id=source.version_id,
                content_type=f"image/{fmt.lower()}",
            )
            try:
                image = inspect_image(data, self.settings.image_limits)
            except ImageRejectedError:
                if frozen.exception() is None:
                    self.storage.delete(bucket, frozen_key, etag=None, version_id=None)
                raise
            frozen.result()
        return image

    def _after_acceptance(self, job: Job, source: SourceObject) -> IngestResult:
        """An event for the key of a job that has accepted its image: the accepted write again, or a later one."""
        if job.source is not None and _same_write(job.source, source):
            outcome = IngestOutcome.ALREADY_STARTED
            if job.status is JobStatus.PROCESSING:
                # A retry after a failure between accepting and fanning out: fan out again (variants are
                # idempotent).
                outcome = IngestOutcome.ACCEPTED
                self._fan_out(job)
            # The upload may be gone already: the frozen copy was made before the job was accepted.
            return IngestResult(outcome, job.job_id, self._release_upload(job, source))
        # Only an API job's key can get here (a drop's later write is a drop of its own): its form was used
        # again. S3 never sends a notification for the object it replaced, so this is the one chance to
        # remove what was written; a TransientError retries it through the queue, and never fails the job.
        removed = self.storage.delete(source.bucket, source.key, etag=source.etag, version_id=source.version_id)
        what = "removed" if removed else "already gone or written again (that write's own event removes it)"
        return IngestResult(
            IngestOutcome.OVERWRITE_REMOVED,
            job.job_id,
            f"a write to the upload key of an accepted job, which keeps the image it accepted: {what}",
        )

    def _release_upload(self, job: Job, source: SourceObject) -> str | None:
        """Delete an accepted API upload (never a later write to its key); a warning when it could not be.

        A drop's object is left where its owner put it: its key is not the job's, a later write to it is a
        drop of its own, and a new object with the same bytes could not be told from it by its eTag.
        """
        if source.key != upload_key(job.owner, job.job_id):
            return None
        try:
            self.storage.delete(source.bucket, source.key, etag=source.etag, version_id=source.version_id)
        except TransientError as error:
            # Nothing reads the upload after acceptance and the bucket's lifecycle expires it: not worth
            # a retry that could end the job failed.
            return f"the accepted upload was left in the uploads bucket: {error.message}"
        return None

    def _reject(self, job: Job, code: ErrorCode, message: str) -> IngestResult:
        self.store.reject(job.job_id, JobError(code=code, message=message))
        return IngestResult(IngestOutcome.REJECTED, job.job_id, code=code)

    def _check_declared(self, job: Job, source: SourceObject) -> None:
        """Reject what the notification already tells us is wrong, without downloading anything."""
        if source.size == 0:
            raise ImageRejectedError("empty_file", "the uploaded file is empty")
        if source.size > self.settings.max_upload_bytes:
            raise ImageRejectedError(
                "too_large_bytes",
                f"the file is {source.size} bytes; the limit is {self.settings.max_upload_bytes} bytes",
            )
        if job.declared_size is not None and job.declared_size != source.size:
            raise ImageRejectedError(
                "upload_mismatch",
                f"the upload was announced as {job.declared_size} bytes but {source.size} bytes arrived",
            )

    def _fan_out(self, job: Job) -> None:
        if job.source is None:
            raise ValueError(f"job {job.job_id} has no source object to fan out")
        self.variants_queue.send(
            VariantsMessage(
                job_id=job.job_id, bucket=self.settings.media_bucket, key=original_key(job.owner, job.job_id)
            )
        )
        # Edits on the original start now; edits on edits start when their parent succeeds.
        for edit in job.edits.values():
            if edit.parent_edit_id is None and job.tasks[edit_task_name(edit.edit_id)].status is TaskStatus.PENDING:
                self.edit_queue.send(EditMessage(job_id=job.job_id, edit_id=edit.edit_id))

    def _find_job(self, source: SourceObject) -> Job | None:
        match = _API_UPLOAD_KEY.match(source.key)
        if match:
            job = self.store.get(match["job_id"])
            # Only under its owner's prefix: a job id under another prefix is no upload of that job (it can
            # only be a drop, as every form pins its owner's key).
            if job is not None and owner_segment(job.owner) == match["owner_segment"]:
                return job
        return self.store.get(drop_job_id(source))

    def _deleted_job_of(self, source: SourceObject) -> str | None:
        """The id of a deleted job whose presigned form made this upload, if that is what it is."""
        match = _API_UPLOAD_KEY.match(source.key)
        if match is None or (owner := self.store.deleted_owner(match["job_id"])) is None:
            return None
        return match["job_id"] if owner_segment(owner) == match["owner_segment"] else None

    def _remove_upload_of_deleted_job(self, job_id: str, source: SourceObject) -> IngestResult:
        # The owner deleted the job: its form must not bring the upload back as a drop of someone else's.
        self.storage.delete(source.bucket, source.key, etag=source.etag, version_id=source.version_id)
        return IngestResult(IngestOutcome.DELETED_JOB, job_id, "an upload through the form of a deleted job: removed")

    def _create_drop_job(self, job_id: str, source: SourceObject) -> Job:
        """A job for an object that another system dropped into the bucket without asking the API."""
        now = self.store.now()
        job = Job(
            job_id=job_id,
            owner=self.settings.direct_drop_owner,
            status=JobStatus.AWAITING_UPLOAD,
            created_at=now,
            updated_at=now,
            expires_at=now + self.settings.job_retention_days * 86400,
            filename=source.key.rsplit("/", 1)[-1],
        )
        self.store.create(job)
        return self.store.require(job_id)
