"""kill -9 while sending: the daemon, a real process on SQLite, is killed again and again and restarted.

The stand-ins (sandbox ATR, sandbox lists.apache.org, SMTP sink) run in the test process, so they
outlive every daemon. Three Trusted Votes run in real time (they end in 72 hours, long after the
test). Before each run, new binding voters reply "+1" by email only, so every run has reminders
falling due (`reminders.delay = "1s"`) and mail to send. Each run is killed with SIGKILL at a
random point: either a random time after its first ATR request, or a random time after the sink
accepted its first mail (so that many kills land in the middle of a batch). A last run is left
to finish and is stopped with SIGTERM.

What must hold: every binding email voter got a reminder (none lost); nobody got two different
reminders; and no mail was accepted twice, except in the one window no SMTP client can close:
the relay accepted the mail and the process died before it could record that. The outbox then
sends the same stored mail again, with the same Message-ID (watcher/mail/outbox.py). Such a repeat is
allowed only when its first copy was the *last* mail the sink accepted from a run that was killed
(the outbox sends one mail at a time and records each before the next, so any earlier mail of
that run was recorded).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import email.utils
import os
import pathlib
import random
import signal
import sqlite3
import sys
import time
import uuid
from typing import Any, Final

import watcher.config as config
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.serve as serve
import watcher.store as store

PAT: Final = "pat-kill-test-3f9a0c"
PROJECTS: Final = ("alpha", "beta", "gamma")
VOTERS_PER_PROJECT: Final = 24
KILLS: Final = 20
FIRST_VOTERS: Final = 3  # per project, before the first run
NEW_VOTERS_PER_RUN: Final = 1
START_TIMEOUT_S: Final = 20.0
SETTLE_S: Final = 0.3
SLOW_RCPT_S: Final = 0.03


def scenario(now: float) -> atr_scenario.Scenario:
    """Three projects in Trusted Vote mode; every member is binding; the votes run for 72 hours."""
    committees: dict[str, Any] = {}
    projects: dict[str, Any] = {}
    releases: list[dict[str, Any]] = []
    for seq, key in enumerate(PROJECTS, start=1):
        members = [f"{key}-rm", *voters(key)]
        committees[key] = {
            "name": key.title(),
            "committee_members": members,
            "committers": [*members, "watcher"],
            "release_managers": [f"{key}-rm", "watcher"],
        }
        projects[key] = {
            "name": f"Apache {key.title()}",
            "committee_key": key,
            "policy": {"vote_mode": "trusted", "min_hours": 72, "vote_recipients": {"to": f"dev@{key}.apache.org"}},
        }
        releases.append(
            {
                "project_key": key,
                "version": "1.0.0",
                "phase": "release_candidate",
                "vote_mode": "trusted",
                "current_vote_seq": seq,
                "vote_started": "-1h",
                "vote_duration": 72,
                "initiator": f"{key}-rm",
            }
        )
    data = {
        "atr": {
            "pats": {"watcher": PAT},
            "api_per_minute": 1_000_000,
            "api_per_hour": 1_000_000,
            "jwt_per_hour": 1_000,
            "jwt_minutes": 600,
            "committees": committees,
            "projects": projects,
            "releases": releases,
        }
    }
    return atr_scenario.from_mapping(data, now)


def voters(project: str) -> list[str]:
    return [f"{project}{index:02d}" for index in range(1, VOTERS_PER_PROJECT + 1)]


def email_vote(stand_ins: serve.StandIns, project: str, uid: str) -> None:
    """`uid` replies "+1 (binding)" on the project's [VOTE] thread (and casts nothing in ATR)."""
    release = stand_ins.atr.state.releases[f"{project}-1.0.0"]
    lines = [
        f"From: {uid.title()} <{uid}@apache.org>",
        f"To: {release.email_to}",
        f"Subject: Re: {release.vote_subject}",
        f"Date: {email.utils.formatdate(time.time())}",
        f"Message-ID: <{uuid.uuid4()}@mail.example>",
        f"In-Reply-To: <{release.vote_message_id}>",
        f"References: <{release.vote_message_id}>",
        f"List-Id: <{release.email_to.replace('@', '.')}>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "+1 (binding)",
        "",
        "Checked the signatures and the licence.",
    ]
    stand_ins.archive.add("\r\n".join(lines).encode(), release.email_to)


