"""The daemon as operators run it: `python -m watcher run --config PATH`, a process of its own.

- systemd's notify protocol on a NOTIFY_SOCKET the test binds: READY=1 once the first discovery is
  done, STATUS= lines, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 and exit 0 after SIGTERM;
- an end-to-end run at log level debug, with the ATR PAT, an SMTP password (a relay that requires
  AUTH over STARTTLS) and an IMAP password (Dovecot over TLS) all in use: none of them, and no
  message body, appears anywhere in the daemon's output;
- the Prometheus endpoint scraped during such a run;
- the exit codes and messages of a configuration that cannot be used (2) and a database whose
  schema is not current (1).

The stand-ins (sandbox ATR, sandbox lists.apache.org) run in the test process, on the wall clock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import email.utils
import itertools
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import httpx
import prometheus_client.parser

import tests.fixtures.smtp as smtp_fixtures
import tests.support.dovecot as dovecot
import tests.support.notify_listener as notify_listener
import watcher.config as config
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.serve as serve
import watcher.store as store

PAT: Final = f"pat-ops-{uuid.uuid4().hex}"
PROJECT: Final = "lantern"
RELEASE: Final = "lantern-2.0.0"
LIST: Final = "dev@lantern.apache.org"
VOTER: Final = "chen"
BODY_PHRASE: Final = "Tangerine velociraptor checklist 4417 passed"
START_TIMEOUT_S: Final = 30.0
STOP_WITHIN_S: Final = 10.0


def scenario(now: float) -> atr_scenario.Scenario:
    """One Trusted Vote, started an hour ago, that ends in 71 hours: long after the test."""
    data = {
        "atr": {
            "pats": {"watcher": PAT},
            "api_per_minute": 100_000,
            "api_per_hour": 100_000,
            "jwt_minutes": 600,
            "committees": {
                PROJECT: {
                    "name": "Lantern",
                    "committee_members": ["amira", "bjorn", VOTER],
                    "committers": ["amira", "bjorn", VOTER, "watcher"],
                    "release_managers": ["amira", "watcher"],
                }
            },
            "projects": {
                PROJECT: {
                    "name": "Apache Lantern",
                    "committee_key": PROJECT,
                    "policy": {"vote_mode": "trusted", "min_hours": 72, "vote_recipients": {"to": LIST}},
                }
            },
            "releases": [
                {
                    "project_key": PROJECT,
                    "version": "2.0.0",
                    "phase": "release_candidate",
                    "vote_mode": "trusted",
                    "current_vote_seq": 1,
                    "vote_started": "-1h",
                    "vote_duration": 72,
                    "initiator": "amira",
                }
            ],
        }
    }
    return atr_scenario.from_mapping(data, now)


def email_vote(stand_ins: serve.StandIns) -> bytes:
    """chen's "+1 (binding)" on the thread, with a sentence that must never reach a log."""
    release = stand_ins.atr.state.releases[RELEASE]
    lines = [
        f"From: Chen Wei <{VOTER}@apache.org>",
        f"To: {LIST}",
        f"Subject: Re: {release.vote_subject}",
        f"Date: {email.utils.formatdate(time.time())}",
        f"Message-ID: <{uuid.uuid4()}@mail.example>",
        f"In-Reply-To: <{release.vote_message_id}>",
        f"References: <{release.vote_message_id}>",
        f"List-Id: <{LIST.replace('@', '.')}>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "+1 (binding)",
        "",
        f"{BODY_PHRASE}, and the signatures check out.",
    ]
    return "\r\n".join(lines).encode()


def secret_file(folder: pathlib.Path, name: str, value: str) -> pathlib.Path:
    path = folder / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(
    folder: pathlib.Path, stand_ins: serve.StandIns, extra: str = "", log_level: str = "info", smtp: str = ""
) -> pathlib.Path:
    """A config for the stand-ins (SQLite under `folder`, upgraded later); `extra` adds tables.

    Mail goes to the stand-ins' sink unless `smtp` gives another [smtp] table.
    """
    pat = secret_file(folder, "atr-pat", PAT)
    smtp = smtp or f'[smtp]\nhost = "127.0.0.1"\nport = {stand_ins.smtp_port}\ntls = "none"\n'
    path = folder / "config.toml"
    path.write_text(
        f"""
[watcher]
state_dir = "{folder / "state"}"
log_format = "json"
log_level = "{log_level}"
check_interval = "1s"

[atr]
base_url = "{stand_ins.atr.url}"
uid = "watcher"
pat_file = "{pat}"
poll_interval = "1s"
request_budget = 5000

[[sources]]
kind = "ponymail"
base_url = "{stand_ins.archive.url}"
lists = ["{LIST}"]
poll_interval = "1s"

[reminders]
delay = "1s"
from = "Vote Watcher <vote-watcher@apache.org>"

[resolve]
enabled = false

{smtp}
{extra}
"""
    )
    return path


