"""`vote-watcher demo` (what `make demo` runs): the bundled scenario end to end, as a process, and its JSON report.

The demo runs the real daemon against the sandbox ATR, the sandbox lists.apache.org and an SMTP sink
on loopback, on a clock 7200 times faster than real time: about 40 seconds.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

DEMO_TIMEOUT_S = 100


def test_demo_report(tmp_path: pathlib.Path) -> None:
    """One reminder each to chen and (carried from round 1) ian; two votes passed; harbor held and hana told."""
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--report", str(report_path)],
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
