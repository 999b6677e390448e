"""Ingest benchmarks: IMAP push latency beside the server's own push, and IMAP catch-up.

Prints `name: value unit` lines. Starts its own Dovecot on loopback (watcher.testing.dovecot,
the same server control the tests use) and a SQLite store in a temporary directory.

Latency is measured from just before an APPEND on a second connection:
- `imap_server_push_median_s`: a bare aioimaplib client in IDLE sees `* n EXISTS`;
- `imap_idle_to_stored_median_s`: the IMAP source handed the message on, it was parsed with
  `watcher.message.parse` and stored in SQLite (the store is also the source's cursor store).
Both clients use implicit TLS, each IDLEs on its own folder, and runs alternate between them
so that neither disturbs the other and drift affects both alike. Dovecot itself waits about
0.5 s before it reports a change to an idling client, which sets the floor for both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioimaplib

import watcher.log as log
import watcher.message as message
import watcher.secrets as secrets
import watcher.sources.cursor as cursor
import watcher.sources.imap as imap
import watcher.store as store
import watcher.testing.dovecot as dovecot

RUNS = 20
CATCH_UP = 1000
PUSH_FOLDER = "bench-push"
SOURCE_FOLDER = "bench-source"
WAIT_S = 10.0

Line = tuple[str, float, str]


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


def source_config(server: dovecot.DovecotServer) -> imap.ImapConfig:
    """The source as the daemon would run it: implicit TLS, verified against the server's certificate."""
    return imap.ImapConfig(
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


async def handed_on_seconds(server: dovecot.DovecotServer, config: imap.ImapConfig) -> float:
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
    server: dovecot.DovecotServer, db: store.Store, config: imap.ImapConfig, consumer: StoringConsumer
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


def emit(lines: list[Line]) -> None:
    """Print `name: value unit` lines."""
    for name, value, unit in lines:
        print(f"{name}: {value:.3f} {unit}", flush=True)


def main() -> int:
    """Run the ingest benchmarks and print their figures (logs, warnings only, go to stderr)."""
    log.configure(level="warning")
    emit(asyncio.run(with_dovecot(imap_benchmarks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
