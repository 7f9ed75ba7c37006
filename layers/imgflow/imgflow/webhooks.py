"""Webhooks: owners register endpoints; every lifecycle event of their jobs is delivered to each, signed
as Standard Webhooks specifies, retried on a fixed schedule, logged, and replayable.

The fan-out turns one event into one recorded delivery per matching endpoint; the delivery function
makes one attempt per message and, when it fails, brings the message back after the schedule's next
delay. A message's `webhook-id` is derived from what the event reports (job, version, type, edit), so
an event published twice, a retry and a replay all carry the same id and receivers drop duplicates.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from imgflow.errors import InvalidWebhookError, WebhookLimitError, WebhookNotFoundError
from imgflow.lifecycle import SOURCE
from imgflow.queues import TaskQueue
from imgflow.settings import Settings
from imgflow.webhook_models import (
    REGISTERED_ID_PREFIX,
    Delivery,
    DeliveryMessage,
    DeliveryStatus,
    LifecycleEnvelope,
    WebhookEndpoint,
    job_webhook_id,
)
from imgflow.webhook_signing import delivery_headers, new_secret
from imgflow.webhook_store import TooManyWebhooksError, WebhookStore
from imgflow.webhook_targets import DeliveryFailedError, TargetRefusedError, parse_target, post

# Seconds before each retry: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about 27.5 h
# in all), as Standard Webhooks' reference service retries. template.yaml's WebhookDeliveryQueue has
# maxReceiveCount = DELIVERY_ATTEMPTS (a unit test ties the two).
RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
DELIVERY_ATTEMPTS = len(RETRY_SCHEDULE) + 1
MAX_REPLAY = 1000
_MESSAGE_NAMESPACE = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GAVE_UP = "gave_up"
    REFUSED = "refused"
    # The endpoint was deleted, or the delivery delivered already (a duplicate message).
    SKIPPED = "skipped"


def message_id(envelope: LifecycleEnvelope) -> str:
    detail = envelope.detail
    edit = detail.get("edit") or {}
    identity = f"{envelope.detail_type}\n{detail.get('job_id')}\n{detail.get('version')}\n{edit.get('edit_id', '')}"
    return f"msg_{uuid.uuid5(_MESSAGE_NAMESPACE, identity).hex}"


def payload(envelope: LifecycleEnvelope) -> str:
    """The body every endpoint gets: Standard Webhooks' recommended shape around the event's detail."""
    return json.dumps(
        {"type": envelope.detail_type, "timestamp": envelope.time, "data": envelope.detail}, separators=(",", ":")
    )


def encode_cursor(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(last_key, default=int).encode()).decode()


def decode_cursor(cursor: str, webhook_id: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidWebhookError("cursor: not a cursor of this list") from None
    if (
        not isinstance(key, dict)
        or set(key) != {"pk", "sk", "created_at"}
        or key["pk"] != f"webhook#{webhook_id}"
        or not isinstance(key["sk"], str)
        or not isinstance(key["created_at"], int)
        or not 0 <= key["created_at"] < 2**40
    ):
        raise InvalidWebhookError("cursor: not a cursor of this list")
    return key


@dataclass
class WebhookService:
    store: WebhookStore
    delivery_queue: TaskQueue
    settings: Settings
    clock: Callable[[], float] = field(default=time.time)

    def _now(self) -> int:
        return int(self.clock())

    # --- what owners do through the API ---------------------------------------------------------------

    def check_target(self, url: str, field: str = "url") -> None:
        try:
            parse_target(url, allow_private=self.settings.webhook_private_targets)
        except TargetRefusedError as refused:
            raise InvalidWebhookError(f"{field}: {refused}") from refused

    def notify_secret(self, owner: str) -> str:
        return self.store.owner_secret(owner, new_secret())

    def watch_jobs(self, owner: str, job_ids: list[str], url: str, expires_at: int) -> None:
        """Deliver each job's events to its notify_url too, signed with the owner's notify secret."""
        secret = self.notify_secret(owner)
        for job_id in job_ids:
            self.store.add_for_job(
                WebhookEndpoint(
                    webhook_id=job_webhook_id(job_id),
                    owner=owner,
                    url=url,
                    secret=secret,
                    created_at=self._now(),
                    job_id=job_id,
                    expires_at=expires_at,
                )
            )

    def register(self, owner: str, url: str, events: list[str] | None, description: str | None) -> WebhookEndpoint:
        self.check_target(url)
        endpoint = WebhookEndpoint(
            webhook_id=f"{REGISTERED_ID_PREFIX}{uuid.uuid4().hex}",
            owner=owner,
            url=url,
            events=sorted(set(events)) if events else None,
            description=description,
            secret=new_secret(),
            created_at=self._now(),
        )
        limit = self.settings.max_webhooks_per_owner
        try:
            self.store.add(endpoint, limit)
        except TooManyWebhooksError:
            raise WebhookLimitError(f"an owner may register at most {limit} webhooks; delete one first") from None
        return endpoint

    def endpoints(self, owner: str) -> list[WebhookEndpoint]:
        """The owner's registered webhooks (not their jobs' notify_urls), oldest first."""
        registered = self.store.endpoints(owner, REGISTERED_ID_PREFIX)
        return sorted(registered, key=lambda endpoint: endpoint.created_at)

    def endpoint(self, owner: str, webhook_id: str) -> WebhookEndpoint:
        endpoint = self.store.get(owner, webhook_id)
        if endpoint is None or endpoint.job_id is not None:
            raise WebhookNotFoundError(f"no webhook {webhook_id}")
        return endpoint

    def remove(self, owner: str, webhook_id: str) -> None:
        self.endpoint(owner, webhook_id)  # a job's notify_url goes with its job, not by this
        if not self.store.remove(owner, webhook_id):
            raise WebhookNotFoundError(f"no webhook {webhook_id}")

    def deliveries(
        self, owner: str, webhook_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Delivery], str | None]:
        self.endpoint(owner, webhook_id)
        after = decode_cursor(cursor, webhook_id) if cursor else None
        deliveries, last = self.store.deliveries(webhook_id, limit, after)
        return deliveries, encode_cursor(last) if last else None

    def replay(self, owner: str, webhook_id: str, since: int) -> tuple[int, bool]:
        """Deliver again, with their ids, the events recorded for the endpoint since `since` (at most
        MAX_REPLAY, oldest first); how many, and whether more remain."""
        self.endpoint(owner, webhook_id)
        found = self.store.oldest_deliveries_since(webhook_id, since, MAX_REPLAY + 1)
        for delivery in found[:MAX_REPLAY]:
            self.store.reopen(webhook_id, delivery.message_id, self._now())
            message = DeliveryMessage(webhook_id=webhook_id, owner=owner, message_id=delivery.message_id)
            self.delivery_queue.send(message)
        return min(len(found), MAX_REPLAY), len(found) > MAX_REPLAY

    # --- what the functions do ------------------------------------------------------------------------

    def fan_out(self, envelope: LifecycleEnvelope) -> int:
        """Record and queue one delivery per endpoint of the event's owner that wants it; how many."""
        owner, job_id = envelope.detail.get("owner"), envelope.detail.get("job_id")
        if envelope.source != SOURCE or not isinstance(owner, str) or not isinstance(job_id, str):
            return 0
        candidates = self.store.endpoints(owner, REGISTERED_ID_PREFIX)
        if notify := self.store.get(owner, job_webhook_id(job_id)):
            candidates.append(notify)
        wanted = [e for e in candidates if e.events is None or envelope.detail_type in e.events]
        now, queued = self._now(), 0
        for endpoint in wanted:
            delivery = Delivery(
                webhook_id=endpoint.webhook_id,
                message_id=message_id(envelope),
                type=envelope.detail_type,
                job_id=job_id,
                payload=payload(envelope),
                created_at=now,
                updated_at=now,
                expires_at=now + self.settings.job_retention_days * 86400,
            )
            if self.store.open_delivery(delivery):
                message = DeliveryMessage(webhook_id=endpoint.webhook_id, owner=owner, message_id=delivery.message_id)
                self.delivery_queue.send(message)
                queued += 1
        return queued

    def deliver(self, message: DeliveryMessage, attempt: int) -> DeliveryOutcome:
        """One attempt; what is to become of the message."""
        endpoint = self.store.get(message.owner, message.webhook_id)
        delivery = self.store.delivery(message.webhook_id, message.message_id)
        if endpoint is None or delivery is None or delivery.status is DeliveryStatus.SUCCEEDED:
            return DeliveryOutcome.SKIPPED
        now = self._now()
        body = delivery.payload.encode()
        code: int | None = None
        try:
            answer = post(
                endpoint.url,
                body,
                delivery_headers(endpoint.secret, delivery.message_id, now, body),
                timeout=self.settings.webhook_timeout_seconds,
                allow_private=self.settings.webhook_private_targets,
            )
        except TargetRefusedError as refused:
            self._record(message, DeliveryStatus.REFUSED, None, str(refused))
            return DeliveryOutcome.REFUSED
        except DeliveryFailedError as failure:
            error = str(failure)
        else:
            if 200 <= answer.status < 300:
                self._record(message, DeliveryStatus.SUCCEEDED, answer.status, None)
                return DeliveryOutcome.DELIVERED
            code, error = answer.status, f"answered {answer.status}: {answer.body[:200]}"
        final = attempt >= DELIVERY_ATTEMPTS
        self._record(message, DeliveryStatus.FAILED if final else DeliveryStatus.PENDING, code, error)
        return DeliveryOutcome.GAVE_UP if final else DeliveryOutcome.RETRY

    def _record(self, message: DeliveryMessage, status: DeliveryStatus, code: int | None, error: str | None) -> None:
        self.store.record_attempt(message.webhook_id, message.message_id, status, self._now(), code, error)


def retry_after(attempt: int) -> int:
    """Seconds until the attempt after `attempt` (1-based)."""
    return RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE)) - 1]
