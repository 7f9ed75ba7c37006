"""A client of the HTTP API, as a web app uses it: ask for an upload, POST the file to S3 with the
presigned form, poll the job until it ends, download the variants and edits."""

from __future__ import annotations

import json
import mimetypes
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

TERMINAL = {"succeeded", "failed", "rejected", "expired"}
View = dict[str, Any]


class UploadRefusedError(Exception):
    """The API or S3 refused a file before any job could start; `error` is `{code, message}`."""

    def __init__(self, error: dict[str, str]) -> None:
        super().__init__(f"{error['code']}: {error['message']}")
        self.error = error


class ApiClient:
    def __init__(self, api_url: str, token: str | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.http = requests.Session()
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}

    def create_upload(
        self, path: Path, formats: list[str] | None = None, edits: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body: dict[str, Any] = {"filename": path.name, "content_type": content_type, "size": path.stat().st_size}
        if formats:
            body["variants"] = {"formats": formats}
        if edits:
            body["edits"] = edits
        response = self.http.post(f"{self.api_url}/uploads", json=body, headers=self._auth, timeout=30)
        if response.status_code in {400, 413}:
            raise UploadRefusedError(response.json()["error"])
        response.raise_for_status()
        created: dict[str, Any] = response.json()
        return created

    def upload(self, upload: dict[str, Any], path: Path) -> requests.Response:
        with path.open("rb") as file:
            return self.http.post(upload["url"], data=upload["fields"], files={"file": (path.name, file)}, timeout=60)

    def job(self, job_id: str, wait: int = 0, since: int | None = None) -> View:
        params: dict[str, int] = {"wait": wait} if wait else {}
        if since is not None:
            params["since"] = since
        response = self.http.get(f"{self.api_url}/jobs/{job_id}", params=params, headers=self._auth, timeout=wait + 30)
        response.raise_for_status()
        view: View = response.json()
        return view

    def wait_until_done(
        self, job_id: str, on_change: Callable[[View], None] | None = None, timeout: float = 900
    ) -> View:
        deadline = time.monotonic() + timeout
        view = self.job(job_id)
        while view["status"] not in TERMINAL and time.monotonic() < deadline:
            view = self.job(job_id, wait=20, since=view["version"])
            if on_change:
                on_change(view)
        return view


def result_folders(files: list[Path], out: Path) -> dict[Path, Path]:
    """`out/<stem>` for each file, or `out/<name>` when two files share a stem (photo.jpg, photo.png)."""
    stems = Counter(path.stem for path in files)
    return {path: out / (path.stem if stems[path.stem] == 1 else path.name) for path in files}


def _progress_line(name: str, view: View) -> str:
    tasks = ", ".join(f"{task}: {t['stage']} {t['progress']}%" for task, t in view.get("tasks", {}).items())
    return f"{name}: {view['status']}" + (f" ({tasks})" if tasks else "")


def _download(client: ApiClient, url: str, target: Path) -> None:
    response = client.http.get(url, timeout=60)
    response.raise_for_status()
    target.write_bytes(response.content)


def _save(client: ApiClient, view: View, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for variant in view.get("variants", []):
        _download(client, variant["url"], folder / f"{variant['preset']}.{variant['format']}")
    # Edits beside the variants, numbered in the order they were asked for.
    for number, edit in enumerate(view.get("edits", []), start=1):
        if edit.get("url"):
            _download(client, edit["url"], folder / f"edit-{number}-{edit['kind']}.webp")
        if edit.get("text_url"):
            _download(client, edit["text_url"], folder / f"edit-{number}-{edit['kind']}.text.json")


def process_one(
    client: ApiClient, path: Path, out: Path, formats: list[str] | None, edits: list[dict[str, Any]] | None, quiet: bool
) -> View:
    def show(view: View) -> None:
        if not quiet:
            print(_progress_line(path.name, view), file=sys.stderr, flush=True)

    try:
        created = client.create_upload(path, formats, edits)
    except UploadRefusedError as refused:
        return {"file": path.name, "status": "refused", "error": refused.error}
    uploaded = client.upload(created["upload"], path)
    if uploaded.status_code >= 300:
        # S3 refused the upload (its policy): no job will start, so there is nothing to wait for.
        code = re.search(r"<Code>([^<]+)</Code>", uploaded.text)
        message = re.search(r"<Message>([^<]+)</Message>", uploaded.text)
        error = {"code": code[1] if code else str(uploaded.status_code), "message": message[1] if message else ""}
        return {"file": path.name, "job_id": created["job_id"], "status": "refused", "error": error}
    view = client.wait_until_done(created["job_id"], on_change=show)
    _save(client, view, out)
    return view


def process_files(
    api_url: str,
    files: list[Path],
    out: Path,
    *,
    as_json: bool,
    formats: list[str] | None,
    edits: list[dict[str, Any]] | None = None,
    token: str | None = None,
) -> bool:
    client = ApiClient(api_url, token)
    folders = result_folders(files, out)
    with ThreadPoolExecutor(max_workers=4) as pool:
        views = list(
            pool.map(lambda path: process_one(client, path, folders[path], formats, edits, quiet=as_json), files)
        )
    for path, view in zip(files, views, strict=True):
        if as_json:
            print(json.dumps(view), flush=True)
            continue
        outcome = view["status"]
        if view.get("error"):
            outcome += f" - {view['error']['code']}: {view['error']['message']}"
        for edit in view.get("edits", []):
            if edit.get("error"):
                outcome += (
                    f"; edit {edit['edit_id']} ({edit['kind']}) {edit['error']['code']}: {edit['error']['message']}"
                )
        print(f"{path}: {outcome}; results in {folders[path]}", flush=True)
    return all(view["status"] == "succeeded" for view in views)
