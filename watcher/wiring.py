"""The composition root: every part built from the configuration, in dependency order.

Only this module (and the commands that load a file) reads `watcher.config.Config`; each part takes
its own small settings. `commands/run.py` and the demo call `run`.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from collections.abc import Sequence

import watcher
import watcher.atr.client as atr_client
import watcher.atr.rosters as atr_rosters
import watcher.atr.tokens as atr_tokens
import watcher.config as config_api
import watcher.core.decide as decide
import watcher.core.lifecycle as lifecycle
import watcher.core.roster as roster
import watcher.core.tracking as tracking
import watcher.daemon as daemon_api
import watcher.flow.desk as desk_api
import watcher.flow.discovery as discovery
import watcher.flow.intake as intake_api
import watcher.flow.leases as leases
import watcher.flow.worker as worker_api
import watcher.mail.mailer as mailer
import watcher.mail.outbox as outbox
import watcher.mail.render as render
import watcher.services.events as events
import watcher.services.log as log_setup
import watcher.services.metrics as metrics_api
import watcher.services.wallclock as wallclock
import watcher.sources.files as files_source
import watcher.sources.imap as imap
import watcher.sources.ponymail as ponymail
import watcher.sources.stored as stored
import watcher.store as store_api

Archive = tuple[ponymail.PonyMailSource, ponymail.ArchiveClient]


async def run(
    cfg: config_api.Config,
    *,
    stop: asyncio.Event | None = None,
    once: bool = False,
    sink: events.Sink = events.ignore,
    clock: wallclock.Clock = wallclock.utcnow,
) -> int:
    """Build the daemon from `cfg` and run it until `stop` is set or a signal arrives (or one cycle with `once`)."""
    return await daemon_api.run(await build(cfg, sink=sink, clock=clock), stop=stop, once=once)


async def build(
    cfg: config_api.Config, *, sink: events.Sink = events.ignore, clock: wallclock.Clock = wallclock.utcnow
) -> daemon_api.Daemon:
    """Open the store (checking its schema) and build every part from the configuration.

    Every event the parts report is also logged, at info, as one line (`watcher.services.log.log_event`).
    """
    sink = log_setup.logging_sink(sink)
    db = await _store(cfg)
    metrics = metrics_api.Metrics(watcher.__version__, [_source_name(s) for s in cfg.sources], clock=clock)
    atr = _atr(cfg, db)
    aliases = roster.load(cfg.roster.aliases_file) if cfg.roster.aliases_file else roster.Roster()
    rosters = atr_rosters.AtrRosters(atr, ttl=cfg.roster.committee_ttl.total_seconds())
    archives = [_archive(source, db, clock) for source in cfg.sources if isinstance(source, config_api.PonymailSource)]
    worker = worker_api.Worker(check_timeout=cfg.watcher.read_timeout.total_seconds())
    finder: discovery.ThreadFinder = (
        ponymail.ArchiveThreads(archives[0][1]) if archives else stored.StoredThreads(db, worker)
    )
    found = discovery.Discovery(atr, finder, atr_rosters=rosters)
    intake = intake_api.Intake(db, metrics=metrics, clock=clock, worker=worker, max_bytes=cfg.watcher.max_message_bytes)

    async def roster_for(vote: tracking.TrackedVote) -> roster.Roster:
        return aliases.merged(await rosters.for_vote(vote.committee_key, vote.vote_round))

    async def previous_round(vote: tracking.TrackedVote) -> Sequence[bytes]:
        if not vote.podling_thread_id or not archives:
            return []
        return await archives[0][1].thread_raw(vote.podling_thread_id)

    async def reread(vote: tracking.TrackedVote) -> int:
        """Read a vote's archived thread again before a decision (a back-dated reply may be there); new messages."""
        if not vote.root_message_id:
            return 0
        found = 0
        for source, _ in archives:
            found += await source.refresh(vote.root_message_id, intake.seen, _deliver(intake))
        return found

    desk = desk_api.Desk(
        db,
        atr,
        render.Templates(cfg.reminders.templates_dir),
        _desk_settings(cfg, aliases),
        roster_for=roster_for,
        previous_round=previous_round,
        sink=sink,
        clock=clock,
        worker=worker,
        screen=intake.screen,
        shadow=mailer.DryRunMailer(dry_run_dir(cfg)) if cfg.watcher.dry_run else None,
        metrics=metrics,
        reread=reread,
    )
    owner = leases.owner_id(cfg.watcher.instance_name)
    daemon = daemon_api.Daemon(
        settings=settings(cfg),
        store=db,
        atr=atr,
        desk=desk,
        intake=intake,
        discovering=found,
        sender=outbox.Outbox(db, _mailer(cfg), _policy(cfg, aliases), owner=owner, clock=clock),
        metrics=metrics,
        sink=sink,
        clock=clock,
        archives=archives,
    )
    # Threads of votes that ended or restarted before this start: a late reply there is no other vote's.
    for known in await db.votes(open_only=False):
        if not lifecycle.is_open(known.status):
            intake.retire(known.root_message_id)
    daemon.mailboxes = [
        imap.ImapSource(
            imap_settings(s, cfg.watcher.max_message_bytes + 1), db, daemon.take_imap, on_batch=daemon.take_imap_batch
        )
        for s in cfg.sources
        if isinstance(s, config_api.ImapSource)
    ]
    daemon.files = [
        files_source.FileSource(
            _source_name(s),
            s.path,
            isinstance(s, config_api.MboxSource),
            db,
            intake.take,
            # One byte over the limit: the intake flags the message too large (as IMAP's partial fetch).
            keep_bytes=cfg.watcher.max_message_bytes + 1,
        )
        for s in cfg.sources
        if isinstance(s, config_api.MboxSource | config_api.MaildirSource)
    ]
    if db.backend != "sqlite":
        # Several instances may share this database: singleton work runs under leases.
        names = [leases.DISCOVERY, *(leases.archive(s.name) for s, _ in archives)]
        names += [leases.mailbox(m.config.source_name) for m in daemon.mailboxes]
        names += [leases.archive(source.name) for source in daemon.files]
        daemon.keeper = leases.LeaseKeeper(db, owner, names, ttl=cfg.leases.ttl, heartbeat=cfg.leases.heartbeat)
    return daemon


