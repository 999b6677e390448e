"""Classifier throughput: replays the corpus's November stream through the daemon's path.

Every message is routed on its headers (`message.peek`); only messages that open or belong
to a vote thread are parsed in full and classified; each thread is then tallied. Prints
`name: value unit` lines. The stdlib figure parses the same bytes with `email` alone, for
the ratio.
"""

from __future__ import annotations

import email
import email.policy
import pathlib
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import watcher.core.castings as castings
import watcher.core.identity as identity
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.core.threads as threads
import watcher.sources.archive as archive

STREAM = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared"
    / "asf-vote-corpus"
    / "stream"
    / "maven-dev-2017-11-listsao.mbox"
)
REPLAYS = 20
RUNS = 5


def replay(raws: Sequence[bytes], people: roster.Roster) -> int:
    """One pass over the stream as the daemon would see it; returns the number of votes found."""
    matcher = threads.ThreadMatcher()
    members: dict[str, list[message.Message]] = {}
    for raw in raws:
        env = message.peek(raw)
        if threads.is_vote_call(env):
            matcher.track(env.message_id, env.subject)
        root = matcher.match(env)
        if root is None:
            continue
        msg = message.parse(raw)
        castings.read(msg.text)
        identity.identify(msg, people)
        members.setdefault(root, []).append(msg)
    found = 0
    for thread in members.values():
        found += len(tally.tally(thread, people, tally.Options(committee="maven")).votes)
    return found


def stdlib_only(raws: Sequence[bytes], _: roster.Roster) -> int:
    """The stdlib `email` parse of every message, nothing else."""
    for raw in raws:
        email.message_from_bytes(raw, policy=email.policy.compat32)
    return 0


def rate(work: Callable[[Sequence[bytes], roster.Roster], int], raws: Sequence[bytes]) -> float:
    """Median messages per second over several runs of REPLAYS replays."""
    people = roster.Roster()
    rates = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(REPLAYS):
            work(raws, people)
        rates.append(len(raws) * REPLAYS / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    """Print the figures."""
    if not STREAM.exists():
        print(f"corpus stream not found: {STREAM}", file=sys.stderr)
        return 1
    raws = list(archive.iter_raw(STREAM))
    print(f"stream_messages: {len(raws)} messages")
    print(f"votes_found_per_replay: {replay(raws, roster.Roster())} votes")
    classify = rate(replay, raws)
    stdlib = rate(stdlib_only, raws)
    print(f"parse_classify_msgs_per_s: {classify:.0f} msgs/s")
    print(f"stdlib_parse_only_msgs_per_s: {stdlib:.0f} msgs/s")
    print(f"parse_classify_to_stdlib_ratio: {classify / stdlib:.2f} x")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak_rss_mb: {peak_kb / 1024:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
