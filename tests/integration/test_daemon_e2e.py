"""The daemon end to end: sandbox ATR, sandbox lists.apache.org (or Dovecot), an aiosmtpd sink, SQLite or PostgreSQL.

Every server is real and on loopback; the daemon runs in-process on a scenario clock that runs 3600
times faster than real time (one real second is one scenario hour), so reminder delays and whole
votes pass in seconds. Assertions are on what the SMTP sink received, what the sandbox ATR was
asked, and what the store recorded.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable

import tests.fixtures.e2e as e2e
import tests.fixtures.smtp as smtp_fixtures
import tests.support.dovecot as dovecot

RELEASE = "lantern-2.0.0"


def recipients(sink: smtp_fixtures.SmtpSink) -> list[str]:
    """Every RCPT TO the sink accepted, in order."""
    return [to for mail in sink.received for to in mail.rcpt_tos]


def to_header(mail: smtp_fixtures.Received) -> str:
    """The address in the To header."""
    return email.utils.parseaddr(str(mail.message["To"]))[1]


ALIASES = """
[people.gina]
name = "Gina Gomez"
emails = ["gina.gomez@home.example"]

[people.iris]
name = "Iris Ito"
emails = ["iris@personal.example"]

[people.hank]
name = "Hank Member"
"""


async def test_reminders_go_to_the_uid_only(start_e2e: e2e.StartE2E) -> None:
    """An alias, a display name claimed by an outsider, and a DMARC-rewritten From: reminders only to uid@apache.org."""
    async with start_e2e(e2e.lantern_scenario(), aliases=ALIASES) as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        # gina writes from a personal address that the aliases file maps to her uid.
        await env.vote_by_email(RELEASE, "Gina Gomez <gina.gomez@home.example>", "+1 (binding)\n")
        # An outsider uses hank's display name (and a Reply-To of their own): a name is only a hint.
        await env.vote_by_email(
            RELEASE,
            "Hank Member <hank.member@elsewhere.example>",
            "+1 (binding)\n",
            headers=[("Reply-To", "hank.member@elsewhere.example")],
        )
        # The list rewrote iris's From for DMARC; the envelope-from is her alias.
        spf = (
            "pass (lists.apache.org: domain of iris@personal.example designates 192.0.2.7 as permitted sender) "
            "client-ip=192.0.2.7; envelope-from=iris@personal.example; helo=mail.personal.example;"
        )
        await env.vote_by_email(
            RELEASE,
            "Iris Ito via dev <dev@lantern.apache.org>",
            "+1\n\nChecked the signatures.\n",
            headers=[("Received-SPF", spf), ("Reply-To", "Iris Ito <iris@personal.example>")],
        )
        await env.until(lambda: len(env.smtp.received) >= 2, "two reminders")
        # Long enough for a third reminder, were one due: the delay is one scenario hour.
        await env.wait_scenario(4)
        tallied = env.of("tally", RELEASE)[-1].data["votes"]
    assert sorted(recipients(env.smtp)) == ["gina@apache.org", "iris@apache.org"]
    assert sorted(to_header(mail) for mail in env.smtp.received) == ["gina@apache.org", "iris@apache.org"]
    # The outsider's vote was seen and tallied under their own address, not as hank.
    assert "hank.member@elsewhere.example" in tallied
    assert "hank" not in tallied
    async with env.store() as db:
        reminded = sorted(m.voter for m in await db.mails(RELEASE, 1))
    assert reminded == ["gina", "iris"]


async def test_smtp_421_and_451_then_success(start_e2e: e2e.StartE2E) -> None:
    """Temporary refusals are retried with backoff: the reminder arrives once, after three refused attempts."""
    async with start_e2e(e2e.lantern_scenario()) as env:
        env.smtp.fail("421 4.7.0 Too busy, come back later", stage="RCPT")
        env.smtp.fail("451 4.3.0 Try again later", times=2)
        async with env.daemon():
            await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
            await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
            await env.until(lambda: env.smtp.received, "the reminder")
            # More outbox turns (each is one real second): nothing is sent again.
            await env.wait_scenario(3)
    assert [reply.split()[0] for reply in env.smtp.handler.refused] == ["421", "451", "451"]
    assert recipients(env.smtp) == ["chen@apache.org"]
    assert len(env.of("reminder_sent", RELEASE)) == 1
    async with env.store() as db:
        [row] = await db.mails(RELEASE, 1)
    assert (row.voter, row.state, row.attempts) == ("chen", "sent", 3)
    assert row.message_id == str(env.smtp.received[0].message["Message-ID"])


async def test_smtp_550_is_recorded_failed_and_not_retried(start_e2e: e2e.StartE2E) -> None:
    """A permanent refusal fails the reminder at once: one attempt, no mail, no second reminder."""
    async with start_e2e(e2e.lantern_scenario()) as env:
        env.smtp.fail("550 5.1.1 No such mailbox", times=5, stage="RCPT")
        async with env.daemon():
            await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
            await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
            await env.until(lambda: env.of("reminder_failed", RELEASE), "the failed reminder")
            await env.wait_scenario(4)
    assert env.smtp.handler.refused == ["550 5.1.1 No such mailbox"]
    assert env.smtp.received == []
    assert len(env.of("reminder_queued", RELEASE)) == 1
    async with env.store() as db:
        [row] = await db.mails(RELEASE, 1)
    assert (row.voter, row.state) == ("chen", "failed")
    assert "550" in row.last_error


async def test_atr_500_during_resolve_is_retried_and_resolves_once(start_e2e: e2e.StartE2E) -> None:
    """vote/resolve answers 500 twice: the daemon tries again and the vote is resolved exactly once."""
    ballots = [e2e.ballot(RELEASE, uid) for uid in ("amira", "bjorn", "chen")]
    async with start_e2e(e2e.lantern_scenario(hours=3, ballots=ballots)) as env:
        env.atr.fail_next(2, 500, prefix="/api/vote/resolve")
        async with env.daemon():
            await env.until(lambda: env.of("resolved", RELEASE), "the resolution", timeout=30)
            # More checks and discovery polls: nothing resolves it again.
            await env.wait_scenario(3)
    calls = env.resolve_calls()
    # (The sandbox answers injected failures before it reads the token, so those carry no uid.)
    assert [r.status for r in calls] == [500, 500, 200]
    assert calls[-1].uid == "watcher"
    assert [e.data["resolution"] for e in env.of("resolved", RELEASE)] == ["passed"]
    assert env.vote_of(RELEASE).phase == "release_preview"
    results = [s for s in env.posted_subjects(RELEASE) if s.startswith("[RESULT]")]
    # ATR names the project by its display name in the [RESULT] subject (reference/atr.md §5.7).
    assert results == ["[RESULT] [VOTE] Release Apache Lantern 2.0.0 PASSED"]
    async with env.store() as db:
        resolution = await db.get_resolution(RELEASE, 1)
    assert resolution is not None
    assert (resolution.state, resolution.resolution) == ("done", "passed")


async def test_restarted_vote_skips_the_old_reminder(start_e2e: e2e.StartE2E) -> None:
    """ATR restarts the vote (new vote_seq) while a reminder waits for a retry: it is skipped; the new vote's is sent.

    The new [VOTE] has the old one's subject: late replies on the old thread are not votes in the new one.
    """
    async with start_e2e(e2e.lantern_scenario()) as env:
        env.smtp.fail("451 4.3.0 Try again later", times=3)
        async with env.daemon():
            await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
            await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
            await env.until(lambda: env.smtp.handler.refused, "a first, refused, reminder attempt")
            old_root = env.vote_of(RELEASE).vote_message_id
            await env.atr.restart_vote(RELEASE)
            new_seq = env.vote_of(RELEASE).current_vote_seq
            await env.until(lambda: env.of("vote_restarted", RELEASE), "the restart seen")
            await env.vote_by_email(RELEASE, "Dolores Ruiz <dolores@apache.org>", "+1\n", in_reply_to=old_root)
            await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 again, on the new candidate\n")
            await env.until(lambda: env.smtp.received, "the new vote's reminder", timeout=30)
            await env.wait_scenario(3)
    assert new_seq is not None and new_seq > 1
    assert [e.vote_seq for e in env.of("vote_restarted", RELEASE)] == [new_seq]
    assert recipients(env.smtp) == ["chen@apache.org"]
    new_tallies = [e.data["votes"] for e in env.of("tally", RELEASE) if e.vote_seq == new_seq]
    assert new_tallies[0] == []
    assert new_tallies[-1] == ["chen"]
    async with env.store() as db:
        [old] = await db.mails(RELEASE, 1)
        [new] = await db.mails(RELEASE, new_seq)
        replaced = await db.get_vote(RELEASE, 1)
    assert (old.voter, old.state) == ("chen", "skipped")
    assert (new.voter, new.state) == ("chen", "sent")
    assert str(env.smtp.received[0].message["Message-ID"]) == new.message_id
    assert replaced is not None and replaced.status == "replaced"


async def test_vote_cancelled_in_atr_is_closed_without_reminders_or_resolution(start_e2e: e2e.StartE2E) -> None:
    """The RM cancels the vote in ATR: a reminder waiting for a retry is skipped, no other is queued, no resolution."""
    slow = {"reminders": {"delay": "2h"}}
    async with start_e2e(e2e.lantern_scenario(hours=6), settings=slow) as env:
        env.smtp.fail("451 4.3.0 Try again later", times=4)
        async with env.daemon():
            await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
            await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
            await env.until(lambda: env.smtp.handler.refused, "a first, refused, reminder to chen")
            # dolores votes by email just before the cancel: her reminder would be due two hours later.
            await env.vote_by_email(RELEASE, "Dolores Ruiz <dolores@apache.org>", "+1\n")
            await env.resolve_as("amira", RELEASE, "cancelled")
            await env.until(lambda: env.of("vote_closed", RELEASE), "the vote closed")
            # Past dolores's delay and past the vote's end (six hours after its start).
            await env.wait_scenario(6)
    assert env.vote_of(RELEASE).phase == "release_candidate_draft"
    assert env.smtp.received == []
    assert [e.data["voter"] for e in env.of("reminder_queued", RELEASE)] == ["chen"]
    assert not env.of("resolved") and not env.of("held") and not env.of("notice_queued")
    assert [(r.uid, r.status) for r in env.resolve_calls()] == [("amira", 200)]
    async with env.store() as db:
        vote = await db.get_vote(RELEASE, 1)
        mails = await db.mails(RELEASE, 1)
        resolution = await db.get_resolution(RELEASE, 1)
    assert vote is not None and vote.status == "closed"
    assert [(m.voter, m.state) for m in mails] == [("chen", "skipped")]
    assert resolution is None


async def test_reminder_and_resolution_on_postgresql(
    start_e2e: e2e.StartE2E, make_postgres_database: Callable[[], str]
) -> None:
    """The demo's Trusted Vote on PostgreSQL: one reminder (none to the voter who cast within the delay), resolved."""
    ballots = [e2e.ballot(RELEASE, uid) for uid in ("amira", "bjorn")]
    # Twelve scenario hours (12 s): chen casts after his reminder, and a loaded machine must not end the vote first.
    world = start_e2e(e2e.lantern_scenario(hours=12, ballots=ballots), database_url=make_postgres_database())
    async with world as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 (binding)\n\nBuilt from source.\n")
        await env.vote_by_email(RELEASE, "Dolores Ruiz <dolores@apache.org>", "+1\n\nI'll cast it in ATR too.\n")
        await env.cast("dolores", RELEASE)
        await env.until(lambda: env.smtp.received, "the reminder to chen")
        await env.cast("chen", RELEASE)
        await env.until(lambda: env.of("resolved", RELEASE), "the resolution", timeout=30)
        await env.wait_scenario(2)
        # PostgreSQL serves the test beside the running daemon (a SQLite file is locked by it).
        async with env.store() as db:
            assert db.backend == "postgresql"
            [row] = await db.mails(RELEASE, 1)
    assert (row.voter, row.state) == ("chen", "sent")
    assert recipients(env.smtp) == ["chen@apache.org"]
    assert [e.data["resolution"] for e in env.of("resolved", RELEASE)] == ["passed"]
    assert [r.status for r in env.resolve_calls()] == [200]
    assert env.vote_of(RELEASE).phase == "release_preview"
    async with env.store() as db:
        resolution = await db.get_resolution(RELEASE, 1)
    assert resolution is not None and (resolution.state, resolution.resolution) == ("done", "passed")


