"""What the operator's commands (`status`, `explain`, `outbox`) share: the config, the store, the output.

They open the database without the SQLite instance lock, so they are safe beside a running daemon
(SQLite's WAL lets them read while it writes; PostgreSQL serves any number of readers).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

import sqlalchemy.exc

import watcher.config as config
import watcher.store as store
import watcher.store.engine as engine

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2
# A span of time is shown in seconds below 2 minutes, minutes below 2 hours, hours below 2 days.
_MINUTES_FROM: Final = 120
_HOURS_FROM: Final = 7200
_DAYS_FROM: Final = 172800
Work = Callable[[store.Store, config.Config], Awaitable[int]]


class NotKnownError(Exception):
    """What the operator asked about is not in the database; the message says so."""


def add_common(parser: argparse.ArgumentParser) -> None:
    """--config and --format, as every one of these commands takes them."""
    parser.add_argument("--config", required=True, metavar="PATH", help="path to the TOML configuration")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or one JSON object")


def run(args: argparse.Namespace, work: Work) -> int:
    """Load the config, open the store (current schema, no instance lock), run `work`; errors become exit codes."""
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_INVALID
    try:
        return asyncio.run(_with_store(cfg, work))
    except NotKnownError as exc:
        print(f"vote-watcher {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (engine.StoreError, sqlalchemy.exc.SQLAlchemyError) as exc:
        print(f"vote-watcher {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _with_store(cfg: config.Config, work: Work) -> int:
    db = await store.open(cfg.watcher.database_url, lock=False)
    try:
        await db.check_current()
        return await work(db, cfg)
    finally:
        await db.close()


def emit_json(value: Any) -> None:
    """One JSON object on stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=_default))


def iso(moment: datetime.datetime | None) -> str | None:
    """`2026-06-01T09:00:00Z`, or None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(moment: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """`2026-06-01 09:00 UTC`, with how long ago when `now` is given."""
    if moment is None:
        return "never"
    text = moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if now is None:
        return text
    seconds = int((now - moment).total_seconds())
    return f"{text} ({_ago(seconds)})"


def _ago(seconds: int) -> str:
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    if seconds < _MINUTES_FROM:
        return f"{seconds} s"
    if seconds < _HOURS_FROM:
        return f"{seconds // 60} min"
    if seconds < _DAYS_FROM:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _default(value: object) -> object:
    if isinstance(value, datetime.datetime):
        return iso(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
