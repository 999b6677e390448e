"""Durations written as strings ("30s", "10m", "72h", "2d", "1h30m") to `datetime.timedelta` and back (pure)."""

from __future__ import annotations

import datetime
import re
from typing import Final

UNITS: Final = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_RANK: Final = {unit: rank for rank, unit in enumerate(UNITS)}
_PART_RE: Final = re.compile(r"(\d+)([a-z]+)")
_SHAPE_RE: Final = re.compile(r"(?:\d+[a-z]+)+")
# Far beyond any vote or interval, and far from the overflow of datetime arithmetic (a start plus a delay).
MAX: Final = datetime.timedelta(days=3650)
HINT: Final = 'write a whole number and a unit (w, d, h, m, s), largest first, such as "30s", "10m", "72h" or "1h30m"'


class DurationError(ValueError):
    """A duration string that cannot be read; the message quotes it and says what is expected."""


def parse(text: object) -> datetime.timedelta:
    """Read a duration such as "1h30m"; raise `DurationError` for anything else.

    Units are w, d, h, m and s; each may appear once, largest first. Spaces between the parts are allowed.
    """
    if not isinstance(text, str):
        raise DurationError(f"a duration must be a string, not {type(text).__name__}: {HINT}")
    compact = "".join(text.split()).lower()
    if not compact:
        raise DurationError(f"empty duration: {HINT}")
    if compact.isdigit():
        raise DurationError(f"duration {text!r} has no unit: {HINT}")
    if not _SHAPE_RE.fullmatch(compact):
        raise DurationError(f"invalid duration {text!r}: {HINT}")
    seconds = 0
    previous = -1
    for number, unit in _PART_RE.findall(compact):
        if unit not in UNITS:
            raise DurationError(f"invalid duration {text!r}: unknown unit {unit!r} (use w, d, h, m or s)")
        rank = _RANK[unit]
        if rank <= previous:
            raise DurationError(f"invalid duration {text!r}: each unit may appear once, largest first, as in '1h30m'")
        previous = rank
        seconds += int(number) * UNITS[unit]
    if seconds > MAX.total_seconds():
        raise DurationError(f"duration {text!r} is out of range: at most {MAX.days} days (10 years)")
    return datetime.timedelta(seconds=seconds)


def render(delta: datetime.timedelta) -> str:
    """Write a timedelta the way `parse` reads it ("1h30m"; "0s" for zero); sub-second parts are dropped."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        raise DurationError(f"negative duration: {delta}")
    if seconds == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
