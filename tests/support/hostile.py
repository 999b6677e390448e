"""Hostile mail against the daemon as a process under systemd's notify protocol (tests and bench/hostile.py).

`shapes(size)` makes the bodies issue 11 found slow or dangerous; `watchdog_run(...)` starts the stand-ins
(sandbox ATR, SMTP sink), a Dovecot folder and an mbox file, runs `python -m watcher run` with
NOTIFY_SOCKET and WATCHDOG_USEC=2000000, delivers the hostile replies to one vote (through the mbox,
read at start, and through Dovecot while it runs) and an honest +1 to another vote, and reports the
WATCHDOG=1 pings, when the other vote's reminder went out, what was flagged and the peak memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import itertools
import os
import pathlib
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import tests.support.dovecot as dovecot
import tests.support.notify_listener as notify_listener
import watcher.config as config
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.serve as serve
import watcher.store as store

PAT: Final = f"pat-hostile-{uuid.uuid4().hex}"
WATCHDOG_USEC: Final = 2_000_000
HOSTILE: Final = "lantern"
OTHER: Final = "harbor"
PHISHING_LINE: Final = "+1 (binding) -- NOTE: ATR moved, cast your vote at https://atr-login.evil.example/vote"
PHISHING_FROM: Final = '"//atr-login.evil.example" <dolores@apache.org>'
START_TIMEOUT_S: Final = 120.0
MEMBERS: Final = ("amira", "bjorn", "chen", "dolores", "gina")


def shapes(size: int) -> dict[str, str]:
    """Bodies of about `size` bytes in the shapes of issue 11 (and the phishing reply, padded)."""
    return {
        "plus_lines": "+1\n" * (size // 3),
        "tally_words": "+1 votes binding +1's from at least 3 +1 " * (size // 41),
        "binding_words": "(binding) " * (size // 10),
        "result_line": "+1: (a) (b): (c) (d): " * (size // 22) + "\n",
        "phishing": PHISHING_LINE + "\n\n" + "padding padding padding padding padding padding\n" * (size // 48),
    }


def reply(vote_subject: str, vote_message_id: str, list_address: str, sender: str, body: str) -> bytes:
    """A reply on a vote's thread, as the list delivers it."""
    lines = [
        f"From: {sender}",
        f"To: {list_address}",
        f"Subject: Re: {vote_subject}",
        f"Date: {email.utils.formatdate(time.time())}",
        f"Message-ID: <{uuid.uuid4()}@mail.example>",
        f"In-Reply-To: <{vote_message_id}>",
        f"References: <{vote_message_id}>",
        f"List-Id: <{list_address.replace('@', '.')}>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        body,
    ]
    return "\n".join(lines).encode()


def scenario(now: float) -> atr_scenario.Scenario:
    """Two Trusted Votes that run for days: the hostile mail goes to one, an honest vote to the other."""
    committees: dict[str, Any] = {}
    projects: dict[str, Any] = {}
    releases: list[dict[str, Any]] = []
    for key in (HOSTILE, OTHER):
        committees[key] = {
            "name": key.title(),
            "committee_members": list(MEMBERS),
            "committers": [*MEMBERS, "watcher"],
            "release_managers": ["amira", "watcher"],
        }
        recipients = {"to": f"dev@{key}.apache.org"}
        projects[key] = {
            "name": f"Apache {key.title()}",
            "committee_key": key,
            "policy": {"vote_mode": "trusted", "min_hours": 72, "vote_recipients": recipients},
        }
        releases.append(
            {
                "project_key": key,
                "version": "2.0.0",
                "phase": "release_candidate",
                "vote_mode": "trusted",
                "current_vote_seq": 1,
                "vote_started": "-10m",
                "vote_duration": 72,
                "initiator": "amira",
            }
        )
    atr = {"pats": {"watcher": PAT}, "api_per_hour": 100_000, "jwt_minutes": 600}
    data = {"atr": atr | {"committees": committees, "projects": projects, "releases": releases}}
    return atr_scenario.from_mapping(data, now)


@dataclasses.dataclass
class Report:
    """What one run showed."""

    ready_after_s: float
    longest_gap_s: float
    pings: int
    reminder_after_s: float | None
    """From the honest +1's APPEND to its reminder (the delay is 1 s)."""
    phishing_reminder_bytes: int | None
    flagged: dict[str, str]
    """Delivery name -> flag ("" when read as usual)."""
    peak_rss_mb: float
    worker_peak_rss_mb: float
    exit_code: int
    output: str


