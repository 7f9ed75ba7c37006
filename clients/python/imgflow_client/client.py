"""The HTTP API as a web app uses it: ask for an upload, POST the file to S3 with the presigned form,
long-poll the job (`GET /jobs/{id}?wait=20&since=<version>`) until it and its edits have ended."""

from __future__ import annotations

import mimetypes
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import requests

from imgflow_client.errors import ApiError, UploadRefusedError
from imgflow_client.views import EditAccepted, JobList, JobView, UploadCreated

TERMINAL = frozenset({"succeeded", "failed", "rejected", "expired"})
EDIT_DONE = frozenset({"succeeded", "failed"})
# The API answers a long poll after at most this many seconds (API Gateway cuts requests at 30).
LONG_POLL_SECONDS = 20
ProgressCallback = Callable[[JobView], None]

# The declared type only labels the stored object (the pipeline decides by the bytes), but it must be
# image/* or application/octet-stream: a .txt declared text/plain would be refused before any upload.
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def declared_type(head: bytes, filename: str) -> str:
    """The content type to declare for a file that starts with `head`: sniffed, else the name's image type,
    else `application/octet-stream` (the pipeline then rejects what is not an image: `unsupported_format`)."""
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    guessed = mimetypes.guess_type(filename)[0] or ""
    return guessed if re.fullmatch(r"image/[a-z0-9.+-]+", guessed) else "application/octet-stream"


