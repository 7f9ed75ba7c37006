"""Webhooks: an owner's endpoints, the deliveries made to them, and the messages between the functions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from imgflow.models import Model, Owner

# Registered webhooks' ids start so; a job's notify_url is the endpoint `job_webhook_id(job_id)`. Kept apart
# in the keys, so that neither listing the one nor finding the other reads the owner's every endpoint.
REGISTERED_ID_PREFIX = "wh_"


def job_webhook_id(job_id: str) -> str:
    return f"job_{job_id}"


class WebhookEndpoint(Model):
    webhook_id: str
    owner: Owner
    url: str
    # Detail-types to deliver; None: every lifecycle event.
    events: list[str] | None = None
    description: str | None = None
    secret: str
    created_at: int
    # A job's notify_url: only that job's events, signed with the owner's notify secret, gone with the job.
    job_id: str | None = None
    expires_at: int | None = None


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    # Every attempt of the schedule failed: the message waits in the dead-letter queue.
    FAILED = "failed"
    # The target can never receive it (a private address on AWS): not retried.
    REFUSED = "refused"


class Delivery(Model):
    """One event for one endpoint, however many attempts and replays it takes."""

    webhook_id: str
    message_id: str
    type: str
    job_id: str
    payload: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: int
    updated_at: int
    expires_at: int


class DeliveryMessage(Model):
    """WebhookDeliveryQueue: deliver one recorded event to one endpoint."""

    webhook_id: str
    owner: Owner
    message_id: str


class LifecycleEnvelope(Model):
    """A lifecycle event as EventBridge hands it to a queue (the fields the fan-out reads)."""

    id: str
    detail_type: str = Field(alias="detail-type")
    source: str
    time: str
    detail: dict[str, Any]
