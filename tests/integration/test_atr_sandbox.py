"""The sandbox ATR's vote rules, driven through the real client over HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

import watcher.atr.errors as errors
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_state as atr_state
import watcher.sandbox.clocks as clocks
from tests.fixtures import atr as fixtures
from tests.fixtures.atr import MemoryLists, StartAtr, client_for, scenario_data

HOUR = 3600.0


def ballot(release_key: str, uid: str, choice: str, vote_seq: int, vote_round: int | None = None) -> dict[str, object]:
    found: dict[str, object] = {
        "release_key": release_key,
        "voter_asf_uid": uid,
        "choice": choice,
        "vote_seq": vote_seq,
    }
    if vote_round is not None:
        found["vote_round"] = vote_round
    return found


async def test_tabulate_gives_the_latest_trusted_ballot_per_voter(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    data = scenario_data(ballots=[ballot("example-1.2.0", "bob", "-1", 7), ballot("example-1.2.0", "carol", "+1", 7)])
    async with start_atr(data) as atr, client_for(atr, atr_clock, uid="bob", pat="pat-bob-0000") as bob:
        await bob.vote_cast("example", "1.2.0", "+1", "Changed my mind: sigs fixed.")
        results = await bob.vote_tabulate("example", "1.2.0")
    assert results.vote_mode == "trusted"
    assert results.vote_seq == 7
    by_voter = {b.voter_asf_uid: b for b in results.trusted_ballots or []}
    assert by_voter["bob"].choice == "+1"
    assert by_voter["bob"].comment == "Changed my mind: sigs fixed."
    assert by_voter["bob"].voter_fullname == "Bob Builder"
    assert results.trusted_summary is not None
    assert results.trusted_summary.binding_votes_yes == 2
    assert results.trusted_passed is False


async def test_a_cast_posts_its_receipt_to_the_thread(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock, uid="dave", pat="pat-dave-0000") as dave:
        cast = await dave.vote_cast("example", "1.2.0", "0")
        results = await dave.vote_tabulate("example", "1.2.0")
    assert cast.receipt_email_to == ["dev@example.apache.org"]
    (receipt,) = memory_lists.on("dev@example.apache.org")
    release = atr.state.releases["example-1.2.0"]
    assert receipt.from_address == "dave@apache.org"
    assert receipt.in_reply_to == release.vote_message_id
    assert receipt.subject == "Re: [VOTE] Release Example 1.2.0"
    assert receipt.list_id == "dev.example.apache.org"
    assert receipt.text.startswith("0 (dave) dave\n")
    assert results.receipt_message_ids() == {receipt.message_id}


async def test_cast_is_refused_where_atr_refuses_it(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    async with start_atr() as atr:
        async with client_for(atr, atr_clock, uid="bob", pat="pat-bob-0000") as bob:
            with pytest.raises(errors.ConflictError, match="not accepting trusted votes"):
                await bob.vote_cast("mailer", "3.0.1", "+1")
            # §10.5.9: an unknown release is a 409 too; only an embargoed one is a 404.
            with pytest.raises(errors.ConflictError, match="Vote is no longer open"):
                await bob.vote_cast("example", "9.9.9", "+1")
        async with client_for(atr, atr_clock) as outsider:
            atr.state.committees["example"] = atr.state.committees["mail"]
            with pytest.raises(errors.ForbiddenError):
                await outsider.vote_cast("example", "1.2.0", "+1")


async def test_resolve_follows_atrs_rules(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    data = scenario_data(ballots=[ballot("example-1.2.0", uid, "+1", 7) for uid in ("alice", "bob")])
    async with start_atr(data) as atr:
        rm = client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT)
        committer = client_for(atr, atr_clock, uid="dave", pat="pat-dave-0000")
        async with rm, committer:
            with pytest.raises(errors.ForbiddenError):
                await committer.vote_resolve("example", "1.2.0", "passed")
            with pytest.raises(errors.ConflictError, match="before the voting period has ended"):
                await rm.vote_resolve("example", "1.2.0", "passed")
            atr_clock.advance(71 * HOUR)
            with pytest.raises(errors.ConflictError, match="enough binding \\+1 votes"):
                await rm.vote_resolve("example", "1.2.0", "passed")
            async with client_for(atr, atr_clock, uid="carol", pat="pat-carol-0000") as carol:
                await carol.vote_cast("example", "1.2.0", "+1")
            assert (await rm.vote_resolve("example", "1.2.0", "passed")).success
            # §8.5: a release no longer in release_candidate is not found by the writer.
            with pytest.raises(errors.NotFoundError, match="Release not found"):
                await rm.vote_resolve("example", "1.2.0", "passed")
            release = await rm.release_get("example", "1.2.0")
    assert release.phase == "release_preview"
    assert release.vote_resolved == atr_clock.now()
    assert release.vote_thread_url is not None and release.vote_thread_url.startswith(
        "https://lists.apache.org/thread/"
    )
    result = memory_lists.on("dev@example.apache.org")[-1]
    # §5.7: the project's display name.
    assert result.subject == "[RESULT] [VOTE] Release Apache Example 1.2.0 PASSED"
    assert result.text.startswith("The vote passed.")


async def test_a_cancel_is_allowed_before_the_end_and_returns_the_release_to_draft(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT) as rm:
        await rm.vote_resolve("mailer", "3.0.1", "cancelled")
        release = await rm.release_get("mailer", "3.0.1")
        with pytest.raises(errors.ConflictError, match="Vote is no longer open"):
            await rm.vote_cast("mailer", "3.0.1", "+1")
    assert (release.phase, release.vote_mode, release.vote_resolved) == ("release_candidate_draft", None, None)


async def test_an_email_vote_passes_on_the_rms_word_and_tabulates_through_the_hook(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    asked: list[atr_http.TallyRequest] = []

    async def tally(request: atr_http.TallyRequest) -> Mapping[str, Any]:
        asked.append(request)
        return {"start_unixtime": 1, "votes": {}, "summary": {}, "passed": False, "outcome": "The vote failed."}

    async with (
        start_atr(tally=tally) as atr,
        client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT) as rm,
    ):
        results = await rm.vote_tabulate("mailer", "3.0.1")
        # Started an hour ago with 96 hours to run: one more hour to go after this.
        atr_clock.advance(94 * HOUR)
        with pytest.raises(errors.ConflictError, match="before the voting period has ended"):
            await rm.vote_resolve("mailer", "3.0.1", "passed")
        # §8.1: the end counts from when the start task ran, a moment after `vote_started`.
        atr_clock.advance(HOUR + atr_state.INITIATE_DELAY)
        await rm.vote_resolve("mailer", "3.0.1", "passed")
    assert results.vote_mode == "email"
    assert results.trusted_ballots is None
    assert results.details is not None and results.details.outcome == "The vote failed."
    assert asked[0].list_address == "dev@mail.apache.org"
    assert asked[0].committee_key == "mail"


async def test_podling_round_one_passing_starts_round_two_where_ipmc_ballots_carry(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    data = scenario_data(
        ballots=[
            ballot("fooling-0.3.0", "pat", "+1", 9),
            ballot("fooling-0.3.0", "paula", "+1", 9),
            ballot("fooling-0.3.0", "ian", "+1", 9),
        ]
    )
    async with start_atr(data) as atr, client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT) as rm:
        round_one = await rm.vote_tabulate("fooling", "0.3.0")
        atr_clock.advance(72 * HOUR)
        await rm.vote_resolve("fooling", "0.3.0", "passed")
        release = await rm.release_get("fooling", "0.3.0")
        round_two = await rm.vote_tabulate("fooling", "0.3.0")
        async with client_for(atr, atr_clock, uid="ivy", pat="pat-ivy-0000") as ivy:
            await ivy.vote_cast("fooling", "0.3.0", "+1")
        async with client_for(atr, atr_clock, uid="pat", pat="pat-pat-0000") as pat:
            await pat.vote_cast("fooling", "0.3.0", "+1")
        after = await rm.vote_tabulate("fooling", "0.3.0")
    assert [b.vote_round for b in round_one.trusted_ballots or []] == [1, 1, 1]
    assert round_one.trusted_passed is True
    assert release.phase == "release_candidate"
    assert release.podling_thread_id is not None and len(release.podling_thread_id) == 32
    assert release.current_vote_seq is not None and release.current_vote_seq > 9
    # Round 2: only the IPMC member's round-1 ballot is carried.
    carried = {b.voter_asf_uid: b for b in round_two.trusted_ballots or []}
    assert set(carried) == {"ian"}
    assert carried["ian"].is_carried and carried["ian"].is_binding and carried["ian"].vote_round == 1
    ballots = {b.voter_asf_uid: b for b in after.trusted_ballots or []}
    assert not ballots["ivy"].is_carried and ballots["ivy"].is_binding and ballots["ivy"].vote_round == 2
    assert not ballots["pat"].is_binding
    assert after.trusted_summary is not None
    assert (after.trusted_summary.binding_votes_yes, after.trusted_summary.non_binding_votes_yes) == (2, 1)
    (announcement,) = memory_lists.on("general@incubator.apache.org")[:1]
    assert announcement.subject == "[VOTE] Release Fooling (Incubating) 0.3.0"
    assert "The vote is open for 72 hours." in announcement.text


async def test_manual_votes_are_not_resolved_through_the_api(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    releases = scenario_data()["atr"]["releases"]
    releases[0]["vote_mode"] = "manual"
    async with (
        start_atr(scenario_data(releases=releases)) as atr,
        client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT) as rm,
    ):
        atr_clock.advance(100 * HOUR)
        with pytest.raises(errors.ConflictError, match="configured for manual voting"):
            await rm.vote_resolve("example", "1.2.0", "passed")


async def test_the_sandbox_enforces_atrs_limits_and_error_shapes(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    async with start_atr() as atr, httpx.AsyncClient(base_url=atr.url) as http:
        exchanges = [
            await http.post("/api/jwt/create", json={"asfuid": fixtures.UID, "pat": fixtures.PAT}) for _ in range(11)
        ]
        missing = await http.post("/api/vote/tabulate", json={"project": "example", "version": "1.2.0"})
        invalid = await http.post("/api/vote/tabulate", content=b"not json", headers={"Authorization": "Bearer x.y.z"})
        unknown = await http.get("/api/no/such/endpoint")
        gets = [await http.get("/api/release/get/example/1.2.0") for _ in range(101)]
        other_route = await http.get("/api/project/get/example")
    # §10.3: jwt/create 10/h; a 429 says `retry_after` in the body (360 s: one per 6 minutes), no header.
    assert [r.status_code for r in exchanges] == [200] * 10 + [429]
    limited = exchanges[-1]
    assert limited.json()["error"] == "rate_limit_exceeded"
    assert limited.json()["detail"] == "Too many requests, please retry later."
    assert limited.json()["retry_after"] == 360
    assert "Retry-After" not in limited.headers
    # RateLimit-* describe the 100/min bucket only, 429 included.
    assert limited.headers["RateLimit-Limit"] == "100"
    assert exchanges[0].headers["RateLimit-Remaining"] == "99"
    assert exchanges[0].json()["endpoint"] == "/jwt/create"
    # Every route 100/min per client: the 101st in a minute is refused, another route is not.
    assert [r.status_code for r in gets] == [200] * 100 + [429]
    assert gets[-1].headers["RateLimit-Remaining"] == "0"
    assert 0 < gets[-1].json()["retry_after"] <= 1
    assert other_route.status_code == 200
    assert missing.status_code == 401
    assert "Bearer token" in missing.json()["error"]
    assert invalid.status_code == 401
    assert unknown.status_code == 404 and unknown.json()["error"] == "404 Not Found"
    assert all("request_id" in r.json() for r in (limited, missing, invalid, unknown))
    assert atr.schema_violations == []


async def test_expedited_releases_are_hidden_from_listings_and_outsiders(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    # §8.6: embargoed until released; listings leave it out for everyone, tabulate/cast 404 for non-members.
    releases = scenario_data()["atr"]["releases"]
    releases[0]["expedited"] = True
    async with start_atr(scenario_data(releases=releases)) as atr:
        async with client_for(atr, atr_clock, uid="dave", pat="pat-dave-0000") as outsider:
            listed = await outsider.releases_list()
            with pytest.raises(errors.NotFoundError, match=r"Release example-1\.2\.0 not found"):
                await outsider.vote_tabulate("example", "1.2.0")
            with pytest.raises(errors.NotFoundError):
                await outsider.vote_cast("example", "1.2.0", "+1")
        async with client_for(atr, atr_clock, uid="bob", pat="pat-bob-0000") as member:
            member_listed = await member.releases_list()
            tabulated = await member.vote_tabulate("example", "1.2.0")
    assert "example-1.2.0" not in {r.key for r in listed}
    assert "example-1.2.0" not in {r.key for r in member_listed}
    assert tabulated.vote_seq == 7


async def test_every_ballot_gets_a_receipt_but_tabulate_names_only_the_latest(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    # §6.5: one receipt per cast; ATR's email tally leaves out all of them, the API names the effective one.
    asked: list[atr_http.TallyRequest] = []

    async def tally(request: atr_http.TallyRequest) -> Mapping[str, Any] | None:
        asked.append(request)
        return None

    async with start_atr(tally=tally) as atr, client_for(atr, atr_clock, uid="bob", pat="pat-bob-0000") as bob:
        await bob.vote_cast("example", "1.2.0", "+1")
        await bob.vote_cast("example", "1.2.0", "-1", "found a problem")
        results = await bob.vote_tabulate("example", "1.2.0")
    receipts = [m for m in memory_lists.on("dev@example.apache.org") if m.from_address == "bob@apache.org"]
    assert [m.text.splitlines()[0] for m in receipts] == [
        "+1 (binding) (bob) Bob Builder",
        "-1 (binding) (bob) Bob Builder",
    ]
    assert results.receipt_message_ids() == {receipts[1].message_id}
    assert asked[-1].excluded_message_ids == {m.message_id for m in receipts}


async def test_vote_serials_are_per_release(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    async with start_atr() as atr:
        before = {key: r.current_vote_seq for key, r in atr.state.releases.items()}
        await atr.restart_vote("mailer-3.0.1")
    assert atr.state.releases["mailer-3.0.1"].current_vote_seq == (before["mailer-3.0.1"] or 0) + 1
