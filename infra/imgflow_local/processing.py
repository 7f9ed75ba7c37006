"""`imgflow process`: files (or the images of a directory, or a glob) through the API with the Python
client, as a web app sends them, and every result saved to disk before the runtime (and with it every
presigned URL) goes away."""

from __future__ import annotations

import glob
import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgflow_client import Client, ImgflowError, JobView, declared_type

GLOB_CHARACTERS = frozenset("*?[")
WHAT_TO_PASS = "pass image files, a directory of images, or a glob such as 'photos/*.jpg'"


@dataclass
class Inputs:
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _looks_like_an_image(path: Path) -> bool:
    with path.open("rb") as file:
        return declared_type(file.read(16), path.name) != "application/octet-stream"


def expand_inputs(arguments: list[str]) -> Inputs:
    """The files to process: each file named, the images directly in each directory named (by their bytes
    or name; what is not an image is left out), and the files a quoted glob matches."""
    inputs = Inputs()
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            images = sorted(child for child in path.iterdir() if child.is_file() and _looks_like_an_image(child))
            inputs.files += images
            if not images:
                inputs.problems.append(f"no images in the directory {argument}")
        elif path.is_file():
            inputs.files.append(path)
        elif GLOB_CHARACTERS & set(argument):
            matches = sorted(Path(match) for match in glob.glob(argument, recursive=True) if Path(match).is_file())
            inputs.files += matches
            if not matches:
                inputs.problems.append(f"no file matches {argument}")
        else:
            inputs.problems.append(f"no such file or directory: {argument}")
    return inputs


def result_folders(files: list[Path], out: Path) -> dict[Path, Path]:
    """`out/<stem>` for each file, or `out/<name>` when two files share a stem (photo.jpg, photo.png)."""
    stems = Counter(path.stem for path in files)
    return {path: out / (path.stem if stems[path.stem] == 1 else path.name) for path in files}


def _progress_line(name: str, view: JobView) -> str:
    tasks = ", ".join(f"{task}: {t['stage']} {t['progress']}%" for task, t in view.get("tasks", {}).items())
    return f"{name}: {view['status']}" + (f" ({tasks})" if tasks else "")


def _variant_name(variant: dict[str, Any]) -> str:
    """`thumb.webp`; an animation's poster stills beside it as `thumb.poster.webp`."""
    role = ".poster" if variant.get("role") == "poster" else ""
    return f"{variant['preset']}{role}.{variant['format']}"


def _save(client: Client, view: dict[str, Any], folder: Path) -> list[Path]:
    """Download every result into `folder`, noting each one's local `path` (or `text_path`) in the view."""
    targets: list[tuple[dict[str, Any], str, str, Path]] = [
        (variant, "url", "path", folder / _variant_name(variant)) for variant in view.get("variants", [])
    ]
    # Edits beside the variants, numbered in the order they were asked for; each one's variants in a folder.
    for number, edit in enumerate(view.get("edits", []), start=1):
        stem = f"edit-{number}-{edit['kind']}"
        if edit.get("url"):
            targets.append((edit, "url", "path", folder / f"{stem}.webp"))
        targets += [
            (variant, "url", "path", folder / stem / _variant_name(variant)) for variant in edit.get("variants", [])
        ]
        if edit.get("text_url"):
            targets.append((edit, "text_url", "text_path", folder / f"{stem}.text.json"))
    saved = []
    for entry, url_key, path_key, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(client.download(entry[url_key]))
        entry[path_key] = str(target)
        saved.append(target)
    return saved


def process_one(
    client: Client, path: Path, folder: Path, formats: list[str] | None, edits: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The job's last view with local paths beside the URLs (which expire with the runtime), or a
    `refused` line with the API's or S3's error when no job could start."""

    def show(view: JobView) -> None:
        print(_progress_line(path.name, view), file=sys.stderr, flush=True)

    try:
        view: dict[str, Any] = dict(client.upload(path, edits=edits, formats=formats, on_progress=show))
    except ImgflowError as refused:
        return {"file": str(path), "status": "refused", "error": {"code": refused.code, "message": refused.message}}
    view["file"] = str(path)
    if _save(client, view, folder):
        view["out"] = str(folder)
    return view


def _summary(path: Path, view: dict[str, Any]) -> str:
    outcome = view["status"]
    if view.get("error"):
        outcome += f" - {view['error']['code']}: {view['error']['message']}"
    for edit in view.get("edits", []):
        if edit.get("error"):
            outcome += f"; edit {edit['edit_id']} ({edit['kind']}) {edit['error']['code']}: {edit['error']['message']}"
    # Only where something was written: a refused or rejected file leaves no folder behind.
    return f"{path}: {outcome}" + (f"; results in {view['out']}" if view.get("out") else "")


def process_files(
    client: Client,
    files: list[Path],
    out: Path,
    *,
    as_json: bool,
    formats: list[str] | None,
    edits: list[dict[str, Any]] | None = None,
) -> bool:
    folders = result_folders(files, out)
    with ThreadPoolExecutor(max_workers=4) as pool:
        views = list(pool.map(lambda path: process_one(client, path, folders[path], formats, edits), files))
    for path, view in zip(files, views, strict=True):
        print(json.dumps(view) if as_json else _summary(path, view), flush=True)
    return all(view["status"] == "succeeded" for view in views)
