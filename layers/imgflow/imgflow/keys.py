"""Where objects live in the buckets. Keys are deterministic, so a redelivered message rewrites the same objects."""

from __future__ import annotations

import posixpath

from imgflow.models import OutputFormat

UPLOAD_PREFIX = "uploads/"


def upload_key(job_id: str) -> str:
    return f"{UPLOAD_PREFIX}{job_id}/original"


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
