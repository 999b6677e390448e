"""Clocks the sandboxes and their clients share, so that a test or the demo controls time.

A clock is any `Callable[[], float]` giving Unix seconds (like `time.time`). `ManualClock` moves
only when told (tests); `ScaledClock` runs faster than real time (the demo: votes end in seconds).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Final

MINUTE: Final = 60.0
HOUR: Final = 3600.0


class ManualClock:
    """A clock that moves only by `advance`, or by `sleep`, which advances it instead of waiting."""

    def __init__(self, start: float | datetime.datetime) -> None:
        self._now = start.timestamp() if isinstance(start, datetime.datetime) else float(start)
        self.slept = 0.0

    def __call__(self) -> float:
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self.now().isoformat()})"

    def now(self) -> datetime.datetime:
        """The clock's time as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self._now, datetime.UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance by `seconds` and yield once to the event loop (a drop-in for asyncio.sleep)."""
        seconds = max(0.0, seconds)
        self.slept += seconds
        self._now += seconds
        await asyncio.sleep(0)


class ScaledClock:
    """Time that starts at `start` and runs `speed` times faster than the real clock."""

    def __init__(self, start: float | datetime.datetime, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start.timestamp() if isinstance(start, datetime.datetime) else float(start)
        self._origin = time.monotonic()
        self.speed = speed

    def __call__(self) -> float:
        return self._start + (time.monotonic() - self._origin) * self.speed

    def now(self) -> datetime.datetime:
        """The clock's time as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self(), datetime.UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        await asyncio.sleep(max(0.0, seconds) / self.speed)


def utc(seconds: float) -> datetime.datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
