"""`run --once` against an ATR written from the reference's field tables, not the project's sandbox (issue 16).

One running Trusted Vote where a binding PMC member voted +1 only by email, and one ended vote with
three trusted +1 ballots. Cron runs `run --once` three times: both votes are tracked, the email
voter is reminded once at uid@apache.org, the ended vote is resolved once as passed, and nobody
else gets mail. Real SQLite, a real SMTP sink, the list's mbox as the only source.
"""

from __future__ import annotations

import datetime
import email.message
import email.utils
import mailbox
import pathlib
import time

import tests.fixtures.atr_reference as reference
import tests.fixtures.smtp as smtp_fixtures
import watcher.config as config
import watcher.store as store
import watcher.wiring as wiring

LIST = "dev@lantern.apache.org"
PAT = "pat-watcher-4a1f9c"
RUNNING = "lantern-2.1.0"
ENDED = "beacon-1.0.0"
NAMES = {"amira": "Amira Aziz", "bjorn": "Bjorn Berg", "chen": "Chen Wei", "dora": "Dora Dev"}


def mail(sender: str, subject: str, message_id: str, when: datetime.datetime, body: str, parent: str = "") -> bytes:
    """A message as the list delivers it."""
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = LIST
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(when)
    msg["Message-ID"] = f"<{message_id}>"
    if parent:
        msg["In-Reply-To"] = msg["References"] = f"<{parent}>"
    msg["List-Id"] = "<dev.lantern.apache.org>"
    msg.set_content(body)
    return msg.as_bytes()


def receipt(ballot: reference.Ballot, subject: str, vote_id: str) -> bytes:
    """ATR's copy of a ballot on the thread (reference/atr.md §6.5)."""
    body = (
        f"{ballot.choice} (binding) ({ballot.uid}) {ballot.fullname}\n\n"
        f"This email was sent by {ballot.uid}@apache.org on the Apache Trusted Releases platform\n"
    )
    return mail(f"{ballot.uid}@apache.org", f"Re: {subject}", ballot.receipt_message_id, ballot.cast_at, body, vote_id)


def write_config(folder: pathlib.Path, atr_url: str, mbox: pathlib.Path, smtp_port: int) -> pathlib.Path:
    pat = folder / "atr-pat"
    pat.write_text(PAT)
    pat.chmod(0o600)
    path = folder / "config.toml"
    path.write_text(
        f"""
[watcher]
state_dir = "{folder / "state"}"

[atr]
base_url = "{atr_url}"
uid = "watcher"
pat_file = "{pat}"

[[sources]]
kind = "mbox"
name = "dev-lantern"
path = "{mbox}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"

[reminders]
delay = "1s"
from = "vote-watcher <watcher@apache.org>"

[resolve]
grace = "0s"
"""
    )
    return path


