"""Where objects live in the buckets. Keys are deterministic, so a redelivered message rewrites the same objects."""

from __future__ import annotations

import posixpath

from imgflow.models import OutputFormat

UPLOAD_PREFIX = "uploads/"


def upload_key(job_id: str) -> str:
    return f"{UPLOAD_PREFIX}{job_id}/original"


def upload_prefix(job_id: str) -> str:
    """Every object of one job in the uploads bucket."""
    return f"{UPLOAD_PREFIX}{job_id}/"


def job_prefix(job_id: str) -> str:
    """Every object of one job in the media bucket: variants, edits, their text."""
    return f"jobs/{job_id}/"


def original_key(job_id: str) -> str:
    """The accepted original, copied to the media bucket at acceptance: every later read of the job's image
    reads it here, as the upload key can be written again (a presigned form stays valid) or be gone."""
    return f"jobs/{job_id}/original"


def variant_key(job_id: str, preset: str, fmt: OutputFormat) -> str:
    return f"jobs/{job_id}/variants/{preset}.{fmt}"


def edit_key(job_id: str, edit_id: str) -> str:
    return f"jobs/{job_id}/edits/{edit_id}.webp"


def edit_text_key(job_id: str, edit_id: str) -> str:
    return f"jobs/{job_id}/edits/{edit_id}.text.json"


def is_safe_upload_key(key: str) -> bool:
    """True when the key names an object under the upload prefix and nothing else (no `..`, no `//`)."""
    if "\x00" in key or "\\" in key:
        return False
    if any(segment in {"", ".", ".."} for segment in key.split("/")):
        return False
    return posixpath.normpath(key) == key and key.startswith(UPLOAD_PREFIX)
