"""API Gateway's route throttling on this machine: a token bucket per route, as a stage's
`DefaultRouteSettings` (`ThrottlingRateLimit`, `ThrottlingBurstLimit`) sets it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Holds up to `burst` tokens and gains `rate` a second; a request takes one or is throttled."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        # Requests arrive on the server's threads at once.
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self._burst), self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True
