"""What an operator runs and reads: a dry run as a shadow, `status`, `explain`, `outbox`, and `run --once`'s verdict.

Against the stand-ins (sandbox ATR and lists.apache.org over real HTTP, an aiosmtpd sink), on SQLite and
PostgreSQL. The daemon runs in-process on the scenario clock (one real second is one scenario hour); the
commands run as processes of their own, beside it, as an operator would run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import tests.fixtures.e2e as e2e
import watcher.config as config
import watcher.daemon as daemon
import watcher.store as store
import watcher.wiring as wiring

LANTERN = "lantern-2.0.0"
HARBOR = "harbor-1.1.0"
COMMAND_TIMEOUT_S = 60


def two_votes() -> dict[str, Any]:
    """Lantern runs for 72 hours (amira and bjorn cast in ATR); Harbor's vote ended 8 hours ago and passes in ATR."""
    lantern_ballots = [e2e.ballot(LANTERN, uid) for uid in ("amira", "bjorn")]
    harbor_ballots = [e2e.ballot(HARBOR, uid, cast_at="-70h") for uid in ("hana", "hugo", "hiro")]
    return e2e.scenario(
        {
            "lantern": e2e.committee(e2e.LANTERN_MEMBERS, name="Lantern", release_managers=["amira"]),
            "harbor": e2e.committee(["hana", "hugo", "hiro"], name="Harbor", release_managers=["hana"]),
        },
        {
            "lantern": e2e.project("lantern", name="Apache Lantern"),
            "harbor": e2e.project("harbor", name="Apache Harbor"),
        },
        [
            e2e.release("lantern", "2.0.0", seq=1, initiator="amira"),
            e2e.release("harbor", "1.1.0", seq=4, started="-80h", initiator="hana"),
        ],
        people=e2e.LANTERN_NAMES,
        ballots=[*lantern_ballots, *harbor_ballots],
    )


def dry(cfg: config.Config) -> config.Config:
    """The configuration as `run --dry-run` makes it."""
    return cfg.model_copy(update={"watcher": cfg.watcher.model_copy(update={"dry_run": True})})


async def test_a_dry_run_leaves_every_reminder_and_resolution_to_the_live_run(start_e2e: e2e.StartE2E) -> None:
    """`run --once --dry-run`, then `run --once` on the same state: the live run sends and resolves all the dry run
    wrote down."""
    async with start_e2e(two_votes()) as env:
        await env.vote_by_email(LANTERN, "Chen Wei <chen@apache.org>", "+1 (binding)\n\nBuilt from source.\n")
        cfg = env.load_config()
        # The first dry run stores the thread; the reminder's delay (1 h) runs from then.
        assert await wiring.run(dry(cfg), once=True, sink=env.sink, clock=env.clock.now) == daemon.EXIT_OK
        await env.wait_scenario(1.5)
        # The second dry run's cycle, with its metrics at hand: a dry run's reminder counts as skipped, not sent.
        shadow = await wiring.build(dry(cfg), sink=env.sink, clock=env.clock.now)
        try:
            await shadow.cycle()
            await shadow.settle()
            samples = {
                outcome: shadow.metrics.registry.get_sample_value("vote_watcher_reminders_total", {"outcome": outcome})
                for outcome in ("sent", "skipped")
            }
        finally:
            await shadow.close()
        assert samples == {"sent": 0, "skipped": 1}

        shadow_reminders = {(e.release, e.data["voter"]) for e in env.of("reminder_dry_run")}
        shadow_resolutions = {e.release for e in env.of("resolution_dry_run")}
        assert shadow_reminders == {(LANTERN, "chen")}
        assert shadow_resolutions == {HARBOR}
        written = list((env.folder / "state" / "dry-run").glob("*.eml"))
        assert len(written) == 1
        assert b"chen@apache.org" in written[0].read_bytes()
        # Nothing left the house, and nothing was used up.
        assert env.smtp.received == []
        assert env.resolve_calls() == []
        async with env.store() as db:
            assert [(m.voter, m.state) for m in await db.mails(LANTERN, 1)] == [("chen", "dry_run")]
            assert {v.release_key for v in await db.votes(open_only=True)} == {LANTERN, HARBOR}
            assert await db.get_resolution(HARBOR, 4) is None

        env.events.clear()
        assert await wiring.run(cfg, once=True, sink=env.sink, clock=env.clock.now) == daemon.EXIT_OK
        sent = {(e.release, e.data["voter"]) for e in env.of("reminder_sent")}
        resolved = {e.release for e in env.of("resolved")}
        assert sent == shadow_reminders
        assert resolved == shadow_resolutions
        assert [to for mail in env.smtp.received for to in mail.rcpt_tos] == ["chen@apache.org"]
        assert [r.status for r in env.resolve_calls()] == [200]
        async with env.store() as db:
            [row] = await db.mails(LANTERN, 1)
            assert (row.voter, row.state) == ("chen", "sent")
            resolution = await db.get_resolution(HARBOR, 4)
        assert resolution is not None and resolution.state == "done"


