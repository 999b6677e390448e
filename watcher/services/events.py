"""What the daemon did, as values: the demo prints them as a timeline, tests and reports read them."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any, Literal

Kind = Literal[
    "vote_tracked",
    "vote_closed",
    "vote_restarted",
    "message",
    "tally",
    "reminder_queued",
    "reminder_sent",
    "reminder_failed",
    "reminder_skipped",
    "reminder_dry_run",
    "not_reminded",
    "notice_queued",
    "notice_sent",
    "notice_failed",
    "notice_dry_run",
    "resolved",
    "resolved_elsewhere",
    "resolution_dry_run",
    "held",
    "resolve_failed",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, with the release it concerns and details as plain values."""

    kind: Kind
    at: datetime.datetime
    release: str = ""
    vote_seq: int | None = None
    text: str = ""
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)


Sink = Callable[[Event], None]


def ignore(_: Event) -> None:
    """A sink that drops events."""
