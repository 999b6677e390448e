"""IMAP source: new messages of subscribed folders, pushed through IDLE, each handed on once.

One connection per folder. IDLE watches only the selected mailbox, so a single connection
cycling through folders would leave all but one without push; NOTIFY (RFC 5465) could watch
several at once but aioimaplib does not speak it and many servers lack it. A handful of list
folders is a handful of connections (Dovecot allows 10 per user and address by default).

Per folder the loop is: connect (implicit TLS, verified), LOGIN, SELECT; hand on every
message after the cursor (`UID last+1:*`); IDLE until the server reports EXISTS, the IDLE is due
for renewal, or the sweep interval passes; leave IDLE and hand on what is new; repeat. Every
exit from IDLE is followed by a fetch, so the renewal doubles as the periodic sweep that
catches a lost push. A dropped connection is retried with capped exponential backoff and jitter.

The cursor (UIDVALIDITY, last UID) advances only past messages `on_message` returned for
(saved after each fetched batch), so a crash re-delivers rather than loses. When UIDVALIDITY
changes the folder is read again from UID 1; the consumer's Message-ID de-duplication absorbs
the repeats. Bodies are fetched with BODY.PEEK[], so \\Seen flags are left alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import aioimaplib
import structlog

import watcher.core.backoff as backoff
import watcher.services.secrets as secrets
import watcher.sources.cursor as cursor
import watcher.sources.imap_wire as imap_wire
import watcher.store.records as records

T = TypeVar("T")
OnMessage = Callable[[str, int, bytes], Awaitable[None]]
# A fetched batch handed on at once: (folder, [(uid, raw), ...]); the consumer stores it in one transaction.
OnBatch = Callable[[str, list[tuple[int, bytes]]], Awaitable[None]]

IMAPS_PORT: Final = 993
IDLE_RENEW_S: Final = 25 * 60.0
# RFC 2177: servers may log off a client idle for 30 minutes; aioimaplib ends an IDLE itself after this.
IDLE_RENEW_MAX_S: Final = 29 * 60.0
SWEEP_INTERVAL_S: Final = 5 * 60.0
TIMEOUT_S: Final = 30.0
BACKOFF_BASE_S: Final = 1.0
BACKOFF_CAP_S: Final = 120.0
FETCH_BATCH: Final = 100
_FETCH_ITEMS: Final = "(UID BODY.PEEK[])"
# With a size limit, only the first `max_fetch_bytes` of each message (RFC 3501 partial fetch): a 50 MB mail
# costs no more memory than the limit, and the intake flags it as too large from what it got.
_FETCH_PARTIAL: Final = "(UID BODY.PEEK[]<0.{size}>)"

log = structlog.get_logger("watcher.sources.imap")


class ImapError(Exception):
    """The server refused something, or the connection failed; the source retries."""


class ConnectionLostError(ImapError):
    """The connection dropped (or the server said BYE)."""


class ConsumerError(Exception):
    """`on_message` raised; the message is retried after a backoff, never skipped."""


class _StoppedError(Exception):
    """The stop event was set while waiting on the server."""


@dataclasses.dataclass(frozen=True)
class ImapSettings:
    """Settings of one IMAP mailbox, taken as given: the configuration checked them (`watcher.config.ImapSection`).

    `tls` is implicit TLS (port 993) verified against the system CAs or `ca_file`; `tls=False` is plain
    text, which the configuration allows only to loopback. `password` is a `secrets.Secret`, shown
    nowhere. `name` keys the cursors (default `imap:user@host`, as the configuration names it).
    `start_at_end` makes a folder without a cursor start at its current end instead of UID 1.
    """

    host: str
    user: str
    password: secrets.Secret = dataclasses.field(repr=False)
    folders: tuple[str, ...] = ("INBOX",)
    port: int = IMAPS_PORT
    tls: bool = True
    ca_file: str | None = None
    idle_renew_s: float = IDLE_RENEW_S
    sweep_interval_s: float = SWEEP_INTERVAL_S
    timeout_s: float = TIMEOUT_S
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_cap_s: float = BACKOFF_CAP_S
    fetch_batch: int = FETCH_BATCH
    start_at_end: bool = False
    name: str = ""
    max_fetch_bytes: int | None = None

    @property
    def source_name(self) -> str:
        """The key cursors are stored under."""
        return self.name or f"imap:{self.user}@{self.host}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The verifying client context (None for plain text)."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=self.ca_file)


def backoff_delay(attempt: int, base_s: float, cap_s: float, rand: random.Random) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): exponential, capped, half jittered."""
    return backoff.Backoff(base_s, cap_s, backoff.Jitter.HALF).delay(attempt - 1, rand.random)


