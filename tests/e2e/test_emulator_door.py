"""The local endpoints are not open to every site the developer visits: a web page may use the emulator's
endpoint only as it may use S3 (presigned uploads and downloads, with the bucket's CORS rules), and the
runtime's `/_local/*` pages answer their own origin only."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
import requests

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
# conftest's run_imgflow_server allows this origin (AllowedOrigin); any other site is a stranger.
APP_ORIGIN = "https://app.example.com"
STRANGER = "https://evil.example.net"
TIMEOUT = 30


def test_a_web_page_cannot_scan_the_table_or_list_the_queues(pipeline: Pipeline) -> None:
    scan = {"X-Amz-Target": "DynamoDB_20120810.Scan", "Content-Type": "application/x-amz-json-1.0"}
    table = pipeline.jobs_table.name
    attempts = [
        requests.options(
            pipeline.aws_url,
            headers={
                "Origin": STRANGER,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-amz-target",
            },
            timeout=TIMEOUT,
        ),
        requests.post(
            pipeline.aws_url, json={"TableName": table}, headers={**scan, "Origin": STRANGER}, timeout=TIMEOUT
        ),
        # A CORS-simple request (a form post) needs no preflight, and the emulator checks no signature.
        requests.post(pipeline.aws_url, data={"Action": "ListQueues"}, headers={"Origin": STRANGER}, timeout=TIMEOUT),
        requests.get(
            f"{pipeline.aws_url}/?Action=ListQueues", headers={"Sec-Fetch-Site": "cross-site"}, timeout=TIMEOUT
        ),
    ]
    for response in attempts:
        assert response.status_code == 403, (response.request.method, response.status_code, response.text[:300])
        assert table not in response.text
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], dict(response.headers)


def test_the_sdk_still_reaches_every_service_without_cors_headers(pipeline: Pipeline) -> None:
    answer = pipeline.sqs.list_queues()
    assert answer["QueueUrls"]
    assert not [h for h in answer["ResponseMetadata"]["HTTPHeaders"] if h.startswith("access-control-")]


def download_url(pipeline: Pipeline) -> str:
    key = f"tests/door/{uuid.uuid4().hex}.txt"
    pipeline.s3.put_object(Bucket=pipeline.media_bucket, Key=key, Body=b"result")
    url: str = pipeline.s3.generate_presigned_url(
        "get_object", Params={"Bucket": pipeline.media_bucket, "Key": key}, ExpiresIn=300
    )
    return url


def test_a_presigned_download_is_readable_by_the_allowed_origin_only(pipeline: Pipeline) -> None:
    url = download_url(pipeline)
    allowed = requests.get(url, headers={"Origin": APP_ORIGIN, "Sec-Fetch-Site": "cross-site"}, timeout=TIMEOUT)
    stranger = requests.get(url, headers={"Origin": STRANGER, "Sec-Fetch-Site": "cross-site"}, timeout=TIMEOUT)
    # An <img> or a link needs no CORS: the bytes are served to any page, as S3 serves them.
    image = requests.get(url, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"}, timeout=TIMEOUT)
    assert (allowed.status_code, allowed.content) == (200, b"result")
    assert allowed.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN
    assert stranger.status_code == 200
    assert "Access-Control-Allow-Origin" not in stranger.headers
    assert (image.status_code, image.content) == (200, b"result")


def test_a_download_preflight_is_answered_from_the_bucket_rules(pipeline: Pipeline) -> None:
    url = download_url(pipeline)
    asked = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"}
    allowed = requests.options(url, headers={**asked, "Origin": APP_ORIGIN}, timeout=TIMEOUT)
    stranger = requests.options(url, headers={**asked, "Origin": STRANGER}, timeout=TIMEOUT)
    put = requests.options(
        url, headers={**asked, "Access-Control-Request-Method": "PUT", "Origin": APP_ORIGIN}, timeout=TIMEOUT
    )
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    for refused in (stranger, put):
        assert refused.status_code == 403
        assert "<Code>AccessForbidden</Code>" in refused.text
        assert "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": STRANGER},
        {"Origin": APP_ORIGIN},  # allowed by the API's CORS, but not to the runtime's own pages
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of localhost is another origin
    ],
    ids=["stranger", "the-app", "cross-site", "same-site"],
)
def test_the_runtime_pages_refuse_other_origins(pipeline: Pipeline, headers: dict[str, str]) -> None:
    response = requests.get(f"{pipeline.api_url}/_local/events", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    assert not [h for h in response.headers if h.lower().startswith("access-control-")], dict(response.headers)


def test_the_runtime_pages_answer_their_own_origin_and_tools(pipeline: Pipeline) -> None:
    own = {"Origin": pipeline.api_url, "Sec-Fetch-Site": "same-origin"}
    for headers in (own, {}):
        response = requests.get(f"{pipeline.api_url}/_local/events", headers=headers, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)
        assert "Access-Control-Allow-Origin" not in response.headers
