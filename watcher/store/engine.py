"""Opening the database: async drivers, SQLite settings, and the one-instance lock that SQLite needs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
from collections.abc import AsyncIterator
from typing import Any, Final

import sqlalchemy as sa
import sqlalchemy.engine
import sqlalchemy.event
import sqlalchemy.ext.asyncio as sa_async

_DRIVERS: Final = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
# WAL lets readers run beside the writer; NORMAL is durable across process crashes (only power loss can cost
# the last commits); a busy timeout rides out a checkpoint or an operator's sqlite3 shell.
_SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class StoreLockedError(StoreError):
    """Another process uses the same SQLite database."""


class StoreUnavailableError(StoreError):
    """A read or write failed (disk full, database stopped, connection lost): an outage, not bad input.

    Callers keep what they were storing and try again later; nothing is acknowledged on it.
    """


# What a database outage looks like from here: the driver's errors (wrapped by SQLAlchemy), a socket
# that went away, a timeout.
OUTAGE_ERRORS: Final = (sa.exc.SQLAlchemyError, OSError, TimeoutError)


@contextlib.asynccontextmanager
async def translated(operation: str) -> AsyncIterator[None]:
    """Turn any database failure inside the block into `StoreUnavailableError` naming the operation."""
    try:
        yield
    except StoreError:
        raise
    except OUTAGE_ERRORS as exc:
        raise StoreUnavailableError(f"{operation}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """A one-line reason for a database error: the driver's own message, without SQL or parameters."""
    reason = getattr(exc, "orig", None) or exc
    text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return f"{type(reason).__name__}: {text}"[:300]


def async_url(url: str) -> sqlalchemy.engine.URL:
    """The URL with its async driver (sqlite → aiosqlite, postgresql → asyncpg); other databases are refused."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(f"not a database URL: {safe(url)}") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StoreError(f"database {parsed.drivername!r} is not supported: use sqlite:// or postgresql://")
    return parsed.set(drivername=driver)


def safe(url: str | sqlalchemy.engine.URL) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sa.exc.ArgumentError:
        return "<unreadable URL>"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: sqlalchemy.engine.URL) -> pathlib.Path | None:
    """The database file of a SQLite URL; None for PostgreSQL and in-memory databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return pathlib.Path(database)


def create(url: sqlalchemy.engine.URL) -> sa_async.AsyncEngine:
    """An async engine: one pooled connection for SQLite (one writer anyway), a pre-pinged pool for PostgreSQL."""
    if url.get_backend_name() != "sqlite":
        # pre_ping replaces connections that died with a server restart, so the daemon recovers on its own.
        return sa_async.create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
    options: dict[str, Any] = {}
    if sqlite_path(url) is not None:
        options = {"pool_size": 1, "max_overflow": 0}
    engine = sa_async.create_async_engine(url, **options)
    sqlalchemy.event.listen(engine.sync_engine, "connect", _sqlite_settings)
    return engine


def _sqlite_settings(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


class FileLock:
    """An exclusive OS lock on `<database>.lock`, held until `release()` or the end of the process."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, database: pathlib.Path) -> None:
        """Take the lock, or raise `StoreLockedError` naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StoreLockedError(
                f"another vote-watcher{holder} is using {database} (lock {self.path}); SQLite serves one instance: "
                "stop the other one, or use PostgreSQL (watcher.database_url) to run several"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the descriptor releases it)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode().strip()
        if text.isdigit():
            return f" (process {text})"
    return ""


def lock_for(database: pathlib.Path) -> FileLock:
    """Lock the SQLite database file for this process, creating its folder (owner-only) when missing."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = FileLock(database.with_name(database.name + ".lock"))
    lock.acquire(database)
    return lock