async def upgrade(config_path: pathlib.Path) -> None:
    db = await store.open(config.load(config_path).watcher.database_url)
    try:
        await db.upgrade()
    finally:
        await db.close()


@dataclasses.dataclass
class Process:
    """The daemon's process and the file that holds all its output (stdout and stderr)."""

    process: asyncio.subprocess.Process
    output: pathlib.Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    async def stop(self) -> tuple[int, float]:
        """SIGTERM; the exit status and how long the process took to exit."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 30)
        return code, time.monotonic() - began


@contextlib.asynccontextmanager
async def daemon(config_path: pathlib.Path, env: Mapping[str, str] | None = None) -> AsyncIterator[Process]:
    """`python -m watcher run --config PATH`, its stdout and stderr into one file; killed if still running."""
    output = config_path.with_name("daemon-output.log")
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watcher", "run", "--config", str(config_path), stdout=sink, stderr=sink, env=env
        )
    try:
        yield Process(process, output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def until(check: Callable[[], object], what: str, process: Process, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.process.returncode is not None:
            raise AssertionError(f"the daemon exited ({process.process.returncode}) before {what}:\n{process.text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s; daemon output:\n{process.text()[-4000:]}")
        await asyncio.sleep(0.05)


def command(*args: str) -> tuple[int, str]:
    """Run the command line to its end; its exit status and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "watcher", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stderr


# systemd's notify protocol ------------------------------------------------------------------------------------


