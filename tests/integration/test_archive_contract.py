"""The daemon against the sandbox lists.apache.org made faithful to Foal (reference/ponymail-api.md).

Issue 10's "Done when", on the stand-ins: a [VOTE] worded unlike the policy's template (Foal's phrase
match would never find it by the rendered subject, §6.3), an unrelated future-dated mail on the list
(a naive `since` cursor goes blind, §6.1), and a reply held in moderation that arrives back-dated
while the daemon runs (§6.1, §6.2). `tally URL`, `run --once --dry-run` and a running daemon each
see the right votes and mail the right people, and nobody else.
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import email.utils
import json
import pathlib
import sys
import uuid

import pytest

import tests.fixtures.e2e as e2e
import tests.support.dovecot as dovecot
import watcher.cli as cli
import watcher.daemon as daemon
import watcher.sandbox.lists_http as lists_http
import watcher.wiring as wiring
from tests.fixtures.ponymail import mail

RELEASE = "lantern-2.0.0"
LIST = "dev@lantern.apache.org"
# The policy renders "[VOTE] Release Lantern 2.0.0"; the release manager sent this instead.
WORDED = "[VOTE] Apache Lantern 2.0.0 RC1"


def scenario() -> dict[str, object]:
    return e2e.lantern_scenario(vote_subject=WORDED)


def future_mail(env: e2e.E2E) -> bytes:
    """An unrelated list mail from a sender whose clock runs two days ahead."""
    when = env.now() + datetime.timedelta(days=2)
    return (
        f"From: Fast Clock <fast@example.org>\nTo: {LIST}\nSubject: [jira] Created: LANTERN-7\n"
        f"Date: {email.utils.format_datetime(when)}\nMessage-ID: <{uuid.uuid4()}@example.org>\n"
        f"List-Id: <dev.lantern.apache.org>\n\nA ticket.\n"
    ).encode()


def back_dated(raw: bytes, hours: float, env: e2e.E2E) -> bytes:
    """The same reply, with the Date it had when it was sent `hours` ago (it sat in moderation)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    msg.replace_header("Date", email.utils.format_datetime(env.now() - datetime.timedelta(hours=hours)))
    return msg.as_bytes()


def recipients(env: e2e.E2E) -> list[str]:
    return sorted(to for mail in env.smtp.received for to in mail.rcpt_tos)


async def test_a_running_daemon_finds_the_vote_and_reminds_the_back_dated_voter_too(start_e2e: e2e.StartE2E) -> None:
    async with start_e2e(scenario()) as env:
        env.archive.add(future_mail(env), LIST)
        async with env.daemon():
            await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
            await env.vote_by_email(RELEASE, "Gina Gomez <gina@apache.org>", "+1 (binding)\n")
            await env.until(lambda: len(env.smtp.received) >= 1, "gina's reminder")
            # Iris voted two hours ago; the list's moderation let it through only now.
            raw = env.reply(RELEASE, "Iris Ito <iris@apache.org>", "+1\n")
            env.archive.add(back_dated(raw, 2, env), LIST)
            await env.until(lambda: len(env.smtp.received) >= 2, "iris's reminder")
            await env.wait_scenario(4)
            tallied = env.of("tally", RELEASE)[-1].data["votes"]
    assert recipients(env) == ["gina@apache.org", "iris@apache.org"]
    assert sorted(tallied) == ["gina", "iris"]


async def test_run_once_dry_run_finds_the_vote_and_writes_one_reminder(start_e2e: e2e.StartE2E) -> None:
    async with start_e2e(scenario(), settings={"watcher": {"dry_run": True}}) as env:
        env.archive.add(future_mail(env), LIST)
        await env.vote_by_email(RELEASE, "Gina Gomez <gina@apache.org>", "+1 (binding)\n")
        cfg = env.load_config()
        # The first run stores the thread; the reminder is due once the delay has passed since then.
        assert await wiring.run(cfg, once=True, clock=env.clock.now) == daemon.EXIT_OK
        await env.wait_scenario(2)
        assert await wiring.run(cfg, once=True, clock=env.clock.now) == daemon.EXIT_OK
    written = sorted((env.folder / "state" / "dry-run").glob("*.eml"))
    tos = [email.message_from_bytes(path.read_bytes())["To"] for path in written]
    assert len(written) == 1, tos
    assert "gina@apache.org" in tos[0]
    assert env.smtp.received == []


