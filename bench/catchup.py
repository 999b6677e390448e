"""IMAP catch-up through the daemon's own intake: waiting messages, stored msgs/s.

Real parts on loopback: a Dovecot of its own (TLS), the IMAP source, `Intake`, the worker process
and a SQLite store. Two scenarios: 1,000 messages of list traffic no vote tracks (stored only), and
300 replies to a tracked vote, each read in the worker and re-tallying the thread (coalesced per vote, as the
daemon does; the worker is shared by readings and tallies, as in the daemon).

- before: one message per store transaction (`on_message`), and each re-tally parses every
  message of the thread again in the worker (what `Desk.retally` did until readings were stored);
- after: each fetched batch stored in one transaction (`on_batch` -> `Intake.take_many`), each
  message read once in the worker when it is taken, and a re-tally combines the stored readings.

Prints `name: value unit` lines, medians of RUNS runs of each.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

# The server control the tests use lives in tests/support/ (not part of the package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tests.support.dovecot as dovecot
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.core.tracking as tracking
import watcher.flow.intake as intake
import watcher.flow.worker as worker
import watcher.services.log as log
import watcher.services.secrets as secrets
import watcher.sources.imap as imap
import watcher.store as store

RUNS: Final = 3
CATCH_UP: Final = 1000
# Replies to a tracked vote: fewer, because before, the re-tallies parse the thread again and again (about n²).
TRACKED: Final = 300
WAIT_S: Final = 600.0
PEOPLE: Final = roster.Roster(committees={"example": roster.Committee("example", members=frozenset({"voter"}))})
OPTIONS: Final = tally.Options(committee="example")
T0: Final = datetime.datetime(2025, 11, 26, 9, tzinfo=datetime.UTC)


def mail(run: str, n: int, size: int = 1500) -> bytes:
    """A reply of about `size` bytes to the run's [VOTE]."""
    body = ("+1 (binding)\r\n\r\n" + "I checked the signatures and the build. " * (size // 40))[:size]
    return (
        f"From: Voter{n} <voter{n}@apache.org>\r\nTo: dev@example.apache.org\r\n"
        f"Subject: Re: [VOTE] Release Example {run}\r\nMessage-ID: <{run}-{n}@bench.example.org>\r\n"
        f"In-Reply-To: <{run}-root@bench.example.org>\r\nDate: Wed, 26 Nov 2025 10:00:00 +0000\r\n"
        f"List-Id: <dev.example.apache.org>\r\n\r\n{body}\r\n"
    ).encode()


def root(run: str) -> bytes:
    """The run's [VOTE]."""
    return (
        f"From: RM <rm@apache.org>\r\nSubject: [VOTE] Release Example {run}\r\n"
        f"Message-ID: <{run}-root@bench.example.org>\r\nDate: Wed, 26 Nov 2025 09:00:00 +0000\r\n"
        f"List-Id: <dev.example.apache.org>\r\n\r\nPlease vote.\r\n"
    ).encode()


def parse_and_tally(raws: Sequence[bytes]) -> tally.Tally:
    """The re-tally before readings were stored: every message of the thread parsed again (in the worker)."""
    return tally.tally([message.parse(raw) for raw in raws], PEOPLE, OPTIONS)


class Retallier:
    """Re-tallies a vote after new mail, coalesced as `Daemon.on_vote_changed` does."""

    def __init__(self, db: store.Store, pool: worker.Worker, *, from_readings: bool) -> None:
        self.db, self.worker, self.from_readings = db, pool, from_readings
        self._running: asyncio.Task[None] | None = None
        self._again = False
        self.tallies = 0

    async def changed(self, vote_id: int) -> None:
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = asyncio.create_task(self._loop(vote_id))

    async def _loop(self, vote_id: int) -> None:
        again = True
        while again:
            self._again = False
            await self._retally(vote_id)
            again = self._again

    async def _retally(self, vote_id: int) -> None:
        self.tallies += 1
        if not self.from_readings:
            raws = await self.db.thread_messages(vote_id)
            await self.worker.run(parse_and_tally, (raws,), worker.TALLY_TIMEOUT_S)
            return
        digests = [read for _, read in await self.db.thread_readings(vote_id) if read is not None]
        await self.worker.analyse(digests, PEOPLE, OPTIONS)

    async def settle(self) -> None:
        if self._running is not None:
            await self._running


async def one_run(
    server: dovecot.DovecotServer, workdir: str, run: str, *, after: bool, tracked: bool
) -> tuple[float, int]:
    """Seconds until all replies are stored (and linked, if tracked); and how many re-tallies ran."""
    folder = f"catchup-{run}"
    server.create_folder(folder)
    count = TRACKED if tracked else CATCH_UP
    await asyncio.to_thread(server.append, folder, [mail(run, n) for n in range(count)])
    db = await store.open(f"sqlite:///{workdir}/{run}.db")
    pool = worker.Worker()
    try:
        await db.upgrade()
        retallier = Retallier(db, pool, from_readings=after)
        mail_intake = intake.Intake(db, retallier.changed, clock=lambda: T0, pool=pool)
        await mail_intake.take(root(run), "imap")
        vote = await db.upsert_vote(
            tracking.TrackedVote(
                run,
                "example",
                run,
                1,
                "trusted",
                subject=f"[VOTE] Release Example {run}",
                root_message_id=f"{run}-root@bench.example.org",
                vote_started=T0,
            ),
            T0,
        )
        if tracked:
            await mail_intake.track(vote)
        await pool.check(root(run))  # the worker process is started before the clock runs

        async def take(_folder: str, _uid: int, raw: bytes) -> None:
            await mail_intake.take(raw, "imap")

        async def take_batch(_folder: str, fetched: list[tuple[int, bytes]]) -> None:
            await mail_intake.take_many([raw for _, raw in fetched], "imap")

        config = imap.ImapSettings(
            host=server.host,
            port=server.tls_port,
            user=server.user,
            password=secrets.Secret(server.password),
            folders=(folder,),
            ca_file=str(server.cert_file),
        )
        source = imap.ImapSource(config, db, take, on_batch=take_batch if after else None)
        started = time.perf_counter()
        async with asyncio.timeout(WAIT_S):
            await source.sweep_once()
        elapsed = time.perf_counter() - started
        await retallier.settle()
        linked = len(await db.thread_keys(vote.id))
        stored = len(await db.known_keys(f"{run}-{n}@bench.example.org" for n in range(count)))
        if stored != count or linked != (count + 1 if tracked else 0):
            raise RuntimeError(f"stored {stored} and linked {linked} of {count} messages")
        return elapsed, retallier.tallies
    finally:
        pool.close()
        await db.close()


async def bench(server: dovecot.DovecotServer, workdir: str) -> list[tuple[str, float, str]]:
    """Untracked list traffic (storing alone), then replies to a tracked vote; before and after runs alternate."""
    lines: list[tuple[str, float, str]] = []
    for tracked, scenario in ((False, f"list_traffic_{CATCH_UP}"), (True, f"tracked_vote_{TRACKED}")):
        count = TRACKED if tracked else CATCH_UP
        seconds: dict[bool, list[float]] = {False: [], True: []}
        tallies: dict[bool, list[int]] = {False: [], True: []}
        for n in range(RUNS):
            for after in (False, True):
                run = f"{scenario[0]}{n}{'a' if after else 'b'}"
                elapsed, retallies = await one_run(server, workdir, run, after=after, tracked=tracked)
                seconds[after].append(elapsed)
                tallies[after].append(retallies)
        for after, name in ((False, "before"), (True, "after")):
            median = statistics.median(seconds[after])
            lines.append((f"{scenario}_stored_msgs_per_s_{name}", count / median, "msgs/s"))
            if tracked:
                lines.append((f"{scenario}_retallies_{name}", statistics.median(tallies[after]), "re-tallies"))
        for line in lines[-4 if tracked else -2 :]:
            print(f"{line[0]}: {line[1]:.1f} {line[2]}", flush=True)
    return lines


async def main_async(run: Callable[[dovecot.DovecotServer, str], Awaitable[list[tuple[str, float, str]]]]) -> None:
    server = dovecot.start()
    try:
        with tempfile.TemporaryDirectory(prefix="vote-watcher-catchup-") as workdir:
            await run(server, workdir)
    finally:
        dovecot.cleanup(server)


if __name__ == "__main__":
    log.configure(level="warning")
    asyncio.run(main_async(bench))