async def test_run_once_against_the_reference_atr_reminds_once_and_resolves_once(tmp_path: pathlib.Path) -> None:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    running_start = now - datetime.timedelta(hours=2)
    ended_start = now - datetime.timedelta(hours=80)
    running = reference.ReleaseFacts(
        "lantern", "2.1.0", 4, running_start, [reference.Ballot("bjorn", NAMES["bjorn"], "+1", now)]
    )
    ended_ballots = [
        reference.Ballot(uid, NAMES[uid], "+1", ended_start + datetime.timedelta(hours=1)) for uid in NAMES
    ]
    ended_ballots = ended_ballots[:3]
    ended = reference.ReleaseFacts("beacon", "1.0.0", 2, ended_start, ended_ballots)
    facts = reference.Facts(
        committee_key="lantern",
        committee_name="Lantern",
        members=["amira", "bjorn", "chen", "erin"],
        committers=["amira", "bjorn", "chen", "erin", "dora", "watcher"],
        release_managers=["amira"],
        project_names={"lantern": "Apache Lantern", "beacon": "Apache Beacon"},
        releases=[running, ended],
        pats={"watcher": PAT},
    )
    atr = reference.ReferenceAtr(facts, now)
    mbox_path = tmp_path / "dev-lantern.mbox"
    box = mailbox.mbox(str(mbox_path))
    body = "Please vote.\n\nThe vote is open for 72 hours.\n"
    running_subject, ended_subject = "[VOTE] Release Lantern 2.1.0", "[VOTE] Release Beacon 1.0.0"
    box.add(mail("amira@apache.org", running_subject, "vote-lantern@apache.org", running_start, body))
    box.add(receipt(running.ballots[0], running_subject, "vote-lantern@apache.org"))
    # The binding PMC member who voted by email only, and a non-binding committer.
    chen = "Chen Wei <chen@apache.org>"
    box.add(
        mail(chen, f"Re: {running_subject}", "chen-1@mail.example", now, "+1 (binding)\n", "vote-lantern@apache.org")
    )
    dora = "Dora Dev <dora@apache.org>"
    box.add(mail(dora, f"Re: {running_subject}", "dora-1@mail.example", now, "+1\n", "vote-lantern@apache.org"))
    box.add(mail("amira@apache.org", ended_subject, "vote-beacon@apache.org", ended_start, body))
    for ballot in ended.ballots:
        box.add(receipt(ballot, ended_subject, "vote-beacon@apache.org"))
    box.flush()
    with smtp_fixtures.running_sink() as sink:
        async with atr as atr_url:
            cfg = config.load(write_config(tmp_path, atr_url, mbox_path, sink.port))
            db = await store.open(cfg.watcher.database_url)
            await db.upgrade()
            await db.close()
            for _ in range(3):
                assert await wiring.run(cfg, once=True) == 0
                # Cron's next run: the reminder's delay (1 s) has passed since the thread was stored.
                time.sleep(1.2)
        received = list(sink.received)
    db = await store.open(cfg.watcher.database_url)
    try:
        tracked = {v.release_key: v for v in await db.votes(open_only=False)}
        reminders = await db.mails(RUNNING, 4)
        resolution = await db.get_resolution(ENDED, 2)
    finally:
        await db.close()
    assert set(tracked) == {RUNNING, ENDED}
    assert [(m.voter, m.state) for m in reminders] == [("chen", "sent")]
    assert [r.rcpt_tos for r in received] == [("chen@apache.org",)]
    assert resolution is not None and (resolution.state, resolution.resolution) == ("done", "passed")
    resolves = atr.called("/api/vote/resolve")
    assert resolves == [("POST", "/api/vote/resolve", 200)]
    assert ended.phase == "release_preview"
    assert running.phase == "release_candidate"
    # One JWT for all three runs (it lives 30 minutes; the state database keeps it).
    assert atr.called("/api/jwt/create") == [("POST", "/api/jwt/create", 200)]


async def test_run_once_exits_2_at_once_when_atr_refuses_the_pat(tmp_path: pathlib.Path) -> None:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    running = reference.ReleaseFacts("lantern", "2.1.0", 4, now - datetime.timedelta(hours=2), [])
    facts = reference.Facts(
        committee_key="lantern",
        committee_name="Lantern",
        members=["amira"],
        committers=["amira", "watcher"],
        release_managers=["amira"],
        project_names={"lantern": "Apache Lantern"},
        releases=[running],
        pats={"watcher": "a-pat-rotated-since"},
    )
    atr = reference.ReferenceAtr(facts, now)
    mbox_path = tmp_path / "dev-lantern.mbox"
    box = mailbox.mbox(str(mbox_path))
    body = "Please vote.\n\nThe vote is open for 72 hours.\n"
    box.add(mail("amira@apache.org", "[VOTE] Release Lantern 2.1.0", "v@apache.org", now, body))
    box.flush()
    with smtp_fixtures.running_sink() as sink:
        async with atr as atr_url:
            cfg = config.load(write_config(tmp_path, atr_url, mbox_path, sink.port))
            db = await store.open(cfg.watcher.database_url)
            await db.upgrade()
            await db.close()
            started = time.monotonic()
            assert await wiring.run(cfg, once=True) == 2
            elapsed = time.monotonic() - started
    assert elapsed < 30
    assert atr.called("/api/jwt/create") == [("POST", "/api/jwt/create", 401)]
