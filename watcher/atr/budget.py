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


class Gcra:
    """`count` requests per `period` as ATR's limiter counts them (GCRA, reference/atr.md §10.3):
    a burst up to `count`, then one request per `period / count`."""

    def __init__(self, count: int, period: float, *, clock: Clock = time.monotonic) -> None:
        if count < 1:
            raise ValueError("a rate limit must allow at least one request")
        self.count = count
        self.period = period
        self.interval = period / count
        self._clock = clock
        self._tat = clock()

    def delay(self) -> float:
        """Seconds until a request is admitted (0: now)."""
        now = self._clock()
        separation = max(self._tat, now) - now
        return max(0.0, separation - (self.period - self.interval))

    def record(self) -> None:
        """Count a request now."""
        now = self._clock()
        self._tat = max(self._tat, now) + self.interval

    def hold(self, seconds: float) -> None:
        """ATR said this bucket is empty: admit nothing for `seconds`."""
        now = self._clock()
        self._tat = max(self._tat, now + seconds + self.period - self.interval)

    def remaining(self) -> int:
        """Requests admitted at once from now."""
        now = self._clock()
        return max(0, int((self.period - (max(self._tat, now) - now)) / self.interval + _EPSILON))


class RouteBudget:
    """ATR's limits, kept on the client's side: each route has its own buckets (§10.3).

    Every route: `per_minute` a minute (ATR's limiter: GCRA, 100) and at most `per_hour` in any
    hour (ATR: 1000; the operator's `request_budget`, counted exactly by a sliding window), plus a
    route's own limit (vote/resolve 10/h, vote/cast 60/h; PAT exchanges are counted by
    `watcher.atr.tokens`). Requests to one route never wait for another route's.
    """

    def __init__(
        self,
        per_hour: int,
        *,
        per_minute: int = 90,
        own: dict[str, int] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if per_hour < 1:
            raise ValueError("the request budget must be at least 1 an hour")
        self.per_hour = per_hour
        self.per_minute = min(per_minute, per_hour)
        self._own = dict(own or {})
        self._clock = clock
        self._minute: dict[str, Gcra] = {}
        self._hour: dict[str, SlidingWindow] = {}
        self._extra: dict[str, Gcra] = {}
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def _buckets(self, route: str) -> tuple[Gcra, SlidingWindow, Gcra | None]:
        if route not in self._minute:
            self._minute[route] = Gcra(self.per_minute, 60.0, clock=self._clock)
            self._hour[route] = SlidingWindow(self.per_hour, clock=self._clock)
            if route in self._own:
                self._extra[route] = Gcra(self._own[route], HOUR, clock=self._clock)
        return self._minute[route], self._hour[route], self._extra.get(route)

    def delay(self, route: str) -> float:
        """Seconds until `route` admits a request."""
        minute, hour, extra = self._buckets(route)
        return max(minute.delay(), hour.delay(), extra.delay() if extra is not None else 0.0)

    async def take(self, route: str, sleep: Sleep = asyncio.sleep) -> float:
        """Wait until `route` admits a request and count it; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            while (wait := self.delay(route)) > _EPSILON:
                waited += wait
                await sleep(wait)
            minute, hour, extra = self._buckets(route)
            minute.record()
            hour.record()
            if extra is not None:
                extra.record()
        self.waited += waited
        return waited

    def observe(self, route: str, remaining: int | None, limit: int | None) -> None:
        """ATR's `RateLimit-Remaining`/`-Limit` (its per-minute bucket): when it is empty, wait for the next slot."""
        if remaining is None or limit is None or remaining > 0 or limit < 1:
            return
        self._buckets(route)[0].hold(60.0 / limit)

    def hold(self, route: str, seconds: float) -> None:
        """A 429 said `retry_after`: the route admits nothing until then."""
        self._buckets(route)[0].hold(seconds)

    def remaining(self) -> int:
        """Requests left in the last hour's budget on the busiest route (the whole budget before any)."""
        if not self._hour:
            return self.per_hour
        return min(max(0, self.per_hour - len(window)) for window in self._hour.values())