class Client:
    """`Client(api_url, token)`; every method but `download` speaks for the token's owner."""

    def __init__(
        self, api_url: str, token: str | None = None, *, session: requests.Session | None = None, timeout: float = 30
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.http = session or requests.Session()
        self.timeout = timeout
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}

    # --- uploads -----------------------------------------------------------------------------------

    def upload(
        self,
        file: str | os.PathLike[str] | bytes,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        edits: list[dict[str, Any]] | None = None,
        formats: list[str] | None = None,
        presets: list[str] | None = None,
        metadata: dict[str, str] | None = None,
        wait: bool = True,
        on_progress: ProgressCallback | None = None,
        timeout: float = 900,
    ) -> JobView:
        """Upload a file (a path or its bytes) and, with `wait`, long-poll the job until it has ended."""
        if isinstance(file, bytes):
            data, name = file, filename or "upload"
        else:
            data, name = Path(file).read_bytes(), filename or Path(file).name
        created = self.create_upload(
            name,
            len(data),
            content_type=content_type or declared_type(data[:16], name),
            edits=edits,
            formats=formats,
            presets=presets,
            metadata=metadata,
        )
        form = created["upload"]
        # The form's fields first, the file last: S3 ignores every field after the file.
        posted = self.http.post(
            form["url"], data=form["fields"], files={"file": (name, data)}, timeout=self.timeout * 2
        )
        if posted.status_code >= 300:
            raise UploadRefusedError.from_s3(posted.status_code, posted.text, created["job_id"])
        if not wait:
            return self.job(created["job_id"])
        return self.wait(created["job_id"], on_progress=on_progress, timeout=timeout)

    def create_upload(
        self,
        filename: str,
        size: int,
        *,
        content_type: str = "application/octet-stream",
        edits: list[dict[str, Any]] | None = None,
        formats: list[str] | None = None,
        presets: list[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> UploadCreated:
        """`POST /uploads` only: a job and its presigned form, for a backend that hands the form to a browser."""
        body: dict[str, Any] = {"filename": filename, "content_type": content_type, "size": size}
        if formats or presets:
            body["variants"] = {key: value for key, value in (("formats", formats), ("presets", presets)) if value}
        if edits:
            body["edits"] = edits
        if metadata:
            body["metadata"] = metadata
        created: UploadCreated = self._json("POST", "/uploads", json=body)
        return created

    # --- jobs --------------------------------------------------------------------------------------

    def job(self, job_id: str, *, wait: float = 0, since: int | None = None) -> JobView:
        """The job view; with `wait`, answered as soon as its version passes `since` (or it ends), or after
        `wait` seconds (at most 20)."""
        params: dict[str, Any] = {}
        if wait:
            params["wait"] = min(wait, LONG_POLL_SECONDS)
        if since is not None:
            params["since"] = since
        timeout = self.timeout + params.get("wait", 0)
        view: JobView = self._json("GET", f"/jobs/{job_id}", params=params, timeout=timeout)
        return view

    def wait(
        self,
        job_id: str,
        *,
        edit_id: str | None = None,
        on_progress: ProgressCallback | None = None,
        timeout: float = 900,
    ) -> JobView:
        """Long-poll until the job has ended and every edit on it (or just `edit_id`) has finished."""
        deadline = time.monotonic() + timeout
        view = self.job(job_id)
        if on_progress:
            on_progress(view)
        idle = 0.0
        while not _finished(view, edit_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} was still {view['status']} after {timeout:.0f} s")
            following = self.job(job_id, wait=max(1, min(LONG_POLL_SECONDS, remaining)), since=view["version"])
            if following["version"] == view["version"]:
                # Nothing changed within the wait (or the server answered early): poll again, backing off.
                idle = min(idle * 2 or 0.25, 4)
                time.sleep(idle)
                continue
            idle, view = 0.0, following
            if on_progress:
                on_progress(view)
        return view

    def jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[JobView]:
        """The owner's jobs, newest first, following `next_cursor` page after page."""
        params: dict[str, Any] = {"limit": page_size}
        if status:
            params["status"] = status
        while True:
            page: JobList = self._json("GET", "/jobs", params=params)
            yield from page["jobs"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def delete(self, job_id: str) -> None:
        """Remove the job, its original and every result (`204`); a later call is a 404 `ApiError`."""
        self._request("DELETE", f"/jobs/{job_id}")

    @overload
    def edit(
        self,
        job_id: str,
        *,
        prompt: str | None = None,
        translate_to: str | None = None,
        operations: list[dict[str, Any]] | None = None,
        parent_edit_id: str | None = None,
        enhance_prompt: bool = False,
        source_language: str | None = None,
        wait: Literal[False] = False,
        on_progress: ProgressCallback | None = None,
        timeout: float = 900,
    ) -> EditAccepted: ...

    @overload
    def edit(
        self,
        job_id: str,
        *,
        prompt: str | None = None,
        translate_to: str | None = None,
        operations: list[dict[str, Any]] | None = None,
        parent_edit_id: str | None = None,
        enhance_prompt: bool = False,
        source_language: str | None = None,
        wait: Literal[True],
        on_progress: ProgressCallback | None = None,
        timeout: float = 900,
    ) -> JobView: ...

    def edit(
        self,
        job_id: str,
        *,
        prompt: str | None = None,
        translate_to: str | None = None,
        operations: list[dict[str, Any]] | None = None,
        parent_edit_id: str | None = None,
        enhance_prompt: bool = False,
        source_language: str | None = None,
        wait: bool = False,
        on_progress: ProgressCallback | None = None,
        timeout: float = 900,
    ) -> EditAccepted | JobView:
        """Ask for one edit of the job's image (exactly one of prompt, translate_to, operations). Returns
        `{edit_id, status_url}`, or with `wait` the job view once that edit has finished."""
        fields = {
            "prompt": prompt,
            "translate_to": translate_to,
            "operations": operations,
            "parent_edit_id": parent_edit_id,
            "source_language": source_language,
            "enhance_prompt": enhance_prompt or None,
        }
        body = {name: value for name, value in fields.items() if value is not None}
        accepted: EditAccepted = self._json("POST", f"/jobs/{job_id}/edits", json=body)
        if not wait:
            return accepted
        return self.wait(job_id, edit_id=accepted["edit_id"], on_progress=on_progress, timeout=timeout)

    def download(self, url: str) -> bytes:
        """A result's bytes. Its URL is presigned (no token) and expires: download soon after reading it."""
        response = self.http.get(url, timeout=self.timeout * 2)
        response.raise_for_status()
        return response.content

    # --- HTTP --------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        response = self.http.request(
            method, f"{self.api_url}{path}", headers=self._auth, timeout=timeout or self.timeout, **kwargs
        )
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()


def _finished(view: JobView, edit_id: str | None) -> bool:
    edits = view.get("edits", [])
    if edit_id is not None:
        return any(edit["edit_id"] == edit_id and edit["status"] in EDIT_DONE for edit in edits)
    if view["status"] in {"rejected", "expired"}:
        return True  # no image: no edit will ever run
    return view["status"] in TERMINAL and all(edit["status"] in EDIT_DONE for edit in edits)
