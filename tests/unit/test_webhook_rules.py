"""Unit tests of webhooks: Standard Webhooks signatures as receivers verify them, which targets may receive,
message ids and the retry schedule."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imgflow.api_models import EventType
from imgflow.lifecycle import DETAIL_TYPES
from imgflow.webhook_models import LifecycleEnvelope
from imgflow.webhook_signing import SECRET_PREFIX, delivery_headers, new_secret
from imgflow.webhook_targets import TargetRefusedError, parse_target, resolve
from imgflow.webhooks import DELIVERY_ATTEMPTS, RETRY_SCHEDULE, message_id, payload, retry_after


def test_given_a_signed_delivery_then_the_standardwebhooks_library_verifies_it() -> None:
    secret = new_secret()
    body = json.dumps({"type": "Job Succeeded", "data": {"job_id": "j"}}).encode()

    headers = delivery_headers(secret, "msg_1", int(time.time()), body)

    assert secret.startswith(SECRET_PREFIX)
    assert Webhook(secret).verify(body, headers) == {"type": "Job Succeeded", "data": {"job_id": "j"}}


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_given_anything_changed_after_signing_then_verification_fails(tamper: str) -> None:
    secret, body, now = new_secret(), b'{"a":1}', int(time.time())
    headers = delivery_headers(secret, "msg_1", now, body)
    if tamper == "body":
        body = b'{"a":2}'
    elif tamper == "id":
        headers["webhook-id"] = "msg_2"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(now - 1)
    else:
        secret = new_secret()

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_given_two_secrets_then_they_differ_and_carry_at_least_24_bytes() -> None:
    import base64

    first, second = new_secret(), new_secret()
    assert first != second
    assert len(base64.b64decode(first.removeprefix(SECRET_PREFIX))) >= 24


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https:///hook", "no host"),
        ("https://example.com/hook#part", "fragment"),
        ("https://127.0.0.1/hook", "not a public address"),
        ("https://10.1.2.3/hook", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),
        ("https://[::1]/hook", "not a public address"),
        ("https://[fd00::1]/hook", "not a public address"),
        ("https://example.com:99999/hook", "not a URL"),
        ("https://example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_given_a_url_that_may_not_receive_on_aws_then_it_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(TargetRefusedError, match=reason):
        parse_target(url, allow_private=False)


def test_given_the_local_runtime_then_http_and_loopback_are_allowed() -> None:
    target = parse_target("http://127.0.0.1:8123/in?x=1", allow_private=True)
    assert (target.scheme, target.host, target.port, target.path) == ("http", "127.0.0.1", 8123, "/in?x=1")


def _resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.mark.parametrize(
    "addresses",
    [("10.0.0.5",), ("93.184.216.34", "192.168.1.1"), ("::ffff:10.0.0.1",), ("169.254.169.254",), ("0.0.0.0",)],
)
def test_given_a_name_resolving_to_any_private_address_then_delivery_is_refused(
    monkeypatch: pytest.MonkeyPatch, addresses: tuple[str, ...]
) -> None:
    _resolving_to(monkeypatch, *addresses)
    target = parse_target("https://hooks.example.com/in", allow_private=False)

    with pytest.raises(TargetRefusedError, match="not a public address"):
        resolve(target, allow_private=False)


def test_given_a_name_resolving_to_public_addresses_then_the_first_is_the_one_connected_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolving_to(monkeypatch, "93.184.216.34", "93.184.216.35")
    target = parse_target("https://hooks.example.com/in", allow_private=False)

    assert resolve(target, allow_private=False) == "93.184.216.34"


def _envelope(detail_type: str = "Job Succeeded", version: int = 4, **detail: Any) -> LifecycleEnvelope:
    return LifecycleEnvelope.model_validate(
        {
            "id": "eb-event-1",
            "detail-type": detail_type,
            "source": "imgflow",
            "time": "2026-12-01T10:00:00Z",
            "detail": {"job_id": "a" * 32, "owner": "alice", "version": version, **detail},
        }
    )


def test_given_the_same_transition_published_twice_then_its_message_id_is_the_same() -> None:
    first, again = _envelope(), _envelope().model_copy(update={"id": "eb-event-2", "time": "2026-12-01T10:00:05Z"})
    assert message_id(first) == message_id(again)
    assert message_id(first) != message_id(_envelope(version=5))
    assert message_id(first) != message_id(_envelope("Job Failed"))
    edit = {"edit_id": "b" * 12}
    assert message_id(_envelope("Edit Succeeded", edit=edit)) != message_id(
        _envelope("Edit Succeeded", edit={"edit_id": "c" * 12})
    )


def test_given_an_event_then_its_payload_is_type_timestamp_and_data() -> None:
    assert json.loads(payload(_envelope())) == {
        "type": "Job Succeeded",
        "timestamp": "2026-12-01T10:00:00Z",
        "data": {"job_id": "a" * 32, "owner": "alice", "version": 4},
    }


def test_given_the_schedule_then_each_attempt_waits_longer_and_all_take_about_a_day() -> None:
    assert DELIVERY_ATTEMPTS == 8
    assert [retry_after(attempt) for attempt in range(1, DELIVERY_ATTEMPTS)] == list(RETRY_SCHEDULE)
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)
    assert max(RETRY_SCHEDULE) <= 12 * 3600  # SQS's longest visibility timeout
    assert 24 * 3600 < sum(RETRY_SCHEDULE) < 30 * 3600


def test_given_the_api_then_its_event_types_are_the_lifecycle_events() -> None:
    from typing import get_args

    assert set(get_args(EventType)) == {detail.detail_type for detail in DETAIL_TYPES}