async def test_run_once_fails_with_a_reason_when_it_reaches_nothing(tmp_path: pathlib.Path) -> None:
    """ATR and the archive both refuse connections: exit 1, one line on stderr saying so, no traceback."""
    config_path = _unreachable_config(tmp_path)
    cfg = config.load(config_path)
    db = await store.open(cfg.watcher.database_url)
    await db.upgrade()
    await db.close()
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    reason = [line for line in done.stderr.splitlines() if line.startswith("vote-watcher run --once:")]
    assert len(reason) == 1
    assert "reached neither ATR" in reason[0] and "nor any source" in reason[0]
    assert "Traceback" not in done.stderr
    # Each outage is one JSON line at warning level, not a traceback.
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(line["event"] == "daemon.job_failed" and line["level"] == "warning" for line in lines)
    assert not any("exception" in line for line in lines)


def _unreachable_config(folder: pathlib.Path) -> pathlib.Path:
    # Nothing listens on `port` once the probe is closed: every connection is refused at once.
    port = _closed_port()
    pat = folder / "atr-pat"
    pat.write_text("pat\n")
    pat.chmod(0o600)
    path = folder / "config.toml"
    path.write_text(
        f"""
[watcher]
state_dir = "{folder / "state"}"
log_format = "json"

[atr]
base_url = "http://127.0.0.1:{port}"
uid = "watcher"
pat_file = "{pat}"

[[sources]]
kind = "ponymail"
base_url = "http://127.0.0.1:{port}"
lists = ["dev@lantern.apache.org"]
timeout = "3s"

[reminders]
from = "Vote Watcher <vote-watcher@apache.org>"

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
"""
    )
    return path


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_explain_and_status_answer_beside_the_running_daemon(
    start_e2e: e2e.StartE2E, make_postgres_database: Callable[[], str], backend: str
) -> None:
    """For each email voter: reminded, or why not (ballot in ATR within the delay, opted out, not binding), in words."""
    url = make_postgres_database() if backend == "postgresql" else ""
    settings = {"reminders": {"opt_out": ["gina"]}}
    world = start_e2e(two_votes(), database_url=url, settings=settings)
    async with world as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", LANTERN), "the vote tracked")
        await env.vote_by_email(LANTERN, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
        await env.vote_by_email(LANTERN, "Dolores Ruiz <dolores@apache.org>", "+1\n\nI'll cast it in ATR too.\n")
        await env.cast("dolores", LANTERN)
        await env.vote_by_email(LANTERN, "Gina Gomez <gina@apache.org>", "+1\n")
        await env.vote_by_email(LANTERN, "Zed Outsider <zed@apache.org>", "+1 (binding)\n")
        await env.until(lambda: env.smtp.received, "the reminder to chen")
        await _until_store(env, _gina_skipped, "gina's reminder skipped")

        explained = await _command(env, "explain", LANTERN)
        why = {v["voter"]: (v["reminded"], v["why"]) for v in explained["voters"]}
        assert why["chen"][0] is True and why["chen"][1].startswith("reminded: sent to chen@apache.org")
        assert why["dolores"][0] is False and "cast a ballot in ATR" in why["dolores"][1]
        assert "within the reminder delay" in why["dolores"][1]
        assert why["gina"] == (False, "not reminded: gina opted out of reminders (reminders.opt_out)")
        assert why["zed"][0] is False and "zed is not binding in this vote (contributor)" in why["zed"][1]
        assert set(explained["atr_ballots"]["ballots"]) >= {"amira", "bjorn", "dolores"}
        one = await _command(env, "explain", LANTERN, "dolores")
        assert [v["voter"] for v in one["voters"]] == ["dolores"]

        status = await _command(env, "status")
        assert {(v["release"], v["vote_seq"]) for v in status["open_votes"]} >= {(LANTERN, 1)}
        lantern = next(v for v in status["open_votes"] if v["release"] == LANTERN)
        assert lantern["vote_end"] is not None and lantern["emailed"]["binding"]["+1"] == 3
        assert status["outbox"].get("sent") == 1 and status["outbox"].get("skipped") == 1
        [source] = status["sources"]
        assert source["source"].startswith("ponymail") and source["ok"] is True and source["last_ok"]
        assert status["atr"][0]["ok"] is True

        text = await _run_command(env, "status")
        assert f"{LANTERN}#1 trusted, ends" in text
        listed = await _command(env, "outbox", "list")
        skipped = next(m for m in listed["mails"] if m["state"] == "skipped")
        assert skipped["to"] == "gina@apache.org"
        cancelled = await _process(_argv(env, "outbox", "cancel", str(skipped["id"])))
        assert cancelled.returncode == 1 and "cannot be cancelled" in cancelled.stderr
        shown = await _command(env, "outbox", "show", str(skipped["id"]))
        assert shown["mail"]["message_id"] in shown["raw"] and "To: " in shown["raw"]
        retried = await _command(env, "outbox", "retry", str(skipped["id"]))
        assert (retried["mail"]["state"], retried["mail"]["attempts"]) == ("pending", 0)
        # Sent again now: still opted out, so the outbox skips it again (and the journal says why).
        await env.until(lambda: len(env.of("reminder_skipped")) == 2, "the retried reminder skipped again")
        assert env.of("reminder_skipped")[-1].data["error"] == "recipient opted out"


async def _gina_skipped(db: store.Store) -> bool:
    return any(m.voter == "gina" and m.state == "skipped" for m in await db.mails(LANTERN, 1))


async def _until_store(env: e2e.E2E, check: Callable[[store.Store], Awaitable[bool]], what: str) -> None:
    async with _reader(env) as db:
        for _ in range(500):
            if await check(db):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"waited for {what}")


