"""The IMAP source against a real Dovecot on loopback: push, restarts, UIDVALIDITY, catch-up, TLS."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import structlog

import tests.support.dovecot as dovecot
import watcher.core.message as message
import watcher.services.secrets as secrets
import watcher.sources.cursor as cursor
import watcher.sources.imap as imap
import watcher.store.records as records

DELIVERY_TIMEOUT_S = 5.0


def mail(mid: str, body: str = "+1 (binding)") -> bytes:
    """A small list message with a unique Message-ID."""
    return (
        f"From: Voter <voter@example.org>\r\n"
        f"To: dev@example.apache.org\r\n"
        f"Subject: Re: [VOTE] Release Example 1.0\r\n"
        f"Message-ID: <{mid}@example.org>\r\n"
        f"Date: Wed, 26 Nov 2025 10:00:00 +0000\r\n"
        f"\r\n{body}\r\n"
    ).encode()


@dataclasses.dataclass
class Recorder:
    """A consumer that records every hand-over, and (like the store) keeps each Message-ID once."""

    calls: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)
    stored: dict[str, bytes] = dataclasses.field(default_factory=dict)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def __call__(self, folder: str, uid: int, raw: bytes) -> None:
        key = message.peek(raw).key
        self.calls.append((folder, uid, key))
        self.stored.setdefault(key, raw)
        self.changed.set()

    def per_message_id(self) -> collections.Counter[str]:
        """How often each Message-ID was handed on."""
        return collections.Counter(key for _, _, key in self.calls)

    async def wait_stored(self, count: int, timeout: float = DELIVERY_TIMEOUT_S) -> None:
        """Wait until `count` distinct messages were stored."""
        async with asyncio.timeout(timeout):
            while len(self.stored) < count:
                self.changed.clear()
                await self.changed.wait()


def config(server: dovecot.DovecotServer, *folders: str, **overrides: object) -> imap.ImapSettings:
    """Implicit TLS to the test server, trusting its certificate; short backoffs for tests."""
    base = imap.ImapSettings(
        host=server.host,
        port=server.tls_port,
        user=server.user,
        password=secrets.Secret(server.password),
        folders=folders,
        ca_file=str(server.cert_file),
        timeout_s=5.0,
        backoff_base_s=0.05,
        backoff_cap_s=0.5,
    )
    return dataclasses.replace(base, **overrides)


@contextlib.asynccontextmanager
async def running(source: imap.ImapSource) -> AsyncIterator[None]:
    """Run the source in the background; stop it, and surface any crash, on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def idling(source: imap.ImapSource, folder: str) -> None:
    """Wait until the folder's connection is in IDLE."""
    await asyncio.wait_for(source.folders[folder].idling.wait(), DELIVERY_TIMEOUT_S)


async def append(server: dovecot.DovecotServer, folder: str, *raws: bytes) -> list[int]:
    """APPEND over a second connection (a thread, so the source keeps running meanwhile)."""
    return await asyncio.to_thread(server.append, folder, list(raws))


