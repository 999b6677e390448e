"""The outbox: mails written down first, then sent, retried and recorded.

How a mail travels:

1. The daemon renders the mail, chooses its Message-ID (`new_message_id`) and writes a row, keyed
   uniquely (a reminder by release, vote_seq and voter), *before* anything is sent. A second
   attempt to write the same key is refused by the store, so there is never a second reminder
   with a new Message-ID.
2. `Outbox.run_once` claims due rows (`claim_due`, under a lease, so that several instances share
   the work) and hands each to the mailer, then records the outcome: sent; failed (only an answer
   about the recipient: 550/551/553 at RCPT); rescheduled with exponential backoff and jitter,
   capped at `max_delay` (anything else: 4xx, connection problems, a relay that refuses us with
   535 or 554, an answer lost after DATA); deferred (the recipient's daily cap is reached);
   skipped (the recipient opted out). A relay outage never fails a mail for good: the row stays
   pending for as long as its vote runs (the daemon skips a vote's pending mails when it ends).

Crash semantics: if the process dies after the relay accepted a mail but before `mark_sent`, the
row's claim expires and the mail is sent again, from the stored bytes, with the *same*
Message-ID. The recipient may see it twice (mail clients fold copies with one Message-ID); it is
never a different mail. A crash before the relay accepted it simply means a later attempt.
"""

from __future__ import annotations

import dataclasses
import datetime
import email
import email.message
import email.policy
import random
import uuid
from collections.abc import Collection
from typing import Final, Literal, Protocol

import watcher.core.backoff as backoff
import watcher.mail.mailer as mailer
import watcher.services.wallclock as wallclock
import watcher.store.records as records

DeliveryResult = Literal["sent", "retry", "failed", "skipped", "deferred", "claim_lost"]
DAY: Final = datetime.timedelta(days=1)
_EPOCH: Final = datetime.datetime.min.replace(tzinfo=datetime.UTC)


