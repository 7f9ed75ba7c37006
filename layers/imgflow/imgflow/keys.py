"""Where objects live in the buckets. Keys are deterministic, so a redelivered message rewrites the same objects.

Every key of a job carries its owner: `uploads/{owner}/{job}/original` in the uploads bucket and
`jobs/{owner}/{job}/...` in the media bucket, where `{owner}` is `owner_segment(owner)`. A form, a task or a
deletion works under one owner's prefix and can name no other. The segment is a digest of the owner, not the
owner itself: a token's `sub` may be an e-mail address, which keys (and so presigned URLs, S3 access logs
and CloudTrail) should not carry, and may hold `/`, `..` or any length that a key segment cannot.
"""

from __future__ import annotations

import hashlib
import posixpath

from imgflow.models import OutputFormat

UPLOAD_PREFIX = "uploads/"
MEDIA_PREFIX = "jobs/"
# 128 bits of SHA-256: as unguessable as a job id, and the same length.
OWNER_SEGMENT_LENGTH = 32


def owner_segment(owner: str) -> str:
    """The key segment of an owner's objects (`python -c` it to find an owner's prefix in a bucket)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:OWNER_SEGMENT_LENGTH]


def upload_prefix(owner: str, job_id: str) -> str:
    """Every object of one job in the uploads bucket."""
    return f"{UPLOAD_PREFIX}{owner_segment(owner)}/{job_id}/"


def upload_key(owner: str, job_id: str) -> str:
    return f"{upload_prefix(owner, job_id)}original"


def job_prefix(owner: str, job_id: str) -> str:
    """Every object of one job in the media bucket: its original, variants, edits and their text."""
    return f"{MEDIA_PREFIX}{owner_segment(owner)}/{job_id}/"


def original_key(owner: str, job_id: str) -> str:
    """The accepted original, copied to the media bucket at acceptance: every later read of the job's image
    reads it here, as the upload key can be written again (a presigned form stays valid) or be gone."""
    return f"{job_prefix(owner, job_id)}original"


def variant_key(owner: str, job_id: str, preset: str, fmt: OutputFormat) -> str:
    return f"{job_prefix(owner, job_id)}variants/{preset}.{fmt}"


def edit_key(owner: str, job_id: str, edit_id: str) -> str:
    return f"{job_prefix(owner, job_id)}edits/{edit_id}.webp"


def poster_key(owner: str, job_id: str, preset: str, fmt: OutputFormat) -> str:
    """The still of an animation's first frame, beside the animation at `variant_key`."""
    return f"{job_prefix(owner, job_id)}variants/{preset}.poster.{fmt}"


def edit_variant_key(owner: str, job_id: str, edit_id: str, preset: str, fmt: OutputFormat) -> str:
    return f"{job_prefix(owner, job_id)}edits/{edit_id}/{preset}.{fmt}"


def edit_text_key(owner: str, job_id: str, edit_id: str) -> str:
    return f"{job_prefix(owner, job_id)}edits/{edit_id}.text.json"


def is_safe_upload_key(key: str) -> bool:
    """True when the key names an object under the upload prefix and nothing else (no `..`, no `//`)."""
    if "\x00" in key or "\\" in key:
        return False
    if any(segment in {"", ".", ".."} for segment in key.split("/")):
        return False
    return posixpath.normpath(key) == key and key.startswith(UPLOAD_PREFIX)
