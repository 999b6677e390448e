"""CPU per re-tally of a 50-reply thread: parsing every message again (before) vs combining stored readings (after).

"Before" is what a re-tally did until readings were stored: parse each raw message and tally. "After" is
what it does now: decode each stored reading (the JSON text the store keeps) and combine. Medians of runs.
"""

from __future__ import annotations

import statistics
import time
from typing import Final

import watcher.core.digest as digest
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.store.readings as readings

REPLIES: Final = 50
RUNS: Final = 15
PEOPLE: Final = roster.Roster(
    committees={"foo": roster.Committee("foo", members=frozenset(f"u{i}" for i in range(0, REPLIES, 2)))}
)
QUOTE: Final = "".join(f"> line {i} of the quoted release announcement and its checksums\n" for i in range(60))


def thread() -> list[bytes]:
    root = b"From: RM <rm@apache.org>\nMessage-ID: <root@x>\nSubject: [VOTE] Release Foo 1.0\n\nPlease vote.\n"
    raws = [root]
    for i in range(REPLIES):
        body = f"+1 (binding)\n\nChecked signatures and the build.\n\nOn Mon, RM wrote:\n{QUOTE}"
        head = f"From: U{i} <u{i}@apache.org>\nMessage-ID: <r{i}@x>\nIn-Reply-To: <root@x>\n"
        raws.append((head + "Subject: Re: [VOTE] Release Foo 1.0\n\n" + body).encode())
    return raws


def cpu(work: object) -> float:
    start = time.process_time()
    assert callable(work)
    work()
    return time.process_time() - start


def main() -> None:
    """Print the median CPU milliseconds of each way (`name: value unit`), and their ratio."""
    raws = thread()
    stored = [readings.encode(digest.parse(raw)) for raw in raws]
    options = tally.Options(committee="foo")

    def before() -> tally.Tally:
        return tally.tally([message.parse(raw) for raw in raws], PEOPLE, options)

    def after() -> tally.Tally:
        found = [readings.decode(text) for text in stored]
        return tally.combine([read for read in found if read is not None], PEOPLE, options)

    assert before() == after()
    parse_ms = statistics.median(cpu(before) for _ in range(RUNS)) * 1000
    combine_ms = statistics.median(cpu(after) for _ in range(RUNS)) * 1000
    print(f"retally_{REPLIES}_replies_cpu_ms_parsing_before: {parse_ms:.2f} ms", flush=True)
    print(f"retally_{REPLIES}_replies_cpu_ms_from_readings_after: {combine_ms:.2f} ms", flush=True)
    print(f"retally_{REPLIES}_replies_cpu_ratio: {parse_ms / combine_ms:.1f} x", flush=True)


if __name__ == "__main__":
    main()