def _config(folder: pathlib.Path, stand_ins: serve.StandIns, server: dovecot.DovecotServer, imap: str) -> str:
    pat = folder / "atr-pat"
    pat.write_text(PAT + "\n")
    pat.chmod(0o600)
    password = folder / "imap-password"
    password.write_text(server.password + "\n")
    password.chmod(0o600)
    return f"""
[watcher]
state_dir = "{folder / "state"}"
log_format = "json"
log_level = "info"
check_interval = "1s"
read_timeout = "3s"

[atr]
base_url = "{stand_ins.atr.url}"
uid = "watcher"
pat_file = "{pat}"
poll_interval = "2s"
request_budget = 100000

[[sources]]
kind = "imap"
name = "dovecot"
host = "{server.host}"
port = {server.plain_port}
tls = "none"
user = "{server.user}"
password_file = "{password}"
folders = ["{imap}"]

[[sources]]
kind = "mbox"
name = "replay"
path = "{folder / "replay.mbox"}"

[reminders]
delay = "1s"
from = "Vote Watcher <vote-watcher@apache.org>"

[resolve]
enabled = false

[smtp]
host = "127.0.0.1"
port = {stand_ins.smtp_port}
tls = "none"
"""


def _mbox(path: pathlib.Path, raws: Sequence[bytes]) -> None:
    with path.open("wb") as out:
        for raw in raws:
            out.write(b"From hostile@example Thu Jan  1 00:00:00 2026\n")
            body = b"\n".join(
                b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in raw.split(b"\n")
            )
            out.write(body.rstrip(b"\n") + b"\n\n")


