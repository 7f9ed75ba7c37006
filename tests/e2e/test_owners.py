"""Owners and their limits through `imgflow serve`, as clients meet them: tokens checked as API Gateway's
JWT authorizer checks them, every owner seeing only their own jobs, AI edits only with their scope,
quotas answered with 429 and the IETF RateLimit fields, and DELETE leaving nothing behind."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from imgflow.keys import owner_segment
from imgflow_local.auth import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOPPER = (ROOT / "tests" / "fixtures" / "images" / "bad-inputs" / "hopper.jpg").read_bytes()
UPLOADS_PER_HOUR = 3
# Owner of the objects dropped straight into the uploads bucket, as the `owned` runtime is configured.
DROP_OWNER = "partner-backend"
ROUTES = [
    ("POST", "/uploads"),
    ("POST", "/uploads/batch"),
    ("GET", "/jobs"),
    ("GET", "/jobs/0123456789abcdef0123456789abcdef"),
    ("DELETE", "/jobs/0123456789abcdef0123456789abcdef"),
    ("POST", "/jobs/0123456789abcdef0123456789abcdef/edits"),
    ("GET", "/quota"),
    ("GET", "/openapi.json"),
]


@pytest.fixture(scope="module")
def owned(serve_imgflow: Callable[..., AbstractContextManager[Pipeline]]) -> Iterator[Pipeline]:
    with serve_imgflow(
        "--parameter", f"UploadsPerHourPerOwner={UPLOADS_PER_HOUR}", "--parameter", f"DirectDropOwner={DROP_OWNER}"
    ) as served:
        yield served


def _keys_with(pipeline: Pipeline, text: str) -> list[str]:
    """Every key in either bucket that holds `text` (a job id)."""
    found = []
    for bucket in (pipeline.uploads_bucket, pipeline.media_bucket):
        for page in pipeline.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found += [f"{bucket}/{o['Key']}" for o in page.get("Contents", []) if text in o["Key"]]
    return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(sub: str = "mallory", **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, **changes}


def bad_tokens() -> dict[str, str]:
    issuer = LocalIssuer.load()
    stranger = LocalIssuer(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    public_pem = issuer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _unsigned({"alg": "HS256", "typ": "JWT", "kid": issuer.key_id}, _claims())
    signature = hmac.new(public_pem, forged.encode(), hashlib.sha256).digest()
    return {
        "expired": issuer.token("mallory", ttl=-60),
        "not yet valid": LocalIssuer(issuer.private_key).token("mallory", nbf=int(time.time()) + 3600),
        "another issuer": LocalIssuer(issuer.private_key, issuer="https://evil.example/").token("mallory"),
        "another audience": LocalIssuer(issuer.private_key, audience="another-api").token("mallory"),
        "another key": stranger.token("mallory"),
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, _claims()) + ".",
        "HS256 with the public key": f"{forged}.{_b64(signature)}",
        "not a JWT": "hello",
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_given_no_token_then_every_route_but_health_is_401_in_our_shape(
    owned: Pipeline, method: str, path: str
) -> None:
    response = owned.api(method, path, owner=None, json={})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert owned.api("GET", "/health", owner=None).status_code == 200


@pytest.mark.parametrize("kind", list(bad_tokens()))
def test_given_a_bad_token_then_401_and_the_reason_in_www_authenticate(owned: Pipeline, kind: str) -> None:
    token = bad_tokens()[kind]

    response = owned.api("GET", "/jobs", owner=None, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401, kind
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_given_alices_job_then_bob_gets_404_everywhere_and_lists_only_his_own(owned: Pipeline) -> None:
    job_id = owned.create_upload("alice.jpg", "image/jpeg", 100, owner="alice").json()["job_id"]
    bobs = owned.create_upload("bob.jpg", "image/jpeg", 100, owner="bob").json()["job_id"]

    assert owned.api("GET", f"/jobs/{job_id}", owner="bob").status_code == 404
    recipe = {"operations": [{"op": "grayscale"}]}
    assert owned.api("POST", f"/jobs/{job_id}/edits", owner="bob", json=recipe).status_code == 404
    assert owned.api("DELETE", f"/jobs/{job_id}", owner="bob").status_code == 404
    assert owned.api("GET", f"/jobs/{job_id}", owner="alice").json()["owner"] == "alice"
    assert [job["job_id"] for job in owned.api("GET", "/jobs", owner="bob").json()["jobs"]] == [bobs]
    assert [job["job_id"] for job in owned.api("GET", "/jobs", owner="alice").json()["jobs"]] == [job_id]


def test_given_many_jobs_then_the_list_pages_newest_first_with_an_opaque_cursor(owned: Pipeline) -> None:
    # Two per hour stay free for the quota test's owner; this owner has its own counters.
    created = [owned.create_upload(f"p{n}.jpg", "image/jpeg", 100, owner="pager").json()["job_id"] for n in range(3)]

    first = owned.api("GET", "/jobs", owner="pager", params={"limit": 2}).json()
    second = owned.api("GET", "/jobs", owner="pager", params={"limit": 2, "cursor": first["next_cursor"]}).json()

    listed = [job["job_id"] for job in first["jobs"] + second["jobs"]]
    assert sorted(listed) == sorted(created)
    assert len(first["jobs"]) == 2
    assert second.get("next_cursor") is None
    # Another owner's cursor, or a forged one, is refused: it cannot page through someone else's jobs.
    stolen = owned.api("GET", "/jobs", owner="bob", params={"cursor": first["next_cursor"]})
    assert (stolen.status_code, stolen.json()["error"]["code"]) == (400, "invalid_request")


def test_given_an_upload_only_token_then_ai_edits_are_403_and_recipes_are_accepted(owned: Pipeline) -> None:
    job_id = owned.create_upload("scoped.jpg", "image/jpeg", 100, owner="uploader").json()["job_id"]
    upload_only = {"Authorization": f"Bearer {owned.token('uploader', scopes=[])}"}

    prompt = owned.api("POST", f"/jobs/{job_id}/edits", owner=None, headers=upload_only, json={"prompt": "sepia"})
    recipe = owned.api(
        "POST", f"/jobs/{job_id}/edits", owner=None, headers=upload_only, json={"operations": [{"op": "grayscale"}]}
    )
    with_edits = owned.api(
        "POST",
        "/uploads",
        owner=None,
        headers=upload_only,
        json={"filename": "x.jpg", "content_type": "image/jpeg", "size": 10, "edits": [{"translate_to": "German"}]},
    )

    assert (prompt.status_code, prompt.json()["error"]["code"]) == (403, "forbidden")
    assert recipe.status_code == 202
    assert (with_edits.status_code, with_edits.json()["error"]["code"]) == (403, "forbidden")


def test_given_three_uploads_an_hour_then_the_fourth_is_429_while_another_owner_still_uploads(
    owned: Pipeline,
) -> None:
    answers = [owned.create_upload(f"q{n}.jpg", "image/jpeg", 100, owner="quota-alice") for n in range(4)]

    assert [answer.status_code for answer in answers] == [201, 201, 201, 429]
    assert answers[0].headers["RateLimit"].startswith('"uploads-hour";r=2;t=')
    assert '"uploads-hour";q=3;w=3600' in answers[0].headers["RateLimit-Policy"]
    refused = answers[3]
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert '"uploads-hour";r=0' in refused.headers["RateLimit"]
    assert owned.create_upload("b.jpg", "image/jpeg", 100, owner="quota-bob").status_code == 201
    quota = owned.api("GET", "/quota", owner="quota-alice").json()
    hourly = next(item for item in quota["quotas"] if item["name"] == "uploads-hour")
    assert (hourly["limit"], hourly["used"], hourly["remaining"]) == (3, 3, 0)


def test_given_a_finished_job_when_deleted_then_no_object_of_it_is_left_and_a_second_delete_is_harmless(
    owned: Pipeline,
) -> None:
    upload = owned.upload("gone.jpg", HOPPER, "image/jpeg", owner="deleter")
    assert owned.wait_for_job(upload.job_id, owner="deleter").final["status"] == "succeeded"

    deleted = owned.api("DELETE", f"/jobs/{upload.job_id}", owner="deleter")

    assert deleted.status_code == 204
    assert _keys_with(owned, upload.job_id) == []
    assert owned.job(upload.job_id, "deleter").status_code == 404
    assert owned.api("DELETE", f"/jobs/{upload.job_id}", owner="deleter").status_code == 404
    owned.wait_for_events(upload.job_id, {"Job Deleted"})


def test_imgflow_token_prints_only_a_token_that_the_runtime_accepts(owned: Pipeline, imgflow_cli: list[str]) -> None:
    printed = subprocess.run(
        [*imgflow_cli, "token", "--sub", "shell-user"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout

    token = printed.strip()
    assert printed == token + "\n"
    assert token.count(".") == 2
    response = owned.api("GET", "/jobs", owner=None, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_given_a_job_deleted_before_its_upload_when_its_form_is_used_then_the_upload_is_removed_and_no_job_appears(
    owned: Pipeline,
) -> None:
    created = owned.create_upload("late.jpg", "image/jpeg", len(HOPPER), owner="deleter").json()
    assert owned.api("DELETE", f"/jobs/{created['job_id']}", owner="deleter").status_code == 204

    posted = owned.post_form(created, HOPPER, "late.jpg")

    assert posted.status_code == 204  # the form is S3's permission, and it has not expired
    key = created["upload"]["fields"]["key"]

    def removed() -> bool:
        return owned.s3.list_objects_v2(Bucket=owned.uploads_bucket, Prefix=key).get("KeyCount", 0) == 0

    owned.eventually(removed, 30, lambda: f"{key} is still in the uploads bucket")
    owned.wait_until_idle("IngestQueue")
    assert owned.jobs_for_key(key) == []
    assert owned.job(created["job_id"], "deleter").status_code == 404


def test_given_objects_of_two_owners_then_each_owners_keys_are_under_its_own_prefix_only(owned: Pipeline) -> None:
    jobs = {
        owner: owned.upload("mine.jpg", HOPPER, "image/jpeg", owner=owner).job_id
        for owner in ("prefix-alice", "prefix-bob")
    }
    for owner, job_id in jobs.items():
        assert owned.wait_for_job(job_id, owner=owner).final["status"] == "succeeded"

    for owner, job_id in jobs.items():
        keys = _keys_with(owned, job_id)
        assert keys, f"no object of {owner}'s job"
        assert all(f"/{owner_segment(owner)}/{job_id}/" in key for key in keys), keys


def test_given_a_configured_drop_owner_then_its_token_lists_and_deletes_drops_with_the_dropped_object(
    owned: Pipeline,
) -> None:
    key = f"uploads/partner/{uuid.uuid4().hex}/hopper.jpg"
    owned.s3.put_object(Bucket=owned.uploads_bucket, Key=key, Body=HOPPER, ContentType="image/jpeg")
    job_id = owned.wait_for_drop_job(key)["job_id"]
    assert owned.wait_for_job(job_id, owner=DROP_OWNER).final["owner"] == DROP_OWNER
    listed = owned.api("GET", "/jobs", owner=DROP_OWNER).json()["jobs"]
    assert job_id in [job["job_id"] for job in listed]
    assert owned.job(job_id, "alice").status_code == 404

    assert owned.api("DELETE", f"/jobs/{job_id}", owner=DROP_OWNER).status_code == 204

    assert _keys_with(owned, job_id) == []
    assert owned.s3.list_objects_v2(Bucket=owned.uploads_bucket, Prefix=key).get("KeyCount", 0) == 0


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(json.dumps(key).encode()).decode()
        for key in (
            {"pk": "x", "owner": "pager", "created_at": "abc"},
            {"pk": "x", "owner": "pager", "created_at": "1" * 40},
            {"pk": "x" * 5000, "owner": "pager", "created_at": "1"},
            ["pk", "owner", "created_at"],
        )
    ]
    + ["%%%", "e30"],
)
def test_given_a_forged_cursor_then_400_never_500(owned: Pipeline, cursor: str) -> None:
    response = owned.api("GET", "/jobs", owner="pager", params={"cursor": cursor})

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_request")


def test_given_the_bearer_scheme_in_another_case_or_no_scheme_then_the_token_is_taken(owned: Pipeline) -> None:
    token = owned.token("casual")

    for header in (f"bearer {token}", f"BEARER {token}", token):
        assert owned.api("GET", "/jobs", owner=None, headers={"Authorization": header}).status_code == 200


@pytest.fixture(scope="module")
def open_and_throttled(serve_imgflow: Callable[..., AbstractContextManager[Pipeline]]) -> Iterator[Pipeline]:
    """One runtime for the two tests below (a start costs seconds): `--open`, and a stage that takes one
    request per 100 s after a burst of 3 per route, so nothing comes back while they run. Each route has
    its own bucket: the open test stays off GET /jobs, which the throttled test drains."""
    with serve_imgflow("--open", "--parameter", "ApiThrottleRate=0.01", "--parameter", "ApiThrottleBurst=3") as served:
        yield served


def test_given_an_open_runtime_then_tokenless_requests_speak_for_local_with_every_scope(
    open_and_throttled: Pipeline,
) -> None:
    open_runtime = open_and_throttled
    created = open_runtime.create_upload("open.jpg", "image/jpeg", 100, owner=None)
    job_id = created.json()["job_id"]
    edit = open_runtime.api("POST", f"/jobs/{job_id}/edits", owner=None, json={"prompt": "sepia"})
    view = open_runtime.job(job_id, None)
    forged = open_runtime.api("GET", "/quota", owner=None, headers={"Authorization": "Bearer forged"})

    assert created.status_code == 201
    assert edit.status_code == 202
    assert view.json()["owner"] == "local"
    assert forged.status_code == 401  # a token that is sent is still checked


def test_given_a_throttled_stage_then_a_route_past_its_burst_is_429_as_api_gateway_answers_and_others_still_serve(
    open_and_throttled: Pipeline,
) -> None:
    throttled = open_and_throttled
    answers = [throttled.api("GET", "/jobs").status_code for _ in range(4)]
    # A forged token: the open runtime's authorizer would answer it with 401 (the test above).
    forged = throttled.api("GET", "/jobs", owner=None, headers={"Authorization": "Bearer forged"})
    health = throttled.api("GET", "/health")

    assert answers == [200, 200, 200, 429]
    # Throttling comes before the authorizer, and its answer is API Gateway's own.
    assert (forged.status_code, forged.json()) == (429, {"message": "Too Many Requests"})
    assert health.status_code == 200  # each route has its own bucket