async def _store(cfg: config_api.Config) -> store_api.Store:
    db = await store_api.open(cfg.watcher.database_url, claim_ttl=claim_ttl(cfg))
    try:
        await db.check_current()
    except Exception:
        await db.close()
        raise
    if db.backend == "sqlite":
        # This process holds the SQLite lock: a claim left on an outbox row is that of a process that
        # died while sending (kill -9). Waiting for it to expire would hold that mail back for minutes.
        await db.release_claims()
    return db


def _atr(cfg: config_api.Config, db: store_api.Store) -> atr_client.AtrClient:
    return atr_client.AtrClient(
        cfg.atr.base_url,
        cfg.atr.uid,
        cfg.atr.pat,
        budget_per_hour=cfg.atr.request_budget,
        ca_file=cfg.atr.ca_file,
        # One JWT for run, run --once and every instance (issue 16 item 5).
        token_store=atr_tokens.StoreTokens(db, cfg.atr.base_url, cfg.atr.uid, cfg.atr.pat.reveal())
        if cfg.atr.pat is not None
        else None,
    )


def _deliver(intake: intake_api.Intake) -> ponymail.Deliver:
    async def deliver(archived: ponymail.ArchivedMessage) -> None:
        await intake.take(archived.raw, "ponymail")

    return deliver


def settings(cfg: config_api.Config) -> daemon_api.DaemonSettings:
    """What the running daemon reads of the configuration."""
    return daemon_api.DaemonSettings(
        instance_name=cfg.watcher.instance_name,
        dry_run=cfg.watcher.dry_run,
        store_retry=cfg.watcher.store_retry,
        check_interval=cfg.watcher.check_interval,
        atr_poll_interval=cfg.atr.poll_interval,
        request_budget=cfg.atr.request_budget,
        metrics_listen=cfg.metrics.listen,
        sources=len(cfg.sources),
        polls=_poll_intervals(cfg),
        source_jobs=_source_jobs(cfg),
    )


def _desk_settings(cfg: config_api.Config, aliases: roster.Roster) -> desk_api.DeskSettings:
    return desk_api.DeskSettings(
        atr_host=cfg.atr.host,
        sender=cfg.reminders.from_ or f"vote-watcher <{cfg.atr.uid}@apache.org>",
        reply_to=cfg.reminders.reply_to or None,
        reminders_enabled=cfg.reminders.enabled,
        reminder=decide.ReminderConfig(cfg.reminders.delay),
        resolve_enabled=cfg.resolve.enabled,
        resolve=decide.ResolveConfig(cfg.resolve.grace, cfg.resolve.failed),
        dry_run=cfg.watcher.dry_run,
        contact=cfg.reminders.contact,
        opt_out=cfg.reminders.opt_out_uids(aliases),
    )


