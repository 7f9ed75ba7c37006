"""The webhooks table: owners' endpoints and each endpoint's delivery log.

- an endpoint: `pk` = `owner#<owner>`, `sk` = `webhook#<id>`; the owner's count of endpoints beside them
  (`sk` = `count`), so that registering past the limit is refused atomically;
- a delivery: `pk` = `webhook#<id>`, `sk` = `delivery#<message id>` (one per event and endpoint, however
  often the event is published), read newest first through the `deliveries-by-time` index.
Deliveries expire with `expires_at` (DynamoDB TTL).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgflow.webhook_models import Delivery, DeliveryStatus, WebhookEndpoint

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_BY_TIME = "deliveries-by-time"


class TooManyWebhooksError(Exception):
    pass


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _owner_key(owner: str) -> str:
    return f"owner#{owner}"


def _endpoint_key(webhook_id: str) -> str:
    return f"webhook#{webhook_id}"


def _delivery_key(message_id: str) -> str:
    return f"delivery#{message_id}"


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's Decimals as the ints they are."""
    return {key: int(value) if isinstance(value, Decimal) else value for key, value in item.items()}


class WebhookStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    # --- endpoints ------------------------------------------------------------------------------------

    def add(self, endpoint: WebhookEndpoint, max_per_owner: int) -> None:
        """Store a new endpoint, unless its owner has `max_per_owner` already (TooManyWebhooksError)."""
        try:
            self._table.update_item(
                Key={"pk": _owner_key(endpoint.owner), "sk": "count"},
                UpdateExpression="ADD endpoints :one",
                ConditionExpression="attribute_not_exists(endpoints) OR endpoints < :max",
                ExpressionAttributeValues={":one": 1, ":max": max_per_owner},
            )
        except ClientError as error:
            if _condition_failed(error):
                raise TooManyWebhooksError from error
            raise
        item = {"pk": _owner_key(endpoint.owner), "sk": _endpoint_key(endpoint.webhook_id)}
        self._table.put_item(Item={**item, **endpoint.model_dump(mode="json", exclude_none=True)})

    def add_for_job(self, endpoint: WebhookEndpoint) -> None:
        """Store a job's notify_url endpoint: outside the owner's count, expiring with the job."""
        item = {"pk": _owner_key(endpoint.owner), "sk": _endpoint_key(endpoint.webhook_id)}
        self._table.put_item(Item={**item, **endpoint.model_dump(mode="json", exclude_none=True)})

    def owner_secret(self, owner: str, new_secret: str) -> str:
        """The owner's notify secret: `new_secret` the first time, the same one ever after."""
        key = {"pk": _owner_key(owner), "sk": "notify-secret"}
        if item := self._table.get_item(Key=key, ConsistentRead=True).get("Item"):
            return str(item["secret"])
        try:
            self._table.put_item(Item={**key, "secret": new_secret}, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if not _condition_failed(error):
                raise
        return str(self._table.get_item(Key=key, ConsistentRead=True)["Item"]["secret"])

    def get(self, owner: str, webhook_id: str) -> WebhookEndpoint | None:
        key = {"pk": _owner_key(owner), "sk": _endpoint_key(webhook_id)}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        return WebhookEndpoint.model_validate(_plain(item)) if item else None

    def endpoints(self, owner: str, id_prefix: str) -> list[WebhookEndpoint]:
        """The owner's endpoints whose ids start with `id_prefix` (a bounded number: the registered ones)."""
        arguments: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _owner_key(owner), ":prefix": _endpoint_key(id_prefix)},
            "ConsistentRead": True,
        }
        endpoints: list[WebhookEndpoint] = []
        while True:
            response = self._table.query(**arguments)
            endpoints += [WebhookEndpoint.model_validate(_plain(item)) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return endpoints
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def remove(self, owner: str, webhook_id: str) -> bool:
        """Remove an endpoint; False when the owner has no such endpoint (its deliveries expire by TTL)."""
        try:
            self._table.delete_item(
                Key={"pk": _owner_key(owner), "sk": _endpoint_key(webhook_id)},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        self._table.update_item(
            Key={"pk": _owner_key(owner), "sk": "count"},
            UpdateExpression="ADD endpoints :minus_one",
            ExpressionAttributeValues={":minus_one": -1},
        )
        return True

    # --- deliveries -----------------------------------------------------------------------------------

    def open_delivery(self, delivery: Delivery) -> bool:
        """Record a delivery to make; False when it is recorded already and has been tried (a duplicate
        event). One recorded but never tried is True again: the fan-out that recorded it may have failed
        before it sent the message."""
        item = {"pk": _endpoint_key(delivery.webhook_id), "sk": _delivery_key(delivery.message_id)}
        try:
            self._table.put_item(
                Item={**item, **delivery.model_dump(mode="json", exclude_none=True)},
                ConditionExpression="attribute_not_exists(pk) OR attempts = :untried",
                ExpressionAttributeValues={":untried": 0},
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def delivery(self, webhook_id: str, message_id: str) -> Delivery | None:
        key = {"pk": _endpoint_key(webhook_id), "sk": _delivery_key(message_id)}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        return Delivery.model_validate(_plain(item)) if item else None

    def record_attempt(
        self, webhook_id: str, message_id: str, status: DeliveryStatus, now: int, code: int | None, error: str | None
    ) -> None:
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": status.value, ":now": now, ":one": 1}
        sets = ["#status = :status", "updated_at = :now"]
        removes = []
        for field, value in (("last_status_code", code), ("last_error", error)):
            if value is None:
                removes.append(field)
            else:
                sets.append(f"{field} = :{field}")
                values[f":{field}"] = value
        expression = f"SET {', '.join(sets)} ADD attempts :one" + (f" REMOVE {', '.join(removes)}" if removes else "")
        self._table.update_item(
            Key={"pk": _endpoint_key(webhook_id), "sk": _delivery_key(message_id)},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def reopen(self, webhook_id: str, message_id: str, now: int) -> None:
        self._table.update_item(
            Key={"pk": _endpoint_key(webhook_id), "sk": _delivery_key(message_id)},
            UpdateExpression="SET #status = :pending, updated_at = :now",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": DeliveryStatus.PENDING.value, ":now": now},
        )

    def deliveries(
        self,
        webhook_id: str,
        limit: int,
        after: dict[str, Any] | None = None,
        since: int | None = None,
        *,
        oldest_first: bool = False,
    ) -> tuple[list[Delivery], dict[str, Any] | None]:
        """A page of an endpoint's deliveries, newest first unless asked (from `since`, if given)."""
        condition = "pk = :pk" + (" AND created_at >= :since" if since is not None else "")
        values: dict[str, Any] = {":pk": _endpoint_key(webhook_id)}
        if since is not None:
            values[":since"] = since
        kwargs: dict[str, Any] = {
            "IndexName": _BY_TIME,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": oldest_first,
            "Limit": limit,
        }
        if after:
            kwargs["ExclusiveStartKey"] = after
        response = self._table.query(**kwargs)
        deliveries = [Delivery.model_validate(_plain(item)) for item in response.get("Items", [])]
        return deliveries, response.get("LastEvaluatedKey")

    def oldest_deliveries_since(self, webhook_id: str, since: int, limit: int) -> list[Delivery]:
        found: list[Delivery] = []
        after: dict[str, Any] | None = None
        while len(found) < limit:
            page, after = self.deliveries(webhook_id, limit - len(found), after, since, oldest_first=True)
            found += page
            if after is None:
                break
        return found
