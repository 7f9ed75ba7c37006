"""The webhook routes of the HTTP API: an owner's endpoints, their delivery log, and replays."""

from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from callers import caller_of
from imgflow.api_models import (
    DeliveryList,
    DeliveryView,
    NotifySecret,
    ReplayAccepted,
    ReplayRequest,
    WebhookCreated,
    WebhookList,
    WebhookRequest,
    WebhookView,
)
from imgflow.api_responses import responses
from imgflow.observability import logger, metrics, tracer
from imgflow.services import webhook_service
from imgflow.uploads import iso

if TYPE_CHECKING:
    # Loaded with the webhook service, by the requests that use it: most of the api's cold starts never do.
    from imgflow.webhook_models import Delivery, WebhookEndpoint

router = APIGatewayHttpRouter()


def _owner() -> str:
    return caller_of(router.current_event).owner


def _view(endpoint: "WebhookEndpoint") -> WebhookView:
    return WebhookView(
        id=endpoint.webhook_id,
        url=endpoint.url,
        events=endpoint.events,
        description=endpoint.description,
        created_at=iso(endpoint.created_at),
    )


def _delivery_view(delivery: "Delivery") -> DeliveryView:
    return DeliveryView(
        message_id=delivery.message_id,
        type=delivery.type,
        job_id=delivery.job_id,
        status=delivery.status.value,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=iso(delivery.created_at),
        updated_at=iso(delivery.updated_at),
    )


@router.post("/webhooks", responses=responses(201, "The webhook and its signing secret", WebhookCreated, 400, 409))
@tracer.capture_method
def create_webhook(request: Annotated[WebhookRequest, Body()]) -> Response[WebhookCreated]:
    endpoint = webhook_service().register(_owner(), request.url, list(request.events or []), request.description)
    logger.info("webhook registered", extra={"webhook_id": endpoint.webhook_id})
    metrics.add_metric(name="WebhooksRegistered", unit="Count", value=1)
    body = WebhookCreated(**_view(endpoint).model_dump(), secret=endpoint.secret)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


@router.get("/webhooks/secret", responses=responses(200, "The caller's notify secret", NotifySecret))
@tracer.capture_method
def get_notify_secret() -> NotifySecret:
    """What verifies the deliveries to the notify_url of the caller's jobs (made on first use, then kept)."""
    return NotifySecret(secret=webhook_service().notify_secret(_owner()))


@router.get("/webhooks", responses=responses(200, "The caller's webhooks, oldest first", WebhookList))
@tracer.capture_method
def list_webhooks() -> WebhookList:
    return WebhookList(webhooks=[_view(endpoint) for endpoint in webhook_service().endpoints(_owner())])


@router.delete(
    "/webhooks/<webhook_id>", responses=responses(204, "Deleted: nothing more is delivered to it", None, 404)
)
@tracer.capture_method
def delete_webhook(webhook_id: str) -> Response[str]:
    webhook_service().remove(_owner(), webhook_id)
    logger.info("webhook deleted", extra={"webhook_id": webhook_id})
    return Response(status_code=204, body="")


@router.get(
    "/webhooks/<webhook_id>/deliveries",
    responses=responses(200, "The webhook's deliveries, newest first", DeliveryList, 400, 404),
)
@tracer.capture_method
def list_deliveries(
    webhook_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> DeliveryList:
    deliveries, next_cursor = webhook_service().deliveries(_owner(), webhook_id, limit, cursor)
    return DeliveryList(deliveries=[_delivery_view(d) for d in deliveries], next_cursor=next_cursor)


@router.post(
    "/webhooks/<webhook_id>/replay",
    responses=responses(202, "The events are queued to be delivered again", ReplayAccepted, 400, 404),
)
@tracer.capture_method
def replay_webhook(webhook_id: str, request: Annotated[ReplayRequest, Body()]) -> Response[ReplayAccepted]:
    replayed, more = webhook_service().replay(_owner(), webhook_id, request.since)
    logger.info("webhook replayed", extra={"webhook_id": webhook_id, "replayed": replayed})
    body = ReplayAccepted(replayed=replayed, more=more)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)
