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
import watcher.atr.client as client
import watcher.atr.rosters as rosters
import watcher.atr.tokens as tokens
import watcher.config as config
import watcher.core.decide as decide
import watcher.core.lifecycle as lifecycle
import watcher.core.roster as roster
import watcher.core.tracking as tracking
import watcher.daemon as daemon
import watcher.flow.desk as desk
import watcher.flow.discovery as discovery
import watcher.flow.intake as intake
import watcher.flow.leases as leases
import watcher.flow.worker as worker
import watcher.mail.mailer as mailer
import watcher.mail.outbox as outbox
import watcher.mail.render as render
import watcher.services.events as events
import watcher.services.log as log
import watcher.services.metrics as metrics
import watcher.services.wallclock as wallclock
import watcher.sources.files as files
import watcher.sources.imap as imap
import watcher.sources.ponymail as ponymail
import watcher.sources.stored as stored
import watcher.store as store

Archive = tuple[ponymail.PonyMailSource, ponymail.ArchiveClient]


async def run(
    cfg: config.Config,
    *,
    stop: asyncio.Event | None = None,
    once: bool = False,
    sink: events.Sink = events.ignore,
    clock: wallclock.Clock = wallclock.utcnow,
) -> int:
    """Build the daemon from `cfg` and run it until `stop` is set or a signal arrives (or one cycle with `once`)."""
    return await daemon.run(await build(cfg, sink=sink, clock=clock), stop=stop, once=once)


async def build(
    cfg: config.Config, *, sink: events.Sink = events.ignore, clock: wallclock.Clock = wallclock.utcnow
) -> daemon.Daemon:
    """Open the store (checking its schema) and build every part from the configuration.

    Every event the parts report is also logged, at info, as one line (`watcher.services.log.logging_sink`).
    """
    sink = log.logging_sink(sink)
    db = await _store(cfg)
    stats = metrics.Metrics(watcher.__version__, [_source_name(s) for s in cfg.sources], clock=clock)
    atr = _atr(cfg, db)
    aliases = roster.load(cfg.roster.aliases_file) if cfg.roster.aliases_file else roster.Roster()
    atr_rosters = rosters.AtrRosters(atr, ttl=cfg.roster.committee_ttl.total_seconds())
    archives = [_archive(source, db, clock) for source in cfg.sources if isinstance(source, config.PonymailSection)]
    pool = worker.Worker(check_timeout=cfg.watcher.read_timeout.total_seconds())
    finder: discovery.ThreadFinder = (
        ponymail.ArchiveThreads(archives[0][1]) if archives else stored.StoredThreads(db, pool.parse)
    )
    found = discovery.Discovery(atr, finder, atr_rosters=atr_rosters)
    mail_intake = intake.Intake(db, stats=stats, clock=clock, pool=pool, max_bytes=cfg.watcher.max_message_bytes)

    async def roster_for(vote: tracking.TrackedVote) -> roster.Roster:
        return aliases.merged(await atr_rosters.for_vote(vote.committee_key, vote.vote_round))

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
            found += await source.refresh(vote.root_message_id, mail_intake.seen, _deliver(mail_intake))
        return found

    vote_desk = desk.Desk(
        db,
        atr,
        render.Templates(cfg.reminders.templates_dir),
        _desk_settings(cfg, aliases),
        roster_for=roster_for,
        previous_round=previous_round,
        sink=sink,
        clock=clock,
        pool=pool,
        screen=mail_intake.screen,
        shadow=mailer.DryRunMailer(dry_run_dir(cfg)) if cfg.watcher.dry_run else None,
        stats=stats,
        reread=reread,
    )
    owner = leases.owner_id(cfg.watcher.instance_name)
    wired = daemon.Daemon(
        settings=settings(cfg),
        db=db,
        atr=atr,
        desk=vote_desk,
        intake=mail_intake,
        discovering=found,
        sender=outbox.Outbox(db, _mailer(cfg), _policy(cfg, aliases), owner=owner, clock=clock),
        metrics=stats,
        sink=sink,
        clock=clock,
        archives=archives,
    )
    # Threads of votes that ended or restarted before this start: a late reply there is no other vote's.
    for known in await db.votes(open_only=False):
        if not lifecycle.is_open(known.status):
            mail_intake.retire(known.root_message_id)
    wired.mailboxes = [
        imap.ImapSource(
            imap_settings(s, cfg.watcher.max_message_bytes + 1), db, wired.take_imap, on_batch=wired.take_imap_batch
        )
        for s in cfg.sources
        if isinstance(s, config.ImapSection)
    ]
    wired.files = [
        files.FileSource(
            _source_name(s),
            s.path,
            isinstance(s, config.MboxSection),
            db,
            mail_intake.take,
            # One byte over the limit: the intake flags the message too large (as IMAP's partial fetch).
            keep_bytes=cfg.watcher.max_message_bytes + 1,
        )
        for s in cfg.sources
        if isinstance(s, config.MboxSection | config.MaildirSection)
    ]
    if db.backend != "sqlite":
        # Several instances may share this database: singleton work runs under leases.
        names = [leases.DISCOVERY, *(leases.archive(s.name) for s, _ in archives)]
        names += [leases.mailbox(m.config.source_name) for m in wired.mailboxes]
        names += [leases.archive(source.name) for source in wired.files]
        wired.keeper = leases.LeaseKeeper(db, owner, names, ttl=cfg.leases.ttl, heartbeat=cfg.leases.heartbeat)
    return wired


