"""Alembic's entry point: runs the migrations on the connection `watcher.store.migrate` hands over.

Run from code, a live connection arrives in `config.attributes["connection"]`. Without one (a
developer running Alembic by hand), an async engine is made from the `sqlalchemy.url` option.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
import sqlalchemy.ext.asyncio as sa_async
from alembic import context

import watcher.store.schema as schema


def _migrate(connection: sa.Connection) -> None:
    # Batch mode lets SQLite, which cannot ALTER constraints, rebuild a table instead.
    context.configure(
        connection=connection,
        target_metadata=schema.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_url(url: str) -> None:
    engine = sa_async.create_async_engine(url, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
            await connection.commit()
    finally:
        await engine.dispose()


def _run() -> None:
    if context.is_offline_mode():
        context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=schema.metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if isinstance(connection, sa.Connection):
        _migrate(connection)
        return
    asyncio.run(_migrate_url(context.config.get_main_option("sqlalchemy.url") or ""))


_run()