def write_config(folder: pathlib.Path, stand_ins: serve.StandIns) -> pathlib.Path:
    pat = folder / "atr-pat"
    pat.write_text(PAT + "\n")
    pat.chmod(0o600)
    lists = ", ".join(f'"dev@{key}.apache.org"' for key in PROJECTS)
    path = folder / "config.toml"
    path.write_text(
        f"""
[watcher]
state_dir = "{folder / "state"}"
log_format = "json"
log_level = "info"
check_interval = "1s"

[atr]
base_url = "{stand_ins.atr.url}"
uid = "watcher"
pat_file = "{pat}"
poll_interval = "1s"
request_budget = 100000

[[sources]]
kind = "ponymail"
base_url = "{stand_ins.archive.url}"
lists = [{lists}]
poll_interval = "1s"

[reminders]
delay = "1s"
from = "Vote Watcher <vote-watcher@apache.org>"

[smtp]
host = "127.0.0.1"
port = {stand_ins.smtp_port}
tls = "none"

[resolve]
enabled = false
"""
    )
    return path


@dataclasses.dataclass
class Run:
    """One life of the daemon: when it started, how it ended, and where its output went."""

    number: int
    started: float
    ended: float = 0.0
    killed: bool = False
    mode: str = ""
    delay: float = 0.0
    first_contact: float | None = None
    left_claimed: int = 0


class Daemon:
    """Starts `python -m watcher run` and ends it by SIGKILL or SIGTERM."""

    def __init__(self, config_path: pathlib.Path, folder: pathlib.Path, stand_ins: serve.StandIns) -> None:
        self.config = config_path
        self.folder = folder
        self.stand_ins = stand_ins
        self.runs: list[Run] = []
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Run:
        run = Run(len(self.runs), time.time())
        self.runs.append(run)
        log = (self.folder / f"run-{run.number:02d}.log").open("wb")
        self.requests_before = len(self.stand_ins.atr.requests)
        self.mails_before = len(self.stand_ins.mails)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watcher", "run", "--config", str(self.config), stdout=log, stderr=log
        )
        log.close()
        return run

    async def first_contact(self, run: Run) -> None:
        """Wait for the run's first ATR request (imports and store checks are done by then)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self.stand_ins.atr.requests) <= self.requests_before:
            self._alive(run)
            assert time.monotonic() < deadline, f"run {run.number} made no ATR request in {START_TIMEOUT_S} s"
            await asyncio.sleep(0.005)
        run.first_contact = time.time()

    async def first_mail(self, run: Run, timeout: float) -> bool:
        """Wait until the sink accepts a mail from this run; False after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.stand_ins.mails) <= self.mails_before:
            self._alive(run)
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    def _alive(self, run: Run) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            log = (self.folder / f"run-{run.number:02d}.log").read_text(errors="replace")
            raise AssertionError(f"run {run.number} exited by itself ({self.process.returncode}):\n{log[-3000:]}")

    async def kill(self, run: Run) -> None:
        assert self.process is not None
        self._alive(run)
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        assert self.process.returncode == -signal.SIGKILL
        # Bytes the daemon wrote before it died may still be in the sink's socket buffer.
        await asyncio.sleep(SETTLE_S)
        run.killed, run.ended = True, time.time()

    async def stop(self, run: Run) -> int:
        assert self.process is not None
        self._alive(run)
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 15)
        await asyncio.sleep(SETTLE_S)
        run.ended = time.time()
        return code


def outbox_rows(database: pathlib.Path) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return list(db.execute("SELECT recipient, message_id, state FROM outbox WHERE kind = 'reminder'"))


