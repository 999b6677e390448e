"""`vote-watcher run --config PATH [--once] [--dry-run]`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Final

import structlog

import watcher
import watcher.config as config
import watcher.daemon as daemon
import watcher.services.log as log
import watcher.store as store
import watcher.store.engine as engine
import watcher.wiring as wiring

EXIT_CONFIG: Final = 2
EXIT_FAILURE: Final = 1
# The database needs the operator (`db upgrade`, or the other instance stopped): restarting cannot help.
EXIT_NEEDS_OPERATOR: Final = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `run`."""
    parser.add_argument("--config", required=True, metavar="PATH", help="path to the TOML configuration")
    parser.add_argument("--once", action="store_true", help="run one full cycle, then exit")
    parser.add_argument("--dry-run", action="store_true", help="send no mail and resolve nothing; write .eml files")
    parser.add_argument(
        "--allow-readable-secrets",
        action="store_true",
        help="accept *_file secrets that others can read, with a warning (for tests and demos, never in production)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the configuration and run the daemon.

    Exit 2 on a configuration error, 3 when the database needs the operator (schema not current, SQLite
    file in use by another instance), 1 on another fatal error (a database that cannot be reached; with
    `--once`, a cycle that reached neither ATR nor any source, or could not hand mail to the relay).
    """
    warnings: list[str] = []
    try:
        cfg = config.load(args.config, allow_readable_secrets=args.allow_readable_secrets, warnings=warnings)
    except config.ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    if args.dry_run:
        cfg = cfg.model_copy(update={"watcher": cfg.watcher.model_copy(update={"dry_run": True})})
    log.configure(cfg.watcher.log_format, cfg.watcher.log_level)
    register_secrets(cfg)
    logger = structlog.get_logger("watcher")
    logger.info(
        "daemon.start",
        version=watcher.__version__,
        config=str(args.config),
        dry_run=cfg.watcher.dry_run,
        once=args.once,
        database=engine.safe(cfg.watcher.database_url),
        sources=[f"{source.kind}:{source.name or source.kind}" for source in cfg.sources],
        instance=cfg.watcher.instance_name,
    )
    try:
        return asyncio.run(wiring.run(cfg, once=args.once))
    except daemon.CycleFailedError as exc:
        print(f"vote-watcher run --once: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (store.SchemaNotCurrentError, store.StoreLockedError) as exc:
        logger.error("daemon.store_needs_operator", error=str(exc))
        print(f"vote-watcher: {exc}", file=sys.stderr)
        return EXIT_NEEDS_OPERATOR
    except store.StoreError as exc:
        logger.error("daemon.store_unusable", error=str(exc))
        print(f"vote-watcher: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def register_secrets(cfg: config.Config) -> None:
    """Every secret the configuration holds is masked wherever it might reach a log line."""
    found = [cfg.atr.pat, cfg.smtp.password]
    for source in cfg.sources:
        found += [getattr(source, "password", None), getattr(source, "token", None)]
    for secret in found:
        if secret is not None:
            log.register_secret(secret.reveal())