async def _store(cfg: config.Config) -> store.Store:
    db = await store.open(cfg.watcher.database_url, claim_ttl=claim_ttl(cfg))
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


def _atr(cfg: config.Config, db: store.Store) -> client.AtrClient:
    return client.AtrClient(
        cfg.atr.base_url,
        cfg.atr.uid,
        cfg.atr.pat,
        budget_per_hour=cfg.atr.request_budget,
        ca_file=cfg.atr.ca_file,
        # One JWT for run, run --once and every instance (issue 16 item 5).
        token_store=tokens.StoreTokens(db, cfg.atr.base_url, cfg.atr.uid, cfg.atr.pat.reveal())
        if cfg.atr.pat is not None
        else None,
    )


def _deliver(mail_intake: intake.Intake) -> ponymail.Deliver:
    async def deliver(archived: ponymail.ArchivedMessage) -> None:
        await mail_intake.take(archived.raw, "ponymail")

    return deliver


def settings(cfg: config.Config) -> daemon.DaemonSettings:
    """What the running daemon reads of the configuration."""
    return daemon.DaemonSettings(
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


def _desk_settings(cfg: config.Config, aliases: roster.Roster) -> desk.DeskSettings:
    return desk.DeskSettings(
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


def _poll_intervals(cfg: config.Config) -> dict[str, tuple[str, datetime.timedelta]]:
    """Each source's lease, and how often it is polled (an IMAP mailbox: its sweep; a file: its poll_interval)."""
    intervals: dict[str, tuple[str, datetime.timedelta]] = {}
    for source in cfg.sources:
        name = _source_name(source)
        if isinstance(source, config.PonymailSection):
            intervals[name] = (leases.archive(name), source.poll_interval)
        elif isinstance(source, config.ImapSection):
            intervals[name] = (leases.mailbox(name), source.sweep_interval)
        else:
            intervals[name] = (leases.archive(name), source.poll_interval)
    return intervals


def _source_jobs(cfg: config.Config) -> dict[str, datetime.timedelta]:
    """The source jobs to schedule, each at the shortest interval of its sources."""
    jobs: dict[str, datetime.timedelta] = {}
    archives = [s.poll_interval for s in cfg.sources if isinstance(s, config.PonymailSection)]
    if archives:
        jobs["archives"] = min(archives)
    mailboxes = [s.sweep_interval for s in cfg.sources if isinstance(s, config.ImapSection)]
    if mailboxes:
        jobs["mailboxes"] = min(mailboxes)
    local = [s.poll_interval for s in cfg.sources if isinstance(s, config.MboxSection | config.MaildirSection)]
    if local:
        jobs["files"] = min(local)
    return jobs


def claim_ttl(cfg: config.Config) -> datetime.timedelta:
    """How long an outbox claim lasts: long enough for a send to finish (its end-of-DATA wait included,
    or a slow relay's answer would let another instance send the mail again), short enough that mails
    a killed instance had claimed go out soon after another takes over."""
    send = 2 * cfg.smtp.timeout + cfg.smtp.data_timeout + datetime.timedelta(seconds=30)
    return max(2 * cfg.leases.ttl, send)


def _source_name(source: config.Source) -> str:
    return source.name or source.kind


def imap_settings(section: config.ImapSection, max_fetch_bytes: int | None = None) -> imap.ImapSettings:
    """The IMAP source's settings from a loaded `[[sources]]` entry of kind "imap" (checked, its secret read).

    The source checks nothing itself: `config.load` did, naming each problem's TOML path.
    """
    if section.password is None:
        # Only a Config built in code gets here: load() reports a missing password with its TOML path.
        raise config.ConfigError([f"{section.name}: no IMAP password (set password_file or password_env)"])
    return imap.ImapSettings(
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


def _archive(source: config.PonymailSection, db: store.Store, clock: wallclock.Clock) -> Archive:
    settings = ponymail.ArchiveSettings(
        base_url=source.base_url,
        total_timeout_s=source.timeout.total_seconds(),
        concurrency=source.concurrency,
    )
    archive_client = ponymail.ArchiveClient(settings)
    polled = ponymail.PonyMailSource(
        archive_client,
        source.lists,
        cursors=db,
        name=_source_name(source),
        lookback_s=int(source.lookback.total_seconds()),
        reread_every=source.reread_every,
        clock=lambda: clock().timestamp(),
    )
    return polled, archive_client


def dry_run_dir(cfg: config.Config) -> pathlib.Path:
    """Where a dry run (or a configuration without a relay) writes its mails."""
    return cfg.reminders.dry_run_dir or cfg.watcher.state_dir / "dry-run"


def _mailer(cfg: config.Config) -> mailer.Mailer:
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


def _policy(cfg: config.Config, people: roster.Roster) -> outbox.OutboxPolicy:
    cap = cfg.reminders.daily_cap_per_recipient
    return outbox.OutboxPolicy(daily_cap=cap or None, opt_out=cfg.reminders.opt_out_uids(people))
