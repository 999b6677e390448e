"""Outcomes the real ATR produces that are not failures (issue 16 item 4), daemon against the sandbox ATR.

- A vote resolved elsewhere (the RM, ATR's own auto-resolve) before the daemon's call: ATR answers
  404 "Release not found" (reference/atr.md §8.5); `release/get` confirms, and it is recorded as
  resolved elsewhere, never as a failure.
- ATR's opt-in auto-resolve passes a Trusted Vote at its end on the ballots alone (§8.4); where
  the daemon would have held it, the release manager still gets the held notice, saying so.
"""

from __future__ import annotations

import tests.fixtures.e2e as e2e

RELEASE = "lantern-2.0.0"


async def test_a_resolve_answered_404_after_a_resolution_elsewhere_is_recorded_not_failed(
    start_e2e: e2e.StartE2E,
) -> None:
    ballots = [e2e.ballot(RELEASE, uid) for uid in ("amira", "bjorn", "chen")]
    # Discovery only at start: the daemon learns of the resolution from its own resolve call.
    settings = {"atr": {"poll_interval": "1000h"}, "resolve": {"grace": "2h"}}
    async with start_e2e(e2e.lantern_scenario(hours=3, ballots=ballots), settings=settings) as env:
        vote_end = env.vote_of(RELEASE).vote_end()
        assert vote_end is not None
        async with env.daemon():
            await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
            await env.until(lambda: env.clock() >= vote_end, "the vote end", timeout=30)
            # ATR resolves it at its end (as the initiator), before the daemon's grace is over.
            await env.resolve_as("amira", RELEASE, "passed")
            await env.until(lambda: env.resolve_calls(404), "the daemon's resolve, answered 404", timeout=30)
            await env.wait_scenario(3)
    assert [(r.uid, r.status) for r in env.resolve_calls()] == [("amira", 200), ("watcher", 404)]
    assert not env.of("resolve_failed")
    async with env.store() as db:
        vote = await db.get_vote(RELEASE, 1)
        resolution = await db.get_resolution(RELEASE, 1)
    assert vote is not None and vote.status == "resolved"
    assert resolution is not None and resolution.state == "done"
    assert resolution.detail == "resolved elsewhere (release_preview)"


async def test_atrs_own_auto_resolve_of_a_vote_the_daemon_would_hold_still_tells_the_rm(
    start_e2e: e2e.StartE2E,
) -> None:
    # Three binding +1 ballots pass in ATR; four binding -1 by email would make it fail.
    ballots = [e2e.ballot(RELEASE, uid) for uid in ("amira", "bjorn", "chen")]
    settings = {"resolve": {"grace": "5h"}, "reminders": {"delay": "100h"}}
    async with start_e2e(e2e.lantern_scenario(hours=3, ballots=ballots), settings=settings) as env:
        vote_end = env.vote_of(RELEASE).vote_end()
        assert vote_end is not None
        async with env.daemon():
            await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
            for uid in ("dolores", "gina", "hank", "iris"):
                await env.vote_by_email(RELEASE, f"{e2e.LANTERN_NAMES[uid]} <{uid}@apache.org>", "-1 (binding)\n")
            await env.until(lambda: len(env.of("tally", RELEASE)) >= 1, "the emailed votes tallied")
            await env.until(lambda: env.clock() >= vote_end, "the vote end", timeout=30)
            # VOTE_AUTO_RESOLVE as the initiator, at vote_end, on the ballots alone (§8.4).
            await env.resolve_as("amira", RELEASE, "passed")
            await env.until(lambda: env.smtp.to("amira@apache.org"), "the held notice to the RM", timeout=30)
    [notice] = env.smtp.to("amira@apache.org")
    body = notice.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "ATR resolved this vote itself at its end, on the trusted ballots alone" in " ".join(text.split())
    for uid in ("dolores", "gina", "hank", "iris"):
        assert uid in text
    # The daemon itself never called vote/resolve.
    assert [(r.uid, r.status) for r in env.resolve_calls()] == [("amira", 200)]
    assert not env.of("resolve_failed")


async def test_a_superseded_receipt_is_not_an_emailed_vote_nor_a_reason_to_ask_atr_again(
    start_e2e: e2e.StartE2E,
) -> None:
    # bjorn casts +1, then -1: ATR posts both receipts but names only the second (atr.md §6.5).
    world = start_e2e(e2e.lantern_scenario(hours=40), settings={"reminders": {"delay": "0s"}})
    async with world as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        await env.cast("bjorn", RELEASE, "+1")
        await env.cast("bjorn", RELEASE, "-1")
        receipts = [m for m in env.atr.posted if b"From: bjorn@apache.org" in m.raw]
        await env.until(lambda: len(env.of("tally", RELEASE)) >= 1, "a tally")
        await env.wait_scenario(4)
        before = env.atr.count("/api/vote/tabulate")
        await env.wait_scenario(10)
        after = env.atr.count("/api/vote/tabulate")
    assert len(receipts) == 2
    tallies = [e.data["votes"] for e in env.of("tally", RELEASE)]
    assert all(votes == [] for votes in tallies), tallies
    assert env.smtp.received == []
    # Checks in between asked ATR nothing more: the unnamed receipt is known by bjorn's ballot.
    assert after == before