class OutboxStore(Protocol):
    """Where outbox rows live; the state store implements it (and `MemoryOutboxStore` for tests)."""

    async def claim_due(self, now: datetime.datetime, limit: int, owner: str) -> list[records.OutboxRow]:
        """Pending rows due at `now` (not claimed, or their claim expired), claimed for `owner`, oldest first."""
        ...

    async def renew_claim(self, id: int, owner: str, now: datetime.datetime) -> bool:
        """Extend `owner`'s live claim on a pending row from `now`; False when it expired or passed to another.

        Called just before each send, so that a batch claimed at once never outlives its claims while
        earlier mails of it wait on a slow relay (another instance could then send the same row).
        """
        ...

    async def mark_sent(self, id: int, now: datetime.datetime) -> None:
        """The relay accepted the mail."""
        ...

    async def mark_failed(self, id: int, error: str, now: datetime.datetime) -> None:
        """Give up on the mail: a permanent refusal or too many attempts."""
        ...

    async def mark_skipped(self, id: int, reason: str, now: datetime.datetime) -> None:
        """Do not send the mail (the recipient opted out)."""
        ...

    async def reschedule(self, id: int, error: str, next_at: datetime.datetime) -> None:
        """A failed attempt: count it, keep the error, release the claim and try again at `next_at`."""
        ...

    async def defer(self, id: int, reason: str, next_at: datetime.datetime) -> None:
        """Not sent and not an attempt (the daily cap): release the claim and look again at `next_at`."""
        ...

    async def sent_today(self, recipient: str, now: datetime.datetime) -> int:
        """How many mails to `recipient` were marked sent in the 24 hours before `now`."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """Retries, caps and opt-outs. `daily_cap` None means no cap; `opt_out` holds uids."""

    base_delay: datetime.timedelta = datetime.timedelta(minutes=1)
    # Short enough that a relay back after hours gets the waiting reminders within minutes.
    max_delay: datetime.timedelta = datetime.timedelta(minutes=15)
    daily_cap: int | None = 3
    cap_retry: datetime.timedelta = datetime.timedelta(hours=1)
    opt_out: Collection[str] = frozenset()
    batch: int = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """What `run_once` did with one row: `sent`, `retry`, `failed`, `skipped` or `deferred`."""

    row_id: int
    recipient: str
    message_id: str
    result: DeliveryResult
    detail: str
    next_at: datetime.datetime | None = None
    kind: str = "reminder"
    release_key: str = ""
    vote_seq: int | None = None
    answer_lost: bool = False
    """DATA was sent but its answer never came: the relay may have the mail; it is retried all the same."""


class Outbox:
    """The send loop over a store and a mailer; the daemon calls `run_once` on a schedule."""

    def __init__(
        self,
        store: OutboxStore,
        sender: mailer.Mailer,
        policy: OutboxPolicy,
        *,
        owner: str,
        clock: wallclock.Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`owner` names this instance in claims; `clock` and `rng` are injectable for tests."""
        self.store = store
        self.mailer = sender
        self.policy = policy
        self.owner = owner
        self._clock = clock or wallclock.utcnow
        self._rng = rng or random.Random()

    async def run_once(self) -> list[Delivery]:
        """Claim the due rows and deliver them one by one; store errors propagate to the caller."""
        rows = await self.store.claim_due(self._clock(), self.policy.batch, self.owner)
        return [await self._deliver(row) for row in rows]

    async def _deliver(self, row: records.OutboxRow) -> Delivery:
        policy = self.policy
        now = self._clock()
        if row.recipient in policy.opt_out:
            await self.store.mark_skipped(row.id, "recipient opted out", now)
            return _delivery(row, "skipped", "recipient opted out")
        if policy.daily_cap is not None and await self.store.sent_today(row.recipient, now) >= policy.daily_cap:
            next_at = now + policy.cap_retry
            await self.store.defer(row.id, "daily cap reached", next_at)
            return _delivery(row, "deferred", f"daily cap of {policy.daily_cap} reached", next_at)
        msg = message_of(row)
        if isinstance(msg, str):
            await self.store.mark_failed(row.id, msg, now)
            return _delivery(row, "failed", msg)
        if not await self.store.renew_claim(row.id, self.owner, self._clock()):
            return _delivery(row, "claim_lost", "the claim ran out before the send; another instance may have it")
        result = await self._send(msg)
        return await self._record(row, result)

    async def _send(self, msg: email.message.EmailMessage) -> mailer.SendResult:
        try:
            return await self.mailer.send(msg)
        except Exception as exc:
            # A mailer should not raise; if one does, the row is retried, not lost.
            return mailer.SendResult(mailer.Outcome.TRANSIENT, f"mailer raised {type(exc).__name__}")

    async def _record(self, row: records.OutboxRow, result: mailer.SendResult) -> Delivery:
        now = self._clock()
        if result.sent:
            await self.store.mark_sent(row.id, now)
            return _delivery(row, "sent", result.detail)
        attempts = row.attempts + 1
        if result.outcome == mailer.Outcome.PERMANENT:
            await self.store.mark_failed(row.id, result.detail, now)
            return _delivery(row, "failed", result.detail)
        next_at = now + retry_delay(attempts, self.policy, self._rng)
        await self.store.reschedule(row.id, result.detail, next_at)
        lost = result.outcome == mailer.Outcome.UNCERTAIN
        return dataclasses.replace(_delivery(row, "retry", result.detail, next_at), answer_lost=lost)


def retry_delay(attempts: int, policy: OutboxPolicy, rng: random.Random) -> datetime.timedelta:
    """The wait after `attempts` failed attempts: base * 2^(attempts-1), capped, then jittered into [half, full]."""
    retry = backoff.Backoff(policy.base_delay.total_seconds(), policy.max_delay.total_seconds(), backoff.Jitter.HALF)
    return datetime.timedelta(seconds=retry.delay(attempts - 1, rng.random))


def new_message_id(domain: str) -> str:
    """A fresh Message-ID, `<{uuid4}@{domain}>`, chosen when the row is written."""
    return f"<{uuid.uuid4()}@{domain}>"


def message_of(row: records.OutboxRow) -> email.message.EmailMessage | str:
    """The row's mail, or why it cannot be sent (unreadable bytes, another Message-ID or recipient)."""
    try:
        msg = email.message_from_bytes(row.raw, policy=email.policy.default)
        message_id = str(msg["Message-ID"] or "").strip()
        checked = mailer.envelope(msg)
    except Exception as exc:
        return f"stored mail cannot be read: {type(exc).__name__}"
    if message_id != row.message_id:
        return "stored mail has another Message-ID than its row"
    if isinstance(checked, mailer.SendResult):
        return checked.detail
    if checked[1] != f"{row.recipient}@apache.org":
        return f"stored mail goes to {checked[1]}, its row to {row.recipient}"
    return msg