@contextlib.asynccontextmanager
async def _reader(env: e2e.E2E) -> AsyncIterator[store.Store]:
    db = await store.open(env.database_url, lock=False)
    try:
        yield db
    finally:
        await db.close()


def _argv(env: e2e.E2E, *args: str) -> list[str]:
    return [sys.executable, "-m", "watcher", *args, "--config", str(env.config_path), "--format", "json"]


async def _process(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # In a thread: the daemon runs on this event loop, and keeps running while the command does.
    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )


async def _command(env: e2e.E2E, *args: str) -> Any:
    done = await _process(_argv(env, *args))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def _run_command(env: e2e.E2E, *args: str) -> str:
    done = await _process([sys.executable, "-m", "watcher", *args, "--config", str(env.config_path)])
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_run_once_fails_when_the_relay_takes_no_mail(start_e2e: e2e.StartE2E) -> None:
    """A reminder is due but nothing listens on the SMTP port: the cycle fails, saying the relay took no mail."""
    settings = {"smtp": {"port": _closed_port()}}
    async with start_e2e(two_votes(), settings=settings) as env:
        await env.vote_by_email(LANTERN, "Chen Wei <chen@apache.org>", "+1 (binding)\n")
        cfg = env.load_config()
        assert await wiring.run(cfg, once=True, sink=env.sink, clock=env.clock.now) == daemon.EXIT_OK
        await env.wait_scenario(1.5)
        with pytest.raises(daemon.CycleFailedError, match=r"could not hand mail to the relay: .*"):
            await wiring.run(cfg, once=True, sink=env.sink, clock=env.clock.now)
        async with env.store() as db:
            [row] = await db.mails(LANTERN, 1)
    # The reminder waits for the relay; nothing is lost.
    assert (row.voter, row.state, row.attempts) == ("chen", "pending", 1)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
