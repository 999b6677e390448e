"""Rosters from ATR's committees: binding per round, the aliases file, and the refresh-limited cache."""

from __future__ import annotations

import pytest

import watcher.atr.cache as cache
import watcher.atr.errors as errors
import watcher.atr.models as models
import watcher.atr.rosters as rosters
import watcher.core.roster as roster
import watcher.sandbox.clocks as clocks

PPMC = models.AtrCommittee(
    key="fooling", is_podling=True, committee_members=["pat", "ian"], committers=["pat", "ian", "dave"]
)
IPMC = models.AtrCommittee(key="incubator", committee_members=["ian", "ivy"])


def test_atr_committees_become_roster_values() -> None:
    value = rosters.committee_value(PPMC)
    assert value == roster.Committee(
        "fooling", frozenset({"pat", "ian"}), frozenset({"pat", "ian", "dave"}), frozenset(), True, ""
    )


@pytest.mark.parametrize(
    ("uid", "vote_round", "binding"),
    [
        ("pat", 1, True),  # PPMC member, round 1
        ("dave", 1, False),  # committer only
        ("pat", 2, False),  # PPMC but not IPMC: not binding in round 2
        ("ian", 2, True),  # in both
        ("ivy", 2, True),  # IPMC only
        ("ivy", 1, False),
        (None, 1, False),
    ],
)
def test_binding_follows_the_round(uid: str | None, vote_round: int, binding: bool) -> None:
    values = roster.Roster({"fooling": rosters.committee_value(PPMC), "incubator": rosters.committee_value(IPMC)})
    assert rosters.is_binding(values, uid, "fooling", vote_round) is binding


class Reader:
    """An in-memory committee source that counts its reads."""

    def __init__(self, committees: dict[str, models.AtrCommittee]) -> None:
        self.committees = committees
        self.reads = 0
        self.fail: errors.AtrError | None = None

    async def committee_get(self, key: str) -> models.AtrCommittee:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        if key not in self.committees:
            raise errors.NotFoundError(f"/api/committee/get/{key}", 404, f"Committee {key} not found")
        return self.committees[key]


async def test_rosters_merge_the_aliases_people_and_prefer_atrs_committees() -> None:
    aliases = roster.Roster(
        {"fooling": roster.Committee("fooling", frozenset({"stale"}))},
        {"ivy": roster.Person("ivy", "Ivy", ("ivy@example.org",))},
    )
    reader = Reader({"fooling": PPMC, "incubator": IPMC})
    atr = rosters.AtrRosters(reader, aliases=aliases, clock=clocks.ManualClock(0))
    values = await atr.for_vote("fooling", 2)
    assert values.uid_for_address("IVY@example.org") == "ivy"
    assert values.committees["fooling"].members == {"pat", "ian"}
    assert await atr.is_binding("ivy", "fooling", 2)
    assert not await atr.is_binding("stale", "fooling", 1)
    assert reader.reads == 2


async def test_committees_are_cached_for_their_ttl() -> None:
    clock = clocks.ManualClock(0)
    reader = Reader({"fooling": PPMC})
    atr = rosters.AtrRosters(reader, ttl=3600, clock=clock)
    for _ in range(5):
        await atr.committee("fooling")
    assert reader.reads == 1
    clock.advance(3601)
    await atr.committee("fooling")
    assert reader.reads == 2


async def test_stale_values_are_refreshed_a_few_per_cycle() -> None:
    clock = clocks.ManualClock(0)
    limit = cache.RefreshLimit(2)
    values: cache.Cache[int, int] = cache.Cache(60, clock=clock, limit=limit)
    fetched: list[int] = []

    async def fetch(key: int) -> int:
        fetched.append(key)
        return key * 10

    for key in range(5):
        assert await values.get(key, lambda k=key: fetch(k)) == key * 10
    clock.advance(61)
    fetched.clear()
    limit.new_cycle()
    for key in range(5):
        await values.get(key, lambda k=key: fetch(k))
    assert fetched == [0, 1]
    limit.new_cycle()
    for key in range(5):
        await values.get(key, lambda k=key: fetch(k))
    assert fetched == [0, 1, 2, 3]


async def test_a_passing_failure_keeps_the_stale_value_and_a_404_drops_it() -> None:
    clock = clocks.ManualClock(0)
    reader = Reader({"fooling": PPMC})
    atr = rosters.AtrRosters(reader, ttl=60, clock=clock)
    first = await atr.committee("fooling")
    clock.advance(61)
    reader.fail = errors.ServerError("/api/committee/get/fooling", 503, "down")
    assert await atr.committee("fooling") == first
    reader.fail = errors.NotFoundError("/api/committee/get/fooling", 404, "gone")
    with pytest.raises(errors.NotFoundError):
        await atr.committee("fooling")
    reader.fail = errors.ServerError("/api/committee/get/fooling", 503, "down")
    with pytest.raises(errors.ServerError):
        await atr.committee("fooling")
