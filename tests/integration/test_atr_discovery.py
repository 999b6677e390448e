"""Vote discovery against the sandbox ATR over real HTTP, with [VOTE] threads from an in-memory archive."""

from __future__ import annotations

import bisect
import datetime

import watcher.atr.client as client
import watcher.core.tracking as tracking
import watcher.flow.discovery as discovery
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.clocks as clocks
from tests.fixtures import atr as fixtures
from tests.fixtures.atr import MemoryLists, StartAtr, client_for, scenario_data

HOUR = 3600.0


def discover(
    atr: atr_http.AtrSandbox, clock: clocks.ManualClock, lists: discovery.ThreadFinder, **options: object
) -> tuple[client.AtrClient, discovery.Discovery]:
    api = client_for(atr, clock, **options)
    return api, discovery.Discovery(api, lists, clock=clock)


def by_release(changes: list[tracking.Change]) -> dict[str, tracking.Change]:
    return {change.vote.release_key: change for change in changes}


async def test_trusted_and_email_votes_are_discovered_with_their_threads(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    async with start_atr() as atr:
        await atr.announce_votes()
        api, finder = discover(atr, atr_clock, memory_lists)
        async with api:
            changes = by_release(await finder.poll())
    assert {c.kind for c in changes.values()} == {"started"}
    trusted = changes["example-1.2.0"].vote
    assert (trusted.mode, trusted.vote_round, trusted.vote_seq) == ("trusted", None, 7)
    assert trusted.list_address == "dev@example.apache.org"
    assert trusted.subject == "[VOTE] Release Example 1.2.0"
    assert trusted.binding_committee_key == "example"
    assert trusted.root_message_id
    assert trusted.root_message_id == atr.state.releases["example-1.2.0"].vote_message_id
    assert trusted.vote_started == fixtures.START - datetime.timedelta(hours=2)
    assert (trusted.vote_end, trusted.end_source) == (trusted.vote_started + datetime.timedelta(hours=72), "body")
    email = changes["mailer-3.0.1"].vote
    assert (email.mode, email.min_hours, email.list_address) == ("email", 96, "dev@mail.apache.org")
    assert email.root_message_id
    assert email.vote_end == email.vote_started + datetime.timedelta(hours=96)
    podling = changes["fooling-0.3.0"].vote
    assert (podling.vote_round, podling.binding_committee_key, podling.list_address) == (
        1,
        "fooling",
        "dev@fooling.apache.org",
    )
    assert set(finder.votes) == set(changes)


async def test_the_vote_end_is_what_the_vote_mail_states(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    data = scenario_data()
    policy = data["atr"]["projects"]["example"]["policy"]
    policy["start_vote_template"] = (
        "Please vote on {{PROJECT_NAME}} {{VERSION}}.\n\nThe vote will be open for at least 100 hours.\n"
    )
    policy["start_vote_subject"] = "[VOTE] Apache {{PROJECT_NAME}} {{VERSION}} (rev {{REVISION}})"
    async with start_atr(data) as atr:
        await atr.announce_votes()
        api, finder = discover(atr, atr_clock, memory_lists)
        async with api:
            vote = by_release(await finder.poll())["example-1.2.0"].vote
    assert vote.subject == "[VOTE] Apache Example 1.2.0 (rev 00001)"
    assert vote.root_message_id
    assert vote.vote_end == vote.vote_started + datetime.timedelta(hours=100)


async def test_a_thread_archived_later_is_found_on_a_later_poll_and_idle_polls_are_cheap(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    async with start_atr() as atr:
        api, finder = discover(atr, atr_clock, memory_lists)
        async with api:
            first = await finder.poll()
            assert all(not c.vote.root_message_id and c.vote.end_source == "policy" for c in first)
            await atr.announce_votes()
            atr_clock.advance(600)
            found = await finder.poll()
            before = atr.count()
            atr_clock.advance(600)
            idle = await finder.poll()
            idle_cost = atr.count() - before
    assert {c.kind for c in found} == {"thread_found"}
    assert len(found) == 3
    assert all(c.vote.root_message_id for c in found)
    assert idle == []
    assert idle_cost == 1


async def test_a_restarted_vote_replaces_the_old_one(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    async with start_atr() as atr:
        await atr.announce_votes()
        api, finder = discover(atr, atr_clock, memory_lists)
        async with api:
            await finder.poll()
            atr_clock.advance(2 * HOUR)
            await atr.restart_vote("example-1.2.0")
            changes = await finder.poll()
    (change,) = changes
    release = atr.state.releases["example-1.2.0"]
    assert change.kind == "restarted"
    assert change.previous is not None and change.previous.vote_seq == 7
    assert change.vote.vote_seq == release.current_vote_seq
    # Serials are per release (atr.md §3.1): the next one.
    assert change.vote.vote_seq == 8
    assert change.vote.vote_started == atr_clock.now()
    # The new [VOTE], not the old one with the same subject.
    assert change.vote.root_message_id
    assert change.vote.root_message_id == release.vote_message_id
    assert change.previous.root_message_id
    assert change.vote.root_message_id != change.previous.root_message_id
    assert finder.votes["example-1.2.0"] == change.vote


async def test_votes_that_leave_the_candidate_phase_are_closed(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    ballots = [
        {"release_key": "example-1.2.0", "voter_asf_uid": uid, "choice": "+1", "vote_seq": 7}
        for uid in ("alice", "bob", "carol")
    ]
    async with start_atr(scenario_data(ballots=ballots)) as atr:
        api, finder = discover(atr, atr_clock, memory_lists)
        rm = client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT)
        async with api, rm:
            await finder.poll()
            await rm.vote_resolve("mailer", "3.0.1", "cancelled")
            atr_clock.advance(72 * HOUR)
            await rm.vote_resolve("example", "1.2.0", "passed")
            changes = by_release(await finder.poll())
    assert changes["mailer-3.0.1"].kind == "closed"
    assert changes["mailer-3.0.1"].phase == "release_candidate_draft"
    assert changes["example-1.2.0"].kind == "closed"
    assert changes["example-1.2.0"].phase == "release_preview"
    assert set(finder.votes) == {"fooling-0.3.0"}


async def test_both_rounds_of_a_podling_vote(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    ballots = [
        {"release_key": "fooling-0.3.0", "voter_asf_uid": uid, "choice": "+1", "vote_seq": 9}
        for uid in ("pat", "paula", "ian")
    ]
    async with start_atr(scenario_data(ballots=ballots)) as atr:
        await atr.announce_votes()
        api, finder = discover(atr, atr_clock, memory_lists)
        rm = client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT)
        async with api, rm:
            first = by_release(await finder.poll())["fooling-0.3.0"].vote
            round_one_binding = [await finder.rosters.is_binding(u, "fooling", 1) for u in ("pat", "ivy", "dave")]
            atr_clock.advance(72 * HOUR)
            await rm.vote_resolve("fooling", "0.3.0", "passed")
            change = by_release(await finder.poll())["fooling-0.3.0"]
            round_two_binding = [await finder.is_binding(change.vote, u) for u in ("pat", "ivy", "ian")]
    assert (first.vote_round, first.binding_committee_key, first.list_address) == (
        1,
        "fooling",
        "dev@fooling.apache.org",
    )
    assert first.root_message_id
    assert round_one_binding == [True, False, False]
    second = change.vote
    assert change.kind == "next_round"
    assert change.previous == first
    assert (second.vote_round, second.binding_committee_key) == (2, "incubator")
    assert second.list_address == "general@incubator.apache.org"
    assert second.podling_thread_id is not None
    assert second.root_message_id
    assert second.root_message_id == atr.state.releases["fooling-0.3.0"].vote_message_id
    assert second.vote_end == atr_clock.now() + datetime.timedelta(hours=72)
    assert round_two_binding == [False, True, True]


class BrokenFinder:
    """A thread source that fails every time."""

    async def find_vote_thread(
        self,
        list_address: str,
        subject: str,
        project: str,
        version: str,
        since: datetime.datetime,
        **hints: object,
    ) -> tracking.FoundThread | None:
        raise ConnectionError("archive unreachable")


async def test_a_failing_thread_source_does_not_stop_discovery(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    async with start_atr() as atr:
        api, finder = discover(atr, atr_clock, BrokenFinder())
        async with api:
            changes = await finder.poll()
    assert len(changes) == 3
    assert all(not c.vote.root_message_id for c in changes)


def max_in_any_hour(stamps: list[float]) -> int:
    ordered = sorted(stamps)
    return max(bisect.bisect_left(ordered, start + HOUR) - index for index, start in enumerate(ordered))


async def test_the_budget_holds_with_fifty_running_votes(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    data = atr_scenario.synthetic(50, uid=fixtures.UID, pat=fixtures.PAT)
    async with start_atr(data) as atr:
        await atr.announce_votes()
        api, finder = discover(atr, atr_clock, memory_lists, budget_per_hour=40)
        async with api:
            for _ in range(100):
                await finder.poll()
                if len(finder.votes) == 50:
                    break
                await atr_clock.sleep(discovery.DEFAULT_INTERVAL)
            for _ in range(12):
                await atr_clock.sleep(discovery.DEFAULT_INTERVAL)
                await finder.poll()
    assert len(finder.votes) == 50
    assert all(vote.root_message_id for vote in finder.votes.values())
    # 50 requests to each of project/get, policy/get and committee/get to learn the votes: the budget
    # counts per route as ATR does (atr.md §10.3), so only possible by waiting, never beyond it.
    assert api.budget.waited > 0
    routes = {client.route_of(r.path) for r in atr.requests}
    for route in routes:
        assert max_in_any_hour([r.at for r in atr.requests if client.route_of(r.path) == route]) <= 40
    assert all(r.status == 200 for r in atr.requests)
