"""Forms S3 reads one way and a lenient emulator another, replayed through `imgflow serve`: each is answered
as S3 answers it, and what is stored is what the policy was checked against."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import requests

from imgflow.keys import upload_prefix

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
API_OWNER = "e2e"
HOPPER = (Path(__file__).resolve().parents[1] / "fixtures" / "images" / "bad-inputs" / "hopper.jpg").read_bytes()
BOUNDARY = "imgflow-e2e-boundary"

Part = tuple[str, bytes, str | None]  # name, value, filename


def multipart(parts: list[Part]) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def signed_parts(created: dict[str, Any], rename: dict[str, str] | None = None) -> list[Part]:
    renamed = rename or {}
    return [(renamed.get(name, name), value.encode(), None) for name, value in created["upload"]["fields"].items()]


def send(created: dict[str, Any], data: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> Any:
    return requests.post(created["upload"]["url"], data=data, headers={"Content-Type": content_type}, timeout=30)


def s3_error(response: requests.Response) -> tuple[int, str]:
    assert response.headers.get("Content-Type", "").startswith("application/xml"), (response.status_code, response.text)
    return response.status_code, ET.fromstring(response.content).findtext("Code") or ""


def create(pipeline: Pipeline) -> dict[str, Any]:
    response = pipeline.create_upload("photo.jpg", "image/jpeg", len(HOPPER))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def stored(pipeline: Pipeline, created: dict[str, Any]) -> list[str]:
    listed = pipeline.s3.list_objects_v2(
        Bucket=pipeline.uploads_bucket, Prefix=upload_prefix(API_OWNER, created["job_id"])
    )
    return [item["Key"] for item in listed.get("Contents", [])]


# Each form: what S3 answers (status, code). The signed key is the only one any of them could store.
REFUSED = {
    "a second key before the signed one": (400, "InvalidArgument"),
    "a Key before the signed key": (400, "InvalidArgument"),
    "a second Content-Type before the signed one": (400, "InvalidArgument"),
    "a second file part": (400, "IncorrectNumberOfFilesInPostRequest"),
    "unsigned, Multipart/Form-Data in capitals": (403, "AccessDenied"),
    "unsigned, urlencoded": (412, "PreconditionFailed"),
}


def refused_form(case: str, created: dict[str, Any], key: str) -> tuple[bytes, str]:
    form_type = f"multipart/form-data; boundary={BOUNDARY}"
    file: Part = ("file", HOPPER, "hopper.jpg")
    if case == "a second key before the signed one":
        return multipart([("key", key.encode(), None), *signed_parts(created), file]), form_type
    if case == "a Key before the signed key":
        return multipart([("Key", key.encode(), None), *signed_parts(created), file]), form_type
    if case == "a second Content-Type before the signed one":
        return multipart([("Content-Type", b"text/html", None), *signed_parts(created), file]), form_type
    if case == "a second file part":
        return multipart([*signed_parts(created), file, ("file", HOPPER * 40, "more.jpg")]), form_type
    if case == "unsigned, Multipart/Form-Data in capitals":
        return multipart([("key", key.encode(), None), file]), f"Multipart/Form-Data; boundary={BOUNDARY}"
    assert case == "unsigned, urlencoded"
    return f"key={key}&file=hello".encode(), "application/x-www-form-urlencoded"


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_form_s3_would_refuse_is_refused_and_nothing_is_stored(pipeline: Pipeline, case: str) -> None:
    created = create(pipeline)
    other_key = f"{upload_prefix(API_OWNER, created['job_id'])}evil-{uuid.uuid4().hex[:6]}"
    data, content_type = refused_form(case, created, other_key)

    response = send(created, data, content_type)

    assert s3_error(response) == REFUSED[case], response.text
    assert stored(pipeline, created) == []
    assert pipeline.view(created["job_id"])["status"] == "awaiting_upload"


@pytest.mark.parametrize("file_field", ["file", "FILE"])
def test_field_names_in_any_case_are_read_as_s3_reads_them(pipeline: Pipeline, file_field: str) -> None:
    created = create(pipeline)
    data = multipart([*signed_parts(created, rename={"key": "Key"}), (file_field, HOPPER, "hopper.jpg")])

    response = send(created, data)

    assert response.status_code == 204, response.text
    key = created["upload"]["fields"]["key"]
    assert stored(pipeline, created) == [key]
    assert pipeline.s3.get_object(Bucket=pipeline.uploads_bucket, Key=key)["Body"].read() == HOPPER


def test_fields_after_the_file_are_ignored_as_s3_ignores_them(pipeline: Pipeline) -> None:
    created = create(pipeline)
    data = multipart([*signed_parts(created), ("file", HOPPER, "hopper.jpg"), ("acl", b"public-read", None)])

    response = send(created, data)

    assert response.status_code == 204, response.text
    key = created["upload"]["fields"]["key"]
    grants = pipeline.s3.get_object_acl(Bucket=pipeline.uploads_bucket, Key=key)["Grants"]
    assert not [grant for grant in grants if grant["Grantee"].get("URI", "").endswith("/global/AllUsers")], grants


def test_a_body_over_the_policy_is_refused_before_it_has_been_sent(pipeline: Pipeline) -> None:
    created = create(pipeline)
    announced = 500 * 1024**2
    opening = multipart([*signed_parts(created)])[: -len(f"--{BOUNDARY}--\r\n")]
    opening += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'.encode()
    url = urlsplit(created["upload"]["url"])
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    connection.putrequest("POST", url.path)
    connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    connection.putheader("Content-Length", str(len(opening) + announced))
    connection.endheaders()
    connection.send(opening)
    # Just past the policy's limit, far from the 500 MB announced.
    policy = json.loads(base64.b64decode(created["upload"]["fields"]["policy"]))
    limit = next(c[2] for c in policy["conditions"] if isinstance(c, list) and c[0] == "content-length-range")
    for _ in range(limit // 1024**2 + 2):
        connection.send(b"\0" * 1024**2)

    response = connection.getresponse()

    assert response.status == 400
    assert ET.fromstring(response.read()).findtext("Code") == "EntityTooLarge"
    connection.close()
    assert stored(pipeline, created) == []
