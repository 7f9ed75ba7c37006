"""The edit task: one edit of a job's image, from the original or from the edit it builds on.

Recipes run here with Pillow. Prompts and translations go to an image editor (Gemini) with the
normalized, metadata-free image, never the raw upload; what comes back goes through the same strict
decoder as uploads. Results are stored at deterministic keys, so a redelivery rewrites the same object.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from PIL import Image

from imgflow.errors import EditError, ImageRejectedError, TransitionRejectedError
from imgflow.imaging import load_normalized, placeholder, resize_to_long_edge
from imgflow.job_store import EDIT_RUNNABLE, JobStore
from imgflow.keys import edit_key, edit_text_key, edit_variant_key, original_key
from imgflow.models import (
    Edit,
    EditMessage,
    EditResult,
    Job,
    JobError,
    TaskStatus,
    Variant,
    edit_task_name,
)
from imgflow.operations import apply_recipe
from imgflow.queues import TaskQueue
from imgflow.recipes import Recipe
from imgflow.settings import Settings
from imgflow.settling import OPEN_TASK_STATUSES, remove_leftovers, settle_if_done
from imgflow.storage import ObjectChangedError, ObjectStorage
from imgflow.variants import image_threads, plan, render_stills, store_variant


class ProviderImage(Protocol):
    @property
    def data(self) -> bytes: ...

    @property
    def model(self) -> str: ...

    @property
    def calls(self) -> int: ...


class TextPairLike(Protocol):
    @property
    def source(self) -> str: ...

    @property
    def translated(self) -> str: ...


class ImageEditor(Protocol):
    """What the edit task needs of an AI image editor (GeminiEditor; fakes in tests)."""

    provider: str

    def edit(self, image: bytes, mime_type: str, instruction: str) -> ProviderImage: ...

    def translate(
        self, image: bytes, mime_type: str, target_language: str, source_language: str | None = None
    ) -> tuple[ProviderImage, Sequence[TextPairLike]]: ...

    def enhance_prompt(self, prompt: str) -> str: ...


_MAX_EDIT_BYTES = 256 * 1024 * 1024
# Results are stored as WebP, which holds at most 16383 pixels a side; an upload (MaxSide) may be wider.
_WEBP_MAX_SIDE = 16383


@dataclass(frozen=True)
class EditOutput:
    image: Image.Image
    provider: str | None = None
    model: str | None = None
    calls: int = 0
    text_pairs: list[dict[str, str]] | None = None


@dataclass
class EditService:
    store: JobStore
    storage: ObjectStorage
    edit_queue: TaskQueue
    settings: Settings
    # Built only when a prompt or a translation needs it: recipes work with no provider configured.
    editor: Callable[[], ImageEditor]

    def remove_leftovers(self, job_id: str) -> int:
        return remove_leftovers(self.store, self.storage, self.settings.media_bucket, job_id)

    def run(self, message: EditMessage) -> Job | None:
        job = self.store.get(message.job_id)
        task_name = edit_task_name(message.edit_id)
        if job is None:
            self.remove_leftovers(message.job_id)
            return None
        if message.edit_id not in job.edits or task_name not in job.tasks:
            return None
        edit = job.edits[message.edit_id]
        if job.tasks[task_name].gave_up:
            # Failed by the sweep when its step gave up, and its message is back (redriven): it runs again.
            job = self.store.reopen(job, task_name)
        if job.tasks[task_name].status not in OPEN_TASK_STATUSES:
            return self._after(job, edit.edit_id)  # a redelivery: what follows the edit may have been cut short
        if job.status not in EDIT_RUNNABLE:
            return None
        if edit.parent_edit_id is not None:
            parent = job.tasks[edit_task_name(edit.parent_edit_id)]
            if parent.status is not TaskStatus.SUCCEEDED:
                return None  # the parent fans its children out when it succeeds, and fails them when it fails
        self.store.start_task(job.job_id, task_name, "loading", 5, allowed=EDIT_RUNNABLE)
        started = time.monotonic()
        try:
            source = self._source_image(job, edit)
            self.store.progress_task(job.job_id, task_name, _stage(edit), 20, allowed=EDIT_RUNNABLE)
            output = self._apply(edit, source)
            result = self._store(job, edit, output)
        except EditError as failure:
            return self.finish(job.job_id, edit.edit_id, JobError(code=failure.code, message=failure.message))
        except ImageRejectedError as rejection:
            return self.finish(
                job.job_id,
                edit.edit_id,
                JobError(code="edit_failed", message=f"the image could not be edited: {rejection.message}"),
            )
        except ObjectChangedError:
            return self.finish(
                job.job_id, edit.edit_id, JobError(code="edit_failed", message="the image to edit changed or vanished")
            )
        base = f"edits.{edit.edit_id}"
        return self.finish(
            job.job_id,
            edit.edit_id,
            extra={
                f"{base}.result": result,
                f"{base}.provider": output.provider,
                f"{base}.model": output.model,
                f"{base}.provider_calls": output.calls,
                f"{base}.duration_ms": int((time.monotonic() - started) * 1000),
            },
        )

    def postpone(self, message: EditMessage, attempt: int, delay: int, reason: str) -> None:
        """Say on the job that the edit waits for a retry, and why."""
        try:
            self.store.progress_task(
                message.job_id,
                edit_task_name(message.edit_id),
                f"retrying in {delay} s after attempt {attempt}: {reason[:200]}",
                10,
                allowed=EDIT_RUNNABLE,
            )
        except TransitionRejectedError:
            return

    def finish(
        self,
        job_id: str,
        edit_id: str,
        error: JobError | None = None,
        extra: dict[str, object] | None = None,
        *,
        gave_up: bool = False,
    ) -> Job | None:
        """Close the edit's task (failed when `error`; `gave_up` when its retries ran out), then fan out or
        fail its children, and settle."""
        try:
            job = self.store.finish_task(
                job_id,
                edit_task_name(edit_id),
                error,
                extra={k: v for k, v in (extra or {}).items() if v is not None},
                allowed=EDIT_RUNNABLE,
                gave_up=gave_up,
            )
        except TransitionRejectedError:
            # Finished already (a redelivery): carry on with what follows; otherwise the job cannot take it.
            current = self.store.get(job_id)
            if current is None:
                self.remove_leftovers(job_id)  # deleted while the edit ran: its result has no job to go to
                return None
            task = current.tasks.get(edit_task_name(edit_id))
            if task is None or task.status in OPEN_TASK_STATUSES:
                return None
            job = current
        return self._after(job, edit_id)

    def _after(self, job: Job, edit_id: str) -> Job:
        """What follows a finished edit (its children queued or failed, the job settled); safe to repeat."""
        succeeded = job.tasks[edit_task_name(edit_id)].status is TaskStatus.SUCCEEDED
        failed_children = False
        for child in list(job.edits.values()):
            if child.parent_edit_id != edit_id:
                continue
            if succeeded and job.tasks[edit_task_name(child.edit_id)].gave_up:
                # Never run: the sweep failed it with the edit it waited for, which now succeeded (redriven).
                job = self.store.reopen(job, edit_task_name(child.edit_id))
            if job.tasks[edit_task_name(child.edit_id)].status is not TaskStatus.PENDING:
                continue
            if succeeded:
                self.edit_queue.send(EditMessage(job_id=job.job_id, edit_id=child.edit_id))
            else:
                self.finish(
                    job.job_id,
                    child.edit_id,
                    JobError(code="edit_failed", message=f"the edit it builds on ({edit_id}) failed"),
                )
                failed_children = True
        # Only a cascade changed the job since `job` was read; otherwise settle from what is in hand.
        current = self.store.require(job.job_id) if failed_children else job
        return settle_if_done(self.store, current)

    # --- the work ----------------------------------------------------------------------------------

    def _source_image(self, job: Job, edit: Edit) -> Image.Image:
        if edit.parent_edit_id is not None:
            parent = job.edits[edit.parent_edit_id]
            if parent.result is None:
                raise EditError("edit_failed", f"the edit it builds on ({edit.parent_edit_id}) has no result")
            # Our own lossless output: it may be larger than an upload may be; its pixels are bounded as usual.
            data = self.storage.read(self.settings.media_bucket, parent.result.key, max_bytes=_MAX_EDIT_BYTES)
            limits = replace(self.settings.image_limits, max_bytes=_MAX_EDIT_BYTES)
        else:
            if job.image is None:
                raise EditError("edit_failed", "the job has no accepted image to edit")
            # The copy ingest froze at acceptance: the upload key may be gone, or hold what a reused form wrote.
            data = self.storage.read(
                self.settings.media_bucket,
                original_key(job.owner, job.job_id),
                max_bytes=self.settings.max_upload_bytes,
            )
            limits = self.settings.image_limits
        # Recipes work on the image at the size the job view shows, so their coordinates mean what the
        # client sees; the provider gets a bounded copy.
        max_edge = None if edit.spec.kind == "recipe" else self.settings.provider_max_edge
        return load_normalized(data, limits, max_edge=max_edge, workers=image_threads())

    def _apply(self, edit: Edit, image: Image.Image) -> EditOutput:
        spec = edit.spec
        if spec.kind == "recipe":
            return EditOutput(image=apply_recipe(image, Recipe(operations=spec.operations or [])))
        editor = self.editor()
        png = _png(resize_to_long_edge(image, self.settings.provider_max_edge))
        if spec.kind == "translate":
            if spec.translate_to is None:
                raise EditError("edit_failed", "a translation needs translate_to")
            answer, pairs = editor.translate(png, "image/png", spec.translate_to, spec.source_language)
            text_pairs = [{"source": pair.source, "translated": pair.translated} for pair in pairs]
            return EditOutput(self._decode(answer.data), editor.provider, answer.model, answer.calls, text_pairs)
        if spec.prompt is None:
            raise EditError("edit_failed", "a prompt edit needs a prompt")
        instruction, calls = spec.prompt, 0
        if spec.enhance_prompt:
            instruction, calls = editor.enhance_prompt(spec.prompt), 1
        answer = editor.edit(png, "image/png", instruction)
        return EditOutput(self._decode(answer.data), editor.provider, answer.model, answer.calls + calls)

    def _decode(self, data: bytes) -> Image.Image:
        """The provider's answer, through the same strict decoder and bounds as an upload.

        Decoded once: load_normalized checks every bound inspect_image does and decodes the first frame
        fully (strictly), which is all of an answer that is used.
        """
        try:
            return load_normalized(data, self.settings.image_limits)
        except ImageRejectedError as rejection:
            raise EditError("edit_failed", f"the provider returned an unusable image ({rejection.code})") from rejection

    def _store(self, job: Job, edit: Edit, output: EditOutput) -> EditResult:
        if max(output.image.size) > _WEBP_MAX_SIDE:
            raise EditError(
                "edit_failed",
                f"the result is {output.image.width}x{output.image.height} pixels; "
                f"an edit's result can have at most {_WEBP_MAX_SIDE} pixels a side",
            )
        buffer = io.BytesIO()
        # Lossless: an edit is an image to build on (chains) and to compare exactly (recipes).
        output.image.save(
            # exact: keep the colour under fully transparent pixels, which later steps (contrast) may see.
            buffer,
            format="WEBP",
            lossless=True,
            exact=True,
            quality=50,
            method=2,
            exif=b"",
            xmp=b"",
            icc_profile=b"",
        )
        data = buffer.getvalue()
        key = edit_key(job.owner, job.job_id, edit.edit_id)
        self.storage.write(self.settings.media_bucket, key, data, "image/webp")
        text_key = None
        if output.text_pairs is not None:
            text_key = edit_text_key(job.owner, job.job_id, edit.edit_id)
            body = json.dumps({"pairs": output.text_pairs}, ensure_ascii=False, indent=2).encode()
            self.storage.write(self.settings.media_bucket, text_key, body, "application/json")
        return EditResult(
            key=key,
            width=output.image.width,
            height=output.image.height,
            bytes=len(data),
            content_type="image/webp",
            text_key=text_key,
            variants=self._variants(job, edit, output.image),
            placeholder=placeholder(output.image),
        )

    def _variants(self, job: Job, edit: Edit, image: Image.Image) -> list[Variant]:
        """The result's web variants: the presets and formats the job asked for its upload."""
        variants = []
        stills = render_stills(image, plan(job, self.settings), self.settings, image_threads())
        for preset, fmt, rendered in stills:
            key = edit_variant_key(job.owner, job.job_id, edit.edit_id, preset.name, fmt)
            variants.append(store_variant(self.storage, self.settings.media_bucket, key, preset, fmt, rendered))
        return variants


def _stage(edit: Edit) -> str:
    return {"recipe": "applying recipe", "prompt": "editing with AI", "translate": "translating"}[edit.spec.kind]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