async def test_the_daemon_speaks_systemds_notify_protocol(tmp_path: pathlib.Path) -> None:
    async with serve.StandIns(scenario(time.time())) as stand_ins:
        config_path = write_config(tmp_path, stand_ins)
        await upgrade(config_path)
        with notify_listener.notify_socket() as (sock, path):
            env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "LISTEN_PID")}
            env |= {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
            messages: list[tuple[float, str]] = []
            listener = asyncio.ensure_future(notify_listener.receive(sock, messages))
            try:
                async with daemon(config_path, env) as process:
                    await until(lambda: notify_listener.sent(messages, "READY=1"), "READY=1", process)
                    discovery_at_ready = [r.path for r in stand_ins.atr.requests]
                    # Half of WATCHDOG_USEC is 1 s: three pings take about three seconds.
                    await until(
                        lambda: len(notify_listener.sent(messages, "WATCHDOG=1")) >= 3, "three WATCHDOG=1", process, 10
                    )
                    before_stop = len(messages)
                    code, took = await process.stop()
                    await asyncio.sleep(0.1)
                    output = process.text()
            finally:
                listener.cancel()
    texts = [text for _, text in messages]
    ready, pings, stopping = (
        notify_listener.sent(messages, "READY=1"),
        notify_listener.sent(messages, "WATCHDOG=1"),
        notify_listener.sent(messages, "STOPPING=1"),
    )
    # READY=1 once, after the first discovery asked ATR for the running votes, their policy and committee.
    assert len(ready) == 1
    assert "/api/releases/list" in discovery_at_ready
    assert f"/api/policy/get/{PROJECT}" in discovery_at_ready
    assert f"/api/committee/get/{PROJECT}" in discovery_at_ready
    ready_text = next(text for text in texts if "READY=1" in text.split("\n"))
    # The status says how many votes are tracked and when a source was last polled (the first cycle polled).
    assert re.fullmatch(
        r"STATUS=1 vote tracked, last poll \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", ready_text.split("\n")[1]
    )
    # WATCHDOG=1 about every second (half of WATCHDOG_USEC), each time with a fresh STATUS= line.
    assert all(at > ready[0] for at in pings)
    running = [at for at in pings if at <= messages[before_stop - 1][0]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(running)]
    assert gaps and all(0.5 < gap < 1.9 for gap in gaps), gaps
    statuses = [line for text in texts for line in text.split("\n") if line.startswith("STATUS=")]
    assert len(statuses) >= len(pings)
    running_statuses, last = statuses[:-1], statuses[-1]
    assert all(status.startswith("STATUS=1 vote tracked, last poll ") for status in running_statuses), statuses
    # The sources are polled every second, and the line follows.
    assert len(set(running_statuses)) >= 2, statuses
    # SIGTERM: STOPPING=1, nothing after it, and exit 0 well within systemd's patience.
    assert len(stopping) == 1
    stopping_text = next(text for text in texts if "STOPPING=1" in text.split("\n"))
    assert last in stopping_text.split("\n")
    assert stopping[0] >= messages[before_stop - 1][0]
    assert not [at for at in pings if at > stopping[0]]
    assert code == 0
    assert took < STOP_WITHIN_S
    # Jobs cancelled by the stop are an ending, not a failure: no ERROR line, no traceback.
    assert '"level": "error"' not in output and "Traceback" not in output


# Secrets and bodies never logged; metrics scraped ----------------------------------------------------------


@dataclasses.dataclass
class EndToEnd:
    """What an end-to-end run left: the daemon's output, the sink's mails and a scrape of /metrics."""

    output: str
    received: list[smtp_fixtures.Received]
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float]
    secrets: dict[str, str]
    code: int
    health: dict[str, tuple[int, Any]] = dataclasses.field(default_factory=dict)
    """path -> (HTTP status, JSON body) of the metrics listener's other paths."""


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for family in prometheus_client.parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def end_to_end(
    folder: pathlib.Path, server: dovecot.DovecotServer, imap_folder: str, relay: smtp_fixtures.SmtpSink
) -> EndToEnd:
    """The vote arrives over IMAP (TLS, password), the reminder leaves over SMTP (STARTTLS, AUTH), at debug."""
    metrics_port = free_port()
    imap_password = secret_file(folder, "imap-password", server.password)
    smtp_password = secret_file(folder, "smtp-password", relay.password)
    extra = f"""
[[sources]]
kind = "imap"
host = "127.0.0.1"
port = {server.tls_port}
tls = "implicit"
ca_file = "{server.cert_file}"
user = "{server.user}"
password_file = "{imap_password}"
folders = ["{imap_folder}"]
sweep_interval = "2s"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"""
    smtp = f"""
[smtp]
host = "127.0.0.1"
port = {relay.port}
tls = "starttls"
ca_file = "{relay.ca_file}"
user = "{relay.user}"
password_file = "{smtp_password}"
"""
    async with serve.StandIns(scenario(time.time())) as stand_ins:
        config_path = write_config(folder, stand_ins, extra, log_level="debug", smtp=smtp)
        await upgrade(config_path)
        async with daemon(config_path) as process:
            await until(lambda: stand_ins.atr.count("/api/vote/tabulate"), "first tabulate", process)
            # Only the IMAP mailbox carries the vote: the reminder proves the daemon logged in and read it.
            server.append(imap_folder, [email_vote(stand_ins)])
            await until(lambda: relay.to(f"{VOTER}@apache.org"), "reminder", process)
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            async with httpx.AsyncClient() as http:
                samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
                # The reminder is counted when the outbox records it, a moment after the relay took it.
                for _ in range(50):
                    samples = scrape((await http.get(url)).text)
                    if samples.get(("vote_watcher_reminders_total", frozenset({("outcome", "sent")})), 0) >= 1:
                        break
                    await asyncio.sleep(0.1)
                health = {}
                for path in ("/healthz", "/readyz", "/no-such-path"):
                    answer = await http.get(f"http://127.0.0.1:{metrics_port}{path}")
                    health[path] = (answer.status_code, answer.json())
            code, _ = await process.stop()
            output = process.text()
        jwts = list(stand_ins.atr.state.issued_jwts)
    secrets = {"ATR PAT": PAT, "SMTP password": relay.password, "IMAP password": server.password}
    for label, value in list(secrets.items()):
        secrets[f"{label} (base64)"] = base64.b64encode(value.encode()).decode()
    plain = base64.b64encode(f"\0{relay.user}\0{relay.password}".encode()).decode()
    secrets["SMTP AUTH PLAIN"] = plain
    secrets |= {f"ATR JWT {index}": jwt for index, jwt in enumerate(jwts)}
    return EndToEnd(output, relay.received, samples, secrets, code, health)


