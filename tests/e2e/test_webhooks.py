"""Webhooks through the local runtime, as an integrator receives them: a receiver on loopback registered
with `POST /webhooks` gets every lifecycle event of an upload, each verifying with the `standardwebhooks`
library against the secret it was given; a failed delivery is retried with the same id, the delivery log
says so, and a replay delivers again with the same `webhook-id`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from standardwebhooks.webhooks import Webhook

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOPPER = (ROOT / "tests" / "fixtures" / "images" / "bad-inputs" / "hopper.jpg").read_bytes()
UPLOAD_EVENTS = {"Job Accepted", "Variants Ready", "Job Succeeded"}


class Receiver:
    """An integrator's endpoint on loopback: records every delivery, and fails the first N it is sent."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self._fail_first = fail_first
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    failing = len(receiver.deliveries) <= receiver._fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self, secret: str) -> list[tuple[str, dict[str, Any]]]:
        """(webhook-id, verified payload) of every delivery, in order; verification fails loudly."""
        with self._lock:
            deliveries = list(self.deliveries)
        return [(headers["webhook-id"], Webhook(secret).verify(body, headers)) for headers, body in deliveries]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=1)
    yield server
    server.close()


def _register(pipeline: Pipeline, owner: str, url: str, **extra: Any) -> dict[str, Any]:
    response = pipeline.api("POST", "/webhooks", owner=owner, json={"url": url, **extra})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_given_a_webhook_then_every_event_of_an_upload_arrives_signed_and_a_failed_delivery_is_retried(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    owner = f"hooked-{uuid.uuid4().hex[:8]}"
    webhook = _register(pipeline, owner, receiver.url, description="my app")
    assert webhook["secret"].startswith("whsec_")
    since = int(time.time()) - 1

    upload = pipeline.upload("hooked.jpg", HOPPER, "image/jpeg", owner=owner)
    assert pipeline.wait_for_job(upload.job_id, owner=owner).final["status"] == "succeeded"

    def all_arrived() -> list[tuple[str, dict[str, Any]]] | None:
        received = receiver.received(webhook["secret"])
        ok = {payload["type"] for _, payload in received[1:]}  # the first was answered 500
        return received if ok >= UPLOAD_EVENTS else None

    received = pipeline.eventually(all_arrived, 60, lambda: f"received {receiver.received(webhook['secret'])}")
    assert all(payload["data"]["job_id"] == upload.job_id for _, payload in received)
    ids_by_type: dict[str, set[str]] = {}
    for message_id, payload in received:
        ids_by_type.setdefault(payload["type"], set()).add(message_id)
    assert all(len(ids) == 1 for ids in ids_by_type.values()), ids_by_type  # retries keep their id
    first_id = received[0][0]
    assert [message_id for message_id, _ in received].count(first_id) == 2  # failed once, then retried

    log = pipeline.api("GET", f"/webhooks/{webhook['id']}/deliveries", owner=owner).json()["deliveries"]
    by_id = {delivery["message_id"]: delivery for delivery in log}
    assert (by_id[first_id]["attempts"], by_id[first_id]["status"]) == (2, "succeeded")
    assert {delivery["type"] for delivery in log} >= UPLOAD_EVENTS

    replay = pipeline.api("POST", f"/webhooks/{webhook['id']}/replay", owner=owner, json={"since": since})
    assert replay.status_code == 202, replay.text
    assert replay.json()["replayed"] == len(log)

    def replayed() -> list[tuple[str, dict[str, Any]]] | None:
        again = receiver.received(webhook["secret"])[len(received) :]
        return again if len(again) >= len(log) else None

    again = pipeline.eventually(replayed, 30, lambda: "the replay did not arrive")
    assert {message_id for message_id, _ in again} == set(by_id)


def test_given_webhooks_then_they_are_the_owners_own_filtered_and_deletable(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    owner, other = f"filter-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    webhook = _register(pipeline, owner, receiver.url, events=["Job Succeeded", "Job Succeeded"])
    assert webhook["events"] == ["Job Succeeded"]

    assert [hook["id"] for hook in pipeline.api("GET", "/webhooks", owner=owner).json()["webhooks"]] == [webhook["id"]]
    assert pipeline.api("GET", "/webhooks", owner=other).json()["webhooks"] == []
    assert "secret" not in pipeline.api("GET", "/webhooks", owner=owner).json()["webhooks"][0]
    for method, path in (("DELETE", ""), ("GET", "/deliveries")):
        answer = pipeline.api(method, f"/webhooks/{webhook['id']}{path}", owner=other)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")

    upload = pipeline.upload("filtered.jpg", HOPPER, "image/jpeg", owner=owner)
    pipeline.wait_for_job(upload.job_id, owner=owner)

    def succeeded_arrived() -> list[tuple[str, dict[str, Any]]] | None:
        return [r for r in receiver.received(webhook["secret"]) if r[1]["type"] == "Job Succeeded"] or None

    pipeline.eventually(succeeded_arrived, 60, lambda: "Job Succeeded never arrived")
    pipeline.wait_until_idle("WebhookDeliveryQueue")
    assert {payload["type"] for _, payload in receiver.received(webhook["secret"])} == {"Job Succeeded"}

    assert pipeline.api("DELETE", f"/webhooks/{webhook['id']}", owner=owner).status_code == 204
    assert pipeline.api("DELETE", f"/webhooks/{webhook['id']}", owner=owner).status_code == 404
    assert pipeline.api("GET", "/webhooks", owner=owner).json()["webhooks"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
        ({"url": "http://127.0.0.1/x", "events": ["Job Exploded"]}, "events"),
        ({"url": "http://127.0.0.1/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1/x", "secret": "mine"}, "secret"),
    ],
)
def test_given_a_webhook_that_cannot_be_then_400_naming_the_field(
    pipeline: Pipeline, body: dict[str, Any], field: str
) -> None:
    answer = pipeline.api("POST", "/webhooks", owner="refused", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert field in answer.json()["error"]["message"]


def test_given_an_owner_with_every_webhook_it_may_have_then_another_is_409(pipeline: Pipeline) -> None:
    owner = f"many-{uuid.uuid4().hex[:8]}"
    for number in range(10):
        _register(pipeline, owner, f"http://127.0.0.1:9/{number}")

    answer = pipeline.api("POST", "/webhooks", owner=owner, json={"url": "http://127.0.0.1:9/11"})

    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "conflict")
    first = pipeline.api("GET", "/webhooks", owner=owner).json()["webhooks"][0]["id"]
    assert pipeline.api("DELETE", f"/webhooks/{first}", owner=owner).status_code == 204
    _register(pipeline, owner, "http://127.0.0.1:9/12")


def test_given_a_forged_deliveries_cursor_then_400(pipeline: Pipeline, receiver: Receiver) -> None:
    owner = f"cursor-{uuid.uuid4().hex[:8]}"
    webhook = _register(pipeline, owner, receiver.url)
    forged = json.dumps({"pk": "webhook#wh_other", "sk": "x", "created_at": 1}).encode()
    import base64

    cursor = base64.urlsafe_b64encode(forged).decode()
    answer = pipeline.api("GET", f"/webhooks/{webhook['id']}/deliveries", owner=owner, params={"cursor": cursor})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")


def test_given_a_notify_url_then_that_jobs_events_arrive_there_signed_with_the_owners_notify_secret(
    pipeline: Pipeline,
) -> None:
    owner = f"oneoff-{uuid.uuid4().hex[:8]}"
    receiver = Receiver()
    try:
        secret = pipeline.api("GET", "/webhooks/secret", owner=owner).json()["secret"]
        assert pipeline.api("GET", "/webhooks/secret", owner=owner).json()["secret"] == secret  # kept
        assert pipeline.api("GET", "/webhooks/secret", owner="someone-else").json()["secret"] != secret

        watched = pipeline.upload("watched.jpg", HOPPER, "image/jpeg", owner=owner, notify_url=receiver.url)
        unwatched = pipeline.upload("unwatched.jpg", HOPPER, "image/jpeg", owner=owner)
        for job_id in (watched.job_id, unwatched.job_id):
            pipeline.wait_for_job(job_id, owner=owner)

        def arrived() -> list[tuple[str, dict[str, Any]]] | None:
            received = receiver.received(secret)  # verified with the notify secret, or it raises
            return received if {payload["type"] for _, payload in received} >= UPLOAD_EVENTS else None

        received = pipeline.eventually(arrived, 60, lambda: f"received {len(receiver.deliveries)}")
        pipeline.wait_until_idle("WebhookDeliveryQueue")
        assert {payload["data"]["job_id"] for _, payload in receiver.received(secret)} == {watched.job_id}
        assert received
        assert pipeline.api("GET", "/webhooks", owner=owner).json()["webhooks"] == []  # not a registered webhook
        answer = pipeline.api("DELETE", f"/webhooks/job_{watched.job_id}", owner=owner)
        assert answer.status_code == 404
    finally:
        receiver.close()


def test_given_a_notify_url_that_cannot_receive_then_the_upload_is_400_and_nothing_is_made(pipeline: Pipeline) -> None:
    owner = f"badnotify-{uuid.uuid4().hex[:8]}"
    answer = pipeline.create_upload("x.jpg", "image/jpeg", len(HOPPER), owner=owner, notify_url="ftp://127.0.0.1/x")

    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
    assert "notify_url" in answer.json()["error"]["message"]
    assert pipeline.api("GET", "/jobs", owner=owner).json()["jobs"] == []
