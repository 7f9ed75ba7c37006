"""`imgflow events`: lifecycle events as they happen, from the running local runtime or a deployed bus.

Locally the runtime already keeps every event it saw on its bus (`/_local/events`); the tail reads what
is new there. For a deployed stack (`--bus NAME`) it makes a temporary queue and a rule on the bus that
targets it, reads the queue, and removes both when it stops (Ctrl-C included).

Events of one job are printed in `version` order: each read's batch is sorted, and an event is held back
for a moment (`settle`) in case one with a smaller version of the same job is still on its way.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

LOCAL_EVENTS_PATH = "/_local/events"


@dataclass(frozen=True)
class EventFilter:
    job_id: str | None = None
    types: frozenset[str] = frozenset()

    def matches(self, event: dict[str, Any]) -> bool:
        detail = event.get("detail", {})
        if self.job_id is not None and detail.get("job_id") != self.job_id:
            return False
        return not self.types or event.get("detail-type") in self.types

    def pattern(self) -> dict[str, Any]:
        """The EventBridge pattern of this filter, so that a deployed bus sends only what is asked."""
        pattern: dict[str, Any] = {"source": ["imgflow"]}
        if self.types:
            pattern["detail-type"] = sorted(self.types)
        if self.job_id is not None:
            pattern["detail"] = {"job_id": [self.job_id]}
        return pattern


def _order(event: dict[str, Any]) -> tuple[str, int]:
    detail = event.get("detail", {})
    return str(detail.get("job_id", "")), int(detail.get("version", 0))


@dataclass
class Reorderer:
    """Releases events once they have waited `settle` seconds, each job's in version order."""

    settle: float
    clock: Callable[[], float] = time.monotonic
    _held: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def add(self, events: list[dict[str, Any]]) -> None:
        now = self.clock()
        self._held += [(now, event) for event in events]

    def release(self, everything: bool = False) -> list[dict[str, Any]]:
        now = self.clock()
        ready_jobs = {_order(event)[0] for arrived, event in self._held if everything or now - arrived >= self.settle}
        # A job's events go out together, so a later, smaller version is never printed after a larger one.
        ready = sorted((event for _, event in self._held if _order(event)[0] in ready_jobs), key=_order)
        self._held = [(arrived, event) for arrived, event in self._held if _order(event)[0] not in ready_jobs]
        return ready


def describe(event: dict[str, Any]) -> str:
    """One line a person reads: time, type, job, version, and what matters of the detail."""
    detail = event.get("detail", {})
    parts = [event.get("time", ""), f"{event.get('detail-type', '?'):<15}", str(detail.get("job_id", "-"))]
    parts.append(f"v{detail.get('version', '?')}")
    if detail.get("error"):
        parts.append(f"{detail['error'].get('code')}: {detail['error'].get('message')}")
    elif detail.get("edit"):
        parts.append(f"edit {detail['edit'].get('edit_id')} ({detail['edit'].get('kind')})")
    elif detail.get("image"):
        image = detail["image"]
        parts.append(f"{image.get('format')} {image.get('width')}x{image.get('height')}")
    return "  ".join(parts)


class LocalSource:
    """What the running local runtime recorded on its bus, read from where the last read stopped."""

    def __init__(self, api_url: str, *, from_start: bool, timeout: float = 10) -> None:
        self._url = api_url.rstrip("/") + LOCAL_EVENTS_PATH
        self._timeout = timeout
        self._seen = 0 if from_start else len(self._read(0))

    def _read(self, after: int) -> list[dict[str, Any]]:
        response = requests.get(self._url, params={"after": after}, timeout=self._timeout)
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()
        return events

    def poll(self) -> list[dict[str, Any]]:
        events = self._read(self._seen)
        self._seen += len(events)
        return events

    def close(self) -> None:
        pass


class BusSource:
    """A deployed stack's bus, through a temporary rule and queue that `close` removes."""

    def __init__(self, session: Any, bus: str, event_filter: EventFilter) -> None:
        self._sqs, self._events = session.client("sqs"), session.client("events")
        self._bus = bus
        name = f"imgflow-tail-{uuid.uuid4().hex[:12]}"
        self._rule = name
        self._queue_url = self._sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "3600"})[
            "QueueUrl"
        ]
        try:
            queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            rule_arn = self._events.put_rule(
                Name=name, EventBusName=bus, EventPattern=json.dumps(event_filter.pattern())
            )["RuleArn"]
            policy = {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": queue_arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                    }
                ]
            }
            self._sqs.set_queue_attributes(QueueUrl=self._queue_url, Attributes={"Policy": json.dumps(policy)})
            self._events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "tail", "Arn": queue_arn}])
        except Exception:
            self.close()
            raise

    def poll(self) -> list[dict[str, Any]]:
        messages = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]

    def close(self) -> None:
        """Remove the rule and the queue; what is already gone is no error."""
        for remove in (
            lambda: self._events.remove_targets(Rule=self._rule, EventBusName=self._bus, Ids=["tail"]),
            lambda: self._events.delete_rule(Name=self._rule, EventBusName=self._bus),
            lambda: self._sqs.delete_queue(QueueUrl=self._queue_url),
        ):
            # Best effort on the way out: each step runs whatever the one before did.
            with contextlib.suppress(Exception):
                remove()


def tail(
    source: LocalSource | BusSource,
    event_filter: EventFilter,
    *,
    follow: bool,
    settle: float = 1.0,
    interval: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """The matching events, in order; without `follow`, those there are now and then the end."""
    reorder = Reorderer(settle)
    try:
        while True:
            reorder.add([event for event in source.poll() if event_filter.matches(event)])
            yield from reorder.release(everything=not follow)
            if not follow or stop():
                return
            time.sleep(interval)
    finally:
        source.close()
