"""The one wall clock: what every edge reads for "now", in UTC, and the type of a clock it may be given.

Anything that keeps time takes a `Clock` (default `utcnow`), so the demo runs the daemon on a scaled
clock and tests on a manual one. Leases, scheduler wake-ups and store timestamps read real time.
Rate limits and timeouts count seconds on `time.monotonic` instead (a different clock: never steps).
"""

import datetime
from collections.abc import Callable

Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    """The wall clock, in UTC (an edge reads it; the core is handed times)."""
    return datetime.datetime.now(datetime.UTC)
