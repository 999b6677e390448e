"""Ingest benchmarks: IMAP push latency and catch-up, lists.apache.org polling cost, mbox replay.

Prints `name: value unit` lines. Everything runs on loopback: its own Dovecot (through
tests.support.dovecot, the server control the tests use), the sandbox lists.apache.org, and a
SQLite store in a temporary directory.

IMAP latency is measured from just before an APPEND on a second connection:
- `imap_server_push_median_s`: a bare aioimaplib client in IDLE sees `* n EXISTS`;
- `imap_idle_to_stored_median_s`: the IMAP source handed the message on, it was parsed with
  `watcher.core.message.parse` and stored in SQLite (the store is also the source's cursor store).
Both clients use implicit TLS, each IDLEs on its own folder, and runs alternate between them
so that neither disturbs the other and drift affects both alike. Dovecot itself waits about
0.5 s before it reports a change to an idling client, which sets the floor for both.

lists.apache.org: requests the sandbox served per list per poll where nothing changed, with the
probe alone (no re-reads due) and with T tracked votes per list re-read every K polls (the
default K); a re-read of an unchanged thread is one `thread.json`, so the cost is 1 + T/K. Also the
KiB read per list per poll: the probe lists every mail since the list's earliest running vote began.

Replay: a generated mbox of at least 1 GiB (list traffic with vote threads among it) is read
as the daemon reads a backfill: every message routed on its headers, vote-thread messages
parsed and classified and stored whole, the rest stored as headers only, in batches. It runs
in a child process so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import email.utils
import pathlib
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aioimaplib

# The server control the tests use lives in tests/support/ (not part of the package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tests.support.dovecot as dovecot
import watcher.core.castings as castings
import watcher.core.identity as identity
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.threads as threads
import watcher.sandbox.lists_http as lists_http
import watcher.services.log as log
import watcher.services.secrets as secrets
import watcher.sources.archive as archive
import watcher.sources.cursor as cursor
import watcher.sources.imap as imap
import watcher.sources.ponymail as ponymail
import watcher.store as store

RUNS = 20
CATCH_UP = 1000
PUSH_FOLDER = "bench-push"
SOURCE_FOLDER = "bench-source"
WAIT_S = 10.0
POLL_LISTS = 20
# A whole number of re-read periods (K = 6), so the average is exact.
IDLE_POLLS = 24
IDLE_POLLS_NEVER = 10_000
TRACKED_PER_LIST = (1, 3)
REPLAY_MIB = 1024
REPLAY_BATCH = 1000
RUNNING_VOTES = 50

Line = tuple[str, float | int, str]


def mail(mid: str, size: int = 1500) -> bytes:
    """A list reply of about `size` bytes."""
    body = ("+1 (binding)\r\n\r\n" + "I checked the signatures and the build. " * (size // 40))[:size]
    return (
        f"From: Voter <voter@example.org>\r\nTo: dev@example.apache.org\r\n"
        f"Subject: Re: [VOTE] Release Example 1.0\r\nMessage-ID: <{mid}@bench.example.org>\r\n"
        f"In-Reply-To: <vote-root@bench.example.org>\r\nDate: Wed, 26 Nov 2025 10:00:00 +0000\r\n"
        f"List-Id: <dev.example.apache.org>\r\n\r\n{body}\r\n"
    ).encode()


async def login(server: dovecot.DovecotServer, *, tls: bool) -> Any:
    """A logged-in aioimaplib client (IMAPS with the server's certificate, or plain)."""
    if tls:
        client = aioimaplib.IMAP4_SSL(server.host, server.tls_port, ssl_context=dovecot.tls_context(server))
    else:
        client = aioimaplib.IMAP4(server.host, server.plain_port)
    await client.wait_hello_from_server()
    response = await client.login(server.user, server.password)
    if response.result != "OK":
        raise RuntimeError(f"login failed: {response}")
    return client


async def server_push_once(bare: Any, appender: Any, n: int) -> float:
    """APPEND on the second connection; seconds until the idling bare client sees EXISTS."""
    idle = await bare.idle_start(timeout=60)
    started = time.perf_counter()
    await appender.append(mail(f"push-{n}"), mailbox=PUSH_FOLDER)
    while True:
        lines = await bare.wait_server_push(timeout=WAIT_S)
        if any(isinstance(line, bytes) and line.endswith(b" EXISTS") for line in lines):
            break
    elapsed = time.perf_counter() - started
    bare.idle_done()
    await asyncio.wait_for(idle, WAIT_S)
    return elapsed


class StoringConsumer:
    """What the daemon does first with a pushed message: parse it, store it once, note when."""

    def __init__(self, db: store.Store, source_name: str) -> None:
        self.db = db
        self.source_name = source_name
        self.stored_at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def __call__(self, folder: str, uid: int, raw: bytes) -> None:
        parsed = message.parse(raw)
        await self.db.add_message(raw, self.source_name)
        self.stored_at[parsed.key] = time.perf_counter()
        self.changed.set()

    async def wait_for(self, key: str | Callable[[], bool]) -> None:
        """Until a key was stored (or a condition holds)."""
        done = key if callable(key) else lambda: key in self.stored_at
        async with asyncio.timeout(WAIT_S * 3):
            while not done():
                self.changed.clear()
                await self.changed.wait()


async def source_once(source: imap.ImapSource, consumer: StoringConsumer, appender: Any, n: int) -> float:
    """APPEND on the second connection; seconds until the source's message is parsed and stored."""
    await asyncio.wait_for(source.folders[SOURCE_FOLDER].idling.wait(), WAIT_S)
    started = time.perf_counter()
    await appender.append(mail(f"stored-{n}"), mailbox=SOURCE_FOLDER)
    key = f"stored-{n}@bench.example.org"
    await consumer.wait_for(key)
    return consumer.stored_at[key] - started


def source_config(server: dovecot.DovecotServer) -> imap.ImapSettings:
    """The source as the daemon would run it: implicit TLS, verified against the server's certificate."""
    return imap.ImapSettings(
        host=server.host,
        port=server.tls_port,
        user=server.user,
        password=secrets.Secret(server.password),
        folders=(SOURCE_FOLDER,),
        ca_file=str(server.cert_file),
    )


async def imap_benchmarks(server: dovecot.DovecotServer, workdir: str) -> list[Line]:
    """Push latency (source vs bare client) and a 1,000-message catch-up, against one Dovecot."""
    for folder in (PUSH_FOLDER, SOURCE_FOLDER):
        server.create_folder(folder)
    db = await store.open(f"sqlite:///{workdir}/state.db")
    try:
        await db.upgrade()
        config = source_config(server)
        consumer = StoringConsumer(db, config.source_name)
        source = imap.ImapSource(config, db, consumer)
        bare = await login(server, tls=True)
        await bare.select(PUSH_FOLDER)
        appender = await login(server, tls=False)
        pushes: list[float] = []
        stored: list[float] = []
        stop = asyncio.Event()
        running = asyncio.create_task(source.run(stop))
        for n in range(RUNS):
            pushes.append(await server_push_once(bare, appender, n))
            stored.append(await source_once(source, consumer, appender, n))
        stop.set()
        await running
        for client in (bare, appender):
            await client.logout()
        handed_on = await handed_on_seconds(server, config)
        catch_up = await catch_up_seconds(server, db, config, consumer)
    finally:
        await db.close()
    push, ingest = statistics.median(pushes), statistics.median(stored)
    return [
        ("imap_server_push_median_s", push, "s"),
        ("imap_idle_to_stored_median_s", ingest, "s"),
        ("imap_idle_to_stored_over_push_median_s", ingest - push, "s"),
        ("imap_idle_to_stored_max_s", max(stored), "s"),
        ("imap_catch_up_1000_handed_on_s", handed_on, "s"),
        ("imap_catch_up_1000_stored_s", catch_up, "s"),
        ("imap_catch_up_stored_msgs_per_s", CATCH_UP / catch_up, "msgs/s"),
    ]


async def handed_on_seconds(server: dovecot.DovecotServer, config: imap.ImapSettings) -> float:
    """The source alone: seconds to fetch 1,000 waiting messages and hand them to a consumer that only counts."""
    folder = "bench-fetch"
    server.create_folder(folder)
    await asyncio.to_thread(server.append, folder, [mail(f"fetch-{n}") for n in range(CATCH_UP)])
    counted = 0

    async def count(_folder: str, _uid: int, _raw: bytes) -> None:
        nonlocal counted
        counted += 1

    source = imap.ImapSource(dataclasses.replace(config, folders=(folder,)), cursor.MemoryCursorStore(), count)
    started = time.perf_counter()
    await source.sweep_once()
    elapsed = time.perf_counter() - started
    if counted != CATCH_UP:
        raise RuntimeError(f"handed on {counted} of {CATCH_UP} messages")
    return elapsed


async def catch_up_seconds(
    server: dovecot.DovecotServer, db: store.Store, config: imap.ImapSettings, consumer: StoringConsumer
) -> float:
    """1,000 messages arrive while the source is down; seconds from its start until all are stored."""
    await asyncio.to_thread(server.append, SOURCE_FOLDER, [mail(f"late-{n}") for n in range(CATCH_UP)])
    keys = [f"late-{n}@bench.example.org" for n in range(CATCH_UP)]
    source = imap.ImapSource(config, db, consumer)
    stop = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.create_task(source.run(stop))
    await consumer.wait_for(lambda: all(key in consumer.stored_at for key in keys))
    elapsed = max(consumer.stored_at[key] for key in keys) - started
    stop.set()
    await running
    return elapsed


async def with_dovecot(bench: Callable[[dovecot.DovecotServer, str], Awaitable[list[Line]]]) -> list[Line]:
    """Run one benchmark against a fresh Dovecot, and remove it afterwards."""
    server = dovecot.start()
    try:
        with tempfile.TemporaryDirectory(prefix="vote-watcher-bench-") as workdir:
            return await bench(server, workdir)
    finally:
        dovecot.cleanup(server)


async def ponymail_benchmarks() -> list[Line]:
    """Requests per list per poll where nothing changed: probe only, and with T tracked votes re-read every K polls."""
    requests, _ = await idle_cost(1, IDLE_POLLS_NEVER)
    lines: list[Line] = [("ponymail_idle_probe_only_requests_per_list_per_poll", requests, "requests")]
    for tracked in TRACKED_PER_LIST:
        requests, received = await idle_cost(tracked, ponymail.DEFAULT_REREAD_EVERY)
        suffix = f"T{tracked}_K{ponymail.DEFAULT_REREAD_EVERY}"
        lines.append((f"ponymail_idle_requests_per_list_per_poll_{suffix}", requests, "requests"))
        # The probe lists the list's mail since its earliest running vote began (10 + 6T messages here).
        lines.append((f"ponymail_idle_kib_per_list_per_poll_{suffix}", received / 1024, "KiB"))
    return lines


async def idle_cost(tracked: int, reread_every: int) -> tuple[float, float]:
    """Requests the sandbox served, and bytes read, per list per poll over IDLE_POLLS polls after the first.

    Every list carries list traffic and `tracked` vote threads (a [VOTE] and five replies each),
    all followed; the source re-reads each thread every `reread_every` polls.
    """
    sandbox = lists_http.PonyMailSandbox()
    lists = [f"dev@project{n}.apache.org" for n in range(POLL_LISTS)]
    roots: list[tuple[str, str]] = []
    for n, address in enumerate(lists):
        for vote in range(tracked):
            root = f"vote-{n}-{vote}@bench.example.org"
            roots.append((address, root))
            sandbox.add(list_mail(address, root, f"[VOTE] Release Project{n} 1.{vote}", None), address)
            for reply in range(5):
                sandbox.add(list_mail(address, f"r{reply}-{n}-{vote}@bench.example.org", "Re: [VOTE]", root), address)
        for other in range(10):
            sandbox.add(list_mail(address, f"o{other}-{n}@bench.example.org", f"[jira] FOO-{other}", None), address)
    stored: set[str] = set()

    async def deliver(item: ponymail.ArchivedMessage) -> None:
        stored.add(message.peek(item.raw).key)

    async with sandbox:
        settings = ponymail.ArchiveSettings(base_url=sandbox.url)
        async with ponymail.ArchiveClient(settings) as client:
            source = ponymail.PonyMailSource(client, lists, reread_every=reread_every)
            started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
            for address, root in roots:
                source.track(address, message_id=root, started=started)
            first = await source.poll(stored, deliver)
            if not first.ok or len(stored) != len(roots) * 6:
                raise RuntimeError(f"first poll stored {len(stored)} messages: {first.failures}")
            sandbox.reset_counts()
            before = client.received_bytes
            for _ in range(IDLE_POLLS):
                await source.poll(stored, deliver)
            served = sum(sandbox.request_counts().values())
            received = client.received_bytes - before
    polls = POLL_LISTS * IDLE_POLLS
    return served / polls, received / polls


def list_mail(address: str, mid: str, subject: str, parent: str | None) -> bytes:
    """A short list message dated an hour ago (the archive's epoch is the Date header), for the archive sandbox."""
    name, domain = address.split("@")
    reply = f"In-Reply-To: <{parent}>\nReferences: <{parent}>\n" if parent else ""
    date = email.utils.formatdate(time.time() - 3600, usegmt=True)
    return (
        f"From: Someone <someone@example.org>\nTo: {address}\nSubject: {subject}\n"
        f"Date: {date}\nMessage-ID: <{mid}>\nList-Id: <{name}.{domain}>\n{reply}\n+1\n"
    ).encode()


# Replay ----------------------------------------------------------------------------------------------------------

_WORDS = (
    "release",
    "candidate",
    "signature",
    "checksum",
    "build",
    "artifact",
    "staging",
    "repository",
    "license",
    "notice",
    "source",
    "binary",
    "maven",
    "gradle",
    "test",
    "passed",
    "failed",
    "verified",
    "checked",
    "tag",
    "commit",
    "branch",
    "vote",
    "binding",
    "thanks",
    "please",
    "review",
    "the",
    "and",
    "for",
    "with",
    "from",
    "this",
    "that",
    "have",
    "been",
    "will",
)


def generate_mbox(path: pathlib.Path, min_bytes: int, seed: int = 20251126) -> int:
    """Write an mboxrd file of list traffic, about one thread in ten a [VOTE]; returns the message count."""
    rand = random.Random(seed)
    written = count = 0
    with path.open("wb") as out:
        while written < min_bytes:
            for raw in generated_thread(rand, count):
                chunk = b"From bench@example.org Wed Nov 26 10:00:00 2025\n" + raw + b"\n"
                out.write(chunk)
                written += len(chunk)
                count += 1
    return count


def generated_thread(rand: random.Random, serial: int) -> Iterator[bytes]:
    """One thread: a root and a few replies, each a few KiB of text (some lines quoted, one mboxrd escape)."""
    vote = rand.random() < 0.1
    subject = f"[VOTE] Release Project{serial} 1.{serial % 7}" if vote else f"[DISCUSS] Topic {serial}"
    root = f"t{serial}@bench.example.org"
    for reply in range(rand.randint(1, 8)):
        mid = root if reply == 0 else f"t{serial}.{reply}@bench.example.org"
        text = " ".join(rand.choices(_WORDS, k=rand.randint(150, 1500)))
        lines = [text[i : i + 72] for i in range(0, len(text), 72)]
        body = ("+1 (binding)\n\n" if vote and reply else "") + "\n".join(lines) + "\n>From the quoted text\n"
        headers = (
            f"From: Person {serial % 97} <p{serial % 97}@example.org>\nTo: dev@project.apache.org\n"
            f"Subject: {'Re: ' if reply else ''}{subject}\nDate: Wed, 26 Nov 2025 10:{reply:02d}:00 +0000\n"
            f"Message-ID: <{mid}>\nList-Id: <dev.project.apache.org>\n"
        )
        if reply:
            headers += f"In-Reply-To: <{root}>\nReferences: <{root}>\n"
        yield (headers + "\n" + body).encode()


async def replay_into_store(path: pathlib.Path, database: str) -> tuple[int, float]:
    """Replay an mbox as a backfill; returns (messages stored, seconds)."""
    db = await store.open(database)
    people = roster.Roster()
    matcher = threads.ThreadMatcher()
    whole: list[bytes] = []
    headers_only: list[bytes] = []
    stored = 0
    try:
        await db.upgrade()
        started = time.perf_counter()
        for raw in archive.iter_raw(path):
            env = message.peek(raw)
            if threads.is_vote_call(env):
                track_running(matcher, env)
            if matcher.match(env) is None:
                headers_only.append(raw)
            else:
                msg = message.parse(raw)
                castings.read(msg.text)
                identity.identify(msg, people)
                whole.append(raw)
            for batch, keep_raw in ((whole, True), (headers_only, False)):
                if len(batch) >= REPLAY_BATCH:
                    stored += await store_batch(db, batch, keep_raw)
        for batch, keep_raw in ((whole, True), (headers_only, False)):
            stored += await store_batch(db, batch, keep_raw)
        return stored, time.perf_counter() - started
    finally:
        await db.close()


def track_running(matcher: threads.ThreadMatcher, env: message.Envelope) -> None:
    """Follow a new vote; votes end, so only the latest RUNNING_VOTES are followed (the daemon follows open ones)."""
    matcher.track(env.message_id, env.subject)
    for root in matcher.roots[:-RUNNING_VOTES]:
        matcher.forget(root)


async def store_batch(db: store.Store, batch: list[bytes], keep_raw: bool) -> int:
    """Store a batch and empty it; returns how many were new.

    Batches have one size (but the last): SQLAlchemy renders a multi-row INSERT per row count
    and Python's sqlite3 caches up to 128 prepared statements by their text, so batches of ever
    different sizes hold tens of MB of statements (measured: +36 MB, 5 MB with the cache off).
    """
    new = len(await db.add_messages(batch, "mbox", keep_raw=keep_raw)) if batch else 0
    batch.clear()
    return new


def replay_child(path: pathlib.Path, database: str) -> int:
    """In the child process: replay, then print the throughput and this process's peak RSS."""
    stored, seconds = asyncio.run(replay_into_store(path, database))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit([("mbox_replay_stored_msgs_per_s", stored / seconds, "msgs/s"), ("replay_peak_rss_mb", peak_mb, "MB")])
    return 0


def replay_benchmark(mib: int) -> int:
    """Generate the mbox, then replay it in a child process (which prints its own lines)."""
    with tempfile.TemporaryDirectory(prefix="vote-watcher-replay-") as workdir:
        mbox = pathlib.Path(workdir) / "list.mbox"
        count = generate_mbox(mbox, mib * 1024 * 1024)
        emit([("replay_mbox_size_mb", mbox.stat().st_size / 1024 / 1024, "MB"), ("replay_messages", count, "msgs")])
        child = [sys.executable, __file__, "--replay-child", str(mbox), f"sqlite:///{workdir}/replay.db"]
        return subprocess.run(child, check=False).returncode


def emit(lines: list[Line]) -> None:
    """Print `name: value unit` lines."""
    for name, value, unit in lines:
        shown = str(value) if isinstance(value, int) else f"{value:.3f}"
        print(f"{name}: {shown} {unit}", flush=True)


def main() -> int:
    """Run the ingest benchmarks and print their figures (logs, warnings only, go to stderr)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=("imap", "ponymail", "replay"), help="run one benchmark")
    parser.add_argument("--replay-mib", type=int, default=REPLAY_MIB, help="size of the generated mbox")
    parser.add_argument("--replay-child", nargs=2, metavar=("MBOX", "DATABASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    log.configure(level="warning")
    if args.replay_child:
        return replay_child(pathlib.Path(args.replay_child[0]), args.replay_child[1])
    if args.only in (None, "imap"):
        emit(asyncio.run(with_dovecot(imap_benchmarks)))
    if args.only in (None, "ponymail"):
        emit(asyncio.run(ponymail_benchmarks()))
    if args.only in (None, "replay"):
        return replay_benchmark(args.replay_mib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
