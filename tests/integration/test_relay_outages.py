"""A troubled relay costs no reminder: down for 6 hours, refusing with 554, answering late.

The daemon runs in this process on the scenario clock (`tests.fixtures.e2e`), against the sandbox ATR,
the sandbox archive and a real aiosmtpd relay on loopback. Each test counts reminders due, sent,
doubled and failed for good (run with `-s` to see the FIGURES lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import json
import pathlib
import socket
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import httpx

import tests.fixtures.e2e as e2e
import tests.fixtures.outages as world
import tests.fixtures.smtp as smtp_fixtures

RELEASE = "lantern-2.0.0"
VOTERS = ("bjorn", "chen", "dolores", "gina", "hank", "iris")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rows(env: e2e.E2E, sql: str) -> list[tuple[Any, ...]]:
    database = env.database_url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        return list(db.execute(sql))


def outbox(env: e2e.E2E) -> list[tuple[str, str, int]]:
    return rows(env, "SELECT recipient, state, attempts FROM outbox WHERE kind = 'reminder'")


def counts(env: e2e.E2E, sink: smtp_fixtures.SmtpSink, offered: Sequence[str], due: Sequence[str]) -> world.Counts:
    sent, doubled = world.mail_counts([to for mail in sink.received for to in mail.rcpt_tos], due)
    failed = sum(1 for _, state, _ in outbox(env) if state == "failed")
    keys = {key for (key,) in rows(env, "SELECT key FROM messages")}
    stored = sum(1 for mid in offered if mid in keys)
    return world.Counts(len(offered), stored, len(due), sent, doubled, failed)


def scrape(url: str, name: str) -> float:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


async def vote(env: e2e.E2E, voters: Sequence[str]) -> list[str]:
    """Each voter's "+1 (binding)" by email; returns their Message-IDs (without <>)."""
    ids = []
    for uid in voters:
        raw = await env.vote_by_email(RELEASE, f"{e2e.LANTERN_NAMES[uid]} <{uid}@apache.org>", "+1 (binding)")
        ids.append(str(email.message_from_bytes(raw)["Message-ID"]).strip("<>"))
    return ids


async def test_relay_down_for_six_hours_then_every_reminder_once(
    start_e2e: e2e.StartE2E, tmp_path: pathlib.Path
) -> None:
    port, metrics_port = free_port(), free_port()
    handler = smtp_fixtures.SinkHandler()
    down = smtp_fixtures.SmtpSink("127.0.0.1", port, handler)  # nothing listens there yet
    settings = {"metrics": {"listen": f"127.0.0.1:{metrics_port}"}}
    # 1800 scenario seconds a second: 6 hours take 12 s, and the outbox (every second) tries ~12 times.
    async with start_e2e(e2e.lantern_scenario(), speed=1800, smtp=down, settings=settings) as env, env.daemon():
        offered = await vote(env, VOTERS)
        await env.until(lambda: len(outbox(env)) == len(VOTERS), "every reminder written", timeout=30)
        started = env.now()
        await env.wait_scenario(6)
        waited = outbox(env)
        assert {state for _, state, _ in waited} == {"pending"}, waited
        # The old outbox gave up after 8 attempts (about 1-2 hours): these rows are past that, and wait on.
        assert min(attempts for _, _, attempts in waited) > 8, waited
        waiting = scrape(f"http://127.0.0.1:{metrics_port}/metrics", 'vote_watcher_outbox_waiting{kind="reminder"}')
        assert waiting == len(VOTERS)
        status = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watcher",
            "status",
            "--config",
            str(env.config_path),
            "--format",
            "json",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await status.communicate()
        assert json.loads(out)["waiting_on_relay"] == {"reminder": len(VOTERS)}
        hours = (env.now() - started).total_seconds() / 3600
        with smtp_fixtures.running_sink(port=port, handler=handler) as relay:
            await env.until(lambda: len({m.rcpt_tos for m in relay.received}) == len(VOTERS), "every reminder", 30)
            await asyncio.sleep(3)
            result = counts(env, relay, offered, VOTERS)
    print(result.line(f"relay down {hours:.1f} h (scaled clock)") + f"; attempts while down: {waited}")
    assert (result.lost, result.sent, result.doubled, result.failed) == (0, len(VOTERS), 0, 0)
    assert len(handler.received) == len(VOTERS)


