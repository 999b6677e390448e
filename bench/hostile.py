"""Issue 11's hostile shapes: `vote-watcher tally` time and memory, and the daemon's watchdog under them.

For each shape at 100 KB and 1 MB (and a 50 MB body), `vote-watcher tally FILE --format json` runs as a
process of its own: its wall time and peak RSS are printed (a run past TALLY_LIMIT_S is stopped and
printed as such). Then the daemon runs as a process under systemd's notify protocol with
WATCHDOG_USEC=2000000 (tests/support/hostile.py): the 100 KB shapes and the phishing reply in its
mbox at start, the 1 MB shapes and the 50 MB mail through Dovecot while it runs, an honest +1 on another
vote after them; printed are the longest gap between WATCHDOG=1 pings, the other vote's reminder latency,
what was flagged, and the peak RSS of the daemon and of its worker process. `name: value unit` lines.
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Final

# The server control the tests use lives in tests/support/ (not part of the package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tests.support.dovecot as dovecot
import tests.support.hostile as hostile

TALLY_LIMIT_S: Final = 30.0
SIZES: Final = {"100KB": 100_000, "1MB": 1_000_000}
HEADERS: Final = (
    "From: Chen Wei <chen@apache.org>\nTo: dev@lantern.apache.org\nSubject: Re: [VOTE] Release Apache Lantern 2.0.0\n"
    "Message-ID: <hostile@mail.example>\nIn-Reply-To: <vote@mail.example>\nReferences: <vote@mail.example>\n"
    "Date: Thu, 03 Dec 2026 12:00:00 +0000\nList-Id: <dev.lantern.apache.org>\n\n"
)
# The [VOTE] that the hostile reply answers: `tally` refuses sources without one (exit 2), so each run gets it.
VOTE: Final = (
    "From: Amira Haddad <amira@apache.org>\nTo: dev@lantern.apache.org\nSubject: [VOTE] Release Apache Lantern 2.0.0\n"
    "Message-ID: <vote@mail.example>\nDate: Thu, 03 Dec 2026 09:00:00 +0000\nList-Id: <dev.lantern.apache.org>\n\n"
    "Please vote on releasing Apache Lantern 2.0.0.\n"
)


# The child reports its own VmHWM: ru_maxrss of a child counts the parent's pages from before its exec.
_TALLY_CHILD: Final = """
import sys, watcher.cli as cli
try:
    code = cli.main(sys.argv[1:])
finally:
    peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    sys.stderr.write(peak[0] if peak else "")
sys.exit(code)
"""


def tally_once(vote: pathlib.Path, path: pathlib.Path) -> tuple[float | None, float]:
    """Seconds (None when stopped at the limit) and peak RSS in MB of one `vote-watcher tally` of the thread."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _TALLY_CHILD, "tally", "--quiet", str(vote), str(path), "--format", "json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=TALLY_LIMIT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, 0.0
    seconds = time.monotonic() - started
    if done.returncode != 0:
        # A tally that did not run to its end measures nothing: say so rather than print its time.
        raise SystemExit(f"tally of {path.name} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    peak = [line for line in done.stderr.decode(errors="replace").splitlines() if line.startswith("VmHWM:")]
    return seconds, int(peak[-1].split()[1]) / 1024 if peak else 0.0


def tally_figures(folder: pathlib.Path) -> None:
    """One line per shape and size (the files are written first, so that this process stays small)."""
    vote = folder / "vote.eml"
    vote.write_text(VOTE)
    paths: list[pathlib.Path] = []
    for label, size in SIZES.items():
        for name, body in hostile.shapes(size).items():
            paths.append(folder / f"{name}_{label}.eml")
            paths[-1].write_text(HEADERS + body)
    paths.append(folder / "huge_50MB.eml")
    paths[-1].write_text(HEADERS + "+1\n" + "x" * 50_000_000)
    for path in paths:
        seconds, rss = tally_once(vote, path)
        shown = f">{TALLY_LIMIT_S:g} s (stopped)" if seconds is None else f"{seconds:.2f} s"
        print(f"tally_{path.stem}_seconds: {shown}", flush=True)
        print(f"tally_{path.stem}_peak_rss: {'-' if seconds is None else f'{rss:.0f}'} MB", flush=True)
        path.unlink()


async def daemon_figures(folder: pathlib.Path) -> None:
    """One run of the daemon receiving every shape; its watchdog, reminder latency, flags and memory."""
    server = dovecot.start()
    try:
        at_start = {f"{name}@100KB": body for name, body in hostile.shapes(100_000).items()}
        at_start["phishing@200KB"] = hostile.shapes(200_000)["phishing"]
        running = {f"{name}@1MB": body for name, body in hostile.shapes(1_000_000).items()}
        running["huge@50MB"] = "+1\n" + "x" * 50_000_000
        report = await hostile.watchdog_run(folder, server, at_start=at_start, while_running=running)
    finally:
        dovecot.cleanup(server)
    print(f"daemon_ready_after: {report.ready_after_s:.2f} s")
    print(f"daemon_watchdog_longest_gap: {report.longest_gap_s:.2f} s (WATCHDOG_USEC=2000000, {report.pings} pings)")
    latency = "none" if report.reminder_after_s is None else f"{report.reminder_after_s:.1f} s"
    print(f"daemon_other_vote_reminder_after: {latency} (delay 1 s)")
    print(f"daemon_phishing_reminder_size: {report.phishing_reminder_bytes} bytes")
    for name, flag in report.flagged.items():
        print(f"daemon_flag_{name}: {flag or 'read'}")
    print(f"daemon_peak_rss: {report.peak_rss_mb:.0f} MB")
    print(f"daemon_worker_peak_rss: {report.worker_peak_rss_mb:.0f} MB")
    print(f"daemon_exit_code: {report.exit_code}")


def main() -> int:
    """Print the figures."""
    with tempfile.TemporaryDirectory(prefix="vw-bench-hostile-") as scratch:
        folder = pathlib.Path(scratch)
        tally_figures(folder)
        asyncio.run(daemon_figures(folder / "daemon"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
