"""A PostgreSQL server for tests and benchmarks: the one on 127.0.0.1:5432 when it answers, else a throwaway cluster.

The throwaway cluster follows reference/test-servers.md §2.2: `initdb` and `pg_ctl` from the Debian
packages, run as the `postgres` user when we are root (initdb refuses root), trust authentication,
loopback only, and fsync off (test data only). It can be stopped and started again, for tests of
a database outage.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from typing import Final

SHARED_HOST: Final = "127.0.0.1"
SHARED_PORT: Final = 5432
USER: Final = "postgres"
MAINTENANCE_DBS: Final = ("postgres", "test")
_TIMEOUT: Final = 60


class PostgresError(RuntimeError):
    """No PostgreSQL could be found or started; the message says what was tried."""


@dataclasses.dataclass
class PostgresServer:
    """A reachable server; `data_dir` is set for a throwaway cluster this process started (and may stop)."""

    host: str
    port: int
    user: str = USER
    data_dir: pathlib.Path | None = None
    root: pathlib.Path | None = None
    maintenance_db: str = MAINTENANCE_DBS[0]
    created: list[str] = dataclasses.field(default_factory=list)

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        """A SQLAlchemy URL for a database on this server."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "") -> str:
        """Run SQL with psql (in the maintenance database unless told) and return its unaligned output."""
        database = database or self.maintenance_db
        command = [_binary("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql]
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
        if done.returncode != 0:
            raise PostgresError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def create_database(self, prefix: str = "vw_test") -> str:
        """A new, empty database (remembered for `drop_created`); returns its SQLAlchemy URL."""
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.psql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def empty_database(self, url: str) -> None:
        """Remove everything from a database made by `create_database` (much faster than a new database)."""
        name = url.rsplit("/", 1)[1]
        self.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public", database=name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever connections are still open to it."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop_created(self) -> None:
        """Drop every database `create_database` made."""
        for name in list(self.created):
            self.drop_database(name)

    @property
    def throwaway(self) -> bool:
        """True for a cluster this process started."""
        return self.data_dir is not None

    def stop(self) -> None:
        """Stop a throwaway cluster (fast shutdown: open connections are cut)."""
        self._pg_ctl(["-m", "fast", "-w", "stop"])

    def start(self) -> None:
        """Start a stopped throwaway cluster again on the same port."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        log = self.root / "server.log" if self.root else pathlib.Path(os.devnull)
        self._pg_ctl(["-l", str(log), "-w", "-t", "30", "-o", options, "start"])

    def _pg_ctl(self, arguments: Sequence[str]) -> None:
        if self.data_dir is None:
            raise PostgresError("only a throwaway cluster can be stopped and started")
        done = _as_postgres([_binary("pg_ctl"), "-D", str(self.data_dir), *arguments])
        if done.returncode != 0:
            raise PostgresError(f"pg_ctl {arguments[-1]} failed: {done.stderr.strip() or done.stdout.strip()}")


def is_ready(host: str, port: int) -> bool:
    """True when a server accepts connections there (pg_isready, else a TCP connect)."""
    try:
        command = [_binary("pg_isready"), "-q", "-h", host, "-p", str(port), "-t", "3"]
        return subprocess.run(command, capture_output=True, timeout=10, check=False).returncode == 0
    except PostgresError:
        try:
            with socket.create_connection((host, port), timeout=3):
                return True
        except OSError:
            return False


def shared_or_throwaway() -> PostgresServer:
    """The server on 127.0.0.1:5432 (trust auth, user postgres) when it lets us in, else a new throwaway cluster."""
    if not is_ready(SHARED_HOST, SHARED_PORT):
        return start_cluster()
    problems = []
    for database in MAINTENANCE_DBS:
        server = PostgresServer(SHARED_HOST, SHARED_PORT, maintenance_db=database)
        try:
            server.psql("SELECT 1")
        except PostgresError as exc:
            problems.append(str(exc))
            continue
        return server
    try:
        return start_cluster()
    except PostgresError as exc:
        refused = "; ".join(problems)
        raise PostgresError(f"{SHARED_HOST}:{SHARED_PORT} answers but refuses us ({refused}), and {exc}") from None


def start_cluster(port: int | None = None) -> PostgresServer:
    """initdb and start a throwaway cluster on a free loopback port; raise `PostgresError` saying why not."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="vw-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, USER, USER)
    data = root / "data"
    init = [_binary("initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C.UTF-8"]
    done = _as_postgres([*init, "--no-sync"])
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
    server = PostgresServer(SHARED_HOST, port or _free_port(), data_dir=data, root=root)
    try:
        server.start()
    except PostgresError:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresError(f"the throwaway PostgreSQL did not start; its log:\n{log[-2000:]}") from None
    return server


def cleanup(server: PostgresServer) -> None:
    """Drop the databases made for the tests; stop and delete a throwaway cluster."""
    try:
        server.drop_created()
    finally:
        if server.throwaway:
            try:
                server.stop()
            finally:
                if server.root is not None:
                    shutil.rmtree(server.root, ignore_errors=True)


def _binary(name: str) -> str:
    # Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<version>/bin.
    versions = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for folder in versions:
        candidate = folder / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise PostgresError(f"{name} not found (install the Debian package postgresql: make system-deps)")
    return found


def _version(folder: pathlib.Path) -> int:
    name = folder.parent.name
    return int(name) if name.isdigit() else 0


def _as_postgres(command: list[str]) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        command = ["runuser", "-u", USER, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT, check=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((SHARED_HOST, 0))
        port: int = sock.getsockname()[1]
        return port
