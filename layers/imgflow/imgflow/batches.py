"""SQS batches that end in time. When Lambda times an invocation out, every record of its batch comes
back, and each has spent one of its `maxReceiveCount` deliveries: one slow upload would take up to nine
others towards the dead-letter queue. So a record handler does not start a record when too little of
the invocation's time is left for one: that record is reported as a batch item failure instead, and
comes back with the next delivery without having run at all.
"""

from __future__ import annotations

from typing import Protocol


class NoTimeLeftError(Exception):
    """Not started: the invocation has too little time left for one more record."""


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def require_time(context: RemainingTime, needed_ms: int) -> None:
    """Raise NoTimeLeftError unless `needed_ms` are left: less is likely to be cut short by the timeout."""
    remaining = context.get_remaining_time_in_millis()
    if remaining < needed_ms:
        raise NoTimeLeftError(f"{remaining} ms left of the invocation, {needed_ms} ms needed: left for the next one")
