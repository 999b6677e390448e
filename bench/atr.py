"""What the daemon costs ATR, against the sandbox ATR (which enforces ATR's real limits, reference/atr.md §10.3).

1. Steady state: discovery's requests per hour with 50 running votes (simulated clock, a day after
   a 30-hour warm-up, so every cache expired and was refreshed).
2. `run --once` from cron every 5 minutes: PAT exchanges per hour, each run a new client sharing the
   JWT through a real SQLite state database (simulated clock, 3 hours).
3. `vote/tabulate` calls per vote over its life: the real daemon in-process, a 24-hour Trusted Vote
   on a clock 3600 times faster, with ballots and emailed votes arriving, then its resolution.
4. Start-up at the shipped defaults with 10, 50 and 200 running votes: the real daemon in-process on
   the real clock; READY (systemd's notify socket) time and ATR requests until then, the time and
   requests until every vote was tracked and checked, and how long a SIGTERM-like stop then takes.

Prints `name: value unit` lines. Run: `.venv/bin/python bench/atr.py [--quick]` (--quick: 10 and 50 only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import pathlib
import socket
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Final

import pydantic

# The vote's-life figure drives the real daemon with the test suite's end-to-end world (tests/fixtures/e2e.py).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tests.fixtures.e2e as e2e
import watcher.atr.client as client
import watcher.atr.tokens as tokens
import watcher.config as config
import watcher.core.message as message
import watcher.core.tracking as tracking
import watcher.flow.discovery as discovery
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.clocks as clocks
import watcher.sandbox.lists_http as lists_http
import watcher.services.log as log
import watcher.store as store
import watcher.wiring as wiring

VOTES: Final = 50
UID: Final = "watcher"
PAT: Final = "pat-bench-5f0c2a9e"
HOUR: Final = 3600.0
WARM_UP_HOURS: Final = 30
MEASURED_HOURS: Final = 24
CRON_S: Final = 300.0
CRON_HOURS: Final = 3
START: Final = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
STARTUP_TIMEOUT_S: Final = 900.0


class Archive:
    """The [VOTE] mails the sandbox posts, found by list and subject (the archive's cost is not ATR's)."""

    def __init__(self) -> None:
        self.mails: dict[tuple[str, str], message.Message] = {}

    def add(self, raw: bytes, list_address: str) -> None:
        parsed = message.parse(raw)
        self.mails.setdefault((list_address, parsed.subject), parsed)

    async def find_vote_thread(
        self,
        list_address: str,
        subject: str,
        project: str,
        version: str,
        since: datetime.datetime,
        *,
        managers: Iterable[str] = (),
        thread_url: str | None = None,
    ) -> tracking.FoundThread | None:
        found = self.mails.get((list_address, subject))
        if found is None:
            return None
        return tracking.FoundThread(found.message_id, found.subject, found.text, found.date)


async def steady_state() -> dict[str, float]:
    """Discovery's requests per hour with 50 running votes."""
    clock = clocks.ManualClock(START)
    scenario = atr_scenario.from_mapping(atr_scenario.synthetic(VOTES, uid=UID, pat=PAT), clock())
    archive = Archive()
    sandbox = atr_http.AtrSandbox(scenario, clock=clock, on_receipt=archive.add)
    async with sandbox as url:
        await sandbox.announce_votes()
        api = client.AtrClient(url, UID, pydantic.SecretStr(PAT), clock=clock, sleep=clock.sleep, wall_clock=clock)
        async with api:
            finder = discovery.Discovery(api, archive, clock=clock)
            await finder.poll()
            while finder.pending:
                await finder.poll()
            first_poll = sandbox.count()
            polls_per_hour = round(HOUR / discovery.DEFAULT_INTERVAL)
            for _ in range(WARM_UP_HOURS * polls_per_hour):
                await clock.sleep(discovery.DEFAULT_INTERVAL)
                await finder.poll()
            per_hour = []
            for _ in range(MEASURED_HOURS):
                before = sandbox.count()
                for _ in range(polls_per_hour):
                    await clock.sleep(discovery.DEFAULT_INTERVAL)
                    await finder.poll()
                per_hour.append(sandbox.count() - before)
    if len(finder.votes) != VOTES or any(not v.root_message_id for v in finder.votes.values()):
        raise RuntimeError("discovery did not track every vote with its thread")
    return {
        "first_poll": first_poll,
        "mean": sum(per_hour) / len(per_hour),
        "max": max(per_hour),
        "idle_poll": min(per_hour) / polls_per_hour,
    }


