"""`vote-watcher demo` (what `make demo` runs): the bundled scenario end to end, as a process, and its JSON report.

The demo runs the real daemon against the sandbox ATR, the sandbox lists.apache.org and an SMTP sink
on loopback. `make demo` runs its clock 10800 times faster than real time; here it runs at half that
(SPEED): the story's closest call (dolores casts in ATR half an hour after her email, 90 scenario
minutes before her reminder would be due) then has a whole real second of room on a loaded machine,
not half of one. The story ends 5 scenario hours after the last resolution instead of 7: about 50 seconds.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import watcher

DEMO_TIMEOUT_S = 150
SPEED = 5400
LENGTH = "78h"
BUNDLED = pathlib.Path(watcher.__file__).parent / "examples" / "demo-scenario.toml"


def slower_scenario(folder: pathlib.Path) -> pathlib.Path:
    """The bundled scenario, its clock at SPEED and its end at LENGTH; every step and vote as shipped."""
    text = BUNDLED.read_text(encoding="utf-8")
    for line, replacement in (("speed = 10800", f"speed = {SPEED}"), ('length = "80h"', f'length = "{LENGTH}"')):
        assert text.count(line) == 1, f"{BUNDLED} has no single {line!r} line any more"
        text = text.replace(line, replacement)
    path = folder / "demo-scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_report(tmp_path: pathlib.Path) -> None:
    """One reminder each to chen and (carried from round 1) ian; two votes passed; harbor held and hana told.

    The daemon's info-level journal (`--verbose`, JSON lines on a pipe) holds one line for each of them and no
    traceback; `explain` on the kept state answers for every binding email voter, in words.
    """
    report_path = tmp_path / "report.json"
    state = tmp_path / "state"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "watcher", "demo", "--scenario", str(slower_scenario(tmp_path))),
            *("--report", str(report_path), "--verbose", "--state", str(state)),
        ],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())

    reminders = sorted((r["release"], r["voter"], r["to"], r["vote_seq"]) for r in report["reminders"])
    # dolores cast within the delay; amira and bjorn cast in ATR; ian's round-1 email vote is carried.
    assert reminders == [
        ("fooling-0.3.0", "ian", "ian@apache.org", 7),
        ("lantern-2.0.0", "chen", "chen@apache.org", 1),
    ]
    assert len({r["message_id"] for r in report["reminders"]}) == 2
    assert all(r["message_id"].endswith("@vote-watcher.apache.org>") for r in report["reminders"])
    assert sorted((r["release"], r["resolution"]) for r in report["resolutions"]) == [
        ("fooling-0.3.0", "passed"),
        ("lantern-2.0.0", "passed"),
    ]
    assert [h["release"] for h in report["held"]] == ["harbor-1.1.0"]
    assert "unrecorded binding email votes" in report["held"][0]["reason"]
    assert report["notices"] == [{"to": "hana@apache.org", "release": "harbor-1.1.0"}]
    # hiro cast +1 in ATR, then emailed -1: told once that the ballot is what counts.
    assert report["ballot_notes"] == [{"to": "hiro@apache.org", "release": "harbor-1.1.0"}]
    assert [c["release"] for c in report["carried"]] == ["fooling-0.3.0"]
    assert "ian +1 (carried)" in report["carried"][0]["votes"]
    # The SMTP sink got exactly those four mails, and nothing else.
    assert report["smtp_sink"] == {
        "messages": 4,
        "recipients": ["chen@apache.org", "hana@apache.org", "hiro@apache.org", "ian@apache.org"],
    }

    timeline = done.stdout
    assert "reminder_sent: reminder sent to chen@apache.org" in timeline
    assert "notice_sent: held notice sent to hana@apache.org" in timeline
    assert "resolved: resolved as passed through ATR's API" in timeline
    assert f"Report written to {report_path}" in timeline

    journal = [json.loads(line) for line in done.stderr.splitlines()]
    assert journal and {line["level"] for line in journal} == {"info"}
    assert "Traceback" not in done.stderr and not any("exception" in line for line in journal)
    for reminder in report["reminders"]:
        assert _lines(journal, "reminder.sent", release=reminder["release"], to=reminder["to"]) == [
            {"vote_seq": reminder["vote_seq"], "message_id": reminder["message_id"], "voter": reminder["voter"]}
        ]
    for notice in report["notices"]:
        assert len(_lines(journal, "notice.sent", release=notice["release"], to=notice["to"])) == 1
    for resolution in report["resolutions"]:
        assert len(_lines(journal, "resolution.signalled", release=resolution["release"])) == 1
    for held in report["held"]:
        assert len(_lines(journal, "resolution.held", release=held["release"])) == 1

    why = {
        (release, voter["voter"]): voter
        for release in ("lantern-2.0.0", "harbor-1.1.0", "fooling-0.3.0")
        for voter in _explain(state, release)["voters"]
        if voter["binding"]
    }
    assert set(why) == {
        ("lantern-2.0.0", "chen"),
        ("lantern-2.0.0", "dolores"),
        ("harbor-1.1.0", "hiro"),
        ("fooling-0.3.0", "ian"),
    }
    assert why["lantern-2.0.0", "chen"]["why"].startswith("reminded: sent to chen@apache.org")
    assert why["fooling-0.3.0", "ian"]["why"].startswith("reminded: sent to ian@apache.org")
    assert "within the reminder delay" in why["lantern-2.0.0", "dolores"]["why"]
    assert not why["lantern-2.0.0", "dolores"]["reminded"]
    hiro = why["harbor-1.1.0", "hiro"]["why"]
    assert "hiro has a ballot in ATR (+1" in hiro and "the email says -1" in hiro


def _lines(journal: list[dict[str, Any]], event: str, **fields: object) -> list[dict[str, Any]]:
    """The journal's lines of `event` with these fields; each reduced to its vote_seq, message_id and voter."""
    found = [line for line in journal if line["event"] == event and all(line.get(k) == v for k, v in fields.items())]
    return (
        [{k: line.get(k) for k in ("vote_seq", "message_id", "voter")} for line in found]
        if event.startswith("reminder")
        else found
    )


def _explain(state: pathlib.Path, release: str) -> Any:
    argv = [sys.executable, "-m", "watcher", "explain", release, "--config", str(state / "config.toml")]
    done = subprocess.run([*argv, "--format", "json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
