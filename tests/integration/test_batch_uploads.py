"""POST /uploads/batch: several files in one request, each its own job with the same edits."""

from __future__ import annotations

import copy
import json
from typing import Any

import api_handler
from imgflow.keys import upload_key
from integration.helpers import API_OWNER
from support import EmulatedAws, FakeLambdaContext, load_event


def batch_event(body: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(load_event("api_create_upload.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/uploads/batch"
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /uploads/batch"
    event["body"] = json.dumps(body)
    return event


def jobs_in_table(aws: EmulatedAws) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws.table().scan()["Items"]
    return [item for item in items if not str(item["pk"]).startswith("object#")]


def test_given_three_files_and_an_edit_when_a_batch_is_asked_then_each_gets_its_own_job_and_form(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    files = [{"filename": f"p{i}.jpg", "content_type": "image/jpeg", "size": 1000 + i} for i in range(3)]
    edits = [{"operations": [{"op": "grayscale"}]}]

    response = api_handler.lambda_handler(batch_event({"files": files, "edits": edits}), lambda_context)

    assert response["statusCode"] == 201, response["body"]
    uploads = json.loads(response["body"])["uploads"]
    assert len({upload["job_id"] for upload in uploads}) == 3
    assert [upload["upload"]["fields"]["key"] for upload in uploads] == [
        upload_key(API_OWNER, upload["job_id"]) for upload in uploads
    ]
    stored = {item["pk"]: item for item in jobs_in_table(aws)}
    for upload, file in zip(uploads, files, strict=True):
        item = stored[upload["job_id"]]
        assert (item["filename"], item["declared_size"]) == (file["filename"], file["size"])
        assert [edit["spec"]["kind"] for edit in item["edits"].values()] == ["recipe"]


def test_given_a_batch_with_one_empty_file_when_asked_then_400_and_no_job_is_made(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    files = [
        {"filename": "good.jpg", "content_type": "image/jpeg", "size": 10},
        {"filename": "empty.jpg", "content_type": "image/jpeg", "size": 0},
    ]

    response = api_handler.lambda_handler(batch_event({"files": files}), lambda_context)

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "empty_file"
    assert jobs_in_table(aws) == []


def test_given_eleven_files_when_a_batch_is_asked_then_400_invalid_request(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    files = [{"filename": f"p{i}.jpg", "content_type": "image/jpeg", "size": 10} for i in range(11)]

    response = api_handler.lambda_handler(batch_event({"files": files}), lambda_context)

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_request"
