"""Quotas: what one owner, and everyone together, may ask for in a fixed window of time.

Windows are fixed UTC clock windows (an hour from :00, a day from 00:00 UTC), so a client can tell
when one resets. Each counter is an item of JobsTable (`pk` = `quota#<scope>#<name>#<window start>`,
removed by TTL a day after its window ends). Each counter is charged with a conditional `ADD` (there is
no read-then-write, so concurrent requests can never overshoot a limit); when one refuses, what the
request charged before it is given back, so all of a request's counters move or none does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import ClientError

from imgflow.errors import ImgflowError
from imgflow.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_HOUR, _DAY = 3600, 86400
# Everyone's counters share one owner-like scope; a global quota's name is never an owner quota's, so
# no owner (whatever its `sub`) can reach a global counter.
_EVERYONE = "#all"


@dataclass(frozen=True)
class Quota:
    """One limit: `limit` units of something per window of `window` seconds, per owner or for everyone."""

    name: str  # as the RateLimit-Policy header names it
    limit: int
    window: int
    per_owner: bool = True


@dataclass(frozen=True)
class QuotaUse:
    quota: Quota
    used: int
    resets_at: int  # epoch seconds

    @property
    def remaining(self) -> int:
        return max(0, self.quota.limit - self.used)


class QuotaExceededError(ImgflowError):
    def __init__(self, message: str, retry_after: int, uses: Sequence[QuotaUse]) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.uses = list(uses)


@dataclass(frozen=True)
class Quotas:
    uploads_per_hour: Quota
    uploads_per_day: Quota
    upload_bytes_per_day: Quota
    edits_per_hour: Quota
    ai_edits_per_day: Quota
    ai_edits_total_per_day: Quota

    @classmethod
    def from_settings(cls, settings: Settings) -> Quotas:
        return cls(
            uploads_per_hour=Quota("uploads-hour", settings.uploads_per_hour_per_owner, _HOUR),
            uploads_per_day=Quota("uploads-day", settings.uploads_per_day_per_owner, _DAY),
            upload_bytes_per_day=Quota("upload-bytes-day", settings.upload_bytes_per_day_per_owner, _DAY),
            edits_per_hour=Quota("edits-hour", settings.edits_per_hour_per_owner, _HOUR),
            ai_edits_per_day=Quota("ai-edits-day", settings.ai_edits_per_day_per_owner, _DAY),
            ai_edits_total_per_day=Quota("ai-edits-all-day", settings.ai_edits_per_day_total, _DAY, per_owner=False),
        )

    def all(self) -> list[Quota]:
        return [
            self.uploads_per_hour,
            self.uploads_per_day,
            self.upload_bytes_per_day,
            self.edits_per_hour,
            self.ai_edits_per_day,
            self.ai_edits_total_per_day,
        ]

    def for_uploads(self, count: int, total_bytes: int, edits: int, ai_edits: int) -> dict[Quota, int]:
        """What creating `count` uploads (announcing `total_bytes`, asking `edits` edits of which `ai_edits`
        are AI edits) costs."""
        charges = {self.uploads_per_hour: count, self.uploads_per_day: count, self.upload_bytes_per_day: total_bytes}
        return charges | self.for_edits(edits, ai_edits)

    def for_edits(self, edits: int, ai_edits: int) -> dict[Quota, int]:
        """What `edits` edits cost, `ai_edits` of them through Gemini: every edit is work on the edit queue,
        an AI edit is money too."""
        charges = {self.edits_per_hour: edits} if edits else {}
        if ai_edits:
            charges |= {self.ai_edits_per_day: ai_edits, self.ai_edits_total_per_day: ai_edits}
        return charges


class QuotaStore:
    """The counters, in JobsTable."""

    def __init__(self, table: Table, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def charge(self, owner: str, charges: dict[Quota, int]) -> list[QuotaUse]:
        """Charge every counter at once, or none: QuotaExceededError names the first limit in the way."""
        now = int(self._clock())
        if not charges:
            return []
        charged: list[tuple[dict[str, Any], int]] = []
        uses: list[QuotaUse] = []
        try:
            for quota, amount in charges.items():
                start = now - now % quota.window
                key = {"pk": self._key(owner, quota, start)}
                response = self._table.update_item(
                    Key=key,
                    UpdateExpression="ADD #used :amount SET #expires = :expires",
                    # A charge bigger than the whole limit fails on an empty counter too.
                    ConditionExpression="(attribute_not_exists(#used) AND :amount <= :limit) OR #used <= :room",
                    ExpressionAttributeNames={"#used": "used", "#expires": "expires_at"},
                    ExpressionAttributeValues={
                        ":amount": amount,
                        ":limit": quota.limit,
                        ":room": quota.limit - amount,
                        ":expires": start + quota.window + _DAY,
                    },
                    # The counter as this charge left it: the use reported, with no read after the charges.
                    ReturnValues="UPDATED_NEW",
                )
                charged.append((key, amount))
                counter: dict[str, Any] = response["Attributes"]
                uses.append(QuotaUse(quota, int(counter["used"]), start + quota.window))
        except ClientError as error:
            # Give back what this request charged before the counter that refused it: all move, or none.
            for key, amount in charged:
                self._table.update_item(
                    Key=key,
                    UpdateExpression="ADD #used :refund",
                    ExpressionAttributeNames={"#used": "used"},
                    ExpressionAttributeValues={":refund": -amount},
                )
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            current = self.usage(owner, list(charges))
            blocked = [use for use in current if use.used + charges[use.quota] > use.quota.limit]
            self._refuse(charges, current, blocked or current, now, error)
        return uses

    @staticmethod
    def _refuse(
        charges: dict[Quota, int], uses: list[QuotaUse], blocked: list[QuotaUse], now: int, error: Exception
    ) -> NoReturn:
        first = min(blocked, key=lambda use: use.resets_at)
        raise QuotaExceededError(
            f"quota {first.quota.name} exceeded: {first.used} of {first.quota.limit} used, "
            f"{charges[first.quota]} more asked; it resets at {_iso(first.resets_at)}",
            retry_after=max(1, max(use.resets_at for use in blocked) - now),
            uses=uses,
        ) from error

    def usage(self, owner: str, quotas: Sequence[Quota]) -> list[QuotaUse]:
        now = int(self._clock())
        starts = {quota: now - now % quota.window for quota in quotas}
        keys = {quota: self._key(owner, quota, start) for quota, start in starts.items()}
        response = self._table.meta.client.batch_get_item(
            RequestItems={
                self._table.name: {
                    "Keys": [{"pk": key} for key in dict.fromkeys(keys.values())],
                    "ConsistentRead": True,
                }
            }
        )
        items: list[Any] = response["Responses"].get(self._table.name, [])
        found: dict[str, Any] = {item["pk"]: item for item in items}
        return [
            QuotaUse(quota, int(found.get(keys[quota], {}).get("used", 0)), starts[quota] + quota.window)
            for quota in quotas
        ]

    @staticmethod
    def _key(owner: str, quota: Quota, start: int) -> str:
        return f"quota#{owner if quota.per_owner else _EVERYONE}#{quota.name}#{start}"


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def ratelimit_headers(uses: Sequence[QuotaUse], now: int) -> dict[str, str]:
    """The IETF RateLimit and RateLimit-Policy fields (draft-ietf-httpapi-ratelimit-headers) of `uses`."""
    if not uses:
        return {}
    policy = ", ".join(f'"{use.quota.name}";q={use.quota.limit};w={use.quota.window}' for use in uses)
    limits = ", ".join(f'"{use.quota.name}";r={use.remaining};t={max(0, use.resets_at - now)}' for use in uses)
    return {"RateLimit-Policy": policy, "RateLimit": limits}
