"""The one error hierarchy of imgflow. Errors carry a stable machine `code` and a human `message`.

Permanent errors (a bad image, an unknown job) are never retried; `TransientError` marks what a
retry through the queue may fix.
"""

from __future__ import annotations

from typing import Literal

ErrorCode = Literal[
    "unsupported_format",
    "empty_file",
    "too_large_bytes",
    "too_many_pixels",
    "too_many_frames",
    "too_complex",
    "corrupt_image",
    "upload_mismatch",
    "edit_blocked",
    "edit_failed",
    "provider_unavailable",
    "chain_too_long",
    "internal_error",
]


class ImgflowError(Exception):
    """Base class of every error imgflow raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageRejectedError(ImgflowError):
    """The bytes are not an acceptable image. Permanent: the job ends `rejected` (or the task `failed`)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code


class JobNotFoundError(ImgflowError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class TransitionRejectedError(ImgflowError):
    """A conditional update found the job in a state that does not allow the change (a duplicate or a race)."""

    def __init__(self, job_id: str, action: str) -> None:
        super().__init__(f"job {job_id}: {action} is not allowed in its current state")
        self.job_id = job_id
        self.action = action


class TransientError(ImgflowError):
    """A failure that a later attempt may not meet (throttling, a dependency briefly down).

    `retry_after` is the delay the failing side asked for (e.g. Gemini's `retryDelay` on a 429), if any.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EditError(ImgflowError):
    """An edit that cannot succeed, whatever the number of attempts. Permanent: the edit ends `failed`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code


class WebhookNotFoundError(ImgflowError):
    """The caller has no webhook of that id."""


class InvalidWebhookError(ImgflowError):
    """A webhook that cannot be registered (its URL), or a request about one that cannot be served."""


class WebhookLimitError(ImgflowError):
    """The owner has as many webhooks as one may."""


class EditNotFoundError(ImgflowError):
    """The caller's job has no edit of that id."""
