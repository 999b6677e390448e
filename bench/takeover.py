"""How long singleton work is without a holder when the instance holding its lease is killed.

Two `vote-watcher run` processes share one PostgreSQL database (the server on 127.0.0.1:5432, else
a throwaway cluster) and follow five running votes of the sandbox ATR through the sandbox archive.
The holder of the discovery lease is killed with SIGKILL at a random moment of its heartbeat; the
time until the other instance holds the lease is measured from the lease table (polled every 10 ms).
A fresh instance replaces the dead one before the next kill. The median of the kills is printed
beside the configured TTL: a dead holder's lease runs out at most one TTL after its last renewal,
and the standby takes it the moment it does.

Prints `name: value unit` lines. Run: `.venv/bin/python bench/takeover.py [--kills N] [--ttl 3s] [--heartbeat 1s]`.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import random
import statistics
import sys
import tempfile
import time
from typing import Final

# The server control the tests use lives in tests/support/ (not part of the package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tests.support.instances as instances
import tests.support.postgres as postgres
import watcher.core.durations as durations
import watcher.flow.leases as leases
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.lists_http as lists_http
import watcher.store as store

VOTES: Final = 5
PAT: Final = "pat-bench-takeover-3b9e"
POLL_S: Final = 0.01
READY_TIMEOUT_S: Final = 60.0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=5, help="how many holders to kill (default 5)")
    parser.add_argument("--ttl", default="3s", help="leases.ttl (default 3s)")
    parser.add_argument("--heartbeat", default="1s", help="leases.heartbeat (default 1s)")
    return parser.parse_args(argv)


async def _until_ready(instance: instances.Instance) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not any(line.get("event") == "daemon.ready" for line in instance.events()):
        if not instance.alive or time.monotonic() > deadline:
            raise RuntimeError(f"{instance.name} did not start:\n{instance.log_tail()}")
        await asyncio.sleep(0.05)


async def _holder(db: store.Store) -> str:
    while True:
        owner = await instances.lease_owner(db, leases.DISCOVERY)
        if owner is not None:
            return instances.instance_of(owner)
        await asyncio.sleep(POLL_S)


async def measure(folder: pathlib.Path, url: str, args: argparse.Namespace) -> list[float]:
    """Kill the discovery lease's holder `args.kills` times; the seconds until another held it, each time."""
    archive = lists_http.PonyMailSandbox()
    await archive.start()
    data = atr_scenario.synthetic(VOTES, uid=instances.WATCHER_UID, pat=PAT)
    data["atr"] |= {"jwt_per_hour": 1000, "api_per_minute": 1_000_000, "api_per_hour": 1_000_000}
    atr = atr_http.AtrSandbox(atr_scenario.from_mapping(data, time.time()), on_receipt=archive.add)
    await atr.start()
    await atr.announce_votes()
    db = await store.open(url)
    running: dict[str, instances.Instance] = {}

    async def start(name: str) -> None:
        config = instances.write_config(
            folder / name,
            name=name,
            database_url=url,
            atr_url=atr.url,
            pat=PAT,
            archive_url=archive.url,
            lists=[f"dev@project{n:03d}.apache.org" for n in range(VOTES)],
            smtp_port=9,
            ttl=args.ttl,
            heartbeat=args.heartbeat,
        )
        running[name] = instances.Instance(name, config)
        running[name].start()
        await _until_ready(running[name])

    seconds: list[float] = []
    try:
        await db.upgrade()
        await asyncio.gather(start("vw1"), start("vw2"))
        heartbeat = durations.parse(args.heartbeat).total_seconds()
        for kill in range(args.kills):
            victim = running.pop(await _holder(db))
            # Kill at a random point of the holder's heartbeat, as a crash would.
            await asyncio.sleep(random.uniform(0, heartbeat))
            victim.kill()
            killed = time.monotonic()
            while (holder := await _holder(db)) == victim.name:
                await asyncio.sleep(POLL_S)
            seconds.append(time.monotonic() - killed)
            print(f"# kill {kill + 1}: {victim.name} killed, {holder} took over after {seconds[-1]:.2f} s", flush=True)
            await start(f"vw{kill + 3}")
    finally:
        for instance in running.values():
            await instance.stop()
        await db.close()
        await atr.stop()
        await archive.stop()
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Run the kills and print the figures."""
    args = _arguments(argv)
    server = postgres.shared_or_throwaway()
    try:
        url = server.create_database("vw_bench_takeover")
        with tempfile.TemporaryDirectory(prefix="vw-takeover-") as folder:
            seconds = asyncio.run(measure(pathlib.Path(folder), url, args))
    finally:
        postgres.cleanup(server)
    ttl = durations.parse(args.ttl).total_seconds()
    print(f"takeover_seconds: {statistics.median(seconds):.2f} s")
    print(f"lease_ttl_seconds: {ttl:.2f} s")
    print(f"lease_heartbeat_seconds: {durations.parse(args.heartbeat).total_seconds():.2f} s")
    print(f"takeover_max_seconds: {max(seconds):.2f} s")
    print(f"kills: {len(seconds)} count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
