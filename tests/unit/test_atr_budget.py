"""The request budget: a token bucket that never lets an hour hold more than its budget."""

from __future__ import annotations

import bisect

import pytest

import watcher.atr.budget as budget
import watcher.sandbox.clocks as clocks


def max_in_any_hour(stamps: list[float]) -> int:
    """The largest number of stamps inside any one-hour window (windows start at a stamp)."""
    ordered = sorted(stamps)
    return max(bisect.bisect_left(ordered, start + 3600) - index for index, start in enumerate(ordered))


async def test_burst_is_free_then_calls_are_spaced_at_the_refill_rate() -> None:
    clock = clocks.ManualClock(0)
    bucket = budget.TokenBucket(60, clock=clock)
    waits = [await bucket.take(clock.sleep) for _ in range(7)]
    assert waits[:6] == [0.0] * 6
    # After the burst of 6, one token every 3600/60 s.
    assert waits[6] == pytest.approx(60)


@pytest.mark.parametrize(("per_hour", "burst"), [(300, None), (60, 1), (20, 20), (500, 50)])
async def test_no_hour_ever_holds_more_than_the_budget(per_hour: int, burst: int | None) -> None:
    clock = clocks.ManualClock(0)
    bucket = budget.TokenBucket(per_hour, burst=burst, clock=clock)
    stamps = []
    for _ in range(per_hour * 3):
        await bucket.take(clock.sleep)
        stamps.append(clock())
    assert max_in_any_hour(stamps) <= per_hour
    # And the budget is used: three budgets' worth take between two and three hours.
    assert 2 * 3600 <= clock() <= 3 * 3600


async def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = clocks.ManualClock(0)
    bucket = budget.TokenBucket(100, burst=10, clock=clock)
    for _ in range(10):
        assert bucket.try_take()
    assert not bucket.try_take()
    clock.advance(10 * 3600)
    taken = sum(1 for _ in range(50) if bucket.try_take())
    assert taken == 10


@pytest.mark.parametrize(("per_hour", "burst"), [(0, None), (10, 0), (10, 11)])
def test_impossible_budgets_are_refused(per_hour: int, burst: int | None) -> None:
    with pytest.raises(ValueError, match=r"budget|burst"):
        budget.TokenBucket(per_hour, burst=burst)


def test_sliding_window_counts_exactly_and_frees_as_events_age() -> None:
    clock = clocks.ManualClock(0)
    window = budget.SlidingWindow(10, clock=clock)
    for _ in range(10):
        assert window.delay() == 0
        window.record()
        clock.advance(60)
    # The first event was at t=0; the window frees at t=3600.
    assert window.delay() == pytest.approx(3600 - 600)
    clock.advance(3600 - 600)
    assert window.delay() == 0
    assert len(window) == 9


async def test_route_budgets_count_each_route_alone_as_atr_does() -> None:
    clock = clocks.ManualClock(0)
    routes = budget.RouteBudget(300, per_minute=90, own={"/api/vote/resolve": 10}, clock=clock)
    waits = [await routes.take("/api/project/get", clock.sleep) for _ in range(90)]
    assert sum(waits) == 0
    # The 91st in the minute waits for the next slot (60/90 s); another route does not wait at all.
    assert await routes.take("/api/policy/get", clock.sleep) == 0
    assert await routes.take("/api/project/get", clock.sleep) == pytest.approx(60 / 90)


async def test_a_routes_own_limit_spaces_it_after_its_burst() -> None:
    clock = clocks.ManualClock(0)
    routes = budget.RouteBudget(300, own={"/api/vote/resolve": 10}, clock=clock)
    waits = [await routes.take("/api/vote/resolve", clock.sleep) for _ in range(11)]
    # ATR's 10/h by GCRA: ten at once, then one per 6 minutes (atr.md §10.3).
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(360)


async def test_no_hour_of_a_route_holds_more_than_the_budget() -> None:
    clock = clocks.ManualClock(0)
    routes = budget.RouteBudget(40, clock=clock)
    stamps = []
    for _ in range(200):
        await routes.take("/api/release/get", clock.sleep)
        stamps.append(clock())
    assert max_in_any_hour(stamps) <= 40


async def test_an_empty_bucket_reported_by_atr_holds_the_route() -> None:
    clock = clocks.ManualClock(0)
    routes = budget.RouteBudget(300, clock=clock)
    routes.observe("/api/release/get", remaining=0, limit=100)
    assert routes.delay("/api/release/get") == pytest.approx(0.6)
    routes.hold("/api/project/get", 30)
    assert routes.delay("/api/project/get") == pytest.approx(30)
    assert routes.delay("/api/committee/get") == 0