async def test_tally_of_the_thread_url_gives_the_right_votes(start_e2e: e2e.StartE2E) -> None:
    async with start_e2e(scenario()) as env:
        env.archive.add(future_mail(env), LIST)
        await env.vote_by_email(RELEASE, "Gina Gomez <gina@apache.org>", "+1 (binding)\n")
        env.archive.add(back_dated(env.reply(RELEASE, "Iris Ito <iris@apache.org>", "+1\n"), 2, env), LIST)
        # A reply naming its parent in References only: Foal's find_parent cannot climb from it (§6.4).
        raw = env.reply(RELEASE, "Hank Member <hank@apache.org>", "-1\n")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        del msg["In-Reply-To"]
        hank = env.archive.add(msg.as_bytes(), LIST)
        vote_id = lists_http.archive_id(env.vote_of(RELEASE).vote_message_id, "dev.lantern.apache.org")
        results = []
        for ident in (vote_id, hank):
            url = f"{env.archive.url}/thread/{ident}"
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "watcher",
                "tally",
                url,
                "--format",
                "json",
                "--committee",
                "lantern",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=pathlib.Path(__file__).parents[2],
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, err.decode()
            results.append(json.loads(out))
    for result in results:
        votes = {v["voter"]: v["vote"] for v in result["votes"]}
        assert votes == {"gina": "+1", "iris": "+1", "hank": "-1"}, result


async def test_check_config_probe_names_a_mistyped_and_a_private_list(
    tmp_path: pathlib.Path, ponymail_sandbox: lists_http.PonyMailSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    # Foal answers an unknown list with 200 and no mail, never 404 (§6.5); private lists show the same
    # face to an anonymous client (§3).
    ponymail_sandbox.add(mail("x@example.org", "[DISCUSS] something"))
    (tmp_path / "pat").write_text("pat-secret\n")
    (tmp_path / "pat").chmod(0o600)
    path = tmp_path / "config.toml"
    path.write_text(
        '[atr]\nuid = "alice"\npat_file = "pat"\n\n'
        f'[[sources]]\nkind = "ponymail"\nbase_url = "{ponymail_sandbox.url}"\n'
        'lists = ["dev@maven.apache.org", "dev@mavne.apache.org", "private@maven.apache.org"]\n\n'
        '[reminders]\nfrom = "Vote Watcher <vote-watcher@apache.org>"\n\n[smtp]\nhost = "127.0.0.1"\n'
    )
    path.chmod(0o600)
    status = await asyncio.to_thread(cli.main, ["check-config", "--config", str(path), "--probe"])
    out = capsys.readouterr().out
    assert status == 2
    assert "dev@maven.apache.org: OK, archived since" in out
    assert "dev@mavne.apache.org: the archive has no mail for this list at all: is the address mistyped?" in out
    assert "private@maven.apache.org: a private list" in out
    assert ponymail_sandbox.request_counts() == {"stats": 3}


async def test_imap_only_discovery_finds_the_differently_worded_vote_by_the_same_rule(
    start_e2e: e2e.StartE2E, dovecot_server: dovecot.DovecotServer, imap_folder: str
) -> None:
    # No archive: the [VOTE] is found among stored mail by watcher.core.votesubject, as the archive client finds it.
    async with start_e2e(scenario(), imap=(dovecot_server, imap_folder)) as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        await asyncio.sleep(1)
        await env.vote_by_email(RELEASE, "Gina Gomez <gina@apache.org>", "+1 (binding)\n")
        await env.until(lambda: env.smtp.received, "the reminder")
    assert recipients(env) == ["gina@apache.org"]
    async with env.store() as db:
        vote = await db.get_vote(RELEASE, 1)
    assert vote is not None and vote.root_message_id == env.vote_of(RELEASE).vote_message_id
