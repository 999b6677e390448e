"""Alembic migrations on both backends: from empty, from the previous revision with data in it, and the command."""

from __future__ import annotations

import datetime
import pathlib
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import alembic.autogenerate
import alembic.command
import alembic.runtime.migration
import pytest
import sqlalchemy as sa

import watcher.cli as cli
import watcher.store as store
import watcher.store.engine as engine
import watcher.store.migrate as migrate
import watcher.store.schema as schema

T0 = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """A database with nothing in it, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'vote-watcher.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


@pytest.fixture
async def empty_store(empty_url: str) -> AsyncIterator[store.Store]:
    """An open store on an empty database."""
    db = await store.open(empty_url)
    try:
        yield db
    finally:
        await db.close()


def _differences(connection: sa.Connection) -> list[Any]:
    context = alembic.runtime.migration.MigrationContext.configure(connection, opts={"compare_type": True})
    return list(alembic.autogenerate.compare_metadata(context, schema.metadata))


def _downgrade(connection: sa.Connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    alembic.command.downgrade(config, revision)


async def test_upgrade_from_empty_builds_exactly_the_tables(empty_store: store.Store) -> None:
    assert await empty_store.revision() is None
    with pytest.raises(store.SchemaNotCurrentError, match=r"no vote-watcher schema yet: run `vote-watcher db upgrade`"):
        await empty_store.check_current()
    await empty_store.upgrade()
    assert await empty_store.revision() == migrate.head() == "0007"
    await empty_store.check_current()
    async with empty_store.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
    await empty_store.upgrade()
    assert await empty_store.revision() == "0007"


async def _fill_revision_0001(db: store.Store) -> None:
    """Rows as the first revision wrote them (its outbox had no kind, and was unique per voter)."""
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO messages (key, message_id, subject, raw, source, stored_at) "
                "VALUES ('root@x', 'root@x', '[VOTE] Release Foo 1.0', :raw, 'imap', :now)"
            ),
            {"raw": b"Message-ID: <root@x>\n\n[VOTE]\n", "now": _db_time(db, T0)},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO votes (id, release_key, project, version, vote_seq, mode, status, extra, updated_at) "
                "VALUES (1, 'foo-1.0', 'foo', '1.0', 1, 'trusted', 'open', '{\"min_hours\": 96}', :now)"
            ),
            {"now": _db_time(db, T0)},
        )
        await conn.execute(
            sa.text("INSERT INTO vote_messages VALUES (1, 'root@x', 1, :now)"), {"now": _db_time(db, T0)}
        )
        await conn.execute(
            sa.text("INSERT INTO cursors VALUES ('imap:a@x', 'INBOX', 42, 7, :now)"), {"now": _db_time(db, T0)}
        )
        await conn.execute(
            sa.text(
                "INSERT INTO outbox (release_key, vote_seq, voter, recipient, message_id, raw, state, "
                "next_attempt_at, created_at) VALUES ('foo-1.0', 1, 'alice', 'alice', '<r1@x>', :raw, 'pending', "
                ":now, :now)"
            ),
            {"raw": b"old reminder", "now": _db_time(db, T0)},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO resolutions (release_key, vote_seq, state, created_at, updated_at) "
                "VALUES ('foo-1.0', 1, 'held', :now, :now)"
            ),
            {"now": _db_time(db, T0)},
        )


def _db_time(db: store.Store, moment: datetime.datetime) -> datetime.datetime:
    # Raw SQL bypasses the column type: SQLite keeps naive UTC text, PostgreSQL an aware timestamp.
    return moment.replace(tzinfo=None) if db.backend == "sqlite" else moment


async def test_upgrade_from_the_previous_revision_keeps_the_data(empty_store: store.Store) -> None:
    db = empty_store
    await db.upgrade("0001")
    with pytest.raises(store.SchemaNotCurrentError, match=r"at revision 0001, this vote-watcher needs 0007: run"):
        await db.check_current()
    await _fill_revision_0001(db)
    await db.upgrade()
    await db.check_current()
    assert await db.get_raw("root@x") == b"Message-ID: <root@x>\n\n[VOTE]\n"
    tracked = await db.get_vote("foo-1.0", 1)
    assert tracked is not None
    assert tracked.min_hours == 96
    assert tracked.updated_at == T0
    assert await db.thread_keys(tracked.id) == ["root@x"]
    cursor = await db.get_cursor("imap:a@x", "INBOX")
    assert cursor is not None
    assert (cursor.validity, cursor.position) == (42, 7)
    (old,) = await db.mails("foo-1.0", 1)
    assert (old.kind, old.voter, old.message_id, old.state) == ("reminder", "alice", "<r1@x>", "pending")
    # The old reminder still stands for its key; a release-manager notice to the same uid now fits beside it.
    row, created = await db.enqueue_reminder(
        release_key="foo-1.0", vote_seq=1, voter="alice", raw=b"new", message_id="<r2@x>", now=T0
    )
    assert not created
    assert (row.id, row.raw) == (old.id, b"old reminder")
    notice, created = await db.enqueue(
        kind="hold", release_key="foo-1.0", vote_seq=1, recipient="alice", raw=b"n", message_id="<n@x>", now=T0
    )
    assert created
    assert [r.id for r in await db.claim_due(T0, 10, "me")] == [old.id, notice.id]
    resolution, go = await db.begin_resolution("foo-1.0", 1, "passed", now=T0)
    assert go
    assert resolution.state == "pending"
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_downgrade_and_upgrade_again(empty_store: store.Store) -> None:
    db = empty_store
    await db.upgrade()
    await db.enqueue_reminder(release_key="foo-1.0", vote_seq=1, voter="alice", raw=b"r", message_id="<r@x>", now=T0)
    await db.enqueue(
        kind="hold", release_key="foo-1.0", vote_seq=1, recipient="rm", raw=b"n", message_id="<n@x>", now=T0
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(_downgrade, "0001")
    assert await db.revision() == "0001"
    await db.upgrade()
    assert [(mail.kind, mail.recipient) for mail in await db.mails("foo-1.0", 1)] == [("reminder", "alice")]


async def test_a_newer_database_is_named_as_such(empty_store: store.Store) -> None:
    await empty_store.upgrade()
    async with empty_store.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(store.SchemaNotCurrentError, match="revision 0099, which this vote-watcher does not know"):
        await empty_store.check_current()


def _config(folder: pathlib.Path, url: str) -> pathlib.Path:
    path = folder / "config.toml"
    path.write_text(
        textwrap.dedent(f"""
            [watcher]
            database_url = "{url}"
            dry_run = true

            [atr]
            uid = "alice"
            pat_env = "TEST_ATR_PAT"

            [[sources]]
            kind = "ponymail"
            lists = ["dev@foo.apache.org"]

            [reminders]
            from = "vote-watcher@apache.org"
            """)
    )
    path.chmod(0o600)
    return path


def test_db_upgrade_command(
    empty_url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_ATR_PAT", "pat")
    path = _config(tmp_path, empty_url)
    assert cli.main(["db", "current", "--config", str(path)]) == 0
    assert "revision none (empty) (this version needs 0007)" in capsys.readouterr().out
    assert cli.main(["db", "upgrade", "--config", str(path)]) == 0
    assert "upgraded from an empty database to revision 0007" in capsys.readouterr().out
    assert cli.main(["db", "upgrade", "--config", str(path)]) == 0
    assert "already at revision 0007" in capsys.readouterr().out
    assert cli.main(["db", "current", "--config", str(path)]) == 0
    assert "revision 0007 (up to date)" in capsys.readouterr().out


def test_db_upgrade_refuses_a_locked_sqlite_database(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_ATR_PAT", "pat")
    database = tmp_path / "vote-watcher.db"
    running = engine.lock_for(database)  # what a running daemon holds
    try:
        path = _config(tmp_path, f"sqlite:///{database}")
        assert cli.main(["db", "upgrade", "--config", str(path)]) == 1
        assert "another vote-watcher" in capsys.readouterr().err
    finally:
        running.release()
    assert cli.main(["db", "upgrade", "--config", str(path)]) == 0


def test_db_command_reports_a_bad_config(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[watcher]\ndatabase_url = "mysql://x/y"\n')
    assert cli.main(["db", "upgrade", "--config", str(path)]) == 2
    assert "watcher.database_url: database 'mysql' is not supported" in capsys.readouterr().err
