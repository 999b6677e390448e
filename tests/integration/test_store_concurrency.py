"""Several instances on one database: PostgreSQL shares the work safely; SQLite refuses a second instance."""

from __future__ import annotations

import asyncio
import datetime
import os
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

import tests.support.postgres as postgres
import watcher.store as store

T0 = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
TTL = datetime.timedelta(seconds=30)
INSTANCES = 4


@pytest.fixture
async def instances(postgres_url: str) -> AsyncIterator[list[store.Store]]:
    """Several stores on one PostgreSQL database, each with its own connection pool, like separate processes."""
    opened = [await store.open(postgres_url) for _ in range(INSTANCES)]
    try:
        await opened[0].upgrade()
        async with opened[0].engine.begin() as conn:
            await conn.exec_driver_sql("TRUNCATE outbox, resolutions, leases RESTART IDENTITY CASCADE")
        yield opened
    finally:
        for db in opened:
            await db.close()


async def test_concurrent_claims_never_share_a_row(instances: list[store.Store]) -> None:
    total = 300
    for index in range(total):
        await instances[0].enqueue_reminder(
            release_key=f"r{index % 10}", vote_seq=1, voter=f"u{index}", raw=b"m", message_id=f"<{index}@x>", now=T0
        )

    async def claimer(db: store.Store, owner: str) -> list[int]:
        got: list[int] = []
        while batch := await db.claim_due(T0, 7, owner):
            got += [row.id for row in batch]
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(
        *(claimer(db, f"instance-{n}-{task}") for n, db in enumerate(instances) for task in range(2))
    )
    claimed = [row_id for result in results for row_id in result]
    assert len(claimed) == len(set(claimed)), "a row was claimed twice"
    assert sorted(claimed) == list(range(1, total + 1))
    assert sum(1 for result in results if result) > 1, "the work was not shared at all"


async def test_only_one_instance_takes_a_lease(instances: list[store.Store]) -> None:
    for round_ in range(20):
        name = f"imap:alice@x:{round_}"
        won = await asyncio.gather(
            *(db.acquire_lease(name, f"owner-{n}", TTL, now=T0) for n, db in enumerate(instances))
        )
        assert sum(won) == 1, won
        winner = f"owner-{won.index(True)}"
        lease = await instances[0].lease(name)
        assert lease is not None
        assert lease.owner == winner
        # Before expiry nobody else gets it; after expiry exactly one of the others does.
        assert not any(
            await asyncio.gather(
                *(
                    db.acquire_lease(name, f"owner-{n}", TTL, now=T0 + TTL / 2)
                    for n, db in enumerate(instances)
                    if f"owner-{n}" != winner
                )
            )
        )
        later = T0 + TTL
        others = [(n, db) for n, db in enumerate(instances) if f"owner-{n}" != winner]
        taken = await asyncio.gather(*(db.acquire_lease(name, f"owner-{n}", TTL, now=later) for n, db in others))
        assert sum(taken) == 1, taken
        assert not await instances[0].renew_lease(name, winner, TTL, now=later)


async def test_only_one_instance_resolves_a_vote(instances: list[store.Store]) -> None:
    for seq in range(1, 11):
        outcomes = await asyncio.gather(*(db.begin_resolution("foo-1.0", seq, "passed", now=T0) for db in instances))
        assert sum(go for _, go in outcomes) == 1
        assert len({row.id for row, _ in outcomes}) == 1


async def test_concurrent_enqueues_write_one_reminder(instances: list[store.Store]) -> None:
    outcomes = await asyncio.gather(
        *(
            db.enqueue_reminder(
                release_key="foo-1.0", vote_seq=1, voter="alice", raw=f"{n}".encode(), message_id=f"<{n}@x>", now=T0
            )
            for n, db in enumerate(instances)
        )
    )
    assert sum(created for _, created in outcomes) == 1
    assert len({(row.id, row.message_id, row.raw) for row, _ in outcomes}) == 1


# SQLite: one instance ---------------------------------------------------------------------------------------------


async def test_second_instance_on_one_sqlite_file_is_refused(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'vote-watcher.db'}"
    first = await store.open(url)
    try:
        with pytest.raises(store.StoreLockedError, match=r"another vote-watcher .* is using") as caught:
            await store.open(url)
        message = str(caught.value)
        assert "vote-watcher.db.lock" in message
        assert "PostgreSQL" in message
        script = f"import asyncio, watcher.store as s; asyncio.run(s.open({url!r}))"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0
        assert "StoreLockedError" in done.stderr
        assert f"(process {os.getpid()})" in done.stderr
    finally:
        await first.close()
    again = await store.open(url)
    await again.close()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


async def test_one_sqlite_instance_serves_concurrent_tasks(tmp_path: pathlib.Path) -> None:
    db = await store.open(f"sqlite:///{tmp_path / 'vote-watcher.db'}")
    try:
        await db.upgrade()
        raws = [f"Message-ID: <{n}@x>\nSubject: s\n\nbody\n".encode() for n in range(100)]
        added = await asyncio.gather(*(db.add_message(raw, "imap") for raw in raws + raws))
        assert sum(added) == 100
        leases = await asyncio.gather(*(db.acquire_lease("discovery", f"task-{n}", TTL, now=T0) for n in range(10)))
        assert sum(leases) == 1
    finally:
        await db.close()


async def test_the_store_recovers_when_postgresql_comes_back() -> None:
    """A throwaway cluster (the fallback when no server runs on 5432) is stopped and started under an open store."""
    try:
        server = postgres.start_cluster()
    except postgres.PostgresError as exc:
        pytest.fail(f"cannot start a throwaway PostgreSQL: {exc}", pytrace=False)
    try:
        db = await store.open(server.create_database())
        try:
            await db.upgrade()
            assert await db.add_message(b"Message-ID: <a@x>\n\nbody\n", "imap")
            server.stop()
            # An outage reaches the caller as a store error (never as the driver's own), saying why.
            with pytest.raises(store.StoreUnavailableError, match="Connect call failed"):
                await db.has_message("a@x")
            server.start()
            # No reopen: the pool replaces the dead connections by itself.
            assert await db.has_message("a@x")
            assert await db.acquire_lease("discovery", "one", TTL, now=T0)
        finally:
            await db.close()
    finally:
        postgres.cleanup(server)