@dataclasses.dataclass
class _MemoryRow:
    row: records.OutboxRow
    key: tuple[str, str, int | None, str]
    status: records.OutboxState = records.OutboxState.PENDING
    next_at: datetime.datetime = _EPOCH
    owner: str | None = None
    claimed_until: datetime.datetime | None = None
    sent_at: datetime.datetime | None = None
    error: str = ""


class MemoryOutboxStore:
    """An `OutboxStore` in memory, with the same uniqueness and claim rules as the real one."""

    def __init__(self, lease: datetime.timedelta = datetime.timedelta(minutes=5)) -> None:
        """Claims expire after `lease`."""
        self.lease = lease
        self._rows: dict[int, _MemoryRow] = {}

    def add(
        self,
        recipient: str,
        raw: bytes,
        message_id: str,
        *,
        kind: str = "reminder",
        release_key: str = "",
        vote_seq: int | None = None,
        now: datetime.datetime | None = None,
    ) -> records.OutboxRow | None:
        """Write a row; None when a row with the same (kind, release, vote_seq, recipient) exists."""
        key = (kind, release_key, vote_seq, recipient)
        if any(item.key == key for item in self._rows.values()):
            return None
        row = records.OutboxRow(len(self._rows) + 1, recipient, message_id, raw, 0, kind, release_key, vote_seq)
        entry = _MemoryRow(row, key)
        if now is not None:
            entry.next_at = now
        self._rows[row.id] = entry
        return row

    def status(self, id: int) -> tuple[records.OutboxState, int, str, datetime.datetime]:
        """A row's status, attempts, last error and next time, for tests and reports."""
        entry = self._rows[id]
        return entry.status, entry.row.attempts, entry.error, entry.next_at

    async def claim_due(self, now: datetime.datetime, limit: int, owner: str) -> list[records.OutboxRow]:
        """Pending rows due at `now` whose claim is free or expired."""
        due = [
            entry
            for entry in self._rows.values()
            if entry.status == records.OutboxState.PENDING
            and entry.next_at <= now
            and (entry.claimed_until is None or entry.claimed_until <= now)
        ]
        due.sort(key=lambda entry: (entry.next_at, entry.row.id))
        for entry in due[:limit]:
            entry.owner = owner
            entry.claimed_until = now + self.lease
        return [entry.row for entry in due[:limit]]

    async def renew_claim(self, id: int, owner: str, now: datetime.datetime) -> bool:
        """Extend a live claim of `owner` by the lease."""
        entry = self._rows[id]
        live = entry.claimed_until is not None and entry.claimed_until > now
        if entry.status != records.OutboxState.PENDING or entry.owner != owner or not live:
            return False
        entry.claimed_until = now + self.lease
        return True

    async def mark_sent(self, id: int, now: datetime.datetime) -> None:
        """Sent."""
        entry = self._release(id)
        entry.status, entry.sent_at = records.OutboxState.SENT, now

    async def mark_failed(self, id: int, error: str, now: datetime.datetime) -> None:
        """Failed for good."""
        entry = self._release(id)
        entry.status, entry.error = records.OutboxState.FAILED, error

    async def mark_skipped(self, id: int, reason: str, now: datetime.datetime) -> None:
        """Skipped."""
        entry = self._release(id)
        entry.status, entry.error = records.OutboxState.SKIPPED, reason

    async def reschedule(self, id: int, error: str, next_at: datetime.datetime) -> None:
        """One more attempt counted; due again at `next_at`."""
        entry = self._release(id)
        entry.row = dataclasses.replace(entry.row, attempts=entry.row.attempts + 1)
        entry.error, entry.next_at = error, next_at

    async def defer(self, id: int, reason: str, next_at: datetime.datetime) -> None:
        """Due again at `next_at`, no attempt counted."""
        entry = self._release(id)
        entry.error, entry.next_at = reason, next_at

    async def sent_today(self, recipient: str, now: datetime.datetime) -> int:
        """Mails to `recipient` sent in the 24 hours before `now`."""
        return sum(
            1
            for entry in self._rows.values()
            if entry.row.recipient == recipient and entry.sent_at is not None and now - DAY < entry.sent_at <= now
        )

    def _release(self, id: int) -> _MemoryRow:
        entry = self._rows[id]
        entry.owner, entry.claimed_until = None, None
        return entry


def _delivery(
    row: records.OutboxRow, result: DeliveryResult, detail: str, next_at: datetime.datetime | None = None
) -> Delivery:
    return Delivery(
        row.id, row.recipient, row.message_id, result, detail, next_at, row.kind, row.release_key, row.vote_seq
    )