def claimed_rows(database: pathlib.Path) -> int:
    """Mails a dead daemon had claimed and not settled: it was killed in the middle of a batch."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE state = 'pending' AND claimed_by != ''").fetchone()[0])


async def test_sigkill_while_sending_loses_no_reminder_and_sends_none_twice(tmp_path: pathlib.Path) -> None:
    began = time.monotonic()
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    async with serve.StandIns(scenario(time.time()), rcpt_delay=SLOW_RCPT_S) as stand_ins:
        config_path = write_config(tmp_path, stand_ins)
        cfg = config.load(config_path)
        db = await store.open(cfg.watcher.database_url)
        await db.upgrade()
        await db.close()

        waiting = {key: collections.deque(voters(key)) for key in PROJECTS}
        emailed: list[str] = []

        def more_votes(count_per_project: int) -> None:
            for key in PROJECTS:
                for _ in range(count_per_project):
                    if waiting[key]:
                        uid = waiting[key].popleft()
                        email_vote(stand_ins, key, uid)
                        emailed.append(uid)

        daemon = Daemon(config_path, tmp_path, stand_ins)
        more_votes(FIRST_VOTERS)
        for number in range(KILLS):
            if number:
                more_votes(NEW_VOTERS_PER_RUN)
            run = await daemon.start()
            await daemon.first_contact(run)
            if number % 2:
                # Somewhere in the run's life: discovery, the archive poll, the checks, or a send.
                run.mode, run.delay = "after start", rng.uniform(0.05, 1.5)
            else:
                # In the middle of a batch: a little after the sink accepted this run's first mail.
                run.mode, run.delay = "while sending", rng.uniform(0.0, 0.3)
                await daemon.first_mail(run, timeout=3.0)
            await asyncio.sleep(run.delay)
            await daemon.kill(run)
            run.left_claimed = claimed_rows(tmp_path / "state" / "vote-watcher.db")

        last = await daemon.start()
        await daemon.first_contact(last)
        expected = set(emailed)
        deadline = time.monotonic() + 20
        while {to.partition("@")[0] for m in stand_ins.mails for to in m.rcpt_tos} < expected:
            assert time.monotonic() < deadline, "reminders still missing 20 s into the last run"
            await asyncio.sleep(0.05)
        # Anything sent twice would go out at the next outbox turns: give them time to show up.
        await asyncio.sleep(2.5)
        assert await daemon.stop(last) == 0
        mails = stand_ins.mails
        rows = outbox_rows(tmp_path / "state" / "vote-watcher.db")
    elapsed = time.monotonic() - began

    killed = [run for run in daemon.runs if run.killed]
    assert len(killed) >= 20
    by_run = collections.defaultdict(list)
    for mail in mails:
        owner = [run for run in daemon.runs if run.started <= mail.at][-1]
        by_run[owner.number].append(mail)
    runs_that_sent = sorted(number for number in by_run if daemon.runs[number].killed)
    last_of_killed = {by_run[number][-1].message_id for number in runs_that_sent}

    per_recipient: dict[str, list[serve.SinkMail]] = collections.defaultdict(list)
    for mail in mails:
        assert len(mail.rcpt_tos) == 1
        per_recipient[mail.rcpt_tos[0]].append(mail)
    recipients = {to.partition("@")[0] for to in per_recipient}
    runs = "; ".join(
        f"run {r.number}: {r.mode} {r.delay:.2f} s, start {(r.first_contact or r.started) - r.started:.1f} s, "
        f"{len(by_run[r.number])} mails, {r.left_claimed} left claimed"
        for r in daemon.runs
    )
    context = f"seed {seed}; {len(mails)} mails; {runs}"

    # None lost: every binding email voter was reminded, at their apache.org address, and nobody else.
    assert recipients == expected, context
    assert all(to == f"{to.partition('@')[0]}@apache.org" for to in per_recipient)
    # One reminder each: a second copy only in the crash window, as the very same mail.
    repeats = 0
    for to, copies in per_recipient.items():
        assert len({mail.message_id for mail in copies}) == 1, f"{to} got different reminders; {context}"
        assert len({mail.raw for mail in copies}) == 1, f"{to} got different bytes; {context}"
        for first in copies[:-1]:
            assert first.message_id in last_of_killed, (
                f"{to} got its reminder twice outside the crash window; {context}"
            )
            repeats += 1
    assert repeats <= len(runs_that_sent)
    # The store agrees: one row per voter, sent, with the Message-ID the sink saw.
    assert sorted(recipient for recipient, _, _ in rows) == sorted(expected)
    assert all(state == "sent" for _, _, state in rows), rows
    assert {f"{r}@apache.org": mid for r, mid, _ in rows} == {to: c[0].message_id for to, c in per_recipient.items()}
    # The kills did land while mail was going out, in a good share of the runs, and some in mid-batch.
    assert len(runs_that_sent) >= KILLS // 4, context
    mid_batch = sum(1 for run in killed if run.left_claimed)
    assert mid_batch >= 1, context
    print(
        f"\n{len(killed)} kills, {len(daemon.runs)} runs, {len(expected)} voters reminded, {len(mails)} mails, "
        f"{repeats} re-sent in the crash window, {len(runs_that_sent)} killed runs had sent mail, "
        f"{mid_batch} killed in mid-batch, "
        f"{elapsed:.1f} s (seed {seed})\n{runs.replace('; ', chr(10))}"
    )
