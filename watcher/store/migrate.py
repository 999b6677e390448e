"""Schema migrations (Alembic, shipped in `watcher/migrations/`), run from code: no alembic.ini needed."""

from __future__ import annotations

import pathlib
from typing import Final

import alembic.command
import alembic.config
import alembic.runtime.migration
import alembic.script
import sqlalchemy as sa
import sqlalchemy.ext.asyncio as sa_async

import watcher.store.engine as engine

MIGRATIONS: Final = pathlib.Path(__file__).resolve().parent.parent / "migrations"


class SchemaNotCurrentError(engine.StoreError):
    """The database's schema is not the one this version of vote-watcher needs."""


def alembic_config(url: str = "") -> alembic.config.Config:
    """An Alembic configuration pointing at the packaged migrations (and at `url` when Alembic runs by hand)."""
    config = alembic.config.Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        # ConfigParser treats % as interpolation; URLs escape characters with it.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head() -> str:
    """The newest revision this version knows."""
    revision = alembic.script.ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise engine.StoreError(f"no migrations found in {MIGRATIONS}")
    return revision


def known_revisions() -> list[str]:
    """Every revision, oldest first."""
    scripts = alembic.script.ScriptDirectory.from_config(alembic_config())
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


async def upgrade(db: sa_async.AsyncEngine, revision: str = "head") -> None:
    """Apply the migrations up to `revision` in one transaction (PostgreSQL DDL is transactional)."""
    async with db.begin() as connection:
        await connection.run_sync(_upgrade, revision)


def _upgrade(connection: sa.Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    alembic.command.upgrade(config, revision)


async def current(db: sa_async.AsyncEngine) -> str | None:
    """The database's revision; None for an empty database."""
    async with db.connect() as connection:
        return await connection.run_sync(_current)


def _current(connection: sa.Connection) -> str | None:
    return alembic.runtime.migration.MigrationContext.configure(connection).get_current_revision()


async def check_current(db: sa_async.AsyncEngine) -> None:
    """Raise `SchemaNotCurrentError`, saying what to run, unless the database is at this version's head."""
    found = await current(db)
    wanted = head()
    if found == wanted:
        return
    where = engine.safe(db.url)
    if found is None:
        raise SchemaNotCurrentError(
            f"the database {where} has no vote-watcher schema yet: run `vote-watcher db upgrade`"
        )
    if found not in known_revisions():
        raise SchemaNotCurrentError(
            f"the database {where} is at revision {found}, which this vote-watcher does not know "
            f"(it knows up to {wanted}): was it upgraded by a newer version?"
        )
    raise SchemaNotCurrentError(
        f"the database {where} is at revision {found}, this vote-watcher needs {wanted}: run `vote-watcher db upgrade`"
    )