async def test_append_is_pushed_through_idle_and_left_unseen(
    dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    other = f"{imap_folder}.other"
    dovecot_server.create_folder(other)
    recorder = Recorder()
    cursors = cursor.MemoryCursorStore()
    source = imap.ImapSource(config(dovecot_server, imap_folder, other), cursors, recorder)
    async with running(source):
        await idling(source, imap_folder)
        await idling(source, other)
        started = time.monotonic()
        [uid] = await append(dovecot_server, imap_folder, mail("push-1"))
        await recorder.wait_stored(1)
        elapsed = time.monotonic() - started
        await append(dovecot_server, other, mail("push-2"))
        await recorder.wait_stored(2)
        assert source.pushed.is_set()

    assert recorder.calls == [(imap_folder, uid, "push-1@example.org"), (other, 1, "push-2@example.org")]
    # Dovecot itself pushes about 0.5 s after an APPEND; the source adds little to that.
    assert elapsed < 2.0
    assert source.folders[imap_folder].connections == 1
    saved = await cursors.get_cursor(source.config.source_name, imap_folder)
    assert saved == records.Cursor(dovecot_server.uidvalidity(imap_folder), uid)
    with dovecot_server.connect() as client:
        client.select(f'"{imap_folder}"', readonly=True)
        _, flags = client.uid("FETCH", str(uid), "(FLAGS)")
    assert b"\\Seen" not in flags[0]


async def test_idle_is_renewed_on_the_same_connection(dovecot_server: dovecot.DovecotServer, imap_folder: str) -> None:
    recorder = Recorder()
    source = imap.ImapSource(
        config(dovecot_server, imap_folder, idle_renew_s=0.2), cursor.MemoryCursorStore(), recorder
    )
    async with running(source):
        await idling(source, imap_folder)
        await asyncio.sleep(1.0)
        await append(dovecot_server, imap_folder, mail("renewed"))
        await recorder.wait_stored(1)
    state = source.folders[imap_folder]
    assert state.idles >= 4
    assert state.connections == 1
    assert recorder.per_message_id() == {"renewed@example.org": 1}


async def test_restart_during_idle_loses_and_doubles_nothing(
    dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    recorder = Recorder()
    source = imap.ImapSource(config(dovecot_server, imap_folder), cursor.MemoryCursorStore(), recorder)
    await append(dovecot_server, imap_folder, mail("before-1"), mail("before-2"))
    async with running(source):
        await recorder.wait_stored(2)
        await idling(source, imap_folder)
        await asyncio.to_thread(dovecot_server.restart)
        # Appended while the source is still reconnecting: the catch-up fetch must find them.
        await append(dovecot_server, imap_folder, mail("after-restart-1"), mail("after-restart-2"))
        await recorder.wait_stored(4)
        await idling(source, imap_folder)
        await append(dovecot_server, imap_folder, mail("pushed-after-restart"))
        await recorder.wait_stored(5)

    counts = recorder.per_message_id()
    assert len(counts) == 5
    assert set(counts.values()) == {1}
    assert source.folders[imap_folder].connections >= 2


async def test_uidvalidity_change_rescans_and_deduplication_absorbs_it(
    dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    recorder = Recorder()
    cursors = cursor.MemoryCursorStore()
    source = imap.ImapSource(config(dovecot_server, imap_folder), cursors, recorder)
    await append(dovecot_server, imap_folder, mail("uv-1"), mail("uv-2"), mail("uv-3"))
    old_validity = dovecot_server.uidvalidity(imap_folder)
    with structlog.testing.capture_logs() as logs:
        async with running(source):
            await recorder.wait_stored(3)
            await asyncio.to_thread(dovecot_server.force_uidvalidity_change, imap_folder)
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                while len(recorder.calls) < 6:
                    await asyncio.sleep(0.02)
            await idling(source, imap_folder)
            await append(dovecot_server, imap_folder, mail("uv-4"))
            await recorder.wait_stored(4)

    new_validity = dovecot_server.uidvalidity(imap_folder)
    assert new_validity != old_validity
    # Every message handed on again after the rescan, and stored once.
    assert recorder.per_message_id() == {
        "uv-1@example.org": 2,
        "uv-2@example.org": 2,
        "uv-3@example.org": 2,
        "uv-4@example.org": 1,
    }
    assert len(recorder.stored) == 4
    assert await cursors.get_cursor(source.config.source_name, imap_folder) == records.Cursor(new_validity, 4)
    assert any(entry["event"] == "imap.uidvalidity_changed" for entry in logs)


async def test_catch_up_of_1000_messages_after_downtime(
    dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    cursors = cursor.MemoryCursorStore()
    first = Recorder()
    await append(dovecot_server, imap_folder, *(mail(f"early-{n}") for n in range(5)))
    source = imap.ImapSource(config(dovecot_server, imap_folder), cursors, first)
    async with running(source):
        await first.wait_stored(5)

    uids = await append(dovecot_server, imap_folder, *(mail(f"late-{n}", "x" * 2000) for n in range(1000)))
    second = Recorder()
    source = imap.ImapSource(config(dovecot_server, imap_folder), cursors, second)
    started = time.monotonic()
    async with running(source):
        await second.wait_stored(1000, timeout=30)
        elapsed = time.monotonic() - started
        await idling(source, imap_folder)

    assert [uid for _, uid, _ in second.calls] == uids
    assert [key for _, _, key in second.calls] == [f"late-{n}@example.org" for n in range(1000)]
    assert second.stored["late-999@example.org"] == mail("late-999", "x" * 2000)
    # Batched fetches: 1,000 messages in well under the time 1,000 round trips with waits would take.
    assert elapsed < 10.0, elapsed


async def test_sweep_once_hands_on_only_what_is_new(dovecot_server: dovecot.DovecotServer, imap_folder: str) -> None:
    recorder = Recorder()
    source = imap.ImapSource(config(dovecot_server, imap_folder, fetch_batch=2), cursor.MemoryCursorStore(), recorder)
    await append(dovecot_server, imap_folder, *(mail(f"sweep-{n}") for n in range(5)))
    assert await source.sweep_once() == 5
    assert await source.sweep_once() == 0
    await append(dovecot_server, imap_folder, mail("sweep-5"))
    assert await source.sweep_once() == 1
    assert [uid for _, uid, _ in recorder.calls] == [1, 2, 3, 4, 5, 6]


async def test_consumer_failure_is_retried_not_skipped(dovecot_server: dovecot.DovecotServer, imap_folder: str) -> None:
    recorder = Recorder()
    failures = {"fail-once@example.org": 1}

    async def flaky(folder: str, uid: int, raw: bytes) -> None:
        key = message.peek(raw).key
        if failures.get(key):
            failures[key] -= 1
            raise RuntimeError("database is locked")
        await recorder(folder, uid, raw)

    await append(dovecot_server, imap_folder, mail("ok-1"), mail("fail-once"), mail("ok-2"))
    source = imap.ImapSource(config(dovecot_server, imap_folder), cursor.MemoryCursorStore(), flaky)
    with structlog.testing.capture_logs() as logs:
        async with running(source):
            await recorder.wait_stored(3)
    assert [key for _, _, key in recorder.calls] == ["ok-1@example.org", "fail-once@example.org", "ok-2@example.org"]
    assert any(entry["event"] == "imap.consumer_failed" for entry in logs)


async def test_self_signed_certificate_is_refused_without_its_ca(
    dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    await append(dovecot_server, imap_folder, mail("tls-1"))
    recorder = Recorder()
    untrusting = imap.ImapSource(
        config(dovecot_server, imap_folder, ca_file=None), cursor.MemoryCursorStore(), recorder
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await untrusting.sweep_once()
    async with running(untrusting):
        await asyncio.sleep(0.5)
    assert recorder.calls == []
    assert untrusting.folders[imap_folder].connections == 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusting.folders[imap_folder].last_error

    trusting = imap.ImapSource(config(dovecot_server, imap_folder), cursor.MemoryCursorStore(), recorder)
    assert await trusting.sweep_once() == 1


async def test_plain_text_to_loopback(dovecot_server: dovecot.DovecotServer, imap_folder: str) -> None:
    # Plain text to any other host is refused by the configuration (tests/unit/test_config.py).
    await append(dovecot_server, imap_folder, mail("plain-1"))
    recorder = Recorder()
    plain = config(dovecot_server, imap_folder, port=dovecot_server.plain_port, tls=False, ca_file=None)
    assert await imap.ImapSource(plain, cursor.MemoryCursorStore(), recorder).sweep_once() == 1


async def test_password_never_shown(dovecot_server: dovecot.DovecotServer, imap_folder: str) -> None:
    # One failed login only: Dovecot delays every further attempt from the address (2 s, doubling).
    wrong = "wrong-" + dovecot_server.password
    settings = config(dovecot_server, imap_folder, password=secrets.Secret(wrong))
    source = imap.ImapSource(settings, cursor.MemoryCursorStore(), Recorder())
    with structlog.testing.capture_logs() as logs:
        async with running(source):
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                while not source.folders[imap_folder].last_error:
                    await asyncio.sleep(0.02)
    error = source.folders[imap_folder].last_error
    assert "LOGIN refused for alice" in error
    assert "AUTHENTICATIONFAILED" in error
    assert any(entry.get("error") == error for entry in logs)
    assert wrong not in repr(settings) + error + repr(logs)


async def test_periodic_sweep_finds_mail_no_push_announced() -> None:
    # A server that does not offer IDLE: nothing is pushed, so only the sweep can find new mail.
    server = await asyncio.to_thread(dovecot.start, None, "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n")
    try:
        server.create_folder("lists")
        recorder = Recorder()
        source = imap.ImapSource(config(server, "lists", sweep_interval_s=0.3), cursor.MemoryCursorStore(), recorder)
        async with running(source):
            await append(server, "lists", mail("swept-1"))
            await recorder.wait_stored(1)
            await append(server, "lists", mail("swept-2"))
            await recorder.wait_stored(2)
        assert source.folders["lists"].idles == 0
        assert source.folders["lists"].connections == 1
        assert recorder.per_message_id() == {"swept-1@example.org": 1, "swept-2@example.org": 1}
    finally:
        await asyncio.to_thread(dovecot.cleanup, server)


async def test_batches_are_handed_on_whole_and_a_failed_batch_is_retried(
    dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    recorder = Recorder()
    batches: list[list[int]] = []
    failures = [1]

    async def take_batch(folder: str, fetched: list[tuple[int, bytes]]) -> None:
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("database is locked")
        batches.append([uid for uid, _ in fetched])
        for uid, raw in fetched:
            await recorder(folder, uid, raw)

    async def per_message(folder: str, uid: int, raw: bytes) -> None:
        raise AssertionError("on_message is not called when on_batch is given")

    cursors = cursor.MemoryCursorStore()
    settings = config(dovecot_server, imap_folder, fetch_batch=4)
    source = imap.ImapSource(settings, cursors, per_message, on_batch=take_batch)
    uids = await append(dovecot_server, imap_folder, *(mail(f"batch-{n}") for n in range(10)))
    with pytest.raises(imap.ConsumerError, match="UIDs 1-4"):
        await source.sweep_once()
    saved = await cursors.get_cursor(settings.source_name, imap_folder)
    assert saved is None or saved.position == 0  # nothing passed over
    assert await source.sweep_once() == 10
    assert batches == [uids[0:4], uids[4:8], uids[8:10]]
    assert [key for _, _, key in recorder.calls] == [f"batch-{n}@example.org" for n in range(10)]
    assert (await cursors.get_cursor(settings.source_name, imap_folder) or records.Cursor(0, 0)).position == uids[-1]
