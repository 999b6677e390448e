"""The desk (watcher.flow.desk) without the daemon: a real SQLite store in a tmp dir, a real worker process,
the real templates, and ATR as a fake of the client's calls written here (its answers are the
client's own models).

Behaviour that matters: a reminder falls due after the delay, not before, and is written once
however often the desk looks; a voter whose ATR ballot matches the email is not reminded; a
non-binding voter is never reminded; ATR's ballot receipts are left out of the email tally.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import pathlib
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

import watcher.atr.models as models
import watcher.core.decide as decide
import watcher.core.roster as roster
import watcher.core.tracking as tracking
import watcher.flow.desk as desk
import watcher.flow.worker as worker
import watcher.mail.render as render
import watcher.store as store
import watcher.store.records as records

T0 = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
DELAY = datetime.timedelta(hours=6)
SUBJECT = "[VOTE] Release Apache Foo 1.0"
PEOPLE = roster.Roster(
    committees={
        "foo": roster.Committee("foo", members=frozenset({"rm", "chen", "amira"}), committers=frozenset({"sam"}))
    },
    people={"chen": roster.Person("chen", "Chen Wei", ())},
)
FOOTER = "This email was sent by {uid}@apache.org on the Apache Trusted Releases platform\n"


def mail(mid: str, uid: str, body: str, hours: float, parent: str | None = "root@x") -> bytes:
    date = email.utils.format_datetime(T0 + datetime.timedelta(hours=hours))
    lines = [
        f"From: {uid.title()} <{uid}@apache.org>",
        f"Message-ID: <{mid}>",
        f"Date: {date}",
        f"Subject: {'Re: ' if parent else ''}{SUBJECT}",
        "List-Id: <dev.foo.apache.org>",
    ]
    if parent:
        lines += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
    return ("\n".join(lines) + "\n\n" + body).encode()


class FakeAtr:
    """The `AtrClient` calls the desk makes, answering from the ballots set here (the client's models)."""

    def __init__(self) -> None:
        self.ballots: list[models.TrustedBallotEntry] = []
        self.tabulations = 0
        self.resolutions: list[str] = []

    async def vote_tabulate(self, project: str, version: str) -> models.VoteTabulateResults:
        self.tabulations += 1
        return models.VoteTabulateResults(vote_mode="trusted", vote_seq=1, trusted_ballots=list(self.ballots))

    async def vote_resolve(self, project: str, version: str, resolution: str) -> object:
        self.resolutions.append(resolution)
        raise AssertionError("the vote has not ended: nothing to resolve")

    async def release_get(self, project: str, version: str) -> models.Release | None:
        return None

    def ballot(self, uid: str, choice: str, receipt: str = "") -> None:
        self.ballots.append(
            models.TrustedBallotEntry(voter_asf_uid=uid, choice=choice, is_binding=True, receipt_message_id=receipt)
        )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
async def db(tmp_path: pathlib.Path) -> AsyncIterator[store.Store]:
    opened = await store.Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        await opened.upgrade()
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def pool() -> Iterator[worker.Worker]:
    started = worker.Worker()
    yield started
    started.close()


async def setup(
    db: store.Store, pool: worker.Worker, atr: FakeAtr, clock: Clock, replies: Sequence[bytes]
) -> tuple[desk.Desk, tracking.TrackedVote]:
    vote = await db.upsert_vote(
        tracking.TrackedVote(
            "foo-1.0",
            "foo",
            "1.0",
            1,
            "trusted",
            committee_key="foo",
            binding_committee_key="foo",
            subject=SUBJECT,
            root_message_id="root@x",
            vote_started=T0,
            vote_end=T0 + datetime.timedelta(hours=72),
            phase=tracking.CANDIDATE_PHASE,
        ),
        T0,
    )
    for raw in [mail("root@x", "rm", "Please vote.\n", 0, parent=None), *replies]:
        key = email.message_from_bytes(raw, policy=email.policy.compat32)["Message-ID"].strip("<>")
        await db.add_message(raw, "test", now=T0)
        await db.link_message_to_vote(vote.id, key, now=T0)

    async def roster_for(_: tracking.TrackedVote) -> roster.Roster:
        return PEOPLE

    async def previous_round(_: tracking.TrackedVote) -> Sequence[bytes]:
        return []

    settings = desk.DeskSettings(
        atr_host="atr.example",
        sender="Vote Watcher <vote-watcher@apache.org>",
        reply_to=None,
        reminders_enabled=True,
        reminder=decide.ReminderConfig(delay=DELAY),
        resolve_enabled=False,
        resolve=decide.ResolveConfig(grace=datetime.timedelta(hours=1)),
        dry_run=False,
    )
    vote_desk = desk.Desk(
        db,
        atr,
        render.Templates(),
        settings,
        roster_for=roster_for,
        previous_round=previous_round,
        clock=clock,
        pool=pool,
    )
    return vote_desk, vote


async def reminders(db: store.Store) -> list[records.MailRecord]:
    return [m for m in await db.mails("foo-1.0", 1) if m.kind == "reminder"]


async def test_a_reminder_falls_due_after_the_delay_and_is_written_once(db: store.Store, pool: worker.Worker) -> None:
    atr, clock = FakeAtr(), Clock()
    vote_desk, vote = await setup(db, pool, atr, clock, [mail("r1@x", "chen", "+1\n", 1)])
    clock.now = T0 + datetime.timedelta(hours=2)
    await vote_desk.check(vote)
    assert await reminders(db) == []
    decided = {d.voter: (d.decision, d.reason) for d in await db.decisions("foo-1.0", 1)}
    assert decided["chen"][0] == "not_due"

    clock.now = T0 + datetime.timedelta(hours=1) + DELAY + datetime.timedelta(minutes=1)
    await vote_desk.check(vote)
    await vote_desk.check(vote)
    clock.now += datetime.timedelta(hours=3)
    await vote_desk.check(vote)
    sent = await reminders(db)
    assert [(m.voter, m.recipient) for m in sent] == [("chen", "chen")]
    _, raw = await db.mail(sent[0].id) or pytest.fail("mail gone")
    text = raw.decode()
    assert "Chen Wei" in text and "atr.example" in text
    assert {d.voter: d.decision for d in await db.decisions("foo-1.0", 1)}["chen"] == "due"


async def test_a_matching_ballot_and_a_non_binding_voter_get_no_reminder(db: store.Store, pool: worker.Worker) -> None:
    atr, clock = FakeAtr(), Clock()
    atr.ballot("amira", "+1")
    replies = [mail("r1@x", "amira", "+1\n", 1), mail("r2@x", "sam", "+1 (non-binding)\n", 1)]
    vote_desk, vote = await setup(db, pool, atr, clock, replies)
    clock.now = T0 + datetime.timedelta(hours=1) + DELAY * 2
    await vote_desk.check(vote)
    assert await reminders(db) == []
    result = await vote_desk.retally(vote)
    assert result is not None
    assert {v.voter: v.status for v in result.votes} == {"amira": "binding", "sam": "committer"}


async def test_atrs_ballot_receipts_are_left_out_of_the_email_tally(db: store.Store, pool: worker.Worker) -> None:
    atr, clock = FakeAtr(), Clock()
    atr.ballot("amira", "-1", receipt="<rcpt@atr>")
    receipt = mail("rcpt@atr", "amira", f"-1 (binding) (amira) Amira\n\n{FOOTER.format(uid='amira')}", 1)
    vote_desk, vote = await setup(db, pool, atr, clock, [receipt, mail("r2@x", "chen", "+1\n", 2)])
    result = await vote_desk.retally(vote)
    assert result is not None
    assert [v.voter for v in result.votes] == ["chen"]
    assert {v.voter for v in await db.voter_votes(vote.id)} == {"chen"}
