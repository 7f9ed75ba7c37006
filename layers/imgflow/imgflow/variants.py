"""The variants task: from one original, the web-ready images of every requested preset and format,
plus a placeholder. Each result is recorded on the job as it lands.

An animation (a GIF or WebP of several frames) gets, at each preset, an animated WebP (`role`
`animation`, where a still would be; an animated AVIF too when AVIF is asked for and the animation
loops forever) and the still of its first frame in every requested format (`role` `poster`, what a
page shows before it plays or where animation is off)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial

from PIL import Image

from imgflow.errors import ImageRejectedError, TransitionRejectedError
from imgflow.imaging import (
    RenderedImage,
    animated_formats,
    load_animation,
    load_normalized,
    placeholder,
    render_animation,
    render_variant,
    resize_to_long_edge,
)
from imgflow.job_store import JobStore
from imgflow.keys import original_key, poster_key, variant_key
from imgflow.models import (
    VARIANTS_TASK,
    Job,
    JobError,
    JobStatus,
    OutputFormat,
    TaskStatus,
    Variant,
    VariantPreset,
    VariantRole,
    VariantsMessage,
)
from imgflow.settings import Settings
from imgflow.settling import remove_leftovers, settle_if_done
from imgflow.storage import ObjectChangedError, ObjectStorage

TASK = VARIANTS_TASK


def plan(job: Job, settings: Settings) -> list[tuple[VariantPreset, OutputFormat]]:
    """Which presets in which formats, largest first: the heaviest encode, the likeliest to fail, goes first."""
    wanted = job.variants_request
    presets = [p for p in settings.variant_presets if wanted.presets is None or p.name in wanted.presets]
    # The API drops repeats, but a job stored before it did, or written by other means, may hold some.
    formats = dict.fromkeys(wanted.formats or settings.default_formats)
    presets.sort(key=lambda p: p.long_edge, reverse=True)
    return [(preset, fmt) for preset in presets for fmt in formats]


def store_variant(
    storage: ObjectStorage,
    bucket: str,
    key: str,
    preset: VariantPreset,
    fmt: OutputFormat,
    rendered: RenderedImage,
    role: VariantRole = "image",
) -> Variant:
    """Write a rendered variant at `key`; the record of it a job keeps (an upload's or an edit result's)."""
    storage.write(bucket, key, rendered.data, rendered.content_type)
    return Variant(
        preset=preset.name,
        format=fmt,
        key=key,
        width=rendered.width,
        height=rendered.height,
        bytes=len(rendered.data),
        content_type=rendered.content_type,
        role=role,
    )


def quality(fmt: OutputFormat, settings: Settings) -> int:
    """The encoder quality the deployment sets for a format."""
    qualities: dict[OutputFormat, int] = {
        "webp": settings.webp_quality,
        "avif": settings.avif_quality,
        "jpeg": settings.jpeg_quality,
    }
    return qualities[fmt]


def image_threads() -> int:
    """How many threads resize and encode at once: one per CPU this process may use (Lambda gives a
    second vCPU from 1769 MB). Pillow's encoders and resizes release the GIL, so threads are enough."""
    return len(os.sched_getaffinity(0))


def render_stills(
    image: Image.Image,
    steps: Sequence[tuple[VariantPreset, OutputFormat]],
    settings: Settings,
    workers: int = 1,
    started: Callable[[], object] | None = None,
) -> Iterator[tuple[VariantPreset, OutputFormat, RenderedImage]]:
    """Every still variant of `steps` from one decoded image, yielded as each encode finishes.

    Each size is resized from the next larger one rather than from `image` (a 4096 px image is a
    third of the pixels of a 24 MP one; 1200 px from it costs a fraction of 1200 px from the full
    decode, for the same PSNR), and `workers` encodes run at once. Yielded as they finish, the smaller
    variants are stored while the largest still encodes, rather than after it. An alpha channel that
    is opaque everywhere is dropped once: it would be encoded in every variant for nothing. `started`
    runs once every encode is under way: what it waits on (a write) overlaps them instead of delaying them.
    """
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        sized = image
        pending: dict[Future[RenderedImage], tuple[VariantPreset, OutputFormat]] = {}
        # steps come largest first: the heaviest encode starts first, the resizes go on beside it.
        for preset, fmt in steps:
            resized = resize_to_long_edge(sized, preset.long_edge)
            # Pillow keeps a save's options on the image (`encoderinfo`) while it encodes and puts the old
            # ones back after: two encodes of one image object at once read each other's, or none (WebP
            # at quality 80, method 4). A step that needed no resize (a second format of one size, or a
            # size a small image already has) would encode the object already being encoded: a copy.
            sized = resized.copy() if resized is sized and pending else resized
            encode = partial(render_variant, sized, preset.long_edge, fmt, quality(fmt, settings))
            pending[pool.submit(encode)] = (preset, fmt)
        del image, sized, encode
        if started is not None:
            started()
        for future in as_completed(pending):
            preset, fmt = pending.pop(future)
            yield preset, fmt, future.result()
    finally:
        # Left early (a failed write, a failed encode): what has not started yet never will.
        pool.shutdown(cancel_futures=True)


