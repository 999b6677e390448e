"""What the store hands back: plain frozen values, one per row, free of SQLAlchemy.

A tracked vote and a voter's emailed vote are the core's own (`watcher.core.tracking.TrackedVote`,
`watcher.core.tally.EmailedVote`): the store maps their rows to and from them.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any, Final, Literal

ResolutionState = Literal["pending", "called", "done", "held", "failed"]
RESOLUTION_STATES: Final = ("pending", "called", "done", "held", "failed")


@dataclasses.dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message's routing headers as stored (the raw bytes are read with `Store.get_raw`)."""

    key: str
    message_id: str
    list_id: str
    subject: str
    date: datetime.datetime | None
    in_reply_to: str
    references: tuple[str, ...]
    source: str
    stored_at: datetime.datetime
    has_raw: bool


@dataclasses.dataclass(frozen=True, slots=True)
class FlaggedMessage:
    """A message of a vote's thread that was not read: `too_large` or `unreadable`, and why (for the RM)."""

    key: str
    message_id: str
    sender: str
    flag: str
    detail: str
    date: datetime.datetime | None
    stored_at: datetime.datetime


class OutboxState(enum.StrEnum):
    """An outbox row's state (`watcher.mail.outbox` says how a mail moves through them)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    # Written by a dry run: never sent, and taken over by a live run's mail for the same key.
    DRY_RUN = "dry_run"


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxRow:
    """One mail to send: its bytes and Message-ID are fixed when the row is written.

    `recipient` is the uid the mail goes to (`{uid}@apache.org`); `attempts` counts delivery
    attempts made before this claim.
    """

    id: int
    recipient: str
    message_id: str
    raw: bytes
    attempts: int = 0
    kind: str = "reminder"
    release_key: str = ""
    vote_seq: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class MailRecord:
    """An outbox row in full, for reports and release-manager notices (`OutboxRow` is what the sender needs)."""

    id: int
    kind: str
    release_key: str
    vote_seq: int
    voter: str
    recipient: str
    message_id: str
    state: str
    attempts: int
    last_error: str
    next_attempt_at: datetime.datetime
    claimed_by: str
    sent_at: datetime.datetime | None
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Resolution:
    """The record that guards `vote/resolve`: one per (release, vote_seq), written before ATR is called."""

    id: int
    release_key: str
    vote_seq: int
    state: ResolutionState
    resolution: str
    detail: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a named singleton job, and until when."""

    name: str
    owner: str
    expires_at: datetime.datetime
    acquired_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """Why a voter of one vote was (or was not) reminded, as last decided (`vote-watcher explain`).

    `decision` is "due" (a reminder was written) or "not_due"; `reason` is a `watcher.core.decide.Reason`
    value and `detail` its text. `ballot` is the ATR ballot as last seen ("" for none).
    """

    release_key: str
    vote_seq: int
    voter: str
    decision: str
    reason: str
    detail: str
    decided_at: datetime.datetime
    email_vote: str = ""
    email_status: str = ""
    email_message_id: str = ""
    email_date: datetime.datetime | None = None
    ballot: str = ""
    atr_read_at: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """What one instance last saw of a part of the world (`source:<name>`, `atr`), as JSON values."""

    key: str
    instance: str
    value: Mapping[str, Any]
    updated_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    """Where a source has got to, so that a restart resumes: IMAP UIDVALIDITY and last UID, or an archive epoch."""

    validity: int = 0
    position: int = 0