def _rss_mb(pid: int) -> float:
    """VmHWM (the peak resident set) of a live process, in MB; 0 when it is gone."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        text = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _flags(database: pathlib.Path, keys: Mapping[str, str]) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as conn:
        rows = dict(conn.execute("SELECT key, flag FROM messages").fetchall())
    return {name: rows[key] for name, key in keys.items() if key in rows}


@dataclasses.dataclass
class _Run:
    """What watching the process gave: the datagrams, when the honest vote went in, memory, the exit status."""

    messages: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    started: float = 0.0
    appended: float = 0.0
    peak_rss_mb: float = 0.0
    worker_peak_rss_mb: float = 0.0
    exit_code: int = -1

    def memory(self, pid: int) -> None:
        self.peak_rss_mb = max(self.peak_rss_mb, _rss_mb(pid))
        for child in _children(pid):
            self.worker_peak_rss_mb = max(self.worker_peak_rss_mb, _rss_mb(child))


async def watchdog_run(
    folder: pathlib.Path,
    server: dovecot.DovecotServer,
    *,
    at_start: Mapping[str, str],
    while_running: Mapping[str, str],
    settle_s: float = 8.0,
) -> Report:
    """Run the daemon as a process and feed it hostile replies (name -> body); see the module docstring.

    `at_start` bodies are in the mbox before the daemon starts; `while_running` ones are APPENDed to the
    Dovecot folder after READY=1, followed by the honest +1 on the other vote.
    """
    folder.mkdir(parents=True, exist_ok=True)
    imap = f"hostile-{uuid.uuid4().hex[:8]}"
    server.create_folder(imap)
    stand_ins = serve.StandIns(scenario(time.time()), announce=False)
    stand_ins.atr.on_receipt = lambda raw, _list: server.append(imap, [raw])
    async with stand_ins:
        await stand_ins.atr.announce_votes()
        votes = {r.project_key: r for r in stand_ins.atr.state.releases.values()}
        hostile, other = votes[HOSTILE], votes[OTHER]
        hostile_list = f"dev@{HOSTILE}.apache.org"
        start_raws = {
            name: reply(hostile.vote_subject, hostile.vote_message_id, hostile_list, _sender(name), body)
            for name, body in at_start.items()
        }
        running_raws = [
            reply(hostile.vote_subject, hostile.vote_message_id, hostile_list, _sender(name), body)
            for name, body in while_running.items()
        ]
        keys = {
            name: _message_id(raw)
            for name, raw in zip([*start_raws, *while_running], [*start_raws.values(), *running_raws], strict=True)
        }
        _mbox(folder / "replay.mbox", list(start_raws.values()))
        config_path = folder / "config.toml"
        config_path.write_text(_config(folder, stand_ins, server, imap))
        url = config.load(config_path).watcher.database_url
        db = await store.open(url)
        try:
            await db.upgrade()
        finally:
            await db.close()
        honest = reply(
            other.vote_subject, other.vote_message_id, f"dev@{OTHER}.apache.org", "Bjorn <bjorn@apache.org>", "+1\n"
        )

        async def deliver(run: _Run, process: asyncio.subprocess.Process) -> None:
            for raw in running_raws:
                await asyncio.to_thread(server.append, imap, [raw])
            run.appended = time.time()
            await asyncio.to_thread(server.append, imap, [honest])
            deadline = time.monotonic() + 60
            while not _to(stand_ins, "bjorn") and time.monotonic() < deadline and process.returncode is None:
                run.memory(process.pid)
                await asyncio.sleep(0.2)
            await asyncio.sleep(settle_s)

        run, output = await _watch(config_path, deliver)
        bjorn, dolores = _to(stand_ins, "bjorn"), _to(stand_ins, "dolores")
        flagged = _flags(pathlib.Path(url.partition(":///")[2]), keys)
    longest, pings = _gaps(run.messages)
    return Report(
        ready_after_s=notify_listener.sent(run.messages, "READY=1")[0] - run.started,
        longest_gap_s=longest,
        pings=pings,
        reminder_after_s=bjorn[0].at - run.appended if bjorn else None,
        phishing_reminder_bytes=len(dolores[0].raw) if dolores else None,
        flagged=flagged,
        peak_rss_mb=run.peak_rss_mb,
        worker_peak_rss_mb=run.worker_peak_rss_mb,
        exit_code=run.exit_code,
        output=output,
    )


Deliver = Callable[[_Run, asyncio.subprocess.Process], Awaitable[None]]


async def _watch(config_path: pathlib.Path, deliver: Deliver) -> tuple[_Run, str]:
    """`python -m watcher run` with NOTIFY_SOCKET and WATCHDOG_USEC; `deliver` runs once it is READY, then SIGTERM."""
    run = _Run()
    output = config_path.with_name("daemon-output.log")
    with notify_listener.notify_socket() as (sock, path):
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "LISTEN_PID")}
        env |= {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        listener = asyncio.ensure_future(notify_listener.receive(sock, run.messages))
        try:
            with output.open("wb") as sink:
                run.started = time.monotonic()
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "watcher",
                    "run",
                    "--config",
                    str(config_path),
                    stdout=sink,
                    stderr=sink,
                    env=env,
                )
            try:
                await _until(lambda: notify_listener.sent(run.messages, "READY=1"), process, START_TIMEOUT_S, output)
                await deliver(run, process)
                run.memory(process.pid)
                process.send_signal(signal.SIGTERM)
                run.exit_code = await asyncio.wait_for(process.wait(), 30)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await asyncio.sleep(0.1)
        finally:
            listener.cancel()
    return run, output.read_text(errors="replace")


def _gaps(messages: list[tuple[float, str]]) -> tuple[float, int]:
    """The longest time without a WATCHDOG=1 from READY=1 to STOPPING=1, and how many pings there were."""
    ready, stopping = notify_listener.sent(messages, "READY=1"), notify_listener.sent(messages, "STOPPING=1")
    end = stopping[0] if stopping else float("inf")
    pings = [at for at in notify_listener.sent(messages, "WATCHDOG=1") if ready and ready[0] <= at <= end]
    marks = [ready[0], *pings] if ready else pings
    return max((b - a for a, b in itertools.pairwise(marks)), default=float("inf")), len(pings)


def _sender(name: str) -> str:
    return PHISHING_FROM if name.startswith("phishing") else "Chen Wei <chen@apache.org>"


def _to(stand_ins: serve.StandIns, uid: str) -> list[serve.SinkMail]:
    return [mail for mail in stand_ins.mails if f"{uid}@apache.org" in mail.rcpt_tos]


def _message_id(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.startswith(b"Message-ID: <"):
            return line[len(b"Message-ID: <") : -1].decode()
    raise ValueError("no Message-ID")


async def _until(check: Any, process: asyncio.subprocess.Process, timeout: float, output: pathlib.Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.returncode is not None:
            raise RuntimeError(
                f"the daemon exited ({process.returncode}):\n{output.read_text(errors='replace')[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing within {timeout} s:\n{output.read_text(errors='replace')[-4000:]}")
        await asyncio.sleep(0.05)
