"""`vote-watcher check-config --config PATH [--probe]`: validate a configuration, print what would run.

With `--probe` it also tries the live ATR (`watcher.atr.probe`): the PAT (or the JWT the state
database holds), the running votes, and the drift of ATR's `/api/openapi.json` from the schema the
client was written against. It exits 1 when something the daemon needs is missing or refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Final

import sqlalchemy.engine

import watcher.atr.client as client
import watcher.atr.probe as probe
import watcher.atr.tokens as tokens
import watcher.config as config
import watcher.core.durations as durations
import watcher.store as store

EXIT_OK: Final = 0
EXIT_PROBE_FAILED: Final = 1
EXIT_INVALID: Final = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this command."""
    parser.add_argument("--config", required=True, metavar="PATH", help="path to the TOML configuration")
    parser.add_argument(
        "--allow-readable-secrets", action="store_true", help="accept *_file secrets others can read, with a warning"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also ask the live servers: ATR (the PAT, the running votes, its OpenAPI schema against ours) "
        "and the archive lists",
    )


def run(args: argparse.Namespace) -> int:
    """Print every problem with its TOML path and return 2, or print a summary and return 0."""
    warnings: list[str] = []
    try:
        loaded = config.load(args.config, allow_readable_secrets=args.allow_readable_secrets, warnings=warnings)
    except config.ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        count = len(exc.lines)
        print(f"{args.config}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_INVALID
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"{args.config}: OK")
    for line in summary(loaded):
        print(line)
    if not getattr(args, "probe", False):
        return EXIT_OK
    archives_ok = probe_archives(loaded)
    report = asyncio.run(probe_atr(loaded))
    for line in report.lines:
        print(line)
    if not archives_ok:
        return EXIT_INVALID
    return EXIT_OK if report.ok else EXIT_PROBE_FAILED


async def probe_atr(cfg: config.Config) -> probe.Report:
    """The probe with this configuration's ATR account; the stored JWT is shared when the database is current."""
    db = None
    shared: tokens.TokenStore = tokens.MemoryTokens()
    try:
        db = await store.open(cfg.watcher.database_url)
        await db.check_current()
        if cfg.atr.pat is not None:
            shared = tokens.StoreTokens(db, cfg.atr.base_url, cfg.atr.uid, cfg.atr.pat.reveal())
    except Exception as exc:
        # No state database yet (or not reachable): the probe still works, with a JWT of its own.
        print(f"state database: {type(exc).__name__}: not used by the probe", file=sys.stderr)
    try:
        atr = client.AtrClient(
            cfg.atr.base_url,
            cfg.atr.uid,
            cfg.atr.pat,
            budget_per_hour=cfg.atr.request_budget,
            ca_file=cfg.atr.ca_file,
            token_store=shared,
            max_retries=1,
        )
        async with atr:
            return await probe.probe(atr)
    finally:
        if db is not None:
            await db.close()


def probe_archives(cfg: config.Config) -> bool:
    """Ask each lists.apache.org source about its lists; print one line each; False when one is unusable."""
    import watcher.sources.ponymail as ponymail

    async def probe_source(source: config.PonymailSection) -> list[ponymail.ListProbe]:
        settings = ponymail.ArchiveSettings(base_url=source.base_url, total_timeout_s=source.timeout.total_seconds())
        async with ponymail.ArchiveClient(settings) as archive_client:
            return await ponymail.probe_lists(archive_client, source.lists)

    good = True
    for source in cfg.sources:
        if not isinstance(source, config.PonymailSection):
            continue
        for found in asyncio.run(probe_source(source)):
            print(f"probe:     {source.name}: {found.list_address}: {'OK, ' if found.ok else ''}{found.text}")
            good = good and found.ok
    return good


def summary(cfg: config.Config) -> list[str]:
    """A few lines saying what the daemon would do with this configuration (no secrets)."""
    w, atr, rem, res = cfg.watcher, cfg.atr, cfg.reminders, cfg.resolve
    lines = [
        f"instance:  {w.instance_name}, dry run {_on(w.dry_run)}, logs {w.log_format} at {w.log_level}",
        f"database:  {safe_database_url(w.database_url)}",
        f"ATR:       {atr.base_url} as {atr.uid}, polled every {durations.render(atr.poll_interval)}, "
        f"at most {atr.request_budget} requests an hour",
        f"sources:   {len(cfg.sources)}",
    ]
    lines += [f"  {_source(source)}" for source in cfg.sources]
    reminders = "off"
    if rem.enabled:
        reminders = (
            f"on, {durations.render(rem.delay)} after the emailed vote, from {rem.from_}, "
            f"at most {rem.daily_cap_per_recipient} a day per person, {len(rem.opt_out)} opted out"
        )
    lines.append(f"reminders: {reminders}")
    if rem.enabled and cfg.smtp.host:
        lines.append(f"smtp:      {cfg.smtp.host}:{cfg.smtp.port} ({cfg.smtp.tls})")
    resolve = "off"
    if res.enabled:
        failing = "resolved as failed" if res.failed else "left to the release manager"
        resolve = f"on, {durations.render(res.grace)} after the vote ends; failing votes {failing}"
    lines.append(f"resolve:   {resolve}")
    lines.append(f"metrics:   {cfg.metrics.listen or 'off'}")
    lines.append(
        f"leases:    {durations.render(cfg.leases.ttl)}, renewed every {durations.render(cfg.leases.heartbeat)}"
    )
    return lines


def safe_database_url(url: str) -> str:
    """The database URL with any password masked."""
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _source(source: config.Source) -> str:
    if isinstance(source, config.ImapSection):
        tls = "TLS" if source.tls == "implicit" else "plain text"
        return (
            f"imap {source.name}: {source.host}:{source.port} ({tls}), folders {', '.join(source.folders)}, "
            f"swept every {durations.render(source.sweep_interval)}"
        )
    if isinstance(source, config.PonymailSection):
        import watcher.sources.ponymail as ponymail

        private = [address for address in source.lists if ponymail.is_private_list(address)]
        note = f"; {', '.join(private)}: {ponymail.PRIVATE_HINT}" if private else ""
        return (
            f"ponymail {source.name}: {source.base_url}, polled every {durations.render(source.poll_interval)}, "
            f"lists {', '.join(source.lists)}, re-read every {source.reread_every} polls, "
            f"lookback {durations.render(source.lookback)}{note}"
        )
    return f"{source.kind} {source.name}: {source.path}"
