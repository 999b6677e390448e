"""Intake (watcher.flow.intake) on a real SQLite store in a tmp dir, without the daemon.

Behaviour that matters: a message is stored once however often a source hands it over; a reply
to a tracked vote is linked and re-tallies that vote once; the list's other traffic is stored
without its bytes and moves nothing; what came before the vote was tracked is linked when it is;
a reply into an ended vote's thread is not taken for the restarted vote of the same subject; a
message over the size limit is flagged and re-tallies nothing; broken mail never raises.
"""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import AsyncIterator

import pytest

import watcher.core.tracking as tracking
import watcher.flow.intake as intake
import watcher.store as store

T0 = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
SUBJECT = "[VOTE] Release Foo 1.0"


def mail(mid: str, body: str = "+1\n", *, parent: str | None = "root@x", subject: str | None = None) -> bytes:
    lines = ["From: Chen <chen@apache.org>", f"Message-ID: <{mid}>", f"Subject: {subject or 'Re: ' + SUBJECT}"]
    if parent is not None:
        lines += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
    return ("\n".join(lines) + "\n\n" + body).encode()


ROOT = mail("root@x", "Please vote.\n", parent=None, subject=SUBJECT)


@pytest.fixture
async def db(tmp_path: pathlib.Path) -> AsyncIterator[store.Store]:
    opened = await store.Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        await opened.upgrade()
        yield opened
    finally:
        await opened.close()


class Changes:
    """The intake's `on_vote_changed`: the votes it asked to re-tally, in order."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, vote_id: int) -> None:
        self.seen.append(vote_id)


async def tracked(db: store.Store, mail_intake: intake.Intake, root: str = "root@x", seq: int = 1) -> int:
    vote = await db.upsert_vote(
        tracking.TrackedVote(
            "foo-1.0", "foo", "1.0", seq, "trusted", subject=SUBJECT, root_message_id=root, vote_started=T0
        ),
        T0,
    )
    await mail_intake.track(vote)
    return vote.id


async def test_a_reply_is_stored_once_linked_and_retallies_its_vote_once(db: store.Store) -> None:
    changes = Changes()
    mail_intake = intake.Intake(db, changes, clock=lambda: T0)
    assert await mail_intake.take(ROOT, "imap")
    vote_id = await tracked(db, mail_intake)
    changes.seen.clear()

    reply = mail("r1@x")
    assert await mail_intake.take(reply, "imap")
    # The same message from another source (the archive), and again from the first: nothing new.
    assert not await mail_intake.take(reply, "archive")
    assert not await mail_intake.take(reply, "imap")
    assert changes.seen == [vote_id]
    assert mail_intake.seen("<r1@x>")
    assert await db.thread_keys(vote_id) == ["root@x", "r1@x"]
    assert await db.thread_messages(vote_id) == [ROOT, reply]


async def test_other_list_traffic_is_stored_without_bytes_and_moves_nothing(db: store.Store) -> None:
    changes = Changes()
    mail_intake = intake.Intake(db, changes, clock=lambda: T0)
    await mail_intake.take(ROOT, "imap")
    vote_id = await tracked(db, mail_intake)
    changes.seen.clear()
    chatter = mail("chat@x", "Lunch?\n", parent=None, subject="Build is green")
    assert await mail_intake.take(chatter, "imap")
    assert await db.has_message("chat@x")
    assert await db.get_raw("chat@x") is None
    assert changes.seen == []
    assert "chat@x" not in await db.thread_keys(vote_id)


async def test_replies_stored_before_the_vote_was_tracked_are_linked_when_it_is(db: store.Store) -> None:
    changes = Changes()
    mail_intake = intake.Intake(db, changes, clock=lambda: T0)
    # Vote-related words keep the bytes, even before anyone tracks the vote.
    assert await mail_intake.take(ROOT, "imap")
    assert await mail_intake.take(mail("early@x"), "imap")
    assert changes.seen == []
    vote_id = await tracked(db, mail_intake)
    assert sorted(await db.thread_keys(vote_id)) == ["early@x", "root@x"]
    assert changes.seen == [vote_id]
    # Tracking it again (every discovery cycle does) links nothing twice and re-tallies nothing.
    await mail_intake.track(await db.vote_by_id(vote_id) or pytest.fail("vote gone"))
    assert changes.seen == [vote_id]


async def test_a_late_reply_to_an_ended_vote_is_not_taken_for_its_restart(db: store.Store) -> None:
    changes = Changes()
    mail_intake = intake.Intake(db, changes, clock=lambda: T0)
    await mail_intake.take(ROOT, "imap")
    old = await db.vote_by_id(await tracked(db, mail_intake)) or pytest.fail("vote gone")
    mail_intake.untrack(old)
    # The vote is restarted under the same subject, in a new thread.
    await mail_intake.take(mail("root2@x", "Please vote again.\n", parent=None, subject=SUBJECT), "imap")
    new_id = await tracked(db, mail_intake, root="root2@x", seq=2)
    changes.seen.clear()
    assert await mail_intake.take(mail("late@x", parent="root@x"), "imap")
    assert await mail_intake.take(mail("r2@x", parent="root2@x"), "imap")
    assert await db.thread_keys(new_id) == ["root2@x", "r2@x"]
    assert changes.seen == [new_id]


async def test_too_large_is_flagged_and_retallies_nothing(db: store.Store) -> None:
    changes = Changes()
    mail_intake = intake.Intake(db, changes, clock=lambda: T0, max_bytes=10_000)
    await mail_intake.take(ROOT, "imap")
    vote_id = await tracked(db, mail_intake)
    changes.seen.clear()
    assert await mail_intake.take(mail("big@x", "+1\n" + "x" * 20_000), "imap")
    assert changes.seen == []
    assert await db.get_raw("big@x") is None
    assert [(f.key, f.flag) for f in await db.flagged_messages(vote_id)] == [("big@x", intake.TOO_LARGE)]


@pytest.mark.parametrize(
    "raw", [b"", b"\xff\xfe\x00garbage", b"Subject: [VOTE] x\n\n", b"From: <\n\n\n", b"Message-ID: <a@b>\n" * 5000]
)
async def test_broken_mail_never_raises(db: store.Store, raw: bytes) -> None:
    mail_intake = intake.Intake(db, Changes(), clock=lambda: T0)
    await mail_intake.take(ROOT, "imap")
    await tracked(db, mail_intake)
    assert isinstance(await mail_intake.take(raw, "imap"), bool)
    # And the intake still works afterwards.
    assert await mail_intake.take(mail("after@x"), "imap")
