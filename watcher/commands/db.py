"""`vote-watcher db upgrade|current --config PATH`: apply the schema migrations, or show where the database is."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Final

import sqlalchemy.exc

import watcher.config as config
import watcher.store as store
import watcher.store.engine as engine
import watcher.store.migrate as migrate

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this command."""
    parser.add_argument(
        "action",
        choices=["upgrade", "current"],
        help="upgrade: apply the migrations this version has; current: print the database's revision",
    )
    parser.add_argument("--config", required=True, metavar="PATH", help="path to the TOML configuration")


def run(args: argparse.Namespace) -> int:
    """Load the configuration, open its database and act; errors are printed, never raised."""
    try:
        loaded = config.load(args.config)
    except config.ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_INVALID
    url = loaded.watcher.database_url
    try:
        lines = asyncio.run(_act(args.action, url))
    except (engine.StoreError, sqlalchemy.exc.SQLAlchemyError) as exc:
        print(f"vote-watcher db {args.action}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for line in lines:
        print(line)
    return EXIT_OK


async def _act(action: str, url: str) -> list[str]:
    db = await store.open(url)
    try:
        where = engine.safe(url)
        before = await db.revision()
        if action == "current":
            state = "up to date" if before == migrate.head() else f"this version needs {migrate.head()}"
            return [f"{where}: revision {before or 'none (empty)'} ({state})"]
        await db.upgrade()
        after = await db.revision()
    finally:
        await db.close()
    if before == after:
        return [f"{where}: already at revision {after}"]
    return [f"{where}: upgraded from {before or 'an empty database'} to revision {after}"]
