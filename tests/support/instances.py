"""Several `vote-watcher run` processes on one database, for the multi-instance tests and bench/takeover.py.

`write_config` writes one instance's TOML (PostgreSQL, short leases and intervals, the sandbox ATR,
the sandbox archive, optionally a Dovecot mailbox, an SMTP sink); `Instance` runs it as a real
process with its JSON log in a file, and can stop it with SIGTERM or kill it with SIGKILL.
`lease_owner` reads who holds a lease now.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Final

import watcher.store as store

STOP_TIMEOUT_S: Final = 20.0
WATCHER_UID: Final = "watcher"


@dataclasses.dataclass(frozen=True)
class Mailbox:
    """An IMAP mailbox on loopback (plain text) and the folder the lists are delivered to."""

    host: str
    port: int
    user: str
    password: str
    folder: str


def write_config(
    folder: pathlib.Path,
    *,
    name: str,
    database_url: str,
    atr_url: str,
    pat: str,
    archive_url: str,
    lists: Sequence[str],
    smtp_port: int,
    mailbox: Mailbox | None = None,
    ttl: str = "3s",
    heartbeat: str = "1s",
    reminder_delay: str = "1s",
    resolve_grace: str = "1s",
    log_level: str = "info",
) -> pathlib.Path:
    """The TOML of one instance named `name`; secrets go to files only their owner can read."""
    folder.mkdir(parents=True, exist_ok=True)
    pat_file = _secret(folder / "atr-pat", pat)
    text = f"""
[watcher]
state_dir = {json.dumps(str(folder / "state"))}
database_url = {json.dumps(database_url)}
instance_name = {json.dumps(name)}
log_format = "json"
log_level = "{log_level}"
check_interval = "1s"

[atr]
base_url = {json.dumps(atr_url)}
host = "release-test.apache.org"
uid = "{WATCHER_UID}"
pat_file = {json.dumps(str(pat_file))}
poll_interval = "1s"
request_budget = 100000

[[sources]]
kind = "ponymail"
name = "archive"
base_url = {json.dumps(archive_url)}
lists = {json.dumps(list(lists))}
poll_interval = "1s"
"""
    if mailbox is not None:
        password_file = _secret(folder / "imap-password", mailbox.password)
        text += f"""
[[sources]]
kind = "imap"
name = "lists-mailbox"
host = {json.dumps(mailbox.host)}
port = {mailbox.port}
tls = "none"
user = {json.dumps(mailbox.user)}
password_file = {json.dumps(str(password_file))}
folders = [{json.dumps(mailbox.folder)}]
sweep_interval = "5s"
"""
    text += f"""
[reminders]
delay = "{reminder_delay}"
from = "Vote Watcher <vote-watcher@apache.org>"
daily_cap_per_recipient = 10

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
timeout = "5s"
# The sink answers at once; a short end-of-DATA wait keeps claims (and takeover of a killed one's mail) short.
data_timeout = "5s"

[resolve]
grace = "{resolve_grace}"

[leases]
ttl = "{ttl}"
heartbeat = "{heartbeat}"
"""
    path = folder / "config.toml"
    path.write_text(text)
    return path


def _secret(path: pathlib.Path, value: str) -> pathlib.Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


class Instance:
    """One `vote-watcher run --config PATH` process; its log (JSON lines) goes to `log_path`."""

    def __init__(self, name: str, config: pathlib.Path) -> None:
        self.name = name
        self.config = config
        self.log_path = config.with_name(f"{name}.log")
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"Instance({self.name!r}, pid={pid}, alive={self.alive})"

    def start(self) -> None:
        """Start the process (from this Python, so that the same environment runs it)."""
        command = [sys.executable, "-m", "watcher", "run", "--config", str(self.config)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        """The process id."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease released."""
        os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT_S)

    async def stop(self) -> int:
        """SIGTERM, then wait for the exit status (killed if it does not exit in time)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(None, self.process.wait), STOP_TIMEOUT_S)
        except TimeoutError:
            self.process.kill()
            self.process.wait()
            raise

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are left out)."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def log_tail(self, lines: int = 30) -> str:
        """The end of the log, for assertion messages (long lines, such as tracebacks, cut short)."""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(line if len(line) <= 400 else line[:400] + " ..." for line in tail)


async def lease_owner(db: store.Store, name: str) -> str | None:
    """Who holds the lease now (None when nobody does, or the holder's time is up)."""
    lease = await db.lease(name)
    if lease is None or lease.expires_at <= datetime.datetime.now(datetime.UTC):
        return None
    return lease.owner


def instance_of(owner: str) -> str:
    """The instance name in a lease owner (`{instance}:{pid}:{random}`)."""
    return owner.split(":", 1)[0]
