"""Hostile mail at the intake, on a real store (SQLite and PostgreSQL) and a real worker process.

A vote-related message over the size limit is stored without its bytes and flagged `too_large`; one
whose reading passes the worker's time limit is flagged `unreadable` with the reason; both are
listed for the release manager, hold nothing up, and are never read again, not even by a new
intake on the same store (a restart).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator

import pytest

import watcher.core.digest as digest
import watcher.core.tracking as tracking
import watcher.flow.intake as intake
import watcher.flow.worker as worker
import watcher.store as store

T0 = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
ROOT = b"From: Amira <amira@apache.org>\nMessage-ID: <root@x>\nSubject: [VOTE] Release Foo 1.0\n\nPlease vote.\n"


def reply(mid: str, body: bytes, sender: bytes = b"Chen <chen@apache.org>") -> bytes:
    head = b"From: " + sender + b"\nMessage-ID: <" + mid.encode() + b">\nIn-Reply-To: <root@x>\n"
    return head + b"Subject: Re: [VOTE] Release Foo 1.0\n\n" + body


class SlowWorker(worker.Worker):
    """A real worker whose reading of a message marked SLOW sleeps past its limit (the process is really stopped)."""

    def __init__(self) -> None:
        super().__init__(check_timeout=0.5)
        self.checks = 0

    async def read(self, raw: bytes) -> digest.Digest | str:
        self.checks += 1
        if b"SLOW" not in raw:
            return await super().read(raw)
        try:
            await self.run(time.sleep, (30,), self.check_timeout)
        except worker.WorkerError as exc:
            return str(exc)
        return "the slow reading returned"


@pytest.fixture
async def pool() -> AsyncIterator[SlowWorker]:
    started = SlowWorker()
    try:
        yield started
    finally:
        started.close()


async def _intake(db: store.Store, pool: worker.Worker, changed: list[int]) -> tuple[intake.Intake, int]:
    async def on_changed(vote_id: int) -> None:
        changed.append(vote_id)

    mail_intake = intake.Intake(db, on_changed, clock=lambda: T0, pool=pool, max_bytes=50_000)
    vote = await db.upsert_vote(
        tracking.TrackedVote(
            "foo-1.0", "foo", "1.0", 1, "trusted", subject="[VOTE] Release Foo 1.0", root_message_id="root@x"
        ),
        T0,
    )
    await mail_intake.take(ROOT, "test")
    await mail_intake.track(vote)
    changed.clear()
    return mail_intake, vote.id


async def test_too_large_and_unreadable_are_flagged_once_and_listed(state_store: store.Store, pool: SlowWorker) -> None:
    changed: list[int] = []
    mail_intake, vote_id = await _intake(state_store, pool, changed)
    huge = reply("big@x", b"+1\n" + b"x" * 200_000, b'"//atr-login.evil.example" <Eve@Evil.example>')
    slow = reply("slow@x", b"+1 SLOW\n")
    fine = reply("fine@x", b"+1\n")
    assert await mail_intake.take(huge, "test")
    assert await mail_intake.take(slow, "test")
    assert await mail_intake.take(fine, "test")
    # Only the readable vote re-tallies the thread; the others are stored and flagged.
    assert changed == [vote_id]
    assert await state_store.has_message("big@x")
    assert await state_store.get_raw("big@x") is None
    flagged = {item.key: item for item in await state_store.flagged_messages(vote_id)}
    assert sorted(flagged) == ["big@x", "slow@x"]
    assert flagged["big@x"].flag == "too_large"
    assert flagged["big@x"].detail == "larger than the limit of 50,000 bytes"
    assert flagged["big@x"].sender == "eve@evil.example"
    assert flagged["slow@x"].flag == "unreadable"
    assert "longer than 0.5 s" in flagged["slow@x"].detail
    assert len(await state_store.thread_messages(vote_id)) == 2  # the [VOTE] and the readable reply
    checks = pool.checks

    # A restart: a new intake on the same store is handed the same messages again (an mbox re-read).
    again: list[int] = []
    restarted, _ = await _intake(state_store, pool, again)
    for raw in (huge, slow, fine):
        assert not await restarted.take(raw, "test")
    assert pool.checks == checks  # nothing read again
    assert again == []
    assert [item.key for item in await state_store.flagged_messages(vote_id)] == ["big@x", "slow@x"]


async def test_screen_reads_a_stored_message_once(state_store: store.Store, pool: SlowWorker) -> None:
    changed: list[int] = []
    mail_intake, _ = await _intake(state_store, pool, changed)
    raw = reply("slow@x", b"+1 SLOW\n")
    await state_store.add_message(raw, "test", now=T0)
    before = pool.checks
    assert await mail_intake.screen("slow@x", raw)
    assert await mail_intake.screen("slow@x", raw)
    assert pool.checks == before + 1
    assert await state_store.message_flag("slow@x") == "unreadable"


async def test_a_readable_reply_is_read_once_and_its_reading_kept(state_store: store.Store, pool: SlowWorker) -> None:
    changed: list[int] = []
    mail_intake, vote_id = await _intake(state_store, pool, changed)
    fine = reply("fine@x", b"+1 (binding)\n")
    assert await mail_intake.take(fine, "test")
    assert changed == [vote_id]
    assert await state_store.reading("fine@x") == digest.parse(fine)
    before = pool.checks
    assert not await mail_intake.screen("fine@x", fine)
    assert pool.checks == before  # the kept reading is not made again
    keys = [key for key, read in await state_store.thread_readings(vote_id) if read is not None]
    assert keys == ["root@x", "fine@x"]


async def test_a_batch_is_taken_as_its_messages_one_by_one(state_store: store.Store, pool: SlowWorker) -> None:
    changed: list[int] = []
    mail_intake, vote_id = await _intake(state_store, pool, changed)
    huge = reply("big@x", b"+1\n" + b"x" * 200_000, b"Eve <eve@evil.example>")
    slow = reply("slow@x", b"+1 SLOW\n")
    fine = reply("fine@x", b"+1\n")
    other = b"From: a@b\nMessage-ID: <other@x>\nSubject: lunch\n\nsoup\n"
    assert await mail_intake.take_many([huge, slow, fine, fine, other], "imap") == 4  # fine@x twice: new once
    assert changed == [vote_id]
    flagged = {item.key: item.flag for item in await state_store.flagged_messages(vote_id)}
    assert flagged == {"big@x": "too_large", "slow@x": "unreadable"}
    assert await state_store.get_raw("other@x") is None  # list traffic: headers only
    assert await state_store.thread_keys(vote_id) == ["root@x", "big@x", "slow@x", "fine@x"]
    assert await state_store.reading("fine@x") == digest.parse(fine)
    assert mail_intake.seen("fine@x")
    assert await mail_intake.take_many([huge, slow, fine], "imap") == 0


def test_sender_address_reads_only_the_header_block() -> None:
    raw = b'From: "Eve\\" <x@y>" <EVE@evil.example>\n\n' + b"From: other@x\n" * 10
    assert intake.sender_address(raw) == "eve@evil.example"
    assert intake.sender_address(b"Subject: none\n\nbody") == ""
    assert intake.sender_address(b"\xff\xfe garbage") == ""
