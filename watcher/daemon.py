"""The daemon: runs the parts `watcher.wiring` built, and reacts to what discovery and the sources find.

APScheduler (AsyncIOScheduler) runs discovery, archive polls and sweeps, the vote checks and
the outbox on intervals; IMAP IDLE pushes and new archive messages trigger a vote check at
once. A failing job is logged and runs again at its next turn; it never stops the daemon.
SIGTERM or SIGINT lets in-flight work finish, closes connections and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import watcher.atr.client as client
import watcher.atr.errors as errors
import watcher.core.lifecycle as lifecycle
import watcher.core.tracking as tracking
import watcher.flow.desk as desk
import watcher.flow.discovery as discovery
import watcher.flow.intake as intake
import watcher.flow.leases as leases
import watcher.mail.outbox as outbox
import watcher.mail.render as render
import watcher.services.events as events
import watcher.services.metrics as metrics
import watcher.services.notify as notify
import watcher.services.wallclock as wallclock
import watcher.sources.archive as archive
import watcher.sources.files as files
import watcher.sources.imap as imap
import watcher.sources.ponymail as ponymail
import watcher.store as store

log = structlog.get_logger("watcher.daemon")

STOP_TIMEOUT_S: Final = 8.0
READY_DB_TIMEOUT_S: Final = 2.0
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_PAT_REJECTED: Final = 2
# The scheduler's jobs: one of them that the database failed is run again soon, and the outage is over
# once each of them that failed has worked again.
SCHEDULED_JOBS: Final = frozenset({"discovery", "checks", "outbox", "archives", "mailboxes", "files"})
# Outages a job survives: one warning line each (the traceback only when debugging).
EXPECTED_OUTAGES: Final = (
    errors.AtrError,
    ponymail.ArchiveFetchError,
    imap.ImapError,
    store.StoreError,
    OSError,
    TimeoutError,
)


@dataclasses.dataclass
class CycleReport:
    """What one cycle reached (`run --once` exits non-zero, with the reason, when it reached nothing)."""

    atr_reached: bool = False
    atr_error: str = ""
    sources_reached: int = 0
    source_errors: list[str] = dataclasses.field(default_factory=list)
    mails_sent: int = 0
    relay_errors: list[str] = dataclasses.field(default_factory=list)
    elsewhere: bool = False
    """Some of that work is another instance's: it holds the lease (several instances on PostgreSQL)."""

    def failure(self, sources: int) -> str | None:
        """The one-line reason a one-shot run failed, or None."""
        reached_nothing = not self.atr_reached and (sources == 0 or self.sources_reached == 0)
        if reached_nothing and not self.elsewhere:
            reached = f"ATR ({self.atr_error or 'not reached'})"
            if sources:
                reached += f" nor any source ({'; '.join(self.source_errors) or 'not reached'})"
            return f"the cycle reached neither {reached}"
        if self.relay_errors:
            return f"could not hand mail to the relay: {self.relay_errors[0]}"
        return None


@dataclasses.dataclass(frozen=True)
class DaemonSettings:
    """What the running daemon reads of the configuration (`watcher.wiring` builds it)."""

    instance_name: str
    dry_run: bool = False
    store_retry: datetime.timedelta = datetime.timedelta(seconds=30)
    check_interval: datetime.timedelta = datetime.timedelta(minutes=1)
    atr_poll_interval: datetime.timedelta = datetime.timedelta(minutes=10)
    request_budget: int = 300
    metrics_listen: str = ""
    sources: int = 0
    """How many sources are configured (`run --once` fails when it reached none of them, nor ATR)."""
    polls: Mapping[str, tuple[str, datetime.timedelta]] = dataclasses.field(default_factory=dict)
    """Each source's lease, and how often it is polled (an IMAP mailbox: its sweep), for /readyz."""
    source_jobs: Mapping[str, datetime.timedelta] = dataclasses.field(default_factory=dict)
    """The source jobs that run ("archives", "mailboxes", "files"), each at its shortest source interval."""


