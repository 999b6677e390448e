"""A tracked vote's lifecycle: its statuses and the events that move it between them (pure).

One table of allowed transitions, keyed by (status, event); `next_status` answers the status an event
leads to, or raises `LifecycleError` for a move the table does not allow. The store keeps a status as
its string value (`open`, `closed`, ...), so the stored values are those of the enum.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final


class VoteStatus(enum.StrEnum):
    """Where a tracked vote is; only an `open` vote is watched (tallied, reminded, resolved)."""

    OPEN = "open"
    """Running in ATR: its thread is tallied, reminders and resolution are decided."""
    CLOSED = "closed"
    """ATR no longer lists it as a running vote (resolved by anyone, cancelled, or gone)."""
    REPLACED = "replaced"
    """The release started a new vote (a new vote_seq); the new one is tracked in its place."""
    DONE = "done"
    """This watcher has nothing left to do for it (restarted or ended elsewhere; not its vote to resolve)."""
    RESOLVED = "resolved"
    """Resolved: this watcher signalled it through ATR's API, or found it resolved when it tried."""


class VoteEvent(enum.StrEnum):
    """What happens to a tracked vote."""

    TRACK = "track"
    """ATR lists it as running (discovery found it, or found it again after a restart)."""
    CLOSE = "close"
    """ATR no longer lists it as running."""
    REPLACE = "replace"
    """ATR lists a newer vote_seq for the same release."""
    DROP = "drop"
    """The resolution rule has no more to do with it (`decide` answered `drop` or `never`)."""
    RESOLVE = "resolve"
    """Its resolution is signalled, or ATR shows it resolved already."""


class LifecycleError(ValueError):
    """An event the table does not allow in the vote's status."""

    def __init__(self, status: VoteStatus, event: VoteEvent) -> None:
        super().__init__(f"a vote that is {status} cannot {event}")
        self.status = status
        self.event = event


INITIAL: Final = VoteStatus.OPEN
"""The status of a vote when it is first tracked."""

_ALL: Final = tuple(VoteStatus)

# ATR is the truth about whether a vote runs: whatever this watcher last decided, a vote ATR lists as
# running is open again (the store's upsert writes it so), one it no longer lists is closed, and one a
# newer vote_seq follows is replaced. This watcher's own decisions (drop, resolve) only end an open vote.
TRANSITIONS: Final[Mapping[tuple[VoteStatus, VoteEvent], VoteStatus]] = {
    **{(status, VoteEvent.TRACK): VoteStatus.OPEN for status in _ALL},
    **{(status, VoteEvent.CLOSE): VoteStatus.CLOSED for status in _ALL},
    **{(status, VoteEvent.REPLACE): VoteStatus.REPLACED for status in _ALL},
    (VoteStatus.OPEN, VoteEvent.DROP): VoteStatus.DONE,
    (VoteStatus.OPEN, VoteEvent.RESOLVE): VoteStatus.RESOLVED,
}

# Why a mail still waiting for a vote that ended this way is not sent (the outbox's `skipped` reason).
SKIP_REASONS: Final[Mapping[VoteStatus, str]] = {
    VoteStatus.CLOSED: "vote closed",
    VoteStatus.REPLACED: "vote restarted",
}


def next_status(status: VoteStatus | str, event: VoteEvent) -> VoteStatus:
    """The status `event` leads to from `status`; raises `LifecycleError` when the table forbids it."""
    current = VoteStatus(status)
    following = TRANSITIONS.get((current, event))
    if following is None:
        raise LifecycleError(current, event)
    return following


def is_open(status: VoteStatus | str) -> bool:
    """True while the vote is watched."""
    return VoteStatus(status) is VoteStatus.OPEN


def skip_reason(status: VoteStatus | str) -> str | None:
    """Why mail waiting for a vote in `status` is skipped; None when it is still sent."""
    return SKIP_REASONS.get(VoteStatus(status))
