"""A TTL cache for ATR facts that change rarely (projects, policies, committees).

Stale entries are refreshed at most a few per poll cycle (a shared `RefreshLimit`), so that many
entries expiring together never turn into a burst of requests; until its turn, a stale entry is
served as it is. When a refresh fails for a passing reason (5xx, timeout, 429) the stale value is
kept; a 404 drops the entry and raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import structlog

import watcher.atr.budget as budget
import watcher.atr.errors as errors

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = structlog.get_logger("watcher.atr.cache")


class RefreshLimit:
    """How many stale entries may be refreshed in the current cycle (None: no limit)."""

    def __init__(self, per_cycle: int | None) -> None:
        self.per_cycle = per_cycle
        self.left = per_cycle

    def new_cycle(self) -> None:
        """Start a poll cycle: the allowance is full again."""
        self.left = self.per_cycle

    def take(self) -> bool:
        """Use one refresh if any is left."""
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    expires: float


class Cache(Generic[K, V]):
    """Values by key, fetched on first use and refreshed after `ttl` seconds."""

    def __init__(self, ttl: float, *, clock: budget.Clock, limit: RefreshLimit | None = None) -> None:
        self.ttl = ttl
        self._clock = clock
        self._limit = limit or RefreshLimit(None)
        self._entries: dict[K, _Entry[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: K) -> V | None:
        """The cached value, fresh or stale, without fetching."""
        entry = self._entries.get(key)
        return entry.value if entry else None

    def forget(self, key: K) -> None:
        """Drop a value, so the next `get` fetches it."""
        self._entries.pop(key, None)

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The value: cached if fresh (or stale and out of refreshes this cycle), else fetched."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and (now < entry.expires or not self._limit.take()):
            return entry.value
        try:
            value = await fetch()
        except errors.NotFoundError:
            self._entries.pop(key, None)
            raise
        except (errors.ServerError, errors.TransportError, errors.RateLimitedError) as exc:
            if entry is None:
                raise
            log.warning("atr.cache_stale", key=str(key), error=exc.error)
            return entry.value
        self._entries[key] = _Entry(value, now + self.ttl)
        return value
