"""The Python client stands on its own: it imports with nothing but the standard library and requests,
and declares a type the API takes for any file (the pipeline then decides by the bytes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from imgflow_client import declared_type

CLIENT_ROOT = Path(__file__).resolve().parents[2] / "clients" / "python"
# requests and what it imports: the client's whole dependency tree.
REQUESTS_TREE = ("requests", "urllib3", "idna", "charset_normalizer", "certifi")


def test_given_only_the_stdlib_and_requests_when_the_client_is_imported_then_no_server_dependency_loads(
    tmp_path: Path,
) -> None:
    site = Path(requests.__file__).parents[1]
    for name in REQUESTS_TREE:
        (tmp_path / name).symlink_to(site / name)
    script = f"""
import sys
sys.path[:0] = [{str(CLIENT_ROOT)!r}, {str(tmp_path)!r}]
from imgflow_client import Client
Client("http://127.0.0.1:1", "token")
server_side = [m for m in ("pydantic", "boto3", "botocore", "PIL", "imgflow", "imgflow_local") if m in sys.modules]
assert not server_side, server_side
print("ok")
"""
    # -I -S: no site-packages, no PYTHONPATH, no user site: only what the script puts on sys.path.
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b"\xff\xd8\xff\xe0", "photo.jpg", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "renamed.jpg", "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "x", "image/webp"),
        (b"GIF89a", "anim", "image/gif"),
        (b"hello, world", "notes.txt", "application/octet-stream"),
        (b"II*\x00", "scan.tiff", "image/tiff"),
    ],
)
def test_the_declared_type_is_sniffed_else_an_image_type_of_the_name_else_bytes(
    head: bytes, filename: str, expected: str
) -> None:
    assert declared_type(head, filename) == expected
