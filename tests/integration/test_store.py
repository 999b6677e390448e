"""The state store against real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime
import email.message
import email.policy
import hashlib
import pathlib

import pytest

import watcher.core.lifecycle as lifecycle
import watcher.core.tally as tally
import watcher.core.tracking as tracking
import watcher.mail.mailer as mailer
import watcher.mail.outbox as outbox
import watcher.store as store
import watcher.store.records as records

T0 = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)


def mail(message_id: str, *, subject: str = "Re: [VOTE] Release Foo 1.0", parent: str = "", body: str = "+1") -> bytes:
    """A list message as raw bytes."""
    headers = [
        f"Message-ID: <{message_id}>",
        "From: Alice <alice@apache.org>",
        "List-Id: <dev.foo.apache.org>",
        f"Subject: {subject}",
        "Date: Sat, 01 Mar 2025 13:00:00 +0100",
    ]
    if parent:
        headers += [f"In-Reply-To: <{parent}>", f"References: <root@x> <{parent}>"]
    return ("\n".join(headers) + f"\n\n{body}\n").encode()


def vote(release_key: str = "foo-1.0", vote_seq: int = 1, **changes: object) -> tracking.TrackedVote:
    """A tracked vote as the daemon would describe it."""
    base = tracking.TrackedVote(
        release_key=release_key,
        project="foo",
        version="1.0",
        vote_seq=vote_seq,
        mode="trusted",
        vote_round=None,
        committee_key="foo",
        binding_committee_key="foo",
        list_address="dev@foo.apache.org",
        subject="[VOTE] Release Foo 1.0",
        root_message_id="root@x",
        vote_started=T0,
        vote_end=T0 + datetime.timedelta(hours=72),
        phase="release_candidate",
        min_hours=96,
        end_source="body",
        podling_thread_id="abc",
        project_name="Apache Foo",
        vote_thread_url="https://lists.apache.org/thread/abc",
    )
    return dataclasses.replace(base, **changes)


def reminder_mail(voter: str, message_id: str) -> bytes:
    """A reminder as the outbox would have rendered it."""
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Vote Watcher <vote-watcher@apache.org>"
    msg["To"] = f"{voter}@apache.org"
    msg["Subject"] = "Please cast your vote in ATR"
    msg["Message-ID"] = message_id
    msg.set_content("Your emailed vote does not count in a Trusted Vote.")
    return msg.as_bytes()


# Messages -----------------------------------------------------------------------------------------------------


async def test_messages_are_stored_once(state_store: store.Store) -> None:
    raw = mail("a@x")
    assert await state_store.add_message(raw, "imap:x", now=T0) is True
    assert await state_store.add_message(raw, "ponymail:y", now=T0) is False
    assert await state_store.has_message("a@x")
    assert not await state_store.has_message("b@x")
    assert await state_store.get_raw("a@x") == raw
    stored = await state_store.get_message("a@x")
    assert stored is not None
    assert stored.source == "imap:x"
    assert stored.list_id == "dev.foo.apache.org"
    assert stored.subject == "Re: [VOTE] Release Foo 1.0"
    assert stored.date == datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
    assert stored.stored_at == T0
    assert stored.has_raw


async def test_message_without_id_is_keyed_by_hash(state_store: store.Store) -> None:
    raw = b"From: x@y\nSubject: no id\n\nbody\n"
    key = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert await state_store.add_message(raw, "mbox") is True
    assert await state_store.add_message(raw, "mbox") is False
    assert await state_store.get_raw(key) == raw


async def test_batches_store_new_messages_once(state_store: store.Store) -> None:
    await state_store.add_message(mail("a@x"), "imap")
    new = await state_store.add_messages([mail("a@x"), mail("b@x"), mail("c@x"), mail("b@x")], "mbox")
    assert new == ["b@x", "c@x"]
    assert await state_store.known_keys(["a@x", "b@x", "z@x", "c@x"]) == {"a@x", "b@x", "c@x"}
    assert await state_store.add_messages([], "mbox") == []


async def test_headers_only_then_raw_attached(state_store: store.Store) -> None:
    raw = mail("jira@x", subject="[jira] Created: FOO-1")
    assert await state_store.add_message(raw, "imap", keep_raw=False)
    assert await state_store.get_raw("jira@x") is None
    stored = await state_store.get_message("jira@x")
    assert stored is not None
    assert not stored.has_raw
    assert await state_store.attach_raw("jira@x", raw) is True
    assert await state_store.attach_raw("jira@x", b"other") is False
    assert await state_store.get_raw("jira@x") == raw


async def test_hostile_headers_are_stored(state_store: store.Store) -> None:
    raw = b"Message-ID: <evil@x>\nSubject: nul \x00 and \xff\xfe bytes\nDate: not a date\n\n+1\n"
    assert await state_store.add_message(raw, "imap")
    stored = await state_store.get_message("evil@x")
    assert stored is not None
    assert "\x00" not in stored.subject
    assert stored.date is None
    assert await state_store.get_raw("evil@x") == raw


# Tracked votes and threads ----------------------------------------------------------------------------------------


async def test_votes_upsert_by_release_and_round(state_store: store.Store) -> None:
    first = await state_store.upsert_vote(vote(), now=T0)
    assert first.id > 0
    assert first.updated_at == T0
    # Every fact comes back, those kept without a column of their own (in `extra`) too.
    assert dataclasses.replace(first, id=0, updated_at=None) == vote()
    assert first.vote_end == T0 + datetime.timedelta(hours=72)
    later_end = datetime.datetime(2025, 3, 5, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=-5)))
    second = await state_store.upsert_vote(vote(vote_end=later_end, phase="release_candidate", subject="x"), now=T0)
    assert second.id == first.id
    assert second.subject == "x"
    assert second.vote_end == later_end
    assert second.vote_end is not None
    assert second.vote_end.tzinfo == datetime.UTC
    restarted = await state_store.upsert_vote(vote(vote_seq=2), now=T0)
    assert restarted.id != first.id
    got = await state_store.get_vote("foo-1.0", 1)
    assert got == second
    assert await state_store.vote_by_id(restarted.id) == restarted
    assert await state_store.get_vote("foo-1.0", 3) is None


async def test_votes_lists_open_ones(state_store: store.Store) -> None:
    one = await state_store.upsert_vote(vote("foo-1.0"))
    two = await state_store.upsert_vote(vote("bar-2.0", vote_round=2, mode="email"))
    assert [v.id for v in await state_store.votes()] == [one.id, two.id]
    await state_store.set_vote_status(one.id, lifecycle.VoteStatus.RESOLVED)
    assert [v.release_key for v in await state_store.votes()] == ["bar-2.0"]
    assert {v.release_key for v in await state_store.votes(open_only=False)} == {"foo-1.0", "bar-2.0"}
    assert (await state_store.votes())[0].vote_round == 2


async def test_thread_membership_in_archive_order(state_store: store.Store) -> None:
    tracked = await state_store.upsert_vote(vote())
    raws = [mail("root@x", subject="[VOTE] Release Foo 1.0"), mail("r1@x", parent="root@x"), mail("r2@x")]
    await state_store.add_messages(raws, "imap")
    await state_store.add_message(mail("headers-only@x"), "imap", keep_raw=False)
    for key in ("root@x", "r1@x", "headers-only@x", "r2@x"):
        assert await state_store.link_message_to_vote(tracked.id, key)
    assert not await state_store.link_message_to_vote(tracked.id, "r1@x")
    assert await state_store.thread_keys(tracked.id) == ["root@x", "r1@x", "headers-only@x", "r2@x"]
    assert await state_store.thread_messages(tracked.id) == raws
    other = await state_store.upsert_vote(vote(vote_seq=2))
    await state_store.link_message_to_vote(other.id, "r2@x")
    found = await state_store.votes_containing(["r2@x", "r1@x", "nowhere@x"])
    assert found == {"r2@x": [tracked.id, other.id], "r1@x": [tracked.id]}


async def test_thread_explicit_positions(state_store: store.Store) -> None:
    tracked = await state_store.upsert_vote(vote())
    await state_store.add_messages([mail("a@x"), mail("b@x"), mail("c@x")], "ponymail")
    await state_store.link_message_to_vote(tracked.id, "c@x", position=30)
    await state_store.link_message_to_vote(tracked.id, "a@x", position=10)
    await state_store.link_message_to_vote(tracked.id, "b@x", position=20)
    assert await state_store.thread_keys(tracked.id) == ["a@x", "b@x", "c@x"]


# Voters' votes ----------------------------------------------------------------------------------------------------


async def test_voter_votes_latest_wins_and_replace(state_store: store.Store) -> None:
    tracked = await state_store.upsert_vote(vote())
    first = tally.EmailedVote(
        "alice", "+1", "binding", message_id="a@x", date=T0, quotation="+1 (binding)", reasons=("explicit",), position=2
    )
    await state_store.record_voter_vote(tracked.id, first, now=T0)
    changed = tally.EmailedVote(
        "alice", "-1", "binding", message_id="b@x", date=T0 + HOUR, quotation="-1, sorry", updated=True, position=5
    )
    await state_store.record_voter_vote(tracked.id, changed, now=T0 + HOUR)
    await state_store.record_voter_vote(tracked.id, tally.EmailedVote("bob@example.org", "+1", "unknown", position=3))
    got = await state_store.voter_votes(tracked.id)
    assert [v.voter for v in got] == ["bob@example.org", "alice"]
    alice = got[1]
    assert (alice.vote, alice.quotation, alice.updated, alice.reasons) == ("-1", "-1, sorry", True, ())
    assert alice.recorded_at == T0 + HOUR
    assert dataclasses.replace(alice, recorded_at=None) == changed
    fresh = [tally.EmailedVote("carol", "0", "committer", position=1, reasons=("fraction", "low"), confidence="low")]
    await state_store.replace_voter_votes(tracked.id, fresh)
    got = await state_store.voter_votes(tracked.id)
    assert [(v.voter, v.reasons) for v in got] == [("carol", ("fraction", "low"))]
    await state_store.replace_voter_votes(tracked.id, [])
    assert await state_store.voter_votes(tracked.id) == []


# Cursors --------------------------------------------------------------------------------------------------------


async def test_cursors(state_store: store.Store) -> None:
    assert await state_store.get_cursor("imap:alice@x", "INBOX") is None
    await state_store.set_cursor("imap:alice@x", "INBOX", records.Cursor(4294967295, 10))
    await state_store.set_cursor("imap:alice@x", "Lists", records.Cursor(7, 1))
    await state_store.set_cursor("imap:alice@x", "INBOX", records.Cursor(4294967295, 25))
    assert await state_store.get_cursor("imap:alice@x", "INBOX") == records.Cursor(4294967295, 25)
    assert await state_store.get_cursor("imap:alice@x", "Lists") == records.Cursor(7, 1)


# The outbox -----------------------------------------------------------------------------------------------------


async def test_a_reminder_is_written_once(state_store: store.Store) -> None:
    raw = reminder_mail("alice", "<r1@vote-watcher>")
    row, created = await state_store.enqueue_reminder(
        release_key="foo-1.0", vote_seq=1, voter="alice", raw=raw, message_id="<r1@vote-watcher>", now=T0
    )
    assert created
    again, created = await state_store.enqueue_reminder(
        release_key="foo-1.0",
        vote_seq=1,
        voter="alice",
        raw=reminder_mail("alice", "<r2@vote-watcher>"),
        message_id="<r2@vote-watcher>",
        now=T0 + HOUR,
    )
    assert not created
    assert again == row
    assert (again.message_id, again.raw) == ("<r1@vote-watcher>", raw)
    restarted, created = await state_store.enqueue_reminder(
        release_key="foo-1.0", vote_seq=2, voter="alice", raw=b"x", message_id="<r3@x>", now=T0
    )
    assert created
    assert restarted.id != row.id
    notice, created = await state_store.enqueue(
        kind="hold", release_key="foo-1.0", vote_seq=1, recipient="alice", raw=b"n", message_id="<n1@x>", now=T0
    )
    assert created
    assert notice.kind == "hold"


async def test_claims_are_exclusive_until_they_expire(state_store: store.Store) -> None:
    state_store.claim_ttl = 5 * MINUTE
    row, _ = await state_store.enqueue_reminder(
        release_key="foo-1.0", vote_seq=1, voter="alice", raw=b"m", message_id="<m@x>", now=T0
    )
    await state_store.enqueue_reminder(
        release_key="foo-1.0", vote_seq=1, voter="bob", raw=b"m", message_id="<b@x>", now=T0, not_before=T0 + HOUR
    )
    assert await state_store.claim_due(T0 - MINUTE, 10, "one") == []
    claimed = await state_store.claim_due(T0, 10, "one")
    assert [r.id for r in claimed] == [row.id]
    assert await state_store.claim_due(T0 + MINUTE, 10, "two") == []
    # The claimer died: after the claim runs out another instance sends the same mail (same Message-ID).
    taken_over = await state_store.claim_due(T0 + 6 * MINUTE, 10, "two")
    assert [(r.id, r.message_id) for r in taken_over] == [(row.id, "<m@x>")]
    await state_store.mark_sent(row.id, T0 + 7 * MINUTE)
    later = await state_store.claim_due(T0 + 2 * HOUR, 10, "three")
    assert [r.recipient for r in later] == ["bob"]


async def test_outcomes_of_a_claim(state_store: store.Store) -> None:
    rows = []
    for voter in ("a", "b", "c", "d", "e"):
        row, _ = await state_store.enqueue_reminder(
            release_key="foo-1.0", vote_seq=1, voter=voter, raw=b"m", message_id=f"<{voter}@x>", now=T0
        )
        rows.append(row)
    assert len(await state_store.claim_due(T0, 10, "me")) == 5
    a, b, c, d, e = (row.id for row in rows)
    await state_store.mark_sent(a, T0 + MINUTE)
    await state_store.mark_failed(b, "550 no such user", T0)
    await state_store.mark_skipped(c, "opted out", T0)
    await state_store.reschedule(d, "451 try later", T0 + HOUR)
    await state_store.defer(e, "daily cap reached", T0 + HOUR)
    assert await state_store.claim_due(T0 + 30 * MINUTE, 10, "me") == []
    again = await state_store.claim_due(T0 + HOUR, 10, "me")
    assert {(r.id, r.attempts) for r in again} == {(d, 1), (e, 0)}
    records = {r.id: r for r in await state_store.mails("foo-1.0", 1)}
    assert records[a].state == "sent"
    assert records[a].sent_at == T0 + MINUTE
    assert (records[b].state, records[b].last_error) == ("failed", "550 no such user")
    assert (records[c].state, records[c].last_error) == ("skipped", "opted out")
    assert records[d].state == "pending"
    assert records[e].last_error == "daily cap reached"


async def test_sent_today_is_a_rolling_day(state_store: store.Store) -> None:
    for index, when in enumerate([T0 - 25 * HOUR, T0 - 23 * HOUR, T0 - HOUR]):
        row, _ = await state_store.enqueue(
            kind="reminder",
            release_key=f"r{index}",
            vote_seq=1,
            recipient="alice",
            raw=b"m",
            message_id=f"<{index}@x>",
            now=when,
        )
        await state_store.mark_sent(row.id, when)
    other, _ = await state_store.enqueue_reminder(
        release_key="r0", vote_seq=1, voter="bob", raw=b"m", message_id="<bob@x>", now=T0
    )
    await state_store.mark_sent(other.id, T0 - HOUR)
    assert await state_store.sent_today("alice", T0) == 2
    assert await state_store.sent_today("alice", T0 + 2 * HOUR) == 1
    assert await state_store.sent_today("carol", T0) == 0


async def test_skip_pending_when_a_vote_ends(state_store: store.Store) -> None:
    state_store.claim_ttl = 5 * MINUTE
    for voter in ("a", "b", "c"):
        await state_store.enqueue_reminder(
            release_key="foo-1.0", vote_seq=1, voter=voter, raw=b"m", message_id=f"<{voter}@x>", now=T0
        )
    restarted, _ = await state_store.enqueue_reminder(
        release_key="foo-1.0", vote_seq=2, voter="a", raw=b"m", message_id="<a2@x>", now=T0
    )
    (held,) = await state_store.claim_due(T0, 1, "sender")
    # The row being sent right now is left to its sender; the others of the ended round are skipped.
    assert await state_store.skip_pending("foo-1.0", 1, "vote ended", T0 + MINUTE) == 2
    due = await state_store.claim_due(T0 + 10 * MINUTE, 10, "other")
    assert {(row.vote_seq, row.id) for row in due} == {(1, held.id), (2, restarted.id)}
    states = {row.recipient: row.state for row in await state_store.mails("foo-1.0", 1)}
    assert states == {"a": "pending", "b": "skipped", "c": "skipped"}


@pytest.mark.parametrize(
    ("status", "skipped"),
    [
        (lifecycle.VoteStatus.CLOSED, "vote closed"),
        (lifecycle.VoteStatus.REPLACED, "vote restarted"),
        (lifecycle.VoteStatus.DONE, ""),
    ],
)
async def test_ending_a_vote_sets_its_status_and_skips_its_waiting_mail(
    state_store: store.Store, status: lifecycle.VoteStatus, skipped: str
) -> None:
    tracked = await state_store.upsert_vote(vote("foo-1.0"), T0)
    other = await state_store.upsert_vote(vote("foo-1.0", vote_seq=2), T0)
    for seq in (1, 2):
        await state_store.enqueue_reminder(
            release_key="foo-1.0", vote_seq=seq, voter="a", raw=b"m", message_id=f"<a{seq}@x>", now=T0
        )
    await state_store.end_vote(tracked, status, T0 + MINUTE)
    ended = await state_store.vote_by_id(tracked.id)
    assert ended is not None and ended.status is status and ended.updated_at == T0 + MINUTE
    assert [v.id for v in await state_store.votes()] == [other.id]
    (mail,) = await state_store.mails("foo-1.0", 1)
    assert (mail.state, mail.last_error) == (("skipped", skipped) if skipped else ("pending", ""))
    (untouched,) = await state_store.mails("foo-1.0", 2)
    assert untouched.state == "pending"


async def test_a_status_that_names_no_lifecycle_status_is_refused(state_store: store.Store) -> None:
    with pytest.raises(store.StoreError, match="'opened'"):
        await state_store.upsert_vote(vote("foo-1.0", status="opened"), T0)
    assert await state_store.votes(open_only=False) == []


async def test_the_outbox_loop_runs_on_the_store(state_store: store.Store, tmp_path: pathlib.Path) -> None:
    """watcher.mail.outbox drives the real store (the dry-run mailer writes files instead of sending)."""
    for voter in ("alice", "bob"):
        message_id = f"<{voter}-reminder@vote-watcher>"
        await state_store.enqueue_reminder(
            release_key="foo-1.0", vote_seq=1, voter=voter, raw=reminder_mail(voter, message_id), message_id=message_id
        )
    clock = [datetime.datetime.now(datetime.UTC) + MINUTE]
    sender = outbox.Outbox(
        state_store,
        mailer.DryRunMailer(tmp_path / "out"),
        outbox.OutboxPolicy(opt_out=frozenset({"bob"})),
        owner="test",
        clock=lambda: clock[0],
    )
    results = {delivery.recipient: delivery.result for delivery in await sender.run_once()}
    assert results == {"alice": "sent", "bob": "skipped"}
    assert len(list((tmp_path / "out").iterdir())) == 1
    assert await sender.run_once() == []
    assert await state_store.sent_today("alice", clock[0]) == 1


# Resolutions ----------------------------------------------------------------------------------------------------


async def test_a_vote_is_resolved_once(state_store: store.Store) -> None:
    first, go = await state_store.begin_resolution("foo-1.0", 1, "passed", now=T0)
    assert go
    assert first.state == "pending"
    again, go = await state_store.begin_resolution("foo-1.0", 1, "passed", now=T0 + MINUTE)
    assert not go
    assert again.id == first.id
    called = await state_store.mark_resolution_called(first.id, "200 OK", now=T0 + MINUTE)
    assert (called.state, called.detail, called.updated_at) == ("called", "200 OK", T0 + MINUTE)
    done = await state_store.mark_resolution_done(first.id)
    assert done.state == "done"
    assert not (await state_store.begin_resolution("foo-1.0", 1, "passed"))[1]
    assert (await state_store.begin_resolution("foo-1.0", 2, "passed"))[1]
    got = await state_store.get_resolution("foo-1.0", 1)
    assert got is not None
    assert got.state == "done"
    assert await state_store.get_resolution("bar-1.0", 1) is None


async def test_a_held_resolution_is_taken_up_again_once(state_store: store.Store) -> None:
    row, _ = await state_store.begin_resolution("foo-1.0", 1, "passed", now=T0)
    held = await state_store.mark_resolution_held(row.id, "bob voted -1 by email only", now=T0)
    assert (held.state, held.detail) == ("held", "bob voted -1 by email only")
    retaken, go = await state_store.begin_resolution("foo-1.0", 1, "passed", now=T0 + HOUR)
    assert go
    assert (retaken.id, retaken.state, retaken.detail) == (row.id, "pending", "")
    assert not (await state_store.begin_resolution("foo-1.0", 1, "passed"))[1]
    failed = await state_store.mark_resolution_failed(row.id, "403 not a release manager")
    assert failed.state == "failed"
    assert not (await state_store.begin_resolution("foo-1.0", 1, "passed"))[1]
    with pytest.raises(store.StoreError, match="no resolution with id 999"):
        await state_store.mark_resolution_done(999)


# Leases ---------------------------------------------------------------------------------------------------------


async def test_leases(state_store: store.Store) -> None:
    ttl = datetime.timedelta(seconds=30)
    assert await state_store.acquire_lease("imap:alice@x", "one", ttl, now=T0)
    assert not await state_store.acquire_lease("imap:alice@x", "two", ttl, now=T0 + 10 * ttl / 30)
    assert await state_store.acquire_lease("discovery", "two", ttl, now=T0)
    assert await state_store.acquire_lease("imap:alice@x", "one", ttl, now=T0 + ttl / 2)
    assert await state_store.renew_lease("imap:alice@x", "one", ttl, now=T0 + ttl)
    assert not await state_store.renew_lease("imap:alice@x", "two", ttl, now=T0 + ttl)
    lease = await state_store.lease("imap:alice@x")
    assert lease is not None
    assert (lease.owner, lease.expires_at, lease.acquired_at) == ("one", T0 + 2 * ttl, T0)
    # The holder stops renewing: once the lease runs out, another instance takes it, and the old holder cannot renew.
    assert not await state_store.acquire_lease("imap:alice@x", "two", ttl, now=T0 + 2 * ttl - MINUTE / 60)
    assert await state_store.acquire_lease("imap:alice@x", "two", ttl, now=T0 + 2 * ttl)
    assert not await state_store.renew_lease("imap:alice@x", "one", ttl, now=T0 + 2 * ttl)
    lease = await state_store.lease("imap:alice@x")
    assert lease is not None
    assert (lease.owner, lease.acquired_at) == ("two", T0 + 2 * ttl)
    assert not await state_store.release_lease("imap:alice@x", "one")
    assert await state_store.release_lease("imap:alice@x", "two")
    assert await state_store.lease("imap:alice@x") is None
    assert await state_store.acquire_lease("imap:alice@x", "one", ttl, now=T0 + 2 * ttl)


# Schema and opening ---------------------------------------------------------------------------------------------


async def test_schema_is_current(state_store: store.Store) -> None:
    await state_store.check_current()
    assert await state_store.revision() == "0007"  # 0007 (readings) is chained after 0003


async def test_naive_times_are_refused(state_store: store.Store) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        await state_store.set_cursor("s", "f", records.Cursor(1, 1), now=datetime.datetime(2025, 1, 1))


async def test_open_refuses_what_it_cannot_use(tmp_path: pathlib.Path) -> None:
    with pytest.raises(store.StoreError, match="'mysql' is not supported"):
        await store.open("mysql://u:p@localhost/x")
    with pytest.raises(store.StoreError, match="cannot open the database") as caught:
        await store.open("postgresql://watcher:hunter2@127.0.0.1:1/votes")
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)
