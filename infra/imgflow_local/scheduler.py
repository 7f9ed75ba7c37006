"""Schedule event sources, as EventBridge Scheduler rules invoke them: `rate(...)` expressions run on a
timer with EventBridge's "Scheduled Event" payload. `cron(...)` is not emulated (said once at start)."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import UTC, datetime

from imgflow_local.functions import LocalFunction
from imgflow_local.stack import ScheduleSource

log = logging.getLogger(__name__)
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def rate_seconds(expression: str) -> int | None:
    match = re.fullmatch(r"rate\((\d+)\s+(minutes?|hours?|days?)\)", expression.strip())
    return int(match[1]) * _UNITS[match[2]] if match else None


class ScheduledInvoker:
    def __init__(
        self, source: ScheduleSource, function: LocalFunction, region: str, account_id: str, interval: int
    ) -> None:
        self._source = source
        self._function = function
        self._region = region
        self._account_id = account_id
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._function.invoke(self._event())
            except Exception:  # the runtime logs the failure; the next run comes anyway
                log.debug("scheduled run of %s failed", self._function.name)

    def _event(self) -> dict[str, object]:
        rule = f"{self._function.name}-{self._source.name}"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self._account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._region,
            "resources": [f"arn:aws:events:{self._region}:{self._account_id}:rule/{rule}"],
            "detail": {},
        }
