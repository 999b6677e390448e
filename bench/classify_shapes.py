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

import watcher.core.castings as castings
import watcher.core.message as message

RUNS = 3
SIZES = {"100KB": 100_000, "1MB": 1_000_000}
SEPARATOR = "From jane@apache.org Mon Jan  1 00:00:00 2024\n"
VOTE = (
    "From: Rita Manager <rita@apache.org>\n"
    "Subject: [VOTE] Release Apache Foo 1.0\n"
    "Message-ID: <vote@example.org>\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
    "List-Id: <dev.foo.apache.org>\n\n"
    "Please vote.\n"
)
HEADERS = (
    "From: Jane Doe <jane@apache.org>\n"
    "To: dev@foo.apache.org\n"
    "Subject: Re: [VOTE] Release Apache Foo 1.0\n"
    "Message-ID: <hostile@example.org>\n"
    "In-Reply-To: <vote@example.org>\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
    "List-Id: <dev.foo.apache.org>\n"
    "Content-Type: {content_type}; charset=utf-8\n\n"
)
# The child reports its own peak RSS (kB) on its last stderr line: VmHWM, not ru_maxrss, which Linux
# carries across exec from the forking parent (this script, holding a 50 MB body, would inflate it).
CHILD = (
    "import pathlib, sys\n"
    "import watcher.cli as cli\n"
    "code = cli.main(sys.argv[1:])\n"
    "status = pathlib.Path('/proc/self/status').read_text()\n"
    "print(next(line.split()[1] for line in status.splitlines() if line.startswith('VmHWM:')), file=sys.stderr)\n"
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
# Whole replies (headers and body) whose shape is in the MIME structure or the header block.
RAW_SHAPES: dict[str, Callable[[int], str]] = {
    "mime_parts": lambda size: (
        'Content-Type: multipart/mixed; boundary="b"\n\n' + repeat("--b\nContent-Type: text/plain\n\n+1\n", size)
    ),
    "header_lines": lambda size: repeat("X-Padding: b\n", size) + "\n+1\n",
}
HTML_SHAPES: dict[str, Callable[[int], str]] = {
    "html_nested_blockquotes": lambda size: "+1" + repeat("<blockquote>x", size),
    "html_paragraphs": lambda size: repeat("<p>+1 (binding)</p>", size),
}


def thread(reply_body: str, content_type: str = "text/plain") -> str:
    """An mbox: the [VOTE] call, then one reply with this body."""
    reply = HEADERS.format(content_type=content_type) + reply_body + "\n"
    return f"{SEPARATOR}{VOTE}\n{SEPARATOR}{reply}"


def tally_once(*paths: pathlib.Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one `vote-watcher tally PATH...` process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "tally", "--quiet", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"tally of {paths} exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed, int(done.stderr.strip().splitlines()[-1]) / 1024


def measure(name: str, path: pathlib.Path) -> None:
    """Print the median seconds and the largest peak RSS of RUNS tallies."""
    measure_sources(name, path)


def measure_sources(name: str, *paths: pathlib.Path) -> None:
    """Print the median seconds and the largest peak RSS of RUNS tallies of these sources."""
    runs = [tally_once(*paths) for _ in range(RUNS)]
    print(f"{name}_seconds: {statistics.median(r[0] for r in runs):.2f} s")
    print(f"{name}_peak_rss: {max(r[1] for r in runs):.0f} MB")


def measure_parse() -> None:
    """Print the median seconds of `message.parse` and `message.peek` on a 10 MB multipart mail, in this process."""
    line = "x" * 76 + "\n"
    body = "--b\nContent-Type: text/plain\n\n+1\n" + line * (10 * 1024 * 1024 // len(line))
    raw = (HEADERS.format(content_type='multipart/mixed; boundary="b"') + body).encode()
    for name, call in (("parse", message.parse), ("peek", message.peek)):
        runs = []
        for _ in range(RUNS):
            started = time.perf_counter()
            call(raw)
            runs.append(time.perf_counter() - started)
        print(f"message_{name}_10MB_seconds: {statistics.median(runs):.3f} s")


def main() -> int:
    """Print the figures."""
    measure_parse()
    with tempfile.TemporaryDirectory() as scratch:
        folder = pathlib.Path(scratch)
        baseline = folder / "baseline.mbox"
        baseline.write_text(thread("+1"), encoding="utf-8")
        measure("one_line_vote", baseline)
        shapes = [(name, make, "text/plain") for name, make in SHAPES.items()]
        shapes += [(name, make, "text/html") for name, make in HTML_SHAPES.items()]
        for shape, make, content_type in shapes:
            for label, size in SIZES.items():
                body = make(size)
                path = folder / f"{shape}-{label}.mbox"
                path.write_text(thread(body, content_type), encoding="utf-8")
                measure(f"{shape}_{label}", path)
                if content_type == "text/plain":
                    print(f"{shape}_{label}_lines_read: {castings.read(body).lines_read} lines")
        for shape, make in RAW_SHAPES.items():
            for label, size in SIZES.items():
                path = folder / f"{shape}-{label}.mbox"
                reply = HEADERS.split("Content-Type:", maxsplit=1)[0] + make(size) + "\n"
                path.write_text(f"{SEPARATOR}{VOTE}\n{SEPARATOR}{reply}", encoding="utf-8")
                measure(f"{shape}_{label}", path)
        big_body = "+1\n" * (50_000_000 // 3)
        vote = folder / "vote.eml"
        vote.write_text(VOTE, encoding="utf-8")
        big = folder / "big.eml"
        big.write_text(HEADERS.format(content_type="text/plain") + big_body, encoding="utf-8")
        measure_sources("plus_one_lines_50MB_eml", vote, big)
        big.unlink()
        mbox = folder / "big.mbox"
        mbox.write_text(thread(big_body), encoding="utf-8")
        measure("plus_one_lines_50MB_mbox", mbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