async def test_imap_idle_push_brings_a_reminder(
    start_e2e: e2e.StartE2E, dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    """Lists delivered by IMAP only (no archive): the [VOTE] is found among stored mail; an emailed vote pushed by
    IDLE (the sweep is ten minutes away) brings the reminder."""
    async with start_e2e(e2e.lantern_scenario(), imap=(dovecot_server, imap_folder)) as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        # The mailbox's first sweep and catch-up are done and its IDLE session is up well within a second.
        await asyncio.sleep(1)
        await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
        await env.until(lambda: env.smtp.received, "the reminder")
    assert recipients(env.smtp) == ["chen@apache.org"]
    assert env.archive.request_counts() == {}
    async with env.store() as db:
        vote = await db.get_vote(RELEASE, 1)
    assert vote is not None and vote.root_message_id == env.vote_of(RELEASE).vote_message_id


async def test_a_quiet_vote_costs_no_tabulate_calls(start_e2e: e2e.StartE2E) -> None:
    """ATR's budget is shared: once a reminder is out and nothing changes, checks ask ATR nothing more."""
    ballots = [e2e.ballot(RELEASE, uid) for uid in ("amira", "bjorn")]
    world = start_e2e(e2e.lantern_scenario(hours=40, ballots=ballots))
    async with world as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
        await env.vote_by_email(RELEASE, "Someone <someone@example.org>", "+1 (non-binding)\n")
        await env.until(lambda: env.smtp.received, "the reminder to chen")
        await env.wait_scenario(2)
        before = env.atr.count("/api/vote/tabulate")
        # About fifteen checks (one a real second) with nothing new in the thread or in ATR.
        await env.wait_scenario(15)
        after = env.atr.count("/api/vote/tabulate")
    assert recipients(env.smtp) == ["chen@apache.org"]
    assert after == before
