"""Leases for singleton work, so that several instances can share one PostgreSQL database.

Some work must run in one instance at a time: discovery, the IDLE connection of each IMAP
mailbox, the polls of each archive. Each has a named lease, a row in the `leases` table with an
owner and an expiry. `LeaseKeeper` takes the free leases, renews the ones it holds every
heartbeat, and knows which it holds.

A lease is held until a local deadline: the moment a renewal was *sent* plus the TTL, on the
monotonic clock. The row's expiry is that same moment plus the TTL on the wall clock, so the
holder stops no later than anyone else may take over (keep the instances' clocks in sync). When
the deadline passes without a renewal (the database is unreachable), or a renewal is refused
(another instance took the lease), the lease is lost at once: its `held` event is cleared and
the work running under it is cancelled. An instance that does not hold a lease reads the
holder's expiry and tries again at that moment, so a dead holder is replaced within the TTL.

On SQLite only one instance can run (the store locks the file), so `LeaseKeeper.solo()` holds
every lease without asking the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Protocol, TypeVar

import structlog

import watcher.services.wallclock as wallclock
import watcher.store.records as records

log = structlog.get_logger("watcher.flow.leases")

T = TypeVar("T")

DISCOVERY: Final = "discovery"
# A holder's expiry read from the table is retried this much later, so that it has surely passed.
_RETRY_MARGIN_S: Final = 0.02
# After work under a lease failed, wait this long before starting it again.
_RESTART_PAUSE_S: Final = 1.0


def archive(source_name: str) -> str:
    """The lease name of an archive source's polls."""
    return f"archive:{source_name}"


def mailbox(source_name: str) -> str:
    """The lease name of an IMAP mailbox (its IDLE connections and sweeps)."""
    return f"imap:{source_name}"