async def cron_exchanges(folder: pathlib.Path) -> float:
    """PAT exchanges per hour when `run --once` runs every 5 minutes (a new client each time, one database)."""
    clock = clocks.ManualClock(START)
    scenario = atr_scenario.from_mapping(atr_scenario.synthetic(3, uid=UID, pat=PAT), clock())
    db = await store.open(f"sqlite+aiosqlite:///{folder / 'cron.db'}")
    await db.upgrade()
    atr = atr_http.AtrSandbox(scenario, clock=clock)
    try:
        async with atr as url:
            for _ in range(round(CRON_HOURS * HOUR / CRON_S)):
                api = client.AtrClient(
                    url,
                    UID,
                    pydantic.SecretStr(PAT),
                    clock=clock,
                    sleep=clock.sleep,
                    wall_clock=clock,
                    token_store=tokens.StoreTokens(db, url, UID, PAT),
                )
                async with api:
                    await api.vote_tabulate("project000", "1.0.0")
                clock.advance(CRON_S)
    finally:
        await db.close()
    return atr.count("/api/jwt/create") / CRON_HOURS


async def tabulate_per_vote(folder: pathlib.Path) -> dict[str, float]:
    """The real daemon over a 24-hour Trusted Vote: vote/tabulate calls from its start to its resolution."""
    release = "lantern-2.0.0"
    folder.mkdir(parents=True, exist_ok=True)
    data = e2e.lantern_scenario(hours=24, ballots=[e2e.ballot(release, "amira")])
    async with e2e.running(folder, data) as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", release), "the vote tracked")
        await env.vote_by_email(release, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
        await env.wait_scenario(3)
        await env.cast("chen", release, "+1")
        await env.wait_scenario(2)
        await env.vote_by_email(release, "Someone <someone@example.org>", "+1 (non-binding)\n")
        await env.wait_scenario(4)
        await env.cast("bjorn", release, "+1")
        await env.vote_by_email(release, "Dolores Ruiz <dolores@apache.org>", "+1\n")
        await env.until(lambda: env.of("resolved", release), "the resolution", timeout=60)
        calls = env.atr.count("/api/vote/tabulate")
        checks = len(env.of("tally", release))
    return {"tabulate": calls, "tallies": checks}


def _config(folder: pathlib.Path, atr_url: str, archive_url: str, lists: list[str]) -> pathlib.Path:
    """A configuration with the shipped defaults for everything but where things are."""
    pat = folder / "pat"
    pat.write_text(PAT)
    pat.chmod(0o600)
    path = folder / "config.toml"
    list_text = ", ".join(f'"{name}"' for name in lists)
    path.write_text(
        f"""
[watcher]
state_dir = "{folder / "state"}"
log_level = "warning"
# No relay in a benchmark: mail is written as files; ATR is read exactly as in a real run.
dry_run = true

[reminders]
from = "vote-watcher <{UID}@apache.org>"

[atr]
base_url = "{atr_url}"
uid = "{UID}"
pat_file = "{pat}"

[[sources]]
kind = "ponymail"
base_url = "{archive_url}"
lists = [{list_text}]
"""
    )
    return path


@contextlib.contextmanager
def _notify_socket(folder: pathlib.Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = folder / "notify.sock"
    sock.bind(str(path))
    sock.setblocking(False)
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = str(path)
    try:
        yield sock
    finally:
        if old is None:
            os.environ.pop("NOTIFY_SOCKET", None)
        else:
            os.environ["NOTIFY_SOCKET"] = old
        sock.close()


async def startup(folder: pathlib.Path, votes: int, *, stop_at_ready: bool = False) -> dict[str, float]:
    """The real daemon at the shipped defaults: READY, the first full cycle, and a stop after it
    (or, with `stop_at_ready`, a stop right after READY, while the first cycle still runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    scenario = atr_scenario.from_mapping(atr_scenario.synthetic(votes, uid=UID, pat=PAT), time.time())
    archive = lists_http.PonyMailSandbox()
    archive_url = await archive.start()
    atr = atr_http.AtrSandbox(scenario, on_receipt=archive.add)
    lists = sorted({r.email_to for r in atr.state.releases.values()})
    try:
        atr_url = await atr.start()
        await atr.announce_votes()
        cfg = config.load(_config(folder, atr_url, archive_url, lists))
        db = await store.open(cfg.watcher.database_url)
        await db.upgrade()
        await db.close()
        with _notify_socket(folder) as sock:
            stop = asyncio.Event()
            started = time.monotonic()
            task = asyncio.ensure_future(wiring.run(cfg, stop=stop))
            ready_at, ready_requests = await _ready(sock, task, atr, started)
            while not stop_at_ready and atr.count("/api/vote/tabulate") < votes:
                if task.done() or time.monotonic() - started > STARTUP_TIMEOUT_S:
                    raise RuntimeError(f"the first cycle did not check {votes} votes")
                await asyncio.sleep(0.05)
            cycle_at, cycle_requests = time.monotonic() - started, atr.count()
            stop_from = time.monotonic()
            stop.set()
            status = await asyncio.wait_for(task, 60)
            stopped_in = time.monotonic() - stop_from
        if status != 0:
            raise RuntimeError(f"the daemon exited {status}")
        limited = sum(1 for r in atr.requests if r.status == 429)
    finally:
        await atr.stop()
        await archive.stop()
    return {
        "ready_s": ready_at,
        "ready_requests": ready_requests,
        "cycle_s": cycle_at,
        "cycle_requests": cycle_requests,
        "stop_s": stopped_in,
        "limited": limited,
    }


async def _ready(
    sock: socket.socket, task: asyncio.Task[int], atr: atr_http.AtrSandbox, started: float
) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    while True:
        if task.done():
            raise RuntimeError(f"the daemon stopped before READY: {task!r}")
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=1.0)
        except TimeoutError:
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise RuntimeError("no READY") from None
            continue
        if "READY=1" in data.decode().split("\n"):
            return time.monotonic() - started, atr.count()


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="start-up with 10 and 50 votes only")
    parser.add_argument("--only", choices=["steady", "cron", "life", "startup"], help="one measurement")
    args = parser.parse_args(argv)
    log.configure(level="warning")
    if args.only in (None, "steady"):
        figures = asyncio.run(steady_state())
        print(f"atr_requests_per_hour_50_votes: {figures['mean']:.1f} requests/h")
        print(f"atr_requests_worst_hour_50_votes: {figures['max']:.0f} requests/h")
        print(f"atr_requests_per_idle_poll_50_votes: {figures['idle_poll']:.1f} requests")
        print(f"atr_first_discovery_requests_50_votes: {figures['first_poll']:.0f} requests")
    with tempfile.TemporaryDirectory() as temp:
        folder = pathlib.Path(temp)
        if args.only in (None, "cron"):
            exchanges = asyncio.run(cron_exchanges(folder))
            print(f"atr_pat_exchanges_per_hour_run_once_every_5_min: {exchanges:.1f} exchanges/h")
        if args.only in (None, "life"):
            life = asyncio.run(tabulate_per_vote(folder / "life"))
            print(f"atr_tabulate_calls_per_vote_life_24h: {life['tabulate']:.0f} calls")
        for votes in (10, 50) if args.quick else (10, 50, 200):
            if args.only not in (None, "startup"):
                break
            found = asyncio.run(startup(folder / f"start-{votes}", votes))
            print(f"startup_{votes}_votes_ready: {found['ready_s']:.1f} s, {found['ready_requests']:.0f} requests")
            print(
                f"startup_{votes}_votes_first_cycle: {found['cycle_s']:.1f} s, {found['cycle_requests']:.0f} requests,"
                f" {found['limited']:.0f} answered 429"
            )
            print(f"startup_{votes}_votes_stop_after_cycle: {found['stop_s']:.1f} s")
        if args.only in (None, "startup"):
            votes = 50 if args.quick else 200
            found = asyncio.run(startup(folder / f"stop-{votes}", votes, stop_at_ready=True))
            print(f"startup_{votes}_votes_stop_during_first_cycle: {found['stop_s']:.1f} s")
    print(f"atr_discovery_poll_interval: {discovery.DEFAULT_INTERVAL:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
