"""Progress bars: drawn on a terminal (a real pseudo-terminal here), silent everywhere else."""

from __future__ import annotations

import io
import os
import pathlib
import pty
import re
import subprocess
import sys
import termios

import pytest

import watcher.services.progress as progress

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "watcher" / "examples"
ROSTER = EXAMPLES / "example-roster.toml"
MBOX = EXAMPLES / "example-vote.mbox"
EXAMPLE_MESSAGES = 10
ERASE = "\r\x1b[K"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TerminalBuffer(io.StringIO):
    """A stream that says it is a terminal, to watch what a bar writes and when."""

    def isatty(self) -> bool:
        return True


# --- render (pure) ----------------------------------------------------------------------------


def test_render_with_a_total_shows_percent_bar_count_rate_and_time_left() -> None:
    line = progress.render("reading", 250, 1000, 5.0, 80)
    assert line.startswith("reading  25% [")
    assert "250/1,000" in line
    assert "50/s" in line
    assert "eta 0:15" in line
    bar = re.search(r"\[(#*)(-*)\]", line)
    assert bar is not None
    filled, empty = len(bar.group(1)), len(bar.group(2))
    assert filled == (filled + empty) // 4
    assert len(line) == 79


@pytest.mark.parametrize("width", [20, 40, 60, 80, 200])
def test_render_never_fills_the_last_column(width: int) -> None:
    for done, total in ((0, 10), (5, 10), (10, 10), (123_456, 1_000_000), (7, None)):
        assert len(progress.render("scanning", done, total, 3.0, width)) <= width - 1


def test_render_on_a_narrow_terminal_drops_the_bar_but_keeps_the_figures() -> None:
    line = progress.render("reading", 5, 10, 1.0, 45)
    assert "[" not in line
    assert line.startswith("reading  50%")


def test_render_without_a_total_counts_and_shows_time_spent() -> None:
    assert progress.render("reading", 1234, None, 3723.0, 80) == "reading  1,234  0/s  1:02:03"


def test_render_at_the_start_has_no_estimate_yet() -> None:
    assert "eta --:--" in progress.render("reading", 0, 10, 0.0, 80)


def test_render_caps_a_count_past_the_total() -> None:
    assert "10/10" in progress.render("reading", 12, 10, 1.0, 80)


# --- the bar ----------------------------------------------------------------------------------


def test_nothing_is_written_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress.Bar("reading", 100, stream=stream) as bar:
        for _ in range(100):
            bar.advance()
    assert not bar.enabled
    assert stream.getvalue() == ""
    assert list(progress.track(range(5), "reading", 5, stream=stream)) == [0, 1, 2, 3, 4]
    assert stream.getvalue() == ""


def test_a_bar_on_a_terminal_redraws_at_most_ten_times_a_second_and_is_erased_at_the_end() -> None:
    stream = TerminalBuffer()
    clock = FakeClock()
    with progress.Bar("reading", 100, stream=stream, clock=clock) as bar:
        for _ in range(50):
            clock.now += 0.01
            bar.advance()
    frames = stream.getvalue().split(ERASE)
    # The opening frame, one per 0.1 s of the 0.5 s of work, and the final erase (an empty frame).
    assert frames[0] == ""
    assert frames[-1] == ""
    drawn = frames[1:-1]
    assert 5 <= len(drawn) <= 6
    assert drawn[0].startswith("reading   0%")
    assert all(frame.startswith("reading") for frame in drawn)
    assert "/100" in drawn[-1]


def test_track_yields_every_item_and_erases_even_when_stopped_early() -> None:
    stream = TerminalBuffer()
    items = progress.track(iter(range(1000)), "scanning", 1000, stream=stream)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert stream.getvalue().startswith(ERASE + "scanning")
    assert stream.getvalue().endswith(ERASE)


def test_a_closed_terminal_stops_the_bar_without_failing_the_work() -> None:
    stream = TerminalBuffer()
    clock = FakeClock()
    with progress.Bar("reading", 10, stream=stream, clock=clock) as bar:
        stream.close()
        clock.now += 1
        bar.advance()
        assert not bar.enabled


def test_a_real_terminal_is_shown_and_a_closed_one_is_not() -> None:
    controller, terminal = pty.openpty()
    stream = os.fdopen(terminal, "w")
    try:
        assert progress.shown(stream)
    finally:
        stream.close()
        os.close(controller)
    assert not progress.shown(stream)


# --- `vote-watcher tally` ---------------------------------------------------------------------


def tally(*args: str, stderr: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "watcher", "tally", "--roster", str(ROSTER), *args]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, timeout=60, check=False, env=env)


def run_with_stderr_on_a_terminal(
    *args: str, columns: int = 60, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[bytes], str]:
    """Run `tally` with stderr on a pseudo-terminal of the given width; return the run and what the terminal got."""
    controller, terminal = pty.openpty()
    termios.tcsetwinsize(terminal, (24, columns))
    try:
        done = tally(*args, stderr=terminal, env=env)
        os.close(terminal)
        terminal = -1
        received = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                # EIO: every writer has closed the terminal and it is drained.
                break
            if not chunk:
                break
            received += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    return done, received.decode()


def test_tally_writes_nothing_extra_to_stderr_when_it_is_not_a_terminal() -> None:
    done = tally(str(MBOX), stderr=subprocess.PIPE)
    assert done.returncode == 0
    assert done.stderr == b""
    assert b"The vote passes." in done.stdout


def test_tally_draws_a_bar_on_a_terminal_with_the_archive_total_and_keeps_stdout_clean() -> None:
    done, screen = run_with_stderr_on_a_terminal(str(MBOX))
    assert done.returncode == 0
    assert done.stdout.startswith(b"Thread: [VOTE] Release Apache Lantern 1.4.0")
    assert b"\x1b" not in done.stdout
    frames = [frame for frame in screen.replace("\r\n", "\n").split(ERASE) if frame]
    assert frames, f"no bar drawn: {screen!r}"
    # Without --thread the sources are scanned for their one vote thread first, then it is read.
    assert frames[0].startswith("scanning   0% [")
    assert any(frame.startswith("reading ") for frame in frames)
    assert f"/{EXAMPLE_MESSAGES}" in frames[0]
    assert all(len(frame) <= 59 for frame in frames)
    assert screen.endswith(ERASE)


def test_tally_quiet_draws_no_bar_on_a_terminal() -> None:
    done, screen = run_with_stderr_on_a_terminal("--quiet", str(MBOX))
    assert done.returncode == 0
    assert b"The vote passes." in done.stdout
    assert screen == ""


def test_tally_with_no_color_draws_the_bar_without_escape_sequences() -> None:
    done, screen = run_with_stderr_on_a_terminal(str(MBOX), env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0
    assert "scanning " in screen
    assert "\x1b" not in screen


def test_tally_with_thread_shows_the_scan_and_the_read(tmp_path: pathlib.Path) -> None:
    done, screen = run_with_stderr_on_a_terminal("--thread", "[VOTE] Release Apache Lantern 1.4.0", str(MBOX))
    assert done.returncode == 0
    assert b"The vote passes." in done.stdout
    assert "scanning   0% [" in screen
    assert "reading   0% [" in screen
    assert f"/{EXAMPLE_MESSAGES}" in screen
