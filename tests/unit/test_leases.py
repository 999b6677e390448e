"""LeaseKeeper (watcher.flow.leases) through its LeaseStore protocol: a lease table kept in memory in this test.

Behaviour that matters: one holder at a time; a holder that stops renewing loses its lease at its
deadline (its work is cancelled) and another instance takes it over once it has expired; a refused
renewal is a loss at once; a released lease is free for the next instance without waiting.
"""

from __future__ import annotations

import asyncio
import datetime

import watcher.flow.leases as leases
import watcher.services.wallclock as wallclock
import watcher.store.records as records

TTL = datetime.timedelta(seconds=0.6)
HEARTBEAT = datetime.timedelta(seconds=0.2)
NAME = leases.DISCOVERY


class MemoryLeases:
    """The lease rules of the store's `leases` table: free, expired or ours is taken; renewal only while ours."""

    def __init__(self) -> None:
        self.rows: dict[str, records.Lease] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("database unreachable")

    async def acquire_lease(
        self, name: str, owner: str, ttl: datetime.timedelta, now: datetime.datetime | None = None
    ) -> bool:
        self._check()
        now = now or wallclock.utcnow()
        row = self.rows.get(name)
        if row is not None and row.owner != owner and row.expires_at > now:
            return False
        self.rows[name] = records.Lease(name, owner, now + ttl, now)
        return True

    async def renew_lease(
        self, name: str, owner: str, ttl: datetime.timedelta, now: datetime.datetime | None = None
    ) -> bool:
        self._check()
        now = now or wallclock.utcnow()
        row = self.rows.get(name)
        if row is None or row.owner != owner or row.expires_at <= now:
            return False
        self.rows[name] = records.Lease(name, owner, now + ttl, row.acquired_at)
        return True

    async def release_lease(self, name: str, owner: str) -> bool:
        self._check()
        row = self.rows.get(name)
        if row is None or row.owner != owner:
            return False
        del self.rows[name]
        return True

    async def lease(self, name: str) -> records.Lease | None:
        self._check()
        return self.rows.get(name)


def keeper(table: MemoryLeases, owner: str) -> leases.LeaseKeeper:
    return leases.LeaseKeeper(table, owner, [NAME], ttl=TTL, heartbeat=HEARTBEAT)


async def test_one_holder_at_a_time_and_a_takeover_after_expiry() -> None:
    table = MemoryLeases()
    first, second = keeper(table, "a:1"), keeper(table, "b:2")
    await first.tick()
    await second.tick()
    assert first.holds(NAME) and not second.holds(NAME)
    assert table.rows[NAME].owner == "a:1"

    # The first instance dies (no more heartbeats); the second keeps beating and takes over after expiry.
    stop = asyncio.Event()
    runner = asyncio.create_task(second.run(stop))
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(second.held(NAME).wait(), timeout=5)
    waited = asyncio.get_running_loop().time() - started
    stop.set()
    await runner
    assert table.rows[NAME].owner == "b:2"
    # Not before the first holder's expiry, and soon after it (it retries at that moment, not a heartbeat later).
    assert waited >= TTL.total_seconds() * 0.8
    assert waited < TTL.total_seconds() + 1.0
    # The dead holder's own deadline has passed too: it no longer believes it holds the lease.
    assert not first.holds(NAME)


async def test_work_under_a_lease_is_cancelled_when_the_renewal_is_refused() -> None:
    table = MemoryLeases()
    holder = keeper(table, "a:1")
    await holder.tick()
    started = asyncio.Event()

    async def work() -> str:
        started.set()
        await asyncio.sleep(30)
        return "finished"

    running = asyncio.create_task(holder.run_under(NAME, work))
    await started.wait()
    # Another instance took the row (as after a long pause of this one): the next renewal is refused.
    now = wallclock.utcnow()
    table.rows[NAME] = records.Lease(NAME, "b:2", now + TTL, now)
    await holder.tick()
    assert not holder.holds(NAME)
    assert await asyncio.wait_for(running, timeout=2) is None
    # Work is not even started while another instance holds the lease.
    assert await holder.run_under(NAME, work) is None


async def test_a_lease_is_lost_at_its_deadline_while_the_database_is_away() -> None:
    table = MemoryLeases()
    holder = keeper(table, "a:1")
    await holder.tick()
    table.down = True
    await holder.tick()
    # A failed heartbeat does not drop the lease: it stays held until its deadline, no longer.
    assert holder.holds(NAME)
    await asyncio.sleep(TTL.total_seconds() + 0.1)
    assert not holder.holds(NAME)


async def test_a_released_lease_is_taken_at_once_by_the_next_instance() -> None:
    table = MemoryLeases()
    first, second = keeper(table, "a:1"), keeper(table, "b:2")
    await first.tick()
    await first.release_all()
    assert not first.holds(NAME)
    await second.tick()
    assert second.holds(NAME)
    # A keeper that released everything takes nothing again.
    await first.tick()
    assert not first.holds(NAME) and table.rows[NAME].owner == "b:2"


def test_a_solo_keeper_holds_every_lease_without_a_database() -> None:
    solo = leases.LeaseKeeper.solo()
    assert not solo.shared
    assert solo.holds(NAME) and solo.holds(leases.mailbox("inbox"))
