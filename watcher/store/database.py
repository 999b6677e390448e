"""The state store: what the daemon has seen, decided and done, in SQLite or PostgreSQL.

It keeps no vote rules: it stores what the core decided, and guarantees the things a database is
for: each message stored once, one row per reminder or resolution key, outbox rows claimed by one
instance at a time (`FOR UPDATE SKIP LOCKED` on PostgreSQL), and leases taken atomically.
Times are aware UTC datetimes; every method that writes takes an optional `now`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql as postgresql
import sqlalchemy.dialects.sqlite as sqlite
import sqlalchemy.ext.asyncio as sa_async

import watcher.core.digest as digest
import watcher.core.lifecycle as lifecycle
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.core.tracking as tracking
import watcher.services.wallclock as wallclock
import watcher.store.engine as engine
import watcher.store.migrate as migrate
import watcher.store.readings as readings
import watcher.store.records as records
import watcher.store.schema as schema

DAY: Final = datetime.timedelta(days=1)
DEFAULT_CLAIM_TTL: Final = datetime.timedelta(minutes=5)
# Bound parameters per statement stay well below SQLite's limit.
_CHUNK: Final = 500
_PENDING: Final = records.OutboxState.PENDING.value
_Name = TypeVar("_Name", bound=str)

Insert = postgresql.Insert | sqlite.Insert


class Store:
    """The state database. Open with `await Store.open(url)`; close with `await store.close()`."""

    def __init__(
        self,
        db: sa_async.AsyncEngine,
        *,
        lock: engine.FileLock | None = None,
        claim_ttl: datetime.timedelta = DEFAULT_CLAIM_TTL,
    ) -> None:
        """Use `Store.open`; this wraps an engine that is already made."""
        self._db = db
        self._lock = lock
        self.claim_ttl = claim_ttl

    @classmethod
    async def open(cls, url: str, *, claim_ttl: datetime.timedelta = DEFAULT_CLAIM_TTL, lock: bool = True) -> Store:
        """Connect to the database at `url` (sqlite:// or postgresql://; async drivers are chosen here).

        A SQLite file is locked for this process: a second instance on it gets `StoreLockedError`.
        With `lock=False` (the operator's commands, beside a running daemon) it is not; WAL lets them read.
        `claim_ttl` is how long a claimed outbox row stays with its claimer before others may take it.
        """
        parsed = engine.async_url(url)
        path = engine.sqlite_path(parsed)
        lock_file = engine.lock_for(path) if path is not None and lock else None
        db = engine.create(parsed)
        try:
            async with db.connect():
                pass
        except Exception as exc:
            await db.dispose()
            if lock_file is not None:
                lock_file.release()
            reason = getattr(exc, "orig", None) or exc
            raise engine.StoreError(f"cannot open the database {engine.safe(parsed)}: {reason}") from None
        return cls(db, lock=lock_file, claim_ttl=claim_ttl)

    async def close(self) -> None:
        """Close every connection and let go of the SQLite lock."""
        await self._db.dispose()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def engine(self) -> sa_async.AsyncEngine:
        """The SQLAlchemy engine (for migrations and tests)."""
        return self._db

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._db.dialect.name

    # Schema ---------------------------------------------------------------------------------------------------

    async def upgrade(self, revision: str = "head") -> None:
        """Apply the migrations up to `revision`."""
        await migrate.upgrade(self._db, revision)

    async def revision(self) -> str | None:
        """The schema revision of the database (None when empty)."""
        return await migrate.current(self._db)

    async def check_current(self) -> None:
        """Raise `SchemaNotCurrentError`, which says to run `vote-watcher db upgrade`, unless the schema is current."""
        await migrate.check_current(self._db)

    # Messages -------------------------------------------------------------------------------------------------

    async def add_message(
        self,
        raw: bytes,
        source: str,
        *,
        envelope: message.Envelope | None = None,
        keep_raw: bool = True,
        now: datetime.datetime | None = None,
    ) -> bool:
        """Store a message once (by Message-ID, else the hash of its bytes); True when it was new.

        `keep_raw=False` records only the headers (list traffic outside vote threads).
        """
        rows = [_message_row(raw, envelope or message.peek(raw), source, keep_raw, _now(now))]
        return bool(await self._insert_messages(rows))

    async def add_messages(
        self, raws: Iterable[bytes], source: str, *, keep_raw: bool = True, now: datetime.datetime | None = None
    ) -> list[str]:
        """Store a batch in one transaction; returns the keys that were new, in order."""
        moment = _now(now)
        rows: dict[str, dict[str, Any]] = {}
        for raw in raws:
            row = _message_row(raw, message.peek(raw), source, keep_raw, moment)
            rows.setdefault(row["key"], row)
        if not rows:
            return []
        new = set(await self._insert_messages(list(rows.values())))
        return [key for key in rows if key in new]

    async def add_message_batch(
        self,
        items: Sequence[tuple[bytes, message.Envelope, bool]],
        source: str,
        *,
        now: datetime.datetime | None = None,
    ) -> set[str]:
        """Store (raw, envelope, keep_raw) messages once each, in one transaction; the keys that were new."""
        moment = _now(now)
        rows: dict[str, dict[str, Any]] = {}
        for raw, envelope, keep_raw in items:
            row = _message_row(raw, envelope, source, keep_raw, moment)
            rows.setdefault(row["key"], row)
        if not rows:
            return set()
        return set(await self._insert_messages(list(rows.values())))

    async def _insert_messages(self, rows: list[dict[str, Any]]) -> list[str]:
        table = schema.messages
        statement = self._insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
        async with self._write() as conn:
            result = await conn.execute(statement, rows)
            return [row.key for row in result]

    async def has_message(self, key: str) -> bool:
        """True when a message with this key was stored."""
        return bool(await self.known_keys([key]))

    async def known_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of these keys are stored."""
        table = schema.messages
        found: set[str] = set()
        async with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                result = await conn.execute(sa.select(table.c.key).where(table.c.key.in_(chunk)))
                found.update(result.scalars())
        return found

    async def get_raw(self, key: str) -> bytes | None:
        """The stored bytes of a message; None when unknown or stored without them."""
        table = schema.messages
        async with self._read() as conn:
            raw = await conn.scalar(sa.select(table.c.raw).where(table.c.key == key))
        return bytes(raw) if raw is not None else None

    async def attach_raw(self, key: str, raw: bytes) -> bool:
        """Keep the bytes of a message first stored without them; True when they were added."""
        table = schema.messages
        statement = (
            sa.update(table).where(table.c.key == key, table.c.raw.is_(None)).values(raw=raw).returning(table.c.key)
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def get_message(self, key: str) -> records.StoredMessage | None:
        """A stored message's headers."""
        table = schema.messages
        columns = [column for column in table.c if column.name != "raw"]
        statement = sa.select(*columns, table.c.raw.is_not(None).label("has_raw")).where(table.c.key == key)
        async with self._read() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            return None
        return records.StoredMessage(
            key=row.key,
            message_id=row.message_id,
            list_id=row.list_id,
            subject=row.subject,
            date=row.date,
            in_reply_to=row.in_reply_to,
            references=tuple(row.references.split()),
            source=row.source,
            stored_at=row.stored_at,
            has_raw=bool(row.has_raw),
        )

    # Tracked votes and their threads ----------------------------------------------------------------------------

    async def upsert_vote(
        self, vote: tracking.TrackedVote, now: datetime.datetime | None = None
    ) -> tracking.TrackedVote:
        """Insert or update the vote keyed by (release_key, vote_seq); returns it as stored (with its id)."""
        table = schema.votes
        values = _vote_values(vote, _now(now))
        insert = self._insert(table).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=["release_key", "vote_seq"],
            set_={name: insert.excluded[name] for name in values if name not in ("release_key", "vote_seq")},
        ).returning(*table.c)
        async with self._write() as conn:
            row = (await conn.execute(statement)).one()
        return _vote(row)

    async def get_vote(self, release_key: str, vote_seq: int) -> tracking.TrackedVote | None:
        """The vote with this key."""
        table = schema.votes
        return await self._one_vote((table.c.release_key == release_key) & (table.c.vote_seq == vote_seq))

    async def vote_by_id(self, vote_id: int) -> tracking.TrackedVote | None:
        """The vote with this id."""
        return await self._one_vote(schema.votes.c.id == vote_id)

    async def _one_vote(self, where: sa.ColumnElement[bool]) -> tracking.TrackedVote | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(schema.votes).where(where))).first()
        return _vote(row) if row is not None else None

    async def votes(self, *, open_only: bool = True) -> list[tracking.TrackedVote]:
        """Tracked votes, oldest first; by default only those whose status is `open`."""
        table = schema.votes
        statement = sa.select(table).order_by(table.c.id)
        if open_only:
            statement = statement.where(table.c.status == lifecycle.VoteStatus.OPEN)
        async with self._read() as conn:
            return [_vote(row) for row in await conn.execute(statement)]

    async def set_vote_status(
        self, vote_id: int, status: lifecycle.VoteStatus, now: datetime.datetime | None = None
    ) -> None:
        """Change a vote's status (anything but `open` takes it off the `votes()` list)."""
        table = schema.votes
        statement = sa.update(table).where(table.c.id == vote_id).values(status=status, updated_at=_now(now))
        async with self._write() as conn:
            await conn.execute(statement)

    async def end_vote(
        self, vote: tracking.TrackedVote, status: lifecycle.VoteStatus, now: datetime.datetime | None = None
    ) -> None:
        """Give a vote its new status and, when mail for a vote in that status is no longer sent, skip its
        pending mails (`skip_pending`), in one transaction."""
        table = schema.votes
        moment = _now(now)
        update = sa.update(table).where(table.c.id == vote.id).values(status=status, updated_at=moment)
        reason = lifecycle.skip_reason(status)
        async with self._write() as conn:
            await conn.execute(update)
            if reason is not None:
                await conn.execute(_skip_statement(vote.release_key, vote.vote_seq, reason, moment))

    async def link_message_to_vote(
        self, vote_id: int, message_key: str, *, position: int | None = None, now: datetime.datetime | None = None
    ) -> bool:
        """Put a stored message in a vote's thread; True when it was not there yet.

        `position` is its archive order; by default it goes after the messages already linked.
        """
        table = schema.vote_messages
        moment = _now(now)
        insert = self._insert(table)
        if position is not None:
            insert = insert.values(vote_id=vote_id, message_key=message_key, position=position, added_at=moment)
        else:
            # The next position is read in the same statement (an aggregate always yields one row).
            after_last = sa.select(
                sa.literal(vote_id, sa.Integer),
                sa.literal(message_key, sa.Text),
                sa.func.coalesce(sa.func.max(table.c.position), 0) + 1,
                sa.literal(moment, schema.UtcDateTime()),
            ).where(table.c.vote_id == vote_id)
            insert = insert.from_select(["vote_id", "message_key", "position", "added_at"], after_last)
        statement = insert.on_conflict_do_nothing(index_elements=["vote_id", "message_key"]).returning(
            table.c.message_key
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def thread_keys(self, vote_id: int) -> list[str]:
        """The keys of a vote's messages in archive order."""
        table = schema.vote_messages
        statement = (
            sa.select(table.c.message_key)
            .where(table.c.vote_id == vote_id)
            .order_by(table.c.position, table.c.added_at, table.c.message_key)
        )
        async with self._read() as conn:
            return list((await conn.execute(statement)).scalars())

    async def thread_messages(self, vote_id: int) -> list[bytes]:
        """The raw bytes of a vote's messages in archive order (left out: those kept without bytes, or flagged)."""
        links, messages = schema.vote_messages, schema.messages
        statement = (
            sa.select(messages.c.raw)
            .join(links, links.c.message_key == messages.c.key)
            .where(links.c.vote_id == vote_id, messages.c.raw.is_not(None), messages.c.flag == "")
            .order_by(links.c.position, links.c.added_at, links.c.message_key)
        )
        async with self._read() as conn:
            return [bytes(raw) for raw in (await conn.execute(statement)).scalars()]

    async def thread_readings(self, vote_id: int) -> list[tuple[str, digest.Digest | None]]:
        """(key, stored digest or None when not read yet) of a vote's messages in archive order.

        Left out as in `thread_messages`: those kept without bytes, or flagged.
        """
        links, messages = schema.vote_messages, schema.messages
        statement = (
            sa.select(messages.c.key, messages.c.reading)
            .join(links, links.c.message_key == messages.c.key)
            .where(links.c.vote_id == vote_id, messages.c.raw.is_not(None), messages.c.flag == "")
            .order_by(links.c.position, links.c.added_at, links.c.message_key)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).all()
        return [(row.key, readings.decode(row.reading)) for row in rows]

    async def reading(self, key: str) -> digest.Digest | None:
        """A message's stored digest (None when not read yet)."""
        table = schema.messages
        async with self._read() as conn:
            return readings.decode(await conn.scalar(sa.select(table.c.reading).where(table.c.key == key)))

    async def set_reading(self, key: str, read: digest.Digest) -> None:
        """Keep a message's digest beside its bytes (read once: a re-tally combines digests)."""
        table = schema.messages
        async with self._write() as conn:
            await conn.execute(sa.update(table).where(table.c.key == key).values(reading=readings.encode(read)))

    async def flag_message(self, key: str, flag: str, detail: str, sender: str = "") -> bool:
        """Mark a message `too_large` or `unreadable` (it is read no more); True when it was not flagged before."""
        table = schema.messages
        statement = (
            sa.update(table)
            .where(table.c.key == key, table.c.flag == "")
            .values(flag=_text(flag), flag_detail=_text(detail), sender=_text(sender))
            .returning(table.c.key)
        )
        async with self._db.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def message_flag(self, key: str) -> str:
        """A message's flag ("" when it is read as usual or unknown)."""
        table = schema.messages
        async with self._db.connect() as conn:
            return str(await conn.scalar(sa.select(table.c.flag).where(table.c.key == key)) or "")

    async def flagged_messages(self, vote_id: int) -> list[records.FlaggedMessage]:
        """The flagged messages of a vote's thread, in archive order."""
        links, messages = schema.vote_messages, schema.messages
        statement = (
            sa.select(messages)
            .join(links, links.c.message_key == messages.c.key)
            .where(links.c.vote_id == vote_id, messages.c.flag != "")
            .order_by(links.c.position, links.c.added_at, links.c.message_key)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [
            records.FlaggedMessage(
                row.key, row.message_id, row.sender, row.flag, row.flag_detail, row.date, row.stored_at
            )
            for row in rows
        ]

    async def thread_stored_at(self, vote_id: int) -> dict[str, datetime.datetime]:
        """When each message of a vote's thread was first stored, by key: since when the daemon has known it."""
        links, messages = schema.vote_messages, schema.messages
        statement = (
            sa.select(messages.c.key, messages.c.stored_at)
            .join(links, links.c.message_key == messages.c.key)
            .where(links.c.vote_id == vote_id)
        )
        async with self._read() as conn:
            return {row.key: row.stored_at for row in await conn.execute(statement)}

    async def kept_since(self, since: datetime.datetime) -> list[tuple[str, bytes]]:
        """(key, raw) of every message kept with its bytes and stored at or after `since`, oldest first.

        Used when a vote starts being tracked, to link the thread messages that arrived before it.
        """
        table = schema.messages
        statement = (
            sa.select(table.c.key, table.c.raw)
            .where(table.c.raw.is_not(None), table.c.stored_at >= since)
            .order_by(table.c.stored_at, table.c.key)
        )
        async with self._read() as conn:
            return [(row.key, bytes(row.raw)) for row in await conn.execute(statement)]

    async def votes_containing(self, keys: Iterable[str]) -> dict[str, list[int]]:
        """For each of these message keys that is in a tracked vote's thread, the ids of those votes."""
        table = schema.vote_messages
        found: dict[str, list[int]] = {}
        async with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                statement = (
                    sa.select(table.c.message_key, table.c.vote_id)
                    .where(table.c.message_key.in_(chunk))
                    .order_by(table.c.vote_id)
                )
                for row in await conn.execute(statement):
                    found.setdefault(row.message_key, []).append(row.vote_id)
        return found

    # Voters' votes --------------------------------------------------------------------------------------------

    async def record_voter_vote(
        self, vote_id: int, vote: tally.EmailedVote, now: datetime.datetime | None = None
    ) -> None:
        """Insert or replace one voter's latest vote in a tracked vote."""
        table = schema.voter_votes
        values = _voter_values(vote_id, vote, _now(now))
        insert = self._insert(table).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=["vote_id", "voter"],
            set_={name: insert.excluded[name] for name in values if name not in ("vote_id", "voter")},
        )
        async with self._write() as conn:
            await conn.execute(statement)

    async def replace_voter_votes(
        self, vote_id: int, votes: Sequence[tally.EmailedVote], now: datetime.datetime | None = None
    ) -> None:
        """Replace a tracked vote's whole set of voters' votes in one transaction (a fresh tally of the thread).

        The vote's row is locked first, so that two instances writing tallies of one vote take turns.
        """
        table = schema.voter_votes
        moment = _now(now)
        async with self._write() as conn:
            lock = sa.select(schema.votes.c.id).where(schema.votes.c.id == vote_id).with_for_update()
            await conn.execute(lock)
            await conn.execute(sa.delete(table).where(table.c.vote_id == vote_id))
            if votes:
                await conn.execute(sa.insert(table), [_voter_values(vote_id, vote, moment) for vote in votes])

    async def voter_votes(self, vote_id: int) -> list[tally.EmailedVote]:
        """A tracked vote's voters' votes, in archive order."""
        table = schema.voter_votes
        statement = sa.select(table).where(table.c.vote_id == vote_id).order_by(table.c.position, table.c.voter)
        async with self._read() as conn:
            return [_voter_vote(row) for row in await conn.execute(statement)]

    # Source cursors (watcher.sources.records.CursorStore) --------------------------------------------------------

    async def get_cursor(self, source: str, folder: str) -> records.Cursor | None:
        """The saved cursor, or None before the first run."""
        table = schema.cursors
        statement = sa.select(table.c.validity, table.c.position).where(
            table.c.source == source, table.c.folder == folder
        )
        async with self._read() as conn:
            row = (await conn.execute(statement)).first()
        return records.Cursor(row.validity, row.position) if row is not None else None

    async def set_cursor(
        self, source: str, folder: str, position: records.Cursor, now: datetime.datetime | None = None
    ) -> None:
        """Save a cursor."""
        table = schema.cursors
        values = {
            "source": source,
            "folder": folder,
            "validity": position.validity,
            "position": position.position,
            "updated_at": _now(now),
        }
        insert = self._insert(table).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=["source", "folder"],
            set_={name: insert.excluded[name] for name in ("validity", "position", "updated_at")},
        )
        async with self._write() as conn:
            await conn.execute(statement)

    # The outbox (watcher.mail.outbox.OutboxStore)

    async def enqueue(
        self,
        *,
        kind: str,
        release_key: str,
        vote_seq: int,
        recipient: str,
        raw: bytes,
        message_id: str,
        voter: str = "",
        not_before: datetime.datetime | None = None,
        now: datetime.datetime | None = None,
        state: str = _PENDING,
    ) -> tuple[records.OutboxRow, bool]:
        """Write a mail to send, unless one with the same (kind, release, vote_seq, recipient) exists.

        Returns the row and whether it was written now; an existing row comes back as it was first
        written (its own bytes and Message-ID), so a retry never makes a second, different mail.
        A dry run writes its rows in state `dry_run`: a live run's mail for the same key takes such a row
        over (new bytes, `pending`), so a dry run never uses up what a live run would send.
        """
        table = schema.outbox
        moment = _now(now)
        values = {
            "kind": kind,
            "release_key": release_key,
            "vote_seq": vote_seq,
            "voter": voter,
            "recipient": recipient,
            "message_id": message_id,
            "raw": raw,
            "state": state,
            "next_attempt_at": not_before or moment,
            "created_at": moment,
        }
        key = ["kind", "release_key", "vote_seq", "recipient"]
        statement = self._insert(table).values(**values).on_conflict_do_nothing(index_elements=key).returning(*table.c)
        where = [table.c[name] == values[name] for name in key]
        take_over = (
            sa.update(table)
            .where(*where, table.c.state == records.OutboxState.DRY_RUN.value)
            .values(**values, attempts=0, last_error="", sent_at=None, claimed_by="", claimed_until=None)
            .returning(*table.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(statement)).first()
            if row is None and state != records.OutboxState.DRY_RUN.value:
                row = (await conn.execute(take_over)).first()
            if row is not None:
                return _outbox_row(row), True
            existing = (await conn.execute(sa.select(table).where(*where))).one()
        return _outbox_row(existing), False

    async def enqueue_reminder(
        self,
        *,
        release_key: str,
        vote_seq: int,
        voter: str,
        raw: bytes,
        message_id: str,
        not_before: datetime.datetime | None = None,
        now: datetime.datetime | None = None,
    ) -> tuple[records.OutboxRow, bool]:
        """Write the reminder for (release, vote_seq, voter), sent to the voter's uid; see `enqueue`."""
        return await self.enqueue(
            kind="reminder",
            release_key=release_key,
            vote_seq=vote_seq,
            recipient=voter,
            voter=voter,
            raw=raw,
            message_id=message_id,
            not_before=not_before,
            now=now,
        )

    async def claim_due(self, now: datetime.datetime, limit: int, owner: str) -> list[records.OutboxRow]:
        """Pending rows due at `now` whose claim is free or expired, claimed for `owner` for `claim_ttl`.

        On PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so concurrent claimers never get the
        same row; SQLite serves one instance and one writer at a time.
        """
        table = schema.outbox
        due = (
            sa.select(table.c.id)
            .where(
                table.c.state == _PENDING,
                table.c.next_attempt_at <= now,
                sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now),
            )
            .order_by(table.c.next_attempt_at, table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._write() as conn:
            ids = list((await conn.execute(due)).scalars())
            if not ids:
                return []
            claim = (
                sa.update(table)
                .where(table.c.id.in_(ids))
                .values(claimed_by=owner, claimed_until=now + self.claim_ttl)
                .returning(*table.c)
            )
            rows = list(await conn.execute(claim))
        rows.sort(key=lambda row: (row.next_attempt_at, row.id))
        return [_outbox_row(row) for row in rows]

    async def renew_claim(self, id: int, owner: str, now: datetime.datetime) -> bool:
        """Extend `owner`'s live claim on a pending row to `now + claim_ttl`; False when it is no longer theirs."""
        table = schema.outbox
        statement = (
            sa.update(table)
            .where(
                table.c.id == id,
                table.c.state == _PENDING,
                table.c.claimed_by == owner,
                table.c.claimed_until > now,
            )
            .values(claimed_until=now + self.claim_ttl)
            .returning(table.c.id)
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def release_claims(self) -> int:
        """Release every outbox claim; returns how many there were.

        Only for a database no other live instance uses: a SQLite file, whose lock this process
        holds, so that any claim left is that of a process that died (kill -9) while sending.
        """
        table = schema.outbox
        statement = (
            sa.update(table)
            .where(table.c.state == _PENDING, table.c.claimed_until.is_not(None))
            .values(claimed_by="", claimed_until=None)
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).rowcount

    async def mark_sent(self, id: int, now: datetime.datetime) -> None:
        """The relay accepted the mail."""
        await self._settle(id, state=records.OutboxState.SENT.value, sent_at=now)

    async def mark_failed(self, id: int, error: str, now: datetime.datetime) -> None:
        """Give up on the mail."""
        await self._settle(id, state=records.OutboxState.FAILED.value, last_error=error)

    async def mark_skipped(self, id: int, reason: str, now: datetime.datetime) -> None:
        """Do not send the mail."""
        await self._settle(id, state=records.OutboxState.SKIPPED.value, last_error=reason)

    async def reschedule(self, id: int, error: str, next_at: datetime.datetime) -> None:
        """A failed attempt: count it, keep the error, release the claim, try again at `next_at`."""
        attempts = schema.outbox.c.attempts + 1
        await self._settle(id, attempts=attempts, last_error=error, next_attempt_at=next_at)

    async def defer(self, id: int, reason: str, next_at: datetime.datetime) -> None:
        """Not an attempt (a cap was reached): release the claim and look again at `next_at`."""
        await self._settle(id, last_error=reason, next_attempt_at=next_at)

    async def _settle(self, id: int, **values: Any) -> None:
        table = schema.outbox
        statement = sa.update(table).where(table.c.id == id).values(claimed_by="", claimed_until=None, **values)
        async with self._write() as conn:
            await conn.execute(statement)

    async def skip_pending(
        self, release_key: str, vote_seq: int, reason: str, now: datetime.datetime | None = None
    ) -> int:
        """Skip a vote's pending mails that nobody holds a live claim on (the vote ended or restarted)."""
        statement = _skip_statement(release_key, vote_seq, reason, _now(now))
        async with self._write() as conn:
            return len((await conn.execute(statement)).all())

    async def sent_today(self, recipient: str, now: datetime.datetime) -> int:
        """Mails to `recipient` marked sent in the 24 hours before `now`."""
        table = schema.outbox
        statement = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(
                table.c.recipient == recipient,
                table.c.state == records.OutboxState.SENT.value,
                table.c.sent_at > now - DAY,
                table.c.sent_at <= now,
            )
        )
        async with self._read() as conn:
            return int(await conn.scalar(statement) or 0)

    async def waiting_on_relay(self) -> dict[str, int]:
        """Pending mails that failed at least once and wait for another attempt, counted by kind."""
        table = schema.outbox
        statement = (
            sa.select(table.c.kind, sa.func.count())
            .where(table.c.state == _PENDING, table.c.attempts > 0)
            .group_by(table.c.kind)
        )
        async with self._read() as conn:
            return {row[0]: int(row[1]) for row in await conn.execute(statement)}

    async def mails(self, release_key: str, vote_seq: int) -> list[records.MailRecord]:
        """Every outbox row of a vote, oldest first (for release-manager notices and reports)."""
        table = schema.outbox
        statement = (
            sa.select(*_mail_columns())
            .where(table.c.release_key == release_key, table.c.vote_seq == vote_seq)
            .order_by(table.c.id)
        )
        async with self._read() as conn:
            return [records.MailRecord(**row._asdict()) for row in await conn.execute(statement)]

    async def outbox_counts(self) -> dict[str, int]:
        """How many outbox rows are in each state."""
        table = schema.outbox
        statement = sa.select(table.c.state, sa.func.count()).group_by(table.c.state)
        async with self._read() as conn:
            return {row[0]: int(row[1]) for row in await conn.execute(statement)}

    async def outbox_rows(
        self, *, state: str | None = None, release_key: str | None = None, limit: int = 1000
    ) -> list[records.MailRecord]:
        """Outbox rows, newest first, optionally of one state or one release (`vote-watcher outbox list`)."""
        table = schema.outbox
        statement = sa.select(*_mail_columns()).order_by(table.c.id.desc()).limit(limit)
        if state is not None:
            statement = statement.where(table.c.state == state)
        if release_key is not None:
            statement = statement.where(table.c.release_key == release_key)
        async with self._read() as conn:
            return [records.MailRecord(**row._asdict()) for row in await conn.execute(statement)]

    async def mail(self, id: int) -> tuple[records.MailRecord, bytes] | None:
        """One outbox row and its stored bytes."""
        table = schema.outbox
        statement = sa.select(*_mail_columns(), table.c.raw).where(table.c.id == id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            return None
        values = row._asdict()
        raw = bytes(values.pop("raw"))
        return records.MailRecord(**values), raw

    async def retry_mail(self, id: int, now: datetime.datetime | None = None) -> bool:
        """Send a failed, skipped or waiting mail again now (the operator asked); False when it cannot be."""
        table = schema.outbox
        moment = _now(now)
        states = (records.OutboxState.FAILED.value, records.OutboxState.SKIPPED.value, _PENDING)
        statement = (
            sa.update(table)
            .where(
                table.c.id == id,
                table.c.state.in_(states),
                sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= moment),
            )
            .values(state=_PENDING, attempts=0, next_attempt_at=moment, last_error="retry asked by the operator")
            .returning(table.c.id)
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def cancel_mail(self, id: int, now: datetime.datetime | None = None) -> bool:
        """Do not send a waiting mail (the operator asked); False when it is not waiting or is being sent."""
        table = schema.outbox
        moment = _now(now)
        statement = (
            sa.update(table)
            .where(
                table.c.id == id,
                table.c.state == _PENDING,
                sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= moment),
            )
            .values(state=records.OutboxState.SKIPPED.value, last_error="cancelled by the operator")
            .returning(table.c.id)
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    # Decisions and observations ---------------------------------------------------------------------------------

    async def record_decision(self, decision: records.Decision) -> None:
        """Insert or replace the decision about one voter of one vote."""
        table = schema.decisions
        values = {name: getattr(decision, name) for name in _DECISION_FIELDS}
        values["detail"] = _text(decision.detail)
        insert = self._insert(table).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=["release_key", "vote_seq", "voter"],
            set_={name: insert.excluded[name] for name in values if name not in ("release_key", "vote_seq", "voter")},
        )
        async with self._write() as conn:
            await conn.execute(statement)

    async def decisions(self, release_key: str, vote_seq: int) -> list[records.Decision]:
        """The decisions about every voter of a vote, by voter."""
        table = schema.decisions
        statement = (
            sa.select(table)
            .where(table.c.release_key == release_key, table.c.vote_seq == vote_seq)
            .order_by(table.c.voter)
        )
        async with self._read() as conn:
            return [records.Decision(**row._asdict()) for row in await conn.execute(statement)]

    async def observe(
        self, key: str, instance: str, value: Mapping[str, Any], now: datetime.datetime | None = None
    ) -> None:
        """Record what this instance just saw of `key` (JSON values)."""
        table = schema.observations
        values = {"key": key, "instance": instance, "value": dict(value), "updated_at": _now(now)}
        insert = self._insert(table).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=["key", "instance"],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
        )
        async with self._write() as conn:
            await conn.execute(statement)

    async def observations(self) -> list[records.Observation]:
        """Everything every instance recorded, by key and instance."""
        table = schema.observations
        statement = sa.select(table).order_by(table.c.key, table.c.instance)
        async with self._read() as conn:
            return [records.Observation(**row._asdict()) for row in await conn.execute(statement)]

    async def ping(self) -> None:
        """One round trip to the database; raises when it cannot be reached."""
        async with self._read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # Resolutions ----------------------------------------------------------------------------------------------

    async def begin_resolution(
        self, release_key: str, vote_seq: int, resolution: str, now: datetime.datetime | None = None
    ) -> tuple[records.Resolution, bool]:
        """Record, before calling ATR, that this instance resolves the vote; True when it may go ahead.

        The row is unique per (release, vote_seq): exactly one caller gets True, once. A `held` row (a
        disagreement that has since cleared) is taken back to `pending` by one caller. Otherwise the
        existing row comes back with False: someone is resolving or has resolved it.
        """
        table = schema.resolutions
        moment = _now(now)
        fresh = {"state": "pending", "resolution": resolution, "detail": "", "updated_at": moment}
        insert = (
            self._insert(table)
            .values(release_key=release_key, vote_seq=vote_seq, created_at=moment, **fresh)
            .on_conflict_do_nothing(index_elements=["release_key", "vote_seq"])
            .returning(*table.c)
        )
        key = (table.c.release_key == release_key) & (table.c.vote_seq == vote_seq)
        retake = sa.update(table).where(key, table.c.state == "held").values(**fresh).returning(*table.c)
        async with self._write() as conn:
            row = (await conn.execute(insert)).first() or (await conn.execute(retake)).first()
            if row is not None:
                return _resolution(row), True
            existing = (await conn.execute(sa.select(table).where(key))).one()
        return _resolution(existing), False

    async def mark_resolution_called(
        self, id: int, detail: str = "", now: datetime.datetime | None = None
    ) -> records.Resolution:
        """ATR accepted `vote/resolve`."""
        return await self._resolution_state(id, "called", detail, now)

    async def mark_resolution_done(
        self, id: int, detail: str = "", now: datetime.datetime | None = None
    ) -> records.Resolution:
        """ATR shows the vote resolved."""
        return await self._resolution_state(id, "done", detail, now)

    async def mark_resolution_held(
        self, id: int, detail: str, now: datetime.datetime | None = None
    ) -> records.Resolution:
        """Not resolved: ballots and emailed votes disagree (`detail` says how); may be taken up again later."""
        return await self._resolution_state(id, "held", detail, now)

    async def mark_resolution_failed(
        self, id: int, detail: str, now: datetime.datetime | None = None
    ) -> records.Resolution:
        """ATR refused for good (a 4xx other than 401/429); not tried again."""
        return await self._resolution_state(id, "failed", detail, now)

    async def _resolution_state(
        self, id: int, state: records.ResolutionState, detail: str, now: datetime.datetime | None
    ) -> records.Resolution:
        table = schema.resolutions
        statement = (
            sa.update(table)
            .where(table.c.id == id)
            .values(state=state, detail=detail, updated_at=_now(now))
            .returning(*table.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            raise engine.StoreError(f"no resolution with id {id}")
        return _resolution(row)

    async def get_resolution(self, release_key: str, vote_seq: int) -> records.Resolution | None:
        """The resolution record of a vote, if any."""
        table = schema.resolutions
        statement = sa.select(table).where(table.c.release_key == release_key, table.c.vote_seq == vote_seq)
        async with self._read() as conn:
            row = (await conn.execute(statement)).first()
        return _resolution(row) if row is not None else None

    # Leases ---------------------------------------------------------------------------------------------------

    async def acquire_lease(
        self, name: str, owner: str, ttl: datetime.timedelta, now: datetime.datetime | None = None
    ) -> bool:
        """Take the lease `name` for `ttl`, if it is free, expired or already `owner`'s; True when held now.

        One statement (insert, or update where expired or ours) makes this atomic on both backends.
        Instances compare their own clocks with the stored expiry: keep them in sync (NTP).
        """
        table = schema.leases
        moment = _now(now)
        insert = self._insert(table).values(name=name, owner=owner, expires_at=moment + ttl, acquired_at=moment)
        taken_over = sa.case((table.c.owner == owner, table.c.acquired_at), else_=insert.excluded.acquired_at)
        statement = insert.on_conflict_do_update(
            index_elements=["name"],
            set_={"owner": owner, "expires_at": insert.excluded.expires_at, "acquired_at": taken_over},
            where=sa.or_(table.c.expires_at <= moment, table.c.owner == owner),
        ).returning(table.c.owner)
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def renew_lease(
        self, name: str, owner: str, ttl: datetime.timedelta, now: datetime.datetime | None = None
    ) -> bool:
        """Extend a lease `owner` still holds; False when it has expired or passed to another (stop the work)."""
        table = schema.leases
        moment = _now(now)
        statement = (
            sa.update(table)
            .where(table.c.name == name, table.c.owner == owner, table.c.expires_at > moment)
            .values(expires_at=moment + ttl)
            .returning(table.c.name)
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give a lease up at once (on shutdown), so another instance need not wait for it to expire."""
        table = schema.leases
        statement = sa.delete(table).where(table.c.name == name, table.c.owner == owner).returning(table.c.name)
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def lease(self, name: str) -> records.Lease | None:
        """The lease row (it may have expired: compare `expires_at` with now)."""
        table = schema.leases
        async with self._read() as conn:
            row = (await conn.execute(sa.select(table).where(table.c.name == name))).first()
        return records.Lease(**row._asdict()) if row is not None else None

    # ATR's JWT and PAT exchanges (watcher.atr.tokens.TokenStore) ---------------------------------------------------

    async def get_atr_token(self, account: str) -> tuple[str, datetime.datetime] | None:
        """The stored JWT of an ATR account and when it expires, or None."""
        table = schema.atr_tokens
        async with self._db.connect() as conn:
            row = (
                await conn.execute(sa.select(table.c.jwt, table.c.expires_at).where(table.c.account == account))
            ).first()
        return (row.jwt, row.expires_at) if row is not None else None

    async def save_atr_token(
        self, account: str, jwt: str, expires_at: datetime.datetime, now: datetime.datetime
    ) -> None:
        """Keep the account's JWT (replacing the one before)."""
        table = schema.atr_tokens
        insert = self._insert(table).values(account=account, jwt=jwt, expires_at=expires_at, updated_at=now)
        statement = insert.on_conflict_do_update(
            index_elements=["account"],
            set_={name: insert.excluded[name] for name in ("jwt", "expires_at", "updated_at")},
        )
        async with self._db.begin() as conn:
            await conn.execute(statement)

    async def drop_atr_token(self, account: str, jwt: str) -> None:
        """Forget the JWT ATR refused (only that one: another process may have stored a newer one)."""
        table = schema.atr_tokens
        async with self._db.begin() as conn:
            await conn.execute(sa.delete(table).where(table.c.account == account, table.c.jwt == jwt))

    async def record_atr_exchange(self, account: str, at: datetime.datetime, reason: str) -> None:
        """Count a PAT exchange (and forget those older than a day)."""
        table = schema.atr_exchanges
        async with self._db.begin() as conn:
            await conn.execute(sa.insert(table).values(account=account, at=at, reason=reason))
            old = at - datetime.timedelta(days=1)
            await conn.execute(sa.delete(table).where(table.c.account == account, table.c.at < old))

    async def atr_exchanges_since(self, account: str, since: datetime.datetime) -> list[tuple[datetime.datetime, str]]:
        """The account's PAT exchanges at or after `since`, oldest first, with their reasons."""
        table = schema.atr_exchanges
        statement = (
            sa.select(table.c.at, table.c.reason)
            .where(table.c.account == account, table.c.at >= since)
            .order_by(table.c.at, table.c.id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [(row.at, row.reason) for row in rows]

    # Helpers --------------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[sa_async.AsyncConnection]:
        """A transaction; a database failure in it (disk full, server gone) is a `StoreUnavailableError`."""
        async with engine.translated("database write failed"), self._db.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[sa_async.AsyncConnection]:
        """A connection for reading; failures as in `_write`."""
        async with engine.translated("database read failed"), self._db.connect() as conn:
            yield conn

    def _insert(self, table: sa.Table) -> Insert:
        if self.backend == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


_DECISION_FIELDS: Final = tuple(column.name for column in schema.decisions.c)


def _mail_columns() -> list[sa.Column[Any]]:
    return [column for column in schema.outbox.c if column.name not in ("raw", "claimed_until")]


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now if now is not None else wallclock.utcnow()


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _text(value: str) -> str:
    # Header values come from anyone: PostgreSQL refuses NUL, and neither backend takes lone surrogates.
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _message_row(
    raw: bytes, envelope: message.Envelope, source: str, keep_raw: bool, now: datetime.datetime
) -> dict[str, Any]:
    date = envelope.date
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=datetime.UTC)
    return {
        "key": _text(envelope.key),
        "message_id": _text(envelope.message_id),
        "list_id": _text(envelope.list_id),
        "subject": _text(envelope.subject),
        "date": date,
        "in_reply_to": _text(envelope.in_reply_to),
        "references": _text(" ".join(envelope.references)),
        "raw": raw if keep_raw else None,
        "source": source,
        "stored_at": now,
    }


def _vote_values(vote: tracking.TrackedVote, now: datetime.datetime) -> dict[str, Any]:
    return {
        "release_key": vote.release_key,
        "project": vote.project,
        "version": vote.version,
        "vote_seq": vote.vote_seq,
        "mode": vote.mode,
        "vote_round": vote.vote_round,
        "committee": vote.binding_committee_key,
        "list_address": vote.list_address,
        "subject": _text(vote.subject),
        "root_message_id": vote.root_message_id,
        "vote_started": vote.vote_started,
        "vote_end": vote.vote_end,
        "phase": vote.phase,
        "status": vote.status,
        # The facts that have no column of their own (a JSON object, so they came without a schema change).
        "extra": {
            "committee_key": vote.committee_key,
            "podling_thread_id": vote.podling_thread_id or "",
            "end_source": vote.end_source,
            "min_hours": vote.min_hours,
            "project_name": vote.project_name,
            "vote_thread_url": vote.vote_thread_url or "",
        },
        "updated_at": now,
    }


def _skip_statement(release_key: str, vote_seq: int, reason: str, moment: datetime.datetime) -> sa.Update:
    table = schema.outbox
    return (
        sa.update(table)
        .where(
            table.c.release_key == release_key,
            table.c.vote_seq == vote_seq,
            table.c.state == _PENDING,
            sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= moment),
        )
        .values(state=records.OutboxState.SKIPPED.value, last_error=reason, claimed_by="", claimed_until=None)
        .returning(table.c.id)
    )


def _vote(row: sa.Row[Any]) -> tracking.TrackedVote:
    extra: Mapping[str, Any] = row.extra or {}
    min_hours = extra.get("min_hours")
    return tracking.TrackedVote(
        release_key=row.release_key,
        project=row.project,
        version=row.version,
        vote_seq=row.vote_seq,
        mode=_one_of(row.mode, tracking.MODES, tracking.MODE_EMAIL),
        vote_round=row.vote_round,
        # Rows written before the project's committee was kept have only the binding one.
        committee_key=str(extra.get("committee_key") or row.committee),
        binding_committee_key=row.committee,
        list_address=row.list_address,
        subject=row.subject,
        root_message_id=row.root_message_id,
        vote_started=row.vote_started,
        vote_end=row.vote_end,
        end_source=_one_of(str(extra.get("end_source")), tracking.END_SOURCES, "policy"),
        min_hours=min_hours if isinstance(min_hours, int) else tracking.DEFAULT_MIN_HOURS,
        podling_thread_id=str(extra.get("podling_thread_id") or "") or None,
        project_name=str(extra.get("project_name") or ""),
        vote_thread_url=str(extra.get("vote_thread_url") or "") or None,
        phase=row.phase or tracking.CANDIDATE_PHASE,
        status=row.status,
        id=row.id,
        updated_at=row.updated_at,
    )


def _voter_values(vote_id: int, vote: tally.EmailedVote, now: datetime.datetime) -> dict[str, Any]:
    return {
        "vote_id": vote_id,
        "voter": vote.voter,
        "value": vote.vote,
        "status": vote.status,
        "message_key": vote.message_id,
        "date": vote.date,
        "quotation": _text(vote.quotation),
        "confidence": vote.confidence,
        "reasons": list(vote.reasons),
        "updated": vote.updated,
        "position": vote.position,
        "recorded_at": now,
    }


def _voter_vote(row: sa.Row[Any]) -> tally.EmailedVote:
    return tally.EmailedVote(
        voter=row.voter,
        vote=_one_of(row.value, tally.VOTE_VALUES, "?"),
        status=_one_of(row.status, roster.STATUSES, "unknown"),
        message_id=row.message_key,
        date=row.date,
        quotation=row.quotation,
        updated=row.updated,
        confidence="low" if row.confidence == "low" else "high",
        reasons=tuple(row.reasons),
        position=row.position,
        recorded_at=row.recorded_at,
    )


def _one_of(text: str, names: tuple[_Name, ...], default: _Name) -> _Name:
    """A stored name as one of the core's names (`default` for one it does not know)."""
    return next((name for name in names if name == text), default)


def _outbox_row(row: sa.Row[Any]) -> records.OutboxRow:
    return records.OutboxRow(
        id=row.id,
        recipient=row.recipient,
        message_id=row.message_id,
        raw=bytes(row.raw),
        attempts=row.attempts,
        kind=row.kind,
        release_key=row.release_key,
        vote_seq=row.vote_seq,
    )


def _resolution(row: sa.Row[Any]) -> records.Resolution:
    return records.Resolution(**row._asdict())
