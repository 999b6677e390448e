"""A progress bar on stderr for long command-line work, drawn only when stderr is a terminal.

Piped, redirected or under systemd, nothing is written at all, so logs and scripted output stay clean.
The line is redrawn in place at most ten times a second and erased when the work ends, so a terminal
shows only the command's own output afterwards. ASCII only: any terminal encoding can show it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Final, TextIO, TypeVar

T = TypeVar("T")

REDRAW_SECONDS: Final = 0.1
DEFAULT_WIDTH: Final = 80
MIN_BAR_WIDTH: Final = 10
_ERASE_LINE: Final = "\r\x1b[K"


def shown(stream: TextIO | None = None) -> bool:
    """Whether a bar on this stream (default stderr) would be drawn: only when it is a terminal."""
    target = sys.stderr if stream is None else stream
    try:
        return target.isatty()
    except (ValueError, OSError):
        # A closed or detached stream is no terminal.
        return False


def render(label: str, done: int, total: int | None, elapsed: float, width: int) -> str:
    """One line of progress, at most `width - 1` characters (pure).

    With a total: label, percent, bar, count, rate and time left. Without: label, count, rate, time spent.
    """
    rate = done / elapsed if elapsed > 0 else 0.0
    if total is None or total <= 0:
        return _fit(f"{label}  {done:,}  {rate:,.0f}/s  {_clock(elapsed)}", width)
    shown_done = min(done, total)
    fraction = shown_done / total
    left = (total - shown_done) / rate if rate > 0 else None
    eta = f"eta {_clock(left)}" if left is not None else "eta --:--"
    head = f"{label} {fraction:4.0%} "
    tail = f" {shown_done:,}/{total:,}  {rate:,.0f}/s  {eta}"
    bar_width = width - 1 - len(head) - len(tail) - 2
    if bar_width < MIN_BAR_WIDTH:
        return _fit(head + tail.lstrip(), width)
    filled = int(bar_width * fraction)
    return f"{head}[{'#' * filled}{'-' * (bar_width - filled)}]{tail}"


class Bar:
    """A progress bar for `total` steps (None when unknown); a no-op unless the stream is a terminal.

    Use as a context manager, call `advance()` per step; the line is erased on exit.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self._enabled = shown(self._stream)
        # NO_COLOR (no-color.org) and TERM=dumb: no escape sequences; the line is blanked with spaces instead.
        plain = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
        self._erase = "\r" + " " * (_width(self._stream) - 1) + "\r" if plain else _ERASE_LINE
        self._clock = clock
        self._started = clock()
        self._last_draw: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether this bar draws anything."""
        return self._enabled

    def __enter__(self) -> Bar:
        self._draw(self._clock())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def advance(self, steps: int = 1) -> None:
        """Count `steps` more done; redraw when the last drawing is old enough."""
        self.done += steps
        if not self._enabled:
            return
        now = self._clock()
        if self._last_draw is None or now - self._last_draw >= REDRAW_SECONDS:
            self._draw(now)

    def close(self) -> None:
        """Erase the line if anything was drawn; the bar draws nothing more."""
        if self._enabled and self._last_draw is not None:
            self._write(self._erase)
        self._enabled = False

    def _draw(self, now: float) -> None:
        if not self._enabled:
            return
        line = render(self.label, self.done, self.total, now - self._started, _width(self._stream))
        self._write(self._erase + line)
        self._last_draw = now

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            # The terminal went away (hung up, closed): progress is not worth failing the work for.
            self._enabled = False


def track(items: Iterable[T], label: str, total: int | None = None, *, stream: TextIO | None = None) -> Iterator[T]:
    """Yield the items, advancing a bar per item; the bar is erased when iteration ends or stops."""
    with Bar(label, total, stream=stream) as bar:
        for item in items:
            yield item
            bar.advance()


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_WIDTH
    except (OSError, ValueError):
        return DEFAULT_WIDTH


def _fit(line: str, width: int) -> str:
    return line[: max(width - 1, 0)]


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