def start_position(
    saved: records.Cursor | None, server: imap_wire.Selected, start_at_end: bool
) -> tuple[records.Cursor, bool]:
    """Where to read a folder from, and whether that is a rescan after a UIDVALIDITY change."""
    if saved is None:
        last = max(server.uidnext - 1, 0) if start_at_end else 0
        return records.Cursor(server.uidvalidity, last), False
    if saved.validity != server.uidvalidity:
        return records.Cursor(server.uidvalidity, 0), True
    return saved, False


@dataclasses.dataclass
class FolderState:
    """What one folder's loop is doing, for health checks and tests."""

    idling: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    connections: int = 0
    idles: int = 0
    delivered: int = 0
    last_error: str = ""


class _Connection:
    """One logged-in aioimaplib client with a folder selected; every wait fails fast on loss or stop."""

    def __init__(self, config: ImapSettings, folder: str, stop: asyncio.Event) -> None:
        self.config = config
        self.folder = folder
        self.lost = asyncio.Event()
        self.stop = stop
        self.selected = imap_wire.Selected(0, 0)
        self.client: Any = None

    async def open(self) -> None:
        """Connect, log in and select the folder."""
        self.client = aioimaplib.IMAP4(
            host=self.config.host,
            port=self.config.port,
            timeout=self.config.timeout_s,
            conn_lost_cb=self._on_lost,
            ssl_context=self.config.ssl_context(),
        )
        await self.call(self.client.wait_hello_from_server(), self.config.timeout_s)
        await self._login()
        response = await self.call(self.client.select(imap_wire.mailbox_argument(self.folder)), self.config.timeout_s)
        if response.result != "OK":
            raise ImapError(f"SELECT {self.folder} refused: {_text(response.lines)}")
        self.selected = imap_wire.selected(response.lines)

    async def _login(self) -> None:
        # The password is a local of aioimaplib's frames: never let their traceback escape.
        failure = ""
        try:
            response = await self.call(
                self.client.login(imap_wire.quoted(self.config.user), self.config.password.reveal()),
                self.config.timeout_s,
            )
            if response.result != "OK":
                failure = f"LOGIN refused for {self.config.user}: {_text(response.lines)}"
        except (ConnectionLostError, _StoppedError):
            raise
        except Exception as exc:
            failure = f"LOGIN failed for {self.config.user}: {type(exc).__name__}"
        if failure:
            raise ImapError(failure) from None

    @property
    def has_idle(self) -> bool:
        """Whether the server advertises IDLE."""
        return bool(self.client.has_capability("IDLE"))

    def _on_lost(self, _exc: Exception | None) -> None:
        self.lost.set()

    async def call(self, awaitable: Awaitable[T], timeout: float | None) -> T:
        """Await an aioimaplib call; raise ConnectionLostError or _StoppedError at once instead of waiting it out."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.lost.wait())
        stop = asyncio.ensure_future(self.stop.wait())
        try:
            done, _ = await asyncio.wait({task, lost, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            stop.cancel()
        if task in done:
            return task.result()
        _abandon(task)
        if lost in done:
            raise ConnectionLostError("connection closed by the server")
        if stop in done:
            raise _StoppedError
        raise ImapError(f"no answer from the server in {timeout} s")

    async def new_uids(self, after: int) -> tuple[list[int], bool]:
        """UIDs above `after`, and whether the server announced more mail meanwhile.

        A NOOP is pipelined behind the SEARCH: aioimaplib drops an untagged EXISTS that arrives
        during another command, but hands it to a pending NOOP, so none goes unnoticed.
        """
        protocol = self.client.protocol
        search = protocol.search("UID", f"{after + 1}:*", charset=None, by_uid=True)
        noop = protocol.simple_command("NOOP")
        found, noted = await self.call(asyncio.gather(search, noop), self.config.timeout_s)
        if found.result != "OK":
            raise ImapError(f"UID SEARCH refused: {_text(found.lines)}")
        # `n:*` always matches the last message, even when its UID is below n.
        uids = [uid for uid in imap_wire.search_uids(found.lines) if uid > after]
        return uids, imap_wire.has_exists(noted.lines)

    async def fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        """Raw messages by UID, without setting \\Seen."""
        limit = self.config.max_fetch_bytes
        items = _FETCH_PARTIAL.format(size=limit) if limit else _FETCH_ITEMS
        fetching = self.client.protocol.fetch(
            imap_wire.uid_set(uids), items, by_uid=True, timeout=self.config.timeout_s
        )
        response = await self.call(fetching, None)
        if response.result != "OK":
            raise ImapError(f"UID FETCH refused: {_text(response.lines)}")
        return imap_wire.fetched_bodies(response.lines)

    async def idle(self, state: FolderState, wait_s: float) -> bool:
        """IDLE until new mail (True), or until `wait_s` passes (False); leaves IDLE before returning."""
        idle_task = await self.call(self.client.idle_start(timeout=IDLE_RENEW_MAX_S), self.config.timeout_s)
        state.idles += 1
        state.idling.set()
        try:
            pushed = await self.call(self._wait_exists(wait_s), None)
        except _StoppedError:
            await self._leave_idle_quietly(idle_task)
            raise
        finally:
            state.idling.clear()
        self.client.idle_done()
        await self.call(idle_task, self.config.timeout_s)
        # Pushes queued after the one that woke us are covered by the fetch that follows.
        _drain(self.client.protocol.idle_queue)
        return pushed

    async def _leave_idle_quietly(self, idle_task: Awaitable[Any]) -> None:
        """End IDLE on shutdown so that LOGOUT is not queued behind it."""
        self.client.idle_done()
        try:
            await asyncio.wait_for(idle_task, 2.0)
        except Exception as exc:
            log.debug("imap.idle_done_failed", folder=self.folder, error=type(exc).__name__)

    async def _wait_exists(self, wait_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                lines = await self.client.wait_server_push(timeout=remaining)
            except TimeoutError:
                return False
            if imap_wire.has_bye(lines):
                raise ConnectionLostError("server said BYE")
            if imap_wire.has_exists(lines):
                return True
        return False

    async def close(self) -> None:
        """Log out politely when the connection still stands, then drop it."""
        if self.client is None:
            return
        try:
            if not self.lost.is_set() and self.client.get_state() in ("AUTH", "SELECTED"):
                await asyncio.wait_for(self.client.logout(), 2.0)
        except Exception as exc:
            log.debug("imap.logout_failed", folder=self.folder, error=type(exc).__name__)
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a pending call and retrieve its outcome, so asyncio does not warn about it."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


def _drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


def _text(lines: list[Any]) -> str:
    last = lines[-1] if lines else b""
    return bytes(last).decode("ascii", "replace")[:200]


class ImapSource:
    """Watches the configured folders of one mailbox and hands each new message on once.

    `on_message(folder, uid, raw)` is awaited before the folder's cursor advances. `pushed` is
    set whenever messages were handed on (the daemon clears it and classifies at once).
    `folders` holds each folder's `FolderState`.
    """

    def __init__(
        self,
        config: ImapSettings,
        cursors: cursor.CursorStore,
        on_message: OnMessage,
        *,
        rand: random.Random | None = None,
        on_batch: OnBatch | None = None,
    ) -> None:
        """`on_batch`, when given, takes each fetched batch at once instead of `on_message` per message."""
        self.config = config
        self.pushed = asyncio.Event()
        self.folders = {folder: FolderState() for folder in config.folders}
        self._cursors = cursors
        self._on_message = on_message
        self._on_batch = on_batch
        self._rand = rand or random.Random()
        self._locks = {folder: asyncio.Lock() for folder in config.folders}
        self._log = log.bind(source=config.source_name)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch every folder until `stop` is set; connection failures are retried, never raised."""
        async with asyncio.TaskGroup() as group:
            for folder in self.config.folders:
                group.create_task(self._watch(folder, stop), name=f"imap:{folder}")

    async def sweep_once(self) -> int:
        """Hand on what is new in every folder over short-lived connections; returns the count.

        Safe beside `run`: a folder is read by one of them at a time, from the saved cursor.
        Folders are read in turn; the first connection error is raised (the caller decides
        whether a one-shot run failed).
        """
        count = 0
        for folder in self.config.folders:
            count += await self._sweep_folder(folder)
        return count

    async def _sweep_folder(self, folder: str) -> int:
        connection = _Connection(self.config, folder, asyncio.Event())
        try:
            await connection.open()
            return await self._deliver_new(connection)
        finally:
            await connection.close()

    async def _watch(self, folder: str, stop: asyncio.Event) -> None:
        state = self.folders[folder]
        flog = self._log.bind(folder=folder)
        attempt = 0
        while not stop.is_set():
            connection = _Connection(self.config, folder, stop)
            try:
                await connection.open()
                state.connections += 1
                attempt = 0
                flog.info("imap.connected", uidvalidity=connection.selected.uidvalidity, idle=connection.has_idle)
                await self._follow(connection, stop)
            except _StoppedError:
                break
            except ConsumerError as exc:
                state.last_error = str(exc)
                # The consumer logs its own failures (the daemon: a store outage, once); no traceback here.
                flog.warning("imap.consumer_failed", error=str(exc.__cause__ or exc))
            except Exception as exc:
                # Anything else (network, TLS, a server's odd answer) is survivable: back off and retry.
                state.last_error = _describe(exc, self.config.password)
                flog.warning("imap.connection_failed", error=state.last_error)
            finally:
                state.idling.clear()
                await connection.close()
            attempt += 1
            delay = backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_cap_s, self._rand)
            flog.info("imap.reconnect_wait", seconds=round(delay, 3), attempt=attempt)
            await _sleep_unless(stop, delay)

    async def _follow(self, connection: _Connection, stop: asyncio.Event) -> None:
        """Catch up, then alternate IDLE (or a plain wait) and fetching, until stop or failure."""
        state = self.folders[connection.folder]
        wait_s = min(self.config.idle_renew_s, self.config.sweep_interval_s)
        await self._deliver_new(connection)
        while not stop.is_set():
            if connection.has_idle:
                pushed = await connection.idle(state, wait_s)
            else:
                pushed = False
                await connection.call(asyncio.sleep(self.config.sweep_interval_s), None)
            await self._deliver_new(connection, pushed=pushed)

    async def _deliver_new(self, connection: _Connection, *, pushed: bool = False) -> int:
        """Hand on every message above the folder's cursor, advancing the cursor after each one."""
        folder = connection.folder
        async with self._locks[folder]:
            saved = await self._cursors.get_cursor(self.config.source_name, folder)
            position, rescan = start_position(saved, connection.selected, self.config.start_at_end)
            if rescan:
                old = saved.validity if saved else None
                self._log.warning("imap.uidvalidity_changed", folder=folder, old=old, new=position.validity)
            if position != saved:
                await self._cursors.set_cursor(self.config.source_name, folder, position)
            count = 0
            more = True
            while more:
                uids, more = await connection.new_uids(position.position)
                for batch in imap_wire.batches(uids, self.config.fetch_batch):
                    position, delivered = await self._deliver_batch(connection, position, batch)
                    count += delivered
                more = more or bool(uids)
        if count:
            self.folders[folder].delivered += count
            self._log.info("imap.delivered", folder=folder, count=count, pushed=pushed, last_uid=position.position)
            self.pushed.set()
        return count

    async def _deliver_batch(
        self, connection: _Connection, position: records.Cursor, batch: list[int]
    ) -> tuple[records.Cursor, int]:
        """Fetch one batch and hand each message on; save the cursor once, up to the last handed on.

        Saving per batch rather than per message halves the store's writes in a catch-up; a
        crash re-delivers at most one batch, which the consumer's de-duplication absorbs.
        """
        folder = connection.folder
        saved = position
        delivered = 0
        try:
            fetched = [(uid, raw) for uid, raw in await connection.fetch(batch) if uid > position.position]
            if self._on_batch is not None and fetched:
                await _hand_on_batch(self._on_batch, folder, fetched)
                delivered, position = len(fetched), records.Cursor(position.validity, fetched[-1][0])
                fetched = []
            for uid, raw in fetched:
                try:
                    await self._on_message(folder, uid, raw)
                except Exception as exc:
                    raise ConsumerError(f"on_message failed for {folder} UID {uid}") from exc
                delivered += 1
                position = records.Cursor(position.validity, uid)
            # UIDs that vanished between SEARCH and FETCH (expunged) are passed over.
            position = records.Cursor(position.validity, max(position.position, batch[-1]))
        finally:
            if position != saved:
                await self._cursors.set_cursor(self.config.source_name, folder, position)
        return position, delivered


async def _hand_on_batch(on_batch: OnBatch, folder: str, fetched: list[tuple[int, bytes]]) -> None:
    """One fetched batch to the consumer at once (its cursor then advances past the whole batch)."""
    try:
        await on_batch(folder, fetched)
    except Exception as exc:
        raise ConsumerError(f"on_message failed for {folder} UIDs {fetched[0][0]}-{fetched[-1][0]}") from exc


def _describe(exc: BaseException, password: secrets.Secret) -> str:
    """An error for the log, with the password masked should a library have echoed it."""
    text = f"{type(exc).__name__}: {exc}"
    return text.replace(password.reveal(), secrets.MASK) if password else text


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