def owner_id(instance_name: str) -> str:
    """A name for this process that no other process shares: `{instance}:{pid}:{random}`."""
    return f"{instance_name}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseStore(Protocol):
    """The lease operations of the state store (`watcher.store.Store`)."""

    async def acquire_lease(
        self, name: str, owner: str, ttl: datetime.timedelta, now: datetime.datetime | None = None
    ) -> bool:
        """Take the lease if it is free, expired or ours; True when held now."""
        ...

    async def renew_lease(
        self, name: str, owner: str, ttl: datetime.timedelta, now: datetime.datetime | None = None
    ) -> bool:
        """Extend a lease we still hold; False when it expired or passed to another."""
        ...

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease up."""
        ...

    async def lease(self, name: str) -> records.Lease | None:
        """The lease row, if any."""
        ...


@dataclasses.dataclass
class _Lease:
    """What the keeper knows of one lease."""

    name: str
    held: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    retry_at: float = 0.0
    """Loop time before which taking the lease is not tried again (another instance holds it)."""
    expiry: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Future[Any]] = dataclasses.field(default_factory=set)


class LeaseKeeper:
    """Takes, renews and gives up named leases; runs work only while its lease is held."""

    def __init__(
        self,
        store: LeaseStore | None,
        owner: str,
        names: Iterable[str],
        *,
        ttl: datetime.timedelta,
        heartbeat: datetime.timedelta,
        clock: wallclock.Clock = wallclock.utcnow,  # TTLs are real time, even when the daemon's clock is not
    ) -> None:
        """`store` None holds every lease for good (one instance: see `solo`)."""
        if heartbeat >= ttl:
            raise ValueError("the heartbeat must be shorter than the lease TTL")
        self.owner = owner
        self.ttl = ttl
        self.heartbeat = heartbeat
        self._store = store
        self._clock = clock
        self._failing = False
        self._closed = False
        self._leases = {name: _Lease(name) for name in dict.fromkeys(names)}
        if store is None:
            for lease in self._leases.values():
                lease.held.set()

    @classmethod
    def solo(cls) -> LeaseKeeper:
        """A keeper for the only instance (SQLite): every lease is held, the database is never asked."""
        return cls(None, "solo", (), ttl=datetime.timedelta(seconds=30), heartbeat=datetime.timedelta(seconds=10))

    @property
    def shared(self) -> bool:
        """True when other instances may exist (leases live in the database)."""
        return self._store is not None

    @property
    def names(self) -> tuple[str, ...]:
        """The leases this keeper looks after."""
        return tuple(self._leases)

    def holds(self, name: str) -> bool:
        """Whether this instance holds the lease now (a solo keeper holds every lease)."""
        if self._store is None:
            return True
        lease = self._leases.get(name)
        return lease is not None and lease.held.is_set()

    def held(self, name: str) -> asyncio.Event:
        """An event that is set while the lease is held (and cleared the moment it is lost)."""
        return self._lease(name).held

    def held_names(self) -> list[str]:
        """The leases held now."""
        return [name for name in self._leases if self.holds(name)]

    # The heartbeat ---------------------------------------------------------------------------------------------

    async def tick(self) -> None:
        """One heartbeat: renew the leases held, try to take the others whose holder's time is up."""
        if self._store is None or self._closed:
            return
        failed = False
        for lease in list(self._leases.values()):
            try:
                await self._beat(self._store, lease)
            except Exception as exc:
                # The database may be away for a while: the lease stays held until its deadline, no longer.
                failed = True
                log.warning("lease.heartbeat_failed", lease=lease.name, error=f"{type(exc).__name__}: {exc}")
        if self._failing and not failed:
            log.info("lease.heartbeat_recovered", owner=self.owner, held=self.held_names())
        self._failing = failed

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every heartbeat (and at the moment another holder's lease runs out) until `stop` is set."""
        if self._store is None:
            await stop.wait()
            return
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.heartbeat.total_seconds()
        while not stop.is_set():
            now = loop.time()
            retries = [lease.retry_at for lease in self._leases.values() if not lease.held.is_set()]
            wake = min([next_beat, *(at for at in retries if at > now)])
            delay = max(0.0, wake - now)
            if await _first(stop, timeout=delay):
                return
            if loop.time() >= next_beat:
                next_beat = loop.time() + self.heartbeat.total_seconds()
            await self.tick()

    async def release_all(self) -> None:
        """Stop the work under every lease and give the leases up, so that another instance need not wait.

        The keeper takes no lease after this (it is the last thing a stopping daemon does with it).
        """
        self._closed = True
        for lease in self._leases.values():
            if self._store is None or not lease.held.is_set():
                continue
            self._lose(lease, "released")
            try:
                await asyncio.wait_for(
                    self._store.release_lease(lease.name, self.owner), timeout=self.heartbeat.total_seconds()
                )
            except Exception as exc:
                log.warning("lease.release_failed", lease=lease.name, error=f"{type(exc).__name__}: {exc}")

    async def _beat(self, store: LeaseStore, lease: _Lease) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.heartbeat.total_seconds()
        sent = loop.time()
        if lease.held.is_set():
            renewed = await asyncio.wait_for(
                store.renew_lease(lease.name, self.owner, self.ttl, self._clock()), timeout
            )
            if renewed:
                self._hold_until(lease, sent + self.ttl.total_seconds())
            else:
                self._lose(lease, "expired or taken over")
            return
        if sent < lease.retry_at:
            return
        if await asyncio.wait_for(store.acquire_lease(lease.name, self.owner, self.ttl, self._clock()), timeout):
            log.info("lease.acquired", lease=lease.name, owner=self.owner)
            self._hold_until(lease, sent + self.ttl.total_seconds())
            return
        # Someone else holds it: come back the moment their lease runs out, not a heartbeat later.
        row = await asyncio.wait_for(store.lease(lease.name), timeout)
        left = (row.expires_at - self._clock()).total_seconds() if row is not None else 0.0
        lease.retry_at = loop.time() + max(0.0, left) + _RETRY_MARGIN_S

    def _hold_until(self, lease: _Lease, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        if lease.expiry is not None:
            lease.expiry.cancel()
        lease.expiry = loop.call_at(deadline, self._lose, lease, "not renewed in time")
        lease.held.set()

    def _lose(self, lease: _Lease, why: str) -> None:
        if lease.expiry is not None:
            lease.expiry.cancel()
            lease.expiry = None
        if not lease.held.is_set():
            return
        lease.held.clear()
        lease.retry_at = 0.0
        if why != "released":
            log.warning("lease.lost", lease=lease.name, owner=self.owner, reason=why)
        for task in list(lease.tasks):
            task.cancel()

    def _lease(self, name: str) -> _Lease:
        lease = self._leases.get(name)
        if lease is None:
            # A lease first asked about here is looked after from now on (a solo keeper simply holds it).
            lease = self._leases[name] = _Lease(name)
            if self._store is None:
                lease.held.set()
        return lease

    # Work under a lease ----------------------------------------------------------------------------------------

    async def run_under(self, name: str, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run `work` if the lease is held; it is cancelled the moment the lease is lost (then None is returned).

        Returns None at once, without starting `work`, when another instance holds the lease.
        """
        if not self.holds(name):
            return None
        lease = self._lease(name)
        task: asyncio.Future[T] = asyncio.ensure_future(work())
        lease.tasks.add(task)
        task.add_done_callback(lease.tasks.discard)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            log.info("lease.work_stopped", lease=name)
            return None

    async def hold(self, name: str, work: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        """Run long-lived `work` whenever the lease is held, until `stop` is set.

        The work starts when the lease is taken and is cancelled when it is lost; if it fails it
        is started again after a pause. Used for the IDLE connections of a mailbox.
        """
        lease = self._lease(name)
        while not stop.is_set():
            if not await _first(lease.held, stop):
                return
            try:
                await self.run_under(name, work)
            except Exception:
                log.exception("lease.work_failed", lease=name)
            if lease.held.is_set():
                # The work ended (or failed) while the lease is still ours: start it again, after a pause.
                await _first(stop, timeout=_RESTART_PAUSE_S)


async def _first(wanted: asyncio.Event, stop: asyncio.Event | None = None, *, timeout: float | None = None) -> bool:
    """Wait until `wanted` is set, `stop` is set, or the timeout passes; True when `wanted` is set and `stop` is not."""
    waiters = [asyncio.ensure_future(wanted.wait())]
    if stop is not None:
        waiters.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return wanted.is_set() and not (stop is not None and stop.is_set())