async def test_an_end_to_end_run_at_debug_level_logs_no_secret_and_no_message_body(
    tmp_path: pathlib.Path, dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    with smtp_fixtures.running_sink("starttls", tmp_path) as relay:
        run = await end_to_end(tmp_path, dovecot_server, imap_folder, relay)
    # The secrets were really used: the relay authenticated us, and ATR issued tokens for the PAT.
    (reminder,) = run.received
    assert reminder.authenticated_as == relay.user
    assert reminder.rcpt_tos == (f"{VOTER}@apache.org",)
    assert any(label.startswith("ATR JWT") for label in run.secrets)
    # The output is a real debug log of the whole run, the libraries' lines included.
    lines = run.output.splitlines()
    assert len(lines) > 50
    assert '"level": "debug"' in run.output
    assert "daemon.ready" in run.output and "daemon.stopped" in run.output
    assert run.code == 0
    leaked = [label for label, value in run.secrets.items() if value in run.output]
    assert not leaked, f"found in the daemon's output: {leaked}"
    assert BODY_PHRASE not in run.output
    assert BODY_PHRASE.split()[1] not in run.output.lower()


async def test_metrics_are_served_during_an_end_to_end_run(
    tmp_path: pathlib.Path, dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    with smtp_fixtures.running_sink("starttls", tmp_path) as relay:
        run = await end_to_end(tmp_path, dovecot_server, imap_folder, relay)
    samples = run.metrics

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    def named(name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in samples.items() if n == name}

    assert (value("vote_watcher_votes_tracked", mode="trusted") or 0) >= 1
    assert value("vote_watcher_votes_tracked", mode="email") == 0
    ingested = named("vote_watcher_messages_ingested_total")
    assert sum(ingested.values()) > 0
    assert (value("vote_watcher_messages_ingested_total", source="imap") or 0) >= 1
    assert value("vote_watcher_reminders_total", outcome="sent") == 1
    assert value("vote_watcher_reminders_total", outcome="failed") == 0
    ages = {dict(labels)["source"]: age for labels, age in named("vote_watcher_seconds_since_last_poll").items()}
    assert any(source.startswith("imap:") for source in ages), ages
    assert any(source.startswith("ponymail:") for source in ages), ages
    # Polled every second or two, so no source has been waiting long.
    assert all(0 <= age < 10 for age in ages.values()), ages
    budget = value("vote_watcher_atr_budget_remaining")
    assert budget is not None and 0 < budget < 5000
    # chen's +1 was classified once (re-tallies do not count it again).
    assert value("vote_watcher_votes_classified_total", result="+1") == 1
    # Alive, ready (database, both sources within twice their interval, ATR), and nothing else served.
    assert run.health["/healthz"] == (200, {"status": "alive"})
    status, ready = run.health["/readyz"]
    assert status == 200, ready
    assert ready["status"] == "ready" and ready["checks"]["database"] == "ok" and ready["checks"]["atr"] == "ok"
    assert run.health["/no-such-path"][0] == 404


# Configuration and schema errors ------------------------------------------------------------------------------


def test_a_missing_config_file_exits_2_naming_it(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere" / "vote-watcher.toml"
    code, stderr = command("run", "--config", str(missing))
    assert code == 2
    assert str(missing) in stderr
    assert "Traceback" not in stderr


def test_an_invalid_config_exits_2_naming_each_toml_path(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[watcher]
state_dir = "{tmp_path / "state"}"

[atr]
uid = "watcher"
pat_env = "VOTE_WATCHER_TEST_PAT"

[[sources]]
kind = "ponymail"
lists = ["dev@lantern.apache.org"]

[reminders]
delay = "soon"
from = "Vote Watcher <vote-watcher@apache.org>"

[remnders]
enabled = false
"""
    )
    code, stderr = command("run", "--config", str(path))
    assert code == 2
    assert str(path) in stderr
    assert "reminders.delay" in stderr
    assert "remnders" in stderr
    assert "Traceback" not in stderr


async def test_a_database_without_the_current_schema_exits_3_saying_to_upgrade(tmp_path: pathlib.Path) -> None:
    async with serve.StandIns(scenario(time.time())) as stand_ins:
        config_path = write_config(tmp_path, stand_ins)
        (tmp_path / "state").mkdir()
        empty = await asyncio.to_thread(command, "run", "--config", str(config_path))
        db = await store.open(config.load(config_path).watcher.database_url)
        await db.upgrade("0001")
        await db.close()
        behind = await asyncio.to_thread(command, "run", "--config", str(config_path))
        requests = len(stand_ins.atr.requests)
    for code, stderr in (empty, behind):
        assert code == 3, stderr
        assert "vote-watcher db upgrade" in stderr
        assert "Traceback" not in stderr
    assert "0001" in behind[1]
    # It stopped before asking ATR anything.
    assert requests == 0