@dataclasses.dataclass
class Daemon:
    """The running parts, wired together."""

    settings: DaemonSettings
    db: store.Store
    atr: client.AtrClient
    desk: desk.Desk
    intake: intake.Intake
    discovering: discovery.Discovery
    sender: outbox.Outbox
    metrics: metrics.Metrics
    sink: events.Sink
    clock: wallclock.Clock
    archives: list[tuple[ponymail.PonyMailSource, ponymail.ArchiveClient]] = dataclasses.field(default_factory=list)
    mailboxes: list[imap.ImapSource] = dataclasses.field(default_factory=list)
    files: list[files.FileSource] = dataclasses.field(default_factory=list)
    """Local sources: mbox files and Maildirs."""
    keeper: leases.LeaseKeeper = dataclasses.field(default_factory=leases.LeaseKeeper.solo)
    ready: bool = False
    waiting_on_relay: int = 0
    last_poll: datetime.datetime | None = None
    report: CycleReport = dataclasses.field(default_factory=CycleReport)
    atr_ok_at: datetime.datetime | None = None
    _pending_checks: set[int] = dataclasses.field(default_factory=set)
    _thread_sizes: dict[int, int] = dataclasses.field(default_factory=dict)
    _changed_again: set[int] = dataclasses.field(default_factory=set)
    _tasks: set[asyncio.Task[Any]] = dataclasses.field(default_factory=set)
    _stopping: bool = False
    store_down_since: datetime.datetime | None = None
    """When the database last started failing (None while it works): the outage the status line shows."""
    _store_failed_jobs: set[str] = dataclasses.field(default_factory=set)
    _store_failed_at: float = 0.0
    _stale_votes: set[int] = dataclasses.field(default_factory=set)
    _job_locks: dict[str, asyncio.Lock] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # The intake reports changed threads to the daemon, which runs its background work.
        self.intake.connect(self.on_vote_changed, self.spawn)

    @property
    def stopping(self) -> bool:
        """True once shutdown has begun."""
        return self._stopping

    # Jobs -----------------------------------------------------------------------------------------------------

    async def discover(self) -> None:
        """Ask ATR for running votes; track new and restarted ones, close finished ones (under its lease)."""
        if not self.keeper.holds(leases.DISCOVERY):
            self.report.elsewhere = True
        await self.keeper.run_under(leases.DISCOVERY, self._discover)

    async def _discover(self) -> None:
        try:
            changes = await self.discovering.poll()
        except errors.AtrError as exc:
            self.report.atr_error = str(exc)
            await self._observe("atr", {"ok": False, "error": str(exc), **self._atr_facts()})
            raise
        self.report.atr_reached = True
        self.atr_ok_at = self.clock()
        await self._observe("atr", {"ok": True, "error": "", **self._atr_facts()})
        for change in changes:
            await self._apply(change)
        votes = await self.db.votes(open_only=True)
        for mode in ("trusted", "email", "manual"):
            self.metrics.set_votes_tracked(mode, sum(1 for v in votes if v.mode == mode))
        await self.find_roots()
        self.metrics.set_budget(int(self.atr.budget.remaining()))

    async def find_roots(self) -> None:
        """Votes whose [VOTE] message was not found yet: look again (new mail may have brought it)."""
        for change in await self.discovering.look_for_threads():
            await self._apply(change)
        for vote in await self.db.votes(open_only=True):
            if not vote.root_message_id:
                await self._find_root(vote)

    async def _apply(self, change: tracking.Change) -> None:
        vote = change.vote
        if change.kind == "closed":
            stored = await self.db.get_vote(vote.release_key, vote.vote_seq)
            if stored is not None:
                await self._end(stored, lifecycle.VoteEvent.CLOSE, change.phase)
            self.desk.emit("vote_closed", stored, f"vote closed in ATR ({change.phase or 'no longer listed'})")
            return
        if change.previous is not None and change.previous.vote_seq != vote.vote_seq:
            old = await self.db.get_vote(change.previous.release_key, change.previous.vote_seq)
            if old is not None:
                await self._end(old, lifecycle.VoteEvent.REPLACE)
        stored = await self.db.upsert_vote(vote, self.clock())
        kind: events.Kind = "vote_restarted" if change.kind == "restarted" else "vote_tracked"
        if change.kind in ("started", "restarted", "next_round"):
            ends = stored.vote_end.strftime("%Y-%m-%d %H:%M UTC") if stored.vote_end else "unknown"
            rounds = f", podling round {vote.vote_round}" if vote.vote_round else ""
            self.desk.emit(kind, stored, f"{vote.mode} vote{rounds} on {vote.list_address}, ends {ends}")
        await self._follow(stored)

    async def _follow(self, vote: tracking.TrackedVote) -> None:
        if not vote.root_message_id:
            return
        for source, _ in self.archives:
            if vote.list_address.lower() in source.lists:
                source.track(
                    vote.list_address, message_id=vote.root_message_id, started=vote.vote_started, ends=vote.vote_end
                )
        await self.intake.track(vote)

    async def _find_root(self, vote: tracking.TrackedVote) -> None:
        """Without an archive, the [VOTE] is found among stored messages by the rendered subject."""
        known = self.discovering.votes.get(vote.release_key)
        if known is None or not known.root_message_id:
            return
        stored = await self.db.upsert_vote(known, self.clock())
        await self._follow(stored)

    async def _end(self, vote: tracking.TrackedVote, event: lifecycle.VoteEvent, phase: str | None = None) -> None:
        """A vote ATR closed or replaced: its status (its waiting mail skipped), and nobody follows it any more."""
        await self.db.end_vote(vote, lifecycle.next_status(vote.status, event), self.clock())
        if event is lifecycle.VoteEvent.CLOSE:
            # Resolved at its end by ATR itself: the RM may still need to hear what the ballots missed.
            await self._guarded(self.desk.resolved_elsewhere(vote, phase), "resolved_elsewhere")
        self.intake.untrack(vote)
        self.desk.forget(vote.id)
        if event is lifecycle.VoteEvent.CLOSE:
            self._untrack_archive(vote)

    def _untrack_archive(self, vote: tracking.TrackedVote) -> None:
        for source, _ in self.archives:
            source.untrack(message_id=vote.root_message_id)

    async def poll_archives(self) -> None:
        """One poll of every archive source (one request per list when nothing changed)."""
        for source, _ in self.archives:
            poll = functools.partial(source.poll, self.intake.seen, self._deliver_archived)
            report = await self.keeper.run_under(leases.archive(source.name), poll)
            if report is None:
                self.report.elsewhere = True
                continue
            if report.ok:
                await self._polled(source.name)
            else:
                await self._poll_failed(source.name, "; ".join(report.failures[:3]))

    async def _deliver_archived(self, archived: ponymail.ArchivedMessage) -> None:
        await self.intake.take(archived.raw, "ponymail")

    async def take_imap(self, folder: str, uid: int, raw: bytes) -> None:
        """An IMAP message, pushed by IDLE or found by a sweep."""
        await self.intake.take(raw, "imap")

    async def take_imap_batch(self, folder: str, fetched: list[tuple[int, bytes]]) -> None:
        """A fetched batch of IMAP messages (a catch-up), stored in one transaction."""
        await self.intake.take_many([raw for _, raw in fetched], "imap")

    async def sweep_mailboxes(self) -> None:
        """Catch what a lost IDLE push missed."""
        for mailbox in self.mailboxes:
            name = mailbox.config.source_name
            try:
                swept = await self.keeper.run_under(leases.mailbox(name), mailbox.sweep_once)
            except EXPECTED_OUTAGES as exc:
                await self._poll_failed(name, f"{type(exc).__name__}: {exc}")
                raise
            if swept is None:
                self.report.elsewhere = True
            else:
                await self._polled(name)

    async def read_files(self) -> None:
        """Backfill and replay from local mbox files and Maildirs (each under a lease, like an archive)."""
        for source in self.files:
            try:
                read = await self.keeper.run_under(leases.archive(source.name), source.read)
            except (OSError, archive.ArchiveError) as exc:
                await self._poll_failed(source.name, f"{type(exc).__name__}: {exc}")
                raise
            if read is None:
                self.report.elsewhere = True
            else:
                await self._polled(source.name)

    async def _polled(self, name: str) -> None:
        now = self.clock()
        self.metrics.polled(name, now)
        self.last_poll = now
        self.report.sources_reached += 1
        await self._observe(f"source:{name}", {"ok": True, "last_ok": now.isoformat(), "error": ""})

    async def _poll_failed(self, name: str, error: str) -> None:
        self.report.source_errors.append(f"{name}: {error}")
        log.warning("source.poll_failed", source=name, error=error)
        await self._observe(f"source:{name}", {"ok": False, "error": error}, keep_last_ok=True)

    async def _observe(self, key: str, value: dict[str, Any], *, keep_last_ok: bool = False) -> None:
        """What this instance saw, for `vote-watcher status` (a database outage only loses the note)."""
        try:
            if keep_last_ok:
                before = {(o.key, o.instance): o.value for o in await self.db.observations()}
                last_ok = before.get((key, self.settings.instance_name), {}).get("last_ok")
                value = {**value, "last_ok": last_ok}
            await self.db.observe(key, self.settings.instance_name, value, self.clock())
        except store.StoreError as exc:
            log.debug("daemon.observe_failed", key=key, error=str(exc))

    def _atr_facts(self) -> dict[str, Any]:
        renews_in = self.atr.jwt_renews_in()
        renews_at = self.clock() + datetime.timedelta(seconds=renews_in) if renews_in is not None else None
        return {
            "budget_remaining": int(self.atr.budget.remaining()),
            "budget_per_hour": self.settings.request_budget,
            "jwt_renews_at": renews_at.isoformat() if renews_at is not None else None,
            "at": self.clock().isoformat(),
        }

    async def check_votes(self) -> None:
        """Reminders and resolutions of every open vote."""
        for vote in await self.db.votes(open_only=True):
            if self.keeper.shared:
                await self._catch_up(vote)
            if vote.id in self._stale_votes:
                # Its re-tally failed on the database: the thread changed since the stored tally.
                await self.desk.retally(vote)
                self._stale_votes.discard(vote.id)
            await self._check(vote.id)

    async def _catch_up(self, vote: tracking.TrackedVote) -> None:
        """Several instances: another may run discovery and the sources, so follow the vote and tally what it stored."""
        await self._follow(vote)
        size = len(await self.db.thread_keys(vote.id))
        if self._thread_sizes.get(vote.id) != size:
            self._thread_sizes[vote.id] = size
            await self.desk.retally(vote)

    async def _check(self, vote_id: int) -> None:
        vote = await self.db.vote_by_id(vote_id)
        if vote is None or not lifecycle.is_open(vote.status):
            return
        with structlog.contextvars.bound_contextvars(release=vote.release_key, vote_seq=vote.vote_seq):
            await self.desk.check(vote)

    async def on_vote_changed(self, vote_id: int) -> None:
        """New mail in a thread: re-tally and check at once (pushes are coalesced per vote)."""
        if self._stopping:
            return
        if vote_id in self._pending_checks:
            # The running re-tally may have read the thread before this message: it runs once more.
            self._changed_again.add(vote_id)
            return
        self._pending_checks.add(vote_id)
        self._spawn(self._changed(vote_id), f"check:{vote_id}")

    async def _changed(self, vote_id: int) -> None:
        try:
            await asyncio.sleep(0)
            again = True
            while again:
                self._changed_again.discard(vote_id)
                vote = await self.db.vote_by_id(vote_id)
                if vote is None or not lifecycle.is_open(vote.status):
                    return  # mail after the end (the [RESULT], late replies) changes nothing
                await self.desk.retally(vote)
                await self._check(vote_id)
                again = vote_id in self._changed_again and not self._stopping
        except store.StoreError:
            self._stale_votes.add(vote_id)
            raise
        finally:
            self._pending_checks.discard(vote_id)
            self._changed_again.discard(vote_id)

    async def send_mail(self) -> None:
        """Deliver what the outbox holds (a dry run leaves it alone: its mails are written, not queued)."""
        if self.settings.dry_run:
            return
        for delivery in await self.sender.run_once():
            self._record_delivery(delivery)
            if delivery.result in ("retry", "deferred"):
                await self._skip_if_vote_ended(delivery)
        waiting = await self.db.waiting_on_relay()
        self.waiting_on_relay = sum(waiting.values())
        self.metrics.set_waiting(waiting)

    async def _skip_if_vote_ended(self, delivery: outbox.Delivery) -> None:
        """A mail put back for later whose vote closed or restarted meanwhile is skipped now.

        When the vote ended, the row was claimed by this very send, so `skip_pending` left it.
        """
        if delivery.vote_seq is None:
            return
        vote = await self.db.get_vote(delivery.release_key, delivery.vote_seq)
        reason = lifecycle.skip_reason(vote.status) if vote is not None else None
        if vote is None or reason is None:
            return
        await self.db.skip_pending(vote.release_key, vote.vote_seq, reason, self.clock())

    def _record_delivery(self, delivery: outbox.Delivery) -> None:
        row = delivery
        result = delivery.result
        if delivery.answer_lost:
            self.metrics.answer_lost()
            log.warning("outbox.answer_lost", to=row.recipient, message_id=row.message_id, kind=row.kind)
        if row.kind == "reminder" and result in ("sent", "failed", "skipped"):
            self.metrics.reminder("sent" if result == "sent" else "failed" if result == "failed" else "skipped")
        if result == "sent":
            self.report.mails_sent += 1
        elif result in ("retry", "failed"):
            self.report.relay_errors.append(delivery.detail)
        to = row.recipient if "@" in row.recipient else render.recipient(row.recipient)
        kind: events.Kind | None = None
        if result == "sent":
            kind = "reminder_sent" if row.kind == "reminder" else "notice_sent"
        elif result == "failed":
            kind = "reminder_failed" if row.kind == "reminder" else "notice_failed"
        elif result == "skipped" and row.kind == "reminder":
            kind = "reminder_skipped"
        elif result == "retry":
            # Not the end of the mail: one warning line, with the relay's answer.
            log.warning(
                "outbox.retry",
                release=row.release_key,
                vote_seq=row.vote_seq,
                to=to,
                message_id=row.message_id,
                error=delivery.detail,
                next_at=delivery.next_at.isoformat() if delivery.next_at else None,
            )
        if kind is None:
            return
        text = f"{row.kind.replace('_', ' ')} {result} to {to}"
        if result != "sent":
            text += f": {delivery.detail}"
        self.sink(
            events.Event(
                kind,
                self.clock(),
                row.release_key,
                row.vote_seq,
                text,
                {
                    "to": to,
                    "voter": row.recipient,
                    "message_id": row.message_id,
                    "kind": row.kind,
                    "error": "" if result == "sent" else delivery.detail,
                },
            )
        )

    # Running ----------------------------------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` beside the jobs (failures logged); shutdown waits for it."""
        if self._stopping:
            work.close()
            return
        self._spawn(work, name)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(self._guarded(work, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Awaitable[None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outage = _store_error(exc)
            if outage is not None:
                self._store_failed(name, outage)
                return
            self.metrics.job_failed(name, "error")
            if isinstance(exc, EXPECTED_OUTAGES):
                # An outage the daemon rides out: one line; the traceback only when debugging.
                log.warning("daemon.job_failed", job=name, error=f"{type(exc).__name__}: {exc}")
                log.debug("daemon.job_failed_traceback", job=name, exc_info=True)
                return
            log.exception("daemon.job_failed", job=name)
        else:
            self._store_worked(name)

    def _store_failed(self, name: str, exc: store.StoreError) -> None:
        """An outage, not a bug: one clear line when it starts, a count for every job it stops."""
        self.metrics.job_failed(name, "store")
        self._store_failed_at = time.monotonic()
        if name in SCHEDULED_JOBS:
            self._store_failed_jobs.add(name)
        if self.store_down_since is not None:
            log.debug("daemon.store_still_unavailable", job=name, error=str(exc))
            return
        self.store_down_since = self.clock()
        log.error(
            "daemon.store_unavailable",
            job=name,
            error=str(exc),
            action="nothing is acknowledged to the sources until the database works again; "
            f"retrying every {self.settings.store_retry.total_seconds():g} s",
        )

    def _store_worked(self, name: str) -> None:
        self._store_failed_jobs.discard(name)
        if self.store_down_since is None or self._store_failed_jobs:
            return
        # A nearly full disk takes small writes and refuses large ones: the outage is over only once
        # nothing has failed for two retry periods, so that it is one line, not one per flap.
        quiet = time.monotonic() - self._store_failed_at
        if quiet < 2 * self.settings.store_retry.total_seconds():
            return
        log.info("daemon.store_recovered", job=name, down_since=self.store_down_since.isoformat())
        self.store_down_since = None

    def job(self, work: Callable[[], Awaitable[None]], name: str) -> Callable[[], Awaitable[None]]:
        """A scheduler job that logs failures and is tracked, so shutdown can wait for it.

        A job the database failed runs again after `watcher.store_retry` rather than at its next
        turn (files are read every 10 minutes), so what was offered meanwhile is stored soon.
        """
        lock = self._job_locks.setdefault(name, asyncio.Lock())

        async def run() -> None:
            if self._stopping or lock.locked():
                return
            async with lock:
                task = asyncio.ensure_future(self._guarded(work(), name))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    # Cancelled by the shutdown (SIGTERM): an ending, not a failure of the job.
                    if not self.stopping:
                        raise
                    log.debug("daemon.job_cancelled", job=name)
                    return
            if name in self._store_failed_jobs and not self._stopping:
                loop = asyncio.get_running_loop()
                loop.call_later(self.settings.store_retry.total_seconds(), self._retry_job, run, name)

        return run

    def _retry_job(self, run: Callable[[], Awaitable[None]], name: str) -> None:
        if not self._stopping:
            self._spawn(run(), f"{name}:retry")

    async def cycle(self) -> None:
        """One full cycle: discovery, archives, mailboxes, checks, mail (`run --once`)."""
        await self.read_sources()
        await self.catch_up()
        await self.act()

    async def read_sources(self) -> None:
        """The first part of a cycle: what ATR runs and what the lists hold."""
        for work, name in (
            (self.discover, "discovery"),
            (self.poll_archives, "archives"),
            (self.sweep_mailboxes, "mailboxes"),
            (self.read_files, "files"),
            (self.find_roots, "roots"),
        ):
            await self._guarded(work(), name)

    async def catch_up(self) -> None:
        """Votes one discovery poll left for later (many new votes at once): read them now, paced by ATR's limits."""
        while self.discovering.pending and not self._stopping:
            await self._guarded(self.discover(), "discovery")
            await self._guarded(self.find_roots(), "roots")

    async def act(self) -> None:
        """The second part: reminders, resolutions, mail."""
        await self.settle()
        await self._guarded(self.check_votes(), "checks")
        await self._guarded(self.send_mail(), "outbox")

    async def settle(self) -> None:
        """Wait for the checks that pushes started."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def begin_stop(self) -> None:
        """Take no new work from now on."""
        self._stopping = True

    async def drain(self) -> None:
        """Stop taking work and let what is in flight finish (bounded)."""
        self._stopping = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=STOP_TIMEOUT_S)
        for task in pending:
            task.cancel()

    async def close(self) -> None:
        """Give the leases up and close connections."""
        await self.keeper.release_all()
        for _, archive_client in self.archives:
            await archive_client.__aexit__(None, None, None)
        await self.atr.aclose()
        await self.db.close()
        self.desk.worker.close()


def _store_error(exc: BaseException) -> store.StoreError | None:
    """The store error behind `exc` (a source may wrap what its consumer raised), if there is one."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, store.StoreError):
            return seen
        seen = seen.__cause__
    return None


async def run(daemon: Daemon, *, stop: asyncio.Event | None = None, once: bool = False) -> int:
    """Run a built daemon until `stop` is set or a signal arrives (or one cycle with `once`); the exit status."""
    stop = stop or asyncio.Event()
    endpoint = None
    if daemon.settings.metrics_listen:
        ready = _readiness(daemon, asyncio.get_running_loop())
        endpoint = daemon.metrics.start(daemon.settings.metrics_listen, ready=ready)
    # Leases are renewed beside everything else, until the work in flight has been drained.
    await daemon.keeper.tick()
    heartbeat_stop = asyncio.Event()
    heartbeat = asyncio.ensure_future(daemon.keeper.run(heartbeat_stop))
    try:
        if once:
            await daemon.cycle()
            await daemon.settle()
            if daemon.atr.pat_rejected:
                # A refused PAT is the operator's to fix now, not an hour's silent wait (atr.pat_rejected).
                log.error("daemon.cycle_failed", reason="ATR refused the PAT (atr.pat_rejected)")
                return EXIT_PAT_REJECTED
            reason = daemon.report.failure(daemon.settings.sources)
            if reason is not None:
                log.error("daemon.cycle_failed", reason=reason)
                raise CycleFailedError(reason)
            log.info(
                "daemon.cycle_done",
                atr=daemon.report.atr_reached,
                sources_polled=daemon.report.sources_reached,
                mails_sent=daemon.report.mails_sent,
            )
            return EXIT_OK
        return await _serve(daemon, stop)
    finally:
        notify.stopping("stopping")
        await daemon.drain()
        heartbeat_stop.set()
        await heartbeat
        if endpoint is not None:
            endpoint.stop()
        await daemon.close()


class CycleFailedError(Exception):
    """`run --once` reached neither ATR nor any source, or could not hand mail to the relay."""


def _readiness(daemon: Daemon, loop: asyncio.AbstractEventLoop) -> Callable[[], tuple[bool, dict[str, Any]]]:
    """/readyz's check, run in the metrics server's thread: the database (asked on the loop), sources, ATR."""

    def ready() -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            asyncio.run_coroutine_threadsafe(daemon.db.ping(), loop).result(timeout=READY_DB_TIMEOUT_S)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        now = daemon.clock()
        for name, (lease, interval) in daemon.settings.polls.items():
            if not daemon.keeper.holds(lease):
                checks[f"source:{name}"] = "ok"  # another instance holds its lease and polls it
                continue
            age = daemon.metrics.poll_age(name, now)
            fine = age is not None and age <= 2 * interval.total_seconds()
            checks[f"source:{name}"] = "ok" if fine else f"last good poll {age:.0f} s ago" if age else "never polled"
        atr_interval = 2 * daemon.settings.atr_poll_interval.total_seconds()
        atr_ok = daemon.atr_ok_at is not None and (now - daemon.atr_ok_at).total_seconds() <= atr_interval
        if not daemon.keeper.holds(leases.DISCOVERY):
            atr_ok = True  # discovery runs in the instance that holds its lease
        checks["atr"] = "ok" if atr_ok else "not reached within twice its poll interval"
        return all(value == "ok" for value in checks.values()), checks

    return ready


async def _serve(daemon: Daemon, stop: asyncio.Event) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    # READY once the sources are read (one bounded discovery poll: a few seconds however many votes
    # run); the votes left over, the checks and the mail follow, so systemd's start timeout never
    # waits on ATR's rate limits. A stop at any point ends the work in flight.
    if not await _unless_stopped(daemon.read_sources(), stop):
        # Stopped during the first cycle: never announce readiness.
        return EXIT_OK
    scheduler = _scheduler(daemon)
    mailbox_tasks = [
        asyncio.ensure_future(
            daemon.keeper.hold(leases.mailbox(m.config.source_name), functools.partial(m.run, stop), stop)
        )
        for m in daemon.mailboxes
    ]
    notify.ready(_status(daemon))
    log.info("daemon.ready", sources=daemon.settings.sources, votes=len(daemon.discovering.votes))
    rest = asyncio.ensure_future(_rest_of_first_cycle(daemon, scheduler))
    try:
        await _until_stopped(daemon, stop)
    finally:
        # Stopping first: a job the scheduler cancels now ends quietly (`job`), not as a failure.
        daemon.begin_stop()
        rest.cancel()
        await asyncio.gather(rest, return_exceptions=True)
        if scheduler.running:
            scheduler.shutdown(wait=False)
        for task in mailbox_tasks:
            task.cancel()
        await asyncio.gather(*mailbox_tasks, return_exceptions=True)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    log.info("daemon.stopped")
    return EXIT_OK


async def _unless_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run `work` until it ends (True) or `stop` is set (False: the work is cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        return not stop.is_set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


async def _rest_of_first_cycle(daemon: Daemon, scheduler: AsyncIOScheduler) -> None:
    """After READY: the votes discovery left for later, the checks and the mail; then the schedule."""
    await daemon.catch_up()
    await daemon.act()
    scheduler.start()
    for job in scheduler.get_jobs():
        if job.id in daemon._store_failed_jobs:
            # The first cycle failed on the database: try again soon, not at the job's next turn.
            job.modify(next_run_time=wallclock.utcnow() + daemon.settings.store_retry)


async def _until_stopped(daemon: Daemon, stop: asyncio.Event) -> None:
    """Wait for the stop signal, pinging systemd's watchdog and updating the status line."""
    interval = notify.watchdog_interval() or 30.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        notify.watchdog()
        notify.status(_status(daemon))


def _status(daemon: Daemon) -> str:
    """systemd's status line: the votes tracked and the last successful poll of a source."""
    count = len(daemon.discovering.votes)
    text = f"{count} vote{'' if count == 1 else 's'} tracked"
    if daemon.store_down_since is not None:
        text += f", DATABASE UNAVAILABLE since {daemon.store_down_since:%Y-%m-%d %H:%M:%S} UTC"
    if daemon.waiting_on_relay:
        text += f", {daemon.waiting_on_relay} mail{'' if daemon.waiting_on_relay == 1 else 's'} waiting on the relay"
    if daemon.last_poll is None:
        return f"{text}, no source polled yet"
    return f"{text}, last poll {daemon.last_poll:%Y-%m-%d %H:%M:%S} UTC"


def _scheduler(daemon: Daemon) -> AsyncIOScheduler:
    settings = daemon.settings
    scheduler = AsyncIOScheduler(timezone=datetime.UTC)
    options: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    jobs: list[tuple[Callable[[], Awaitable[None]], str, float]] = [
        (daemon.discover, "discovery", settings.atr_poll_interval.total_seconds()),
        (daemon.check_votes, "checks", settings.check_interval.total_seconds()),
        (daemon.send_mail, "outbox", min(settings.check_interval.total_seconds(), 30.0)),
    ]
    sources = {"archives": daemon.poll_archives, "mailboxes": daemon.sweep_mailboxes, "files": daemon.read_files}
    for name, interval in settings.source_jobs.items():
        jobs.append((sources[name], name, interval.total_seconds()))
    for work, name, seconds in jobs:
        scheduler.add_job(daemon.job(work, name), "interval", seconds=seconds, id=name, name=name, **options)
    return scheduler
