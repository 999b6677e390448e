"""Request budgets: a token bucket for every ATR call, and a sliding window for PAT exchanges.

The bucket paces calls (a small burst, then the hourly rate); a sliding window of the last
hour's calls caps them, so no hour ever holds more calls than the budget, however they bunch.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Final

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
HOUR: Final = 3600.0
# Float slack: after sleeping exactly the computed delay a bucket may hold 0.99999999 tokens.
_EPSILON: Final = 1e-6


class TokenBucket:
    """At most `per_hour` takes in any hour: up to `burst` at once, else spread at the hourly rate."""

    def __init__(self, per_hour: int, *, burst: int | None = None, clock: Clock = time.monotonic) -> None:
        if per_hour < 1:
            raise ValueError("the request budget must be at least 1 an hour")
        burst = max(1, per_hour // 10) if burst is None else burst
        if not 1 <= burst <= per_hour:
            raise ValueError("burst must be between 1 and the hourly budget")
        self.per_hour = per_hour
        self.capacity = float(burst)
        self.rate = per_hour / HOUR
        self._window = SlidingWindow(per_hour, clock=clock)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until a token is free (0 when one is free now)."""
        self._refill()
        paced = 0.0 if self._tokens >= 1.0 - _EPSILON else (1.0 - self._tokens) / self.rate
        return max(paced, self._window.delay())

    def remaining(self) -> int:
        """Requests still allowed in the current sliding hour."""
        return max(0, self.per_hour - len(self._window))

    def try_take(self) -> bool:
        """Take a token if one is free now."""
        if self.delay() > 0:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        self._window.record()
        return True

    async def take(self, sleep: Sleep = asyncio.sleep) -> float:
        """Wait for a token and take it; returns the seconds waited. Callers queue in order."""
        waited = 0.0
        async with self._lock:
            while not self.try_take():
                wait = self.delay()
                waited += wait
                await sleep(wait)
        self.waited += waited
        return waited


class SlidingWindow:
    """At most `limit` events in any `window` seconds, counted exactly."""

    def __init__(self, limit: int, window: float = HOUR, *, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: collections.deque[float] = collections.deque()

    def _expire(self) -> float:
        now = self._clock()
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        return now

    def delay(self) -> float:
        """Seconds until another event is allowed (0 when allowed now)."""
        now = self._expire()
        if len(self._events) < self.limit:
            return 0.0
        return self._events[0] + self.window - now

    def record(self) -> None:
        """Count an event now."""
        self._events.append(self._expire())

    def __len__(self) -> int:
        self._expire()
        return len(self._events)
