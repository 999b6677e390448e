"""Issue 11's hostile mail against the daemon as a process, under systemd's notify protocol (WATCHDOG_USEC=2 s).

The 100 KB shapes and the phishing reply are in the mbox the daemon replays at start; the 1 MB shapes and a
50 MB mail arrive through Dovecot while it runs, followed by an honest +1 on another vote. WATCHDOG=1 never
stops for 2 s, the other vote's reminder goes out, the hostile mail is flagged (too large), and the 50 MB
mail costs the daemon little memory. Figures: bench/hostile.py.
"""

from __future__ import annotations

import pathlib

import tests.support.dovecot as dovecot
import tests.support.hostile as hostile

FIFTY_MB = "+1\n" + "x" * 50_000_000


async def test_hostile_mail_never_stops_the_watchdog(
    tmp_path: pathlib.Path, dovecot_server: dovecot.DovecotServer
) -> None:
    at_start = {f"{name}@100KB": body for name, body in hostile.shapes(100_000).items()}
    at_start["phishing@200KB"] = hostile.shapes(200_000)["phishing"]
    running = {f"{name}@1MB": body for name, body in hostile.shapes(1_000_000).items()}
    running["huge@50MB"] = FIFTY_MB
    report = await hostile.watchdog_run(tmp_path, dovecot_server, at_start=at_start, while_running=running)
    summary = {k: v for k, v in vars(report).items() if k != "output"}
    assert report.exit_code == 0, report.output[-4000:]
    assert report.pings >= 10, summary
    assert report.longest_gap_s < 2.0, summary
    # The other vote's reminder (its delay is 1 s) is not held up by the hostile mail being read.
    assert report.reminder_after_s is not None and report.reminder_after_s < 30, summary
    assert report.flagged["huge@50MB"] == "too_large", summary
    assert set(report.flagged) == {*at_start, *running}, summary  # every message stored
    assert report.phishing_reminder_bytes is not None and report.phishing_reminder_bytes < 8_000, summary
    assert report.peak_rss_mb < 150, summary
    print(summary)


async def test_a_fifty_megabyte_mail_in_the_mbox_is_flagged_and_never_held_whole(
    tmp_path: pathlib.Path, dovecot_server: dovecot.DovecotServer
) -> None:
    # The mbox path reads a message in pieces and keeps only its limit plus one byte (one 50 MB line
    # was held whole, twice: the daemon peaked at 189 MB).
    report = await hostile.watchdog_run(tmp_path, dovecot_server, at_start={"huge@50MB": FIFTY_MB}, while_running={})
    summary = {k: v for k, v in vars(report).items() if k != "output"}
    assert report.exit_code == 0, report.output[-4000:]
    assert report.flagged == {"huge@50MB": "too_large"}, summary
    assert report.longest_gap_s < 2.0, summary
    assert report.peak_rss_mb < 150, summary
