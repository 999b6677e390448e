"""Hostile message shapes through `vote-watcher tally`: seconds, peak RSS and lines read.

For each shape of issue 11 at 100 KB and 1 MB, a one-message .eml file is tallied by a fresh
`vote-watcher tally` process (median of RUNS); its peak RSS is the child's own maximum. The
classifier's operation count (lines of the voter's text its rules looked at, bounded by
`castings.OWN_LINES`) is printed beside it. Then a 50 MB message, as .eml and as mbox.
Prints `name: value unit` lines.
"""

from __future__ import annotations

import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import watcher.castings as castings

RUNS = 3
SIZES = {"100KB": 100_000, "1MB": 1_000_000}
HEADERS = (
    "From: Jane Doe <jane@apache.org>\n"
    "To: dev@foo.apache.org\n"
    "Subject: Re: [VOTE] Release Apache Foo 1.0\n"
    "Message-ID: <hostile@example.org>\n"
    "In-Reply-To: <vote@example.org>\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
    "List-Id: <dev.foo.apache.org>\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
)
# The child reports its own peak RSS (kB on Linux) on its last stderr line.
CHILD = (
    "import resource, sys\n"
    "import watcher.cli as cli\n"
    "code = cli.main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def repeat(unit: str, size: int, prefix: str = "") -> str:
    """`prefix` then `unit` repeated to `size` characters."""
    return prefix + (unit * (size // len(unit) + 1))[:size]


SHAPES: dict[str, Callable[[int], str]] = {
    "plus_one_lines": lambda size: repeat("+1\n", size),
    "tally_words": lambda size: repeat("votes +1 tally so far count result from binding ", size),
    "binding_labels": lambda size: repeat("(binding) ", size, "+1 "),
    "result_line": lambda size: repeat(": (", size, "+1 "),
    "attribution_lines": lambda size: repeat("\n\n 写道：", size, "> q\n"),
}


def tally_once(path: pathlib.Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one `vote-watcher tally PATH` process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "tally", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"tally of {path} exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed, int(done.stderr.strip().splitlines()[-1]) / 1024


def measure(name: str, path: pathlib.Path) -> None:
    """Print the median seconds and the largest peak RSS of RUNS tallies."""
    runs = [tally_once(path) for _ in range(RUNS)]
    print(f"{name}_seconds: {statistics.median(r[0] for r in runs):.2f} s")
    print(f"{name}_peak_rss: {max(r[1] for r in runs):.0f} MB")


def main() -> int:
    """Print the figures."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = pathlib.Path(scratch)
        baseline = folder / "baseline.eml"
        baseline.write_text(HEADERS + "+1\n", encoding="utf-8")
        measure("one_line_vote", baseline)
        for shape, make in SHAPES.items():
            for label, size in SIZES.items():
                body = make(size)
                path = folder / f"{shape}-{label}.eml"
                path.write_text(HEADERS + body + "\n", encoding="utf-8")
                measure(f"{shape}_{label}", path)
                print(f"{shape}_{label}_lines_read: {castings.read(body).lines_read} lines")
        big = folder / "big.eml"
        big.write_text(HEADERS + "+1\n" * (50_000_000 // 3), encoding="utf-8")
        measure("plus_one_lines_50MB_eml", big)
        mbox = folder / "big.mbox"
        with mbox.open("wb") as handle:
            handle.write(b"From jane@apache.org Mon Jan  1 00:00:00 2024\n")
            handle.write(big.read_bytes())
        big.unlink()
        measure("plus_one_lines_50MB_mbox", mbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
