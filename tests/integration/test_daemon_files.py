"""The daemon with a local mbox as its only source: `run --once --dry-run` as a cron job would run it.

Real sandbox ATR over HTTP, real SQLite, the mbox read by the same reader `tally` uses.
"""

from __future__ import annotations

import email.message
import email.utils
import mailbox
import pathlib
import time

import tests.fixtures.e2e as e2e
import watcher.config as config
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.store as store
import watcher.wiring as wiring

RELEASE = "lantern-2.0.0"


def reply(vote_subject: str, vote_message_id: str, sender: str, body: str) -> bytes:
    """A reply on the vote thread."""
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = "dev@lantern.apache.org"
    msg["Subject"] = f"Re: {vote_subject}"
    msg["Date"] = email.utils.formatdate(time.time(), usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain="mail.example")
    msg["In-Reply-To"] = msg["References"] = f"<{vote_message_id}>"
    msg["List-Id"] = "<dev.lantern.apache.org>"
    msg.set_content(body)
    return msg.as_bytes()


def write_config(folder: pathlib.Path, atr_url: str, mbox: pathlib.Path) -> pathlib.Path:
    pat = folder / "atr-pat"
    pat.write_text(e2e.pat_of(e2e.WATCHER_UID))
    pat.chmod(0o600)
    path = folder / "config.toml"
    path.write_text(
        f"""
[watcher]
state_dir = "{folder / "state"}"
dry_run = true

[atr]
base_url = "{atr_url}"
uid = "{e2e.WATCHER_UID}"
pat_file = "{pat}"

[[sources]]
kind = "mbox"
name = "backfill"
path = "{mbox}"

[reminders]
delay = "1s"
from = "{e2e.REMINDER_FROM}"
"""
    )
    return path


async def test_run_once_from_an_mbox_writes_the_reminder_once(tmp_path: pathlib.Path) -> None:
    ballots = [e2e.ballot(RELEASE, uid) for uid in ("amira", "bjorn")]
    scenario = atr_scenario.from_mapping(e2e.lantern_scenario(ballots=ballots), time.time())
    sandbox = atr_http.AtrSandbox(scenario)
    async with sandbox as atr_url:
        # The archive a list subscriber keeps: ATR's [VOTE] mail and one binding +1 by email.
        release = sandbox.state.releases[RELEASE]
        mbox_path = tmp_path / "dev-lantern.mbox"
        box = mailbox.mbox(str(mbox_path))
        box.add(sandbox.state.announcement(release).raw)
        box.add(reply(release.vote_subject, release.vote_message_id, "Chen Wei <chen@apache.org>", "+1 (binding)\n"))
        box.flush()
        config_path = write_config(tmp_path, atr_url, mbox_path)
        cfg = config.load(config_path)
        db = await store.open(cfg.watcher.database_url)
        await db.upgrade()
        await db.close()
        # The first run reads the mbox and then finds the [VOTE] in it: one run tracks the vote and tallies it.
        assert await wiring.run(cfg, once=True) == 0
        db = await store.open(cfg.watcher.database_url)
        try:
            [tracked] = await db.votes()
            assert tracked.root_message_id
            assert [(v.voter, v.vote) for v in await db.voter_votes(tracked.id)] == [("chen", "+1")]
        finally:
            await db.close()
        # The reminder is due once the delay has passed since the thread was stored.
        time.sleep(1.2)
        assert await wiring.run(cfg, once=True) == 0
        assert await wiring.run(cfg, once=True) == 0
    written = sorted((tmp_path / "state" / "dry-run").glob("*.eml"))
    assert len(written) == 1
    mail = email.message_from_bytes(written[0].read_bytes())
    assert mail["To"].endswith("<chen@apache.org>") or mail["To"] == "chen@apache.org"
    db = await store.open(cfg.watcher.database_url)
    try:
        saved = await db.get_cursor("backfill", "")
        [row] = await db.mails(RELEASE, 1)
    finally:
        await db.close()
    assert saved is not None and saved.position == 2
    # A dry run's row stays in a state of its own: a live run on this state still sends the reminder.
    assert (row.voter, row.state) == ("chen", "dry_run")