def _poll_intervals(cfg: config_api.Config) -> dict[str, tuple[str, datetime.timedelta]]:
    """Each source's lease, and how often it is polled (an IMAP mailbox: its sweep; a file: its poll_interval)."""
    intervals: dict[str, tuple[str, datetime.timedelta]] = {}
    for source in cfg.sources:
        name = _source_name(source)
        if isinstance(source, config_api.PonymailSource):
            intervals[name] = (leases.archive(name), source.poll_interval)
        elif isinstance(source, config_api.ImapSource):
            intervals[name] = (leases.mailbox(name), source.sweep_interval)
        else:
            intervals[name] = (leases.archive(name), source.poll_interval)
    return intervals


def _source_jobs(cfg: config_api.Config) -> dict[str, datetime.timedelta]:
    """The source jobs to schedule, each at the shortest interval of its sources."""
    jobs: dict[str, datetime.timedelta] = {}
    archives = [s.poll_interval for s in cfg.sources if isinstance(s, config_api.PonymailSource)]
    if archives:
        jobs["archives"] = min(archives)
    mailboxes = [s.sweep_interval for s in cfg.sources if isinstance(s, config_api.ImapSource)]
    if mailboxes:
        jobs["mailboxes"] = min(mailboxes)
    local = [s.poll_interval for s in cfg.sources if isinstance(s, config_api.MboxSource | config_api.MaildirSource)]
    if local:
        jobs["files"] = min(local)
    return jobs


def claim_ttl(cfg: config_api.Config) -> datetime.timedelta:
    """How long an outbox claim lasts: long enough for a send to finish (its end-of-DATA wait included,
    or a slow relay's answer would let another instance send the mail again), short enough that mails
    a killed instance had claimed go out soon after another takes over."""
    send = 2 * cfg.smtp.timeout + cfg.smtp.data_timeout + datetime.timedelta(seconds=30)
    return max(2 * cfg.leases.ttl, send)


def _source_name(source: config_api.Source) -> str:
    return source.name or source.kind


def imap_settings(section: config_api.ImapSource, max_fetch_bytes: int | None = None) -> imap.ImapConfig:
    """The IMAP source's settings from a loaded `[[sources]]` entry of kind "imap" (its secret already read)."""
    if section.password is None:
        raise imap.ImapConfigError(f"{section.name}: no IMAP password (set password_file or password_env)")
    return imap.ImapConfig(
        host=section.host,
        user=section.user,
        password=section.password,
        folders=tuple(section.folders),
        port=section.port,
        tls=section.tls == "implicit",
        ca_file=str(section.ca_file) if section.ca_file is not None else None,
        idle_renew_s=section.idle_timeout.total_seconds(),
        sweep_interval_s=section.sweep_interval.total_seconds(),
        name=section.name,
        max_fetch_bytes=max_fetch_bytes,
    )


def _archive(source: config_api.PonymailSource, db: store_api.Store, clock: wallclock.Clock) -> Archive:
    settings = ponymail.ArchiveSettings(
        base_url=source.base_url,
        total_timeout_s=source.timeout.total_seconds(),
        concurrency=source.concurrency,
    )
    client = ponymail.ArchiveClient(settings)
    polled = ponymail.PonyMailSource(
        client,
        source.lists,
        cursors=db,
        name=_source_name(source),
        lookback_s=int(source.lookback.total_seconds()),
        reread_every=source.reread_every,
        clock=lambda: clock().timestamp(),
    )
    return polled, client


def dry_run_dir(cfg: config_api.Config) -> pathlib.Path:
    """Where a dry run (or a configuration without a relay) writes its mails."""
    return cfg.reminders.dry_run_dir or cfg.watcher.state_dir / "dry-run"


def _mailer(cfg: config_api.Config) -> mailer.Mailer:
    if cfg.watcher.dry_run or not cfg.smtp.host:
        return mailer.DryRunMailer(dry_run_dir(cfg))
    return mailer.SmtpMailer(
        mailer.SmtpSettings(
            host=cfg.smtp.host,
            port=cfg.smtp.port,
            tls=cfg.smtp.tls,
            user=cfg.smtp.user,
            password=cfg.smtp.password,
            ca_file=cfg.smtp.ca_file,
            timeout=cfg.smtp.timeout,
            data_timeout=cfg.smtp.data_timeout,
        )
    )


def _policy(cfg: config_api.Config, people: roster.Roster) -> outbox.OutboxPolicy:
    cap = cfg.reminders.daily_cap_per_recipient
    return outbox.OutboxPolicy(daily_cap=cap or None, opt_out=cfg.reminders.opt_out_uids(people))
