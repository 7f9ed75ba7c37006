"""The Python client (clients/python) against `imgflow serve`: the five lines of its README, and every
call it offers, through the same doors a web app uses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from imgflow_client import ApiError, Client, JobView

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

BAD_INPUTS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "images" / "bad-inputs"
OWNER = "python-client"


@pytest.fixture
def client(pipeline: Pipeline) -> Client:
    return Client(pipeline.api_url, pipeline.token(OWNER))


def test_five_lines_upload_a_photo_and_wait_for_its_variants(pipeline: Pipeline) -> None:
    client = Client(pipeline.api_url, pipeline.token(OWNER))
    job = client.upload(BAD_INPUTS / "hopper.jpg")
    assert job["status"] == "succeeded", job
    assert sorted(v["preset"] for v in job["variants"]) == ["full", "large", "small", "thumb"]
    assert client.download(job["variants"][0]["url"])[:4] == b"RIFF"


def test_progress_is_reported_for_every_new_version_until_the_end(client: Client) -> None:
    seen: list[JobView] = []
    job = client.upload(
        (BAD_INPUTS / "hopper.png").read_bytes(),
        filename="hopper.png",
        edits=[{"operations": [{"op": "grayscale"}]}],
        on_progress=seen.append,
    )
    versions = [view["version"] for view in seen]
    assert versions == sorted(set(versions)), versions
    assert seen[0]["status"] in {"awaiting_upload", "validating", "processing"}
    assert seen[-1] == job
    assert job["status"] == "succeeded"
    assert [edit["status"] for edit in job["edits"]] == ["succeeded"]


def test_edit_waits_for_its_edit_and_jobs_lists_it_and_delete_removes_it(client: Client) -> None:
    job = client.upload(BAD_INPUTS / "hopper.jpg")
    edited = client.edit(job["job_id"], operations=[{"op": "flip", "direction": "horizontal"}], wait=True)
    assert "edits" in edited
    (edit,) = edited["edits"]
    assert edit["status"] == "succeeded"
    assert edit["url"]

    assert job["job_id"] in {listed["job_id"] for listed in client.jobs()}
    client.delete(job["job_id"])
    with pytest.raises(ApiError) as gone:
        client.job(job["job_id"])
    assert (gone.value.status, gone.value.code) == (404, "not_found")


def test_a_type_that_is_not_declarable_is_refused_with_what_to_send_instead(client: Client) -> None:
    with pytest.raises(ApiError) as refused:
        client.upload(b"hello", filename="notes.txt", content_type="text/plain")
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    assert "'text/plain' is neither image/* nor application/octet-stream" in refused.value.message
    # Left to the client, the same file is declared as bytes and ends as a renamed file does.
    job = client.upload(b"hello", filename="notes.txt")
    assert job["status"] == "rejected"
    error = job.get("error")
    assert error is not None
    assert error["code"] == "unsupported_format"


def test_a_refusal_raises_the_apis_code_and_message(client: Client) -> None:
    with pytest.raises(ApiError) as refused:
        client.upload(b"", filename="empty.jpg")
    assert refused.value.status == 400
    assert refused.value.code in {"empty_file", "invalid_request"}
    assert refused.value.message
