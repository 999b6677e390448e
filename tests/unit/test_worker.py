"""The worker process: tasks run off the event loop, a task past its time limit is stopped, the next one runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.flow.worker as worker

VOTE = b"From: Chen Wei <chen@apache.org>\nMessage-ID: <v1@x>\nSubject: Re: [VOTE] Release Foo 1.0\n\n+1 (binding)\n"


@pytest.fixture
async def pool() -> AsyncIterator[worker.Worker]:
    started = worker.Worker(check_timeout=2.0, tally_timeout=5.0)
    try:
        yield started
    finally:
        started.close()


async def _ticks(work: asyncio.Future[object]) -> tuple[int, float, float]:
    """(ticks, longest pause, whole time) of a 10 ms ticker on this event loop while `work` runs."""
    ticks, longest = 0, 0.0
    began = last = time.monotonic()
    while not work.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        ticks, longest, last = ticks + 1, max(longest, now - last), now
    return ticks, longest, last - began


async def test_a_task_past_its_limit_is_stopped_and_the_next_runs(pool: worker.Worker) -> None:
    assert await pool.check(VOTE) is None  # the process is up
    started = time.monotonic()
    with pytest.raises(worker.WorkerError, match=r"longer than 0.5 s \(the worker was stopped\)"):
        await pool.run(time.sleep, (3600,), 0.5)
    # The task would take an hour: returning at all, and within a minute even on a loaded machine, is the kill.
    assert time.monotonic() - started < 60
    assert await pool.check(VOTE) is None


async def test_the_event_loop_keeps_its_timing_while_the_worker_is_busy(pool: worker.Worker) -> None:
    assert await pool.check(VOTE) is None
    # CPU-bound in the worker process (a busy loop holds the GIL of its own process only).
    busy = asyncio.ensure_future(pool.run(sum, (range(60_000_000),), 30.0))
    ticks, gap, took = await _ticks(busy)
    assert await busy == sum(range(60_000_000))
    # Work held on this loop would be one pause as long as the work (one tick). Off the loop, the ticker runs on:
    # many ticks, and no pause near the whole (a ratio, so that a loaded machine slows both alike).
    assert ticks >= 20, (ticks, took)
    assert gap < took / 4, (gap, took)


async def test_a_thread_is_tallied_in_the_worker_from_its_readings(pool: worker.Worker) -> None:
    people = roster.Roster(committees={"foo": roster.Committee("foo", members=frozenset({"chen"}))})
    read = await pool.read(VOTE)
    assert not isinstance(read, str)
    analysis = await pool.analyse([read], people, tally.Options(committee="foo"))
    assert [(v.voter, v.vote, v.status) for v in analysis.result.votes] == [("chen", "+1", "binding")]
    assert analysis.messages == (("v1@x", "v1@x"),)
    assert analysis.receipts == frozenset()


async def test_a_dead_worker_is_a_reason_not_a_crash(pool: worker.Worker) -> None:
    import os

    with pytest.raises(worker.WorkerError, match="died"):
        await pool.run(os._exit, (3,), 5.0)
    assert await pool.check(VOTE) is None
