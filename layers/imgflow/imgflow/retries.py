"""How long a retried message waits before it comes back: what the failing side asked for, else a
jittered exponential backoff. Retries go through the queue (message visibility), never a sleep."""

from __future__ import annotations

import random
from collections.abc import Callable

SQS_MAX_VISIBILITY = 12 * 3600


def retry_delay(
    attempt: int,
    retry_after: float | None,
    *,
    base: float,
    cap: float,
    random_fraction: Callable[[], float] = random.random,
) -> int:
    """Seconds before attempt `attempt + 1`: full jitter on base * 2^(attempt-1), bounded by `cap`; a
    server-given `retry_after` is honoured as a floor (plus a little jitter so retries do not align)."""
    backoff = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = backoff / 2 + random_fraction() * backoff / 2
    if retry_after is not None:
        delay = max(delay, retry_after + random_fraction() * min(retry_after, base) / 4)
    return max(1, min(round(delay), SQS_MAX_VISIBILITY))