async def test_relay_answering_554_then_recovering_sends_every_reminder_once(
    start_e2e: e2e.StartE2E, smtp_sink: smtp_fixtures.SmtpSink
) -> None:
    voters = VOTERS[:3]
    # A misconfigured relay: three refusals of relay policy for each reminder, at DATA, then it is fixed.
    smtp_sink.fail("554 5.7.1 Relay access denied: not authorised to send", times=3 * len(voters), stage="DATA")
    async with start_e2e(e2e.lantern_scenario(), speed=1800, smtp=smtp_sink) as env, env.daemon():
        offered = await vote(env, voters)
        await env.until(lambda: len(smtp_sink.received) == len(voters), "every reminder", timeout=60)
        await asyncio.sleep(3)
        result = counts(env, smtp_sink, offered, voters)
        settled = outbox(env)
    print(result.line("relay answering 554 then recovering") + f"; refusals {len(smtp_sink.handler.refused)}")
    assert len(smtp_sink.handler.refused) == 3 * len(voters)
    assert (result.lost, result.sent, result.doubled, result.failed) == (0, len(voters), 0, 0)
    assert {state for _, state, _ in settled} == {"sent"}


async def test_relay_refusing_a_recipient_fails_that_reminder_for_good_only(
    start_e2e: e2e.StartE2E, smtp_sink: smtp_fixtures.SmtpSink
) -> None:
    voters = VOTERS[:3]
    smtp_sink.fail("550 5.1.1 No such user here", times=1, stage="RCPT")
    async with start_e2e(e2e.lantern_scenario(), speed=1800, smtp=smtp_sink) as env, env.daemon():
        offered = await vote(env, voters)
        await env.until(lambda: len(smtp_sink.received) == len(voters) - 1, "the other reminders", timeout=60)
        await asyncio.sleep(3)
        settled = outbox(env)
        result = counts(env, smtp_sink, offered, voters)
    print(result.line("relay refusing one recipient (550 5.1.1 at RCPT)"))
    assert sorted(state for _, state, _ in settled) == ["failed", "sent", "sent"]
    assert (result.lost, result.sent, result.doubled, result.failed) == (0, len(voters) - 1, 0, 1)
    assert len(smtp_sink.received) == len(voters) - 1


async def test_relay_answering_250_late_gets_every_reminder_once(
    start_e2e: e2e.StartE2E, smtp_sink: smtp_fixtures.SmtpSink
) -> None:
    voters = VOTERS[:3]
    # The case that doubled every reminder: the 250 after DATA comes later than smtp.timeout (twice as late as the
    # 2 s it is set to; the mails go one at a time, so each second of delay counts three times).
    smtp_sink.handler.data_delay_s = 4.0
    settings = {"smtp": {"timeout": "2s"}, "reminders": {"delay": "1s"}}
    async with start_e2e(e2e.lantern_scenario(), speed=1, smtp=smtp_sink, settings=settings) as env, env.daemon():
        offered = await vote(env, voters)
        await env.until(
            lambda: {s for _, s, _ in outbox(env)} == {"sent"} and len(outbox(env)) == 3, "every reminder", 90
        )
        await asyncio.sleep(3)
        result = counts(env, smtp_sink, offered, voters)
    print(result.line("relay answering 250 after 4 s (smtp.timeout 2 s)"))
    assert (result.lost, result.sent, result.doubled, result.failed) == (0, len(voters), 0, 0)
    assert len(smtp_sink.received) == len(voters)