@dataclass
class VariantsService:
    store: JobStore
    storage: ObjectStorage
    settings: Settings

    def run(self, message: VariantsMessage) -> Job | None:
        job = self.store.get(message.job_id)
        if job is None:
            self.remove_leftovers(message.job_id)
            return None
        if TASK not in job.tasks:
            return None
        if job.tasks[TASK].gave_up:
            # Failed by the sweep when its step gave up, and its message is back (redriven): it runs again.
            job = self.store.reopen(job, TASK)
        if job.tasks[TASK].status in {TaskStatus.SUCCEEDED, TaskStatus.FAILED}:
            # A redelivery after the task finished: a failure after finishing may have cut what follows short.
            return self._after_task(job)
        if job.status is not JobStatus.PROCESSING:
            return None
        if not plan(job, self.settings):
            return self.finish(job.job_id, JobError(code="internal_error", message="no variant preset matches the job"))
        # The task's start is written while the original is read and decoded (the write waits on the table,
        # the decode on the CPU: 10-20 ms less on every upload's path), and before anything else is: every
        # later write, the failures' included, waits for it first, and a start refused is raised as before.
        with ThreadPoolExecutor(max_workers=1) as writer:
            start = writer.submit(self.store.start_task, job.job_id, TASK, "decoding", 5)
            try:
                # The copy ingest froze at acceptance, whatever the message names: one queued before originals
                # were frozen names the upload key, which a reused form may have written since.
                data = self.storage.read(
                    self.settings.media_bucket,
                    original_key(job.owner, job.job_id),
                    max_bytes=self.settings.max_upload_bytes,
                )
                return self._render_all(job, data, started=start.result)
            except ImageRejectedError as rejection:
                start.result()
                return self.finish(job.job_id, JobError(code=rejection.code, message=rejection.message))
            except ObjectChangedError:
                start.result()
                return self.finish(
                    job.job_id,
                    JobError(code="upload_mismatch", message="the original changed or vanished during processing"),
                )

    def remove_leftovers(self, job_id: str) -> int:
        return remove_leftovers(self.store, self.storage, self.settings.media_bucket, job_id)

    def finish(
        self, job_id: str, error: JobError | None = None, *, gave_up: bool = False, last: Variant | None = None
    ) -> Job | None:
        """Close the task (failed when `error`; `gave_up` when its retries ran out; with its `last` variant
        recorded in the same write) and settle the job once all its tasks are done."""
        try:
            job = self.store.finish_task(job_id, TASK, error, gave_up=gave_up, variant=last)
        except TransitionRejectedError:
            current = self.store.get(job_id)
            if current is None:
                self.remove_leftovers(job_id)  # deleted while the variants were made
                return None
            if TASK not in current.tasks:
                return None
            job = current
        return self._after_task(job)

    def _after_task(self, job: Job) -> Job | None:
        """What follows a finished task: the job settles once all its tasks have finished. Safe to repeat."""
        return settle_if_done(self.store, job)

    def _render_all(self, job: Job, data: bytes, started: Callable[[], object]) -> Job | None:
        """Every variant of `data`, each recorded as it lands; `started` waits for the task's start to be
        written (it raises if the start was refused), which the first record must follow."""
        s = self.settings
        steps = plan(job, s)
        animated = job.image is not None and job.image.animated
        presets = list(dict.fromkeys(preset for preset, _ in steps)) if animated else []
        # An animation may move in two formats (see animated_formats): progress counts both.
        total = len(steps) + 2 * len(presets) + 1
        largest = max(preset.long_edge for preset, _ in steps)
        workers = image_threads()
        image = load_normalized(data, s.image_limits, max_edge=largest, workers=workers)
        started()
        record_placeholder = partial(
            self.store.progress_task, job.job_id, TASK, "placeholder", 10, placeholder=placeholder(image)
        )
        role: VariantRole = "poster" if animated else "image"
        stills = render_stills(image, steps, s, workers, started=record_placeholder)
        del image  # the stills hold what they need: the largest decode goes as soon as it is resized
        for done, (preset, fmt, rendered) in enumerate(stills, start=1):
            variant = self._store(job, preset, fmt, role, rendered)
            if done == len(steps) and not presets:
                # The last one is recorded as the task ends, in its write: one write and one version less
                # on every upload's path.
                return self.finish(job.job_id, last=variant)
            self._record(job, variant, 10 + (90 * done) // total)
        if presets:
            animation = load_animation(data, s.image_limits)
            formats = animated_formats(animation, {fmt for _, fmt in steps})
            moving = [(preset, fmt) for preset in presets for fmt in formats]
            for done, (preset, fmt) in enumerate(moving, start=len(steps) + 1):
                rendered = render_animation(animation, preset.long_edge, fmt, quality(fmt, s))
                self._record(job, self._store(job, preset, fmt, "animation", rendered), 10 + (90 * done) // total)
        return self.finish(job.job_id)

    def _store(
        self, job: Job, preset: VariantPreset, fmt: OutputFormat, role: VariantRole, rendered: RenderedImage
    ) -> Variant:
        place = poster_key if role == "poster" else variant_key
        key = place(job.owner, job.job_id, preset.name, fmt)
        return store_variant(self.storage, self.settings.media_bucket, key, preset, fmt, rendered, role)

    def _record(self, job: Job, variant: Variant, progress: int) -> None:
        """Record a stored variant on the job, with the task's progress."""
        stage = f"encoded {variant.preset}.{variant.format}" + ("" if variant.role == "image" else f" ({variant.role})")
        self.store.progress_task(job.job_id, TASK, stage, progress, variant=variant)
