"""ATR requests per hour in the steady state, with 50 running votes (target: under 50, a tenth of ATR's 500).

The sandbox ATR serves 50 running trusted votes; discovery polls it through the real client over
loopback HTTP at its default interval, with default budget and cache lifetimes, on a simulated
clock. After a warm-up long enough for every cache to have expired and been refreshed once, the
requests in the sandbox's log are counted over a day of simulated time.

Prints `name: value unit` lines. Run: `.venv/bin/python bench/atr.py`.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
from typing import Final

import pydantic

import watcher.atr.client as atr_client
import watcher.atr.rosters as rosters
import watcher.discovery as discovery
import watcher.log as log_setup
import watcher.message as message
import watcher.sandbox.atr as sandbox_atr
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.clock as sandbox_clock

VOTES: Final = 50
UID: Final = "watcher"
PAT: Final = "pat-bench-5f0c2a9e"
HOUR: Final = 3600.0
WARM_UP_HOURS: Final = 30
MEASURED_HOURS: Final = 24
START: Final = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)


class Archive:
    """The [VOTE] mails the sandbox posts, found by list and subject (the archive's cost is not ATR's)."""

    def __init__(self) -> None:
        self.mails: dict[tuple[str, str], message.Message] = {}

    def add(self, raw: bytes, list_address: str) -> None:
        parsed = message.parse(raw)
        self.mails.setdefault((list_address, parsed.subject), parsed)

    async def find_vote_thread(
        self, list_address: str, subject: str, project: str, version: str, since: datetime.datetime
    ) -> discovery.FoundThread | None:
        found = self.mails.get((list_address, subject))
        if found is None:
            return None
        return discovery.FoundThread(found.message_id, found.subject, found.text, found.date)


async def measure() -> dict[str, float]:
    clock = sandbox_clock.ManualClock(START)
    scenario = atr_scenario.from_mapping(atr_scenario.synthetic(VOTES, uid=UID, pat=PAT), clock())
    archive = Archive()
    sandbox = sandbox_atr.AtrSandbox(scenario, clock=clock, on_receipt=archive.add)
    async with sandbox as url:
        await sandbox.announce_votes()
        client = atr_client.AtrClient(url, UID, pydantic.SecretStr(PAT), clock=clock, sleep=clock.sleep)
        async with client:
            finder = discovery.Discovery(client, archive, clock=clock)
            await finder.poll()
            first_poll = sandbox.count()
            polls_per_hour = round(HOUR / discovery.DEFAULT_INTERVAL)
            for _ in range(WARM_UP_HOURS * polls_per_hour):
                await clock.sleep(discovery.DEFAULT_INTERVAL)
                await finder.poll()
            per_hour = []
            for _ in range(MEASURED_HOURS):
                before = sandbox.count()
                for _ in range(polls_per_hour):
                    await clock.sleep(discovery.DEFAULT_INTERVAL)
                    await finder.poll()
                per_hour.append(sandbox.count() - before)
    if len(finder.votes) != VOTES or any(v.thread is None for v in finder.votes.values()):
        raise RuntimeError("discovery did not track every vote with its thread")
    return {
        "first_poll": first_poll,
        "mean": sum(per_hour) / len(per_hour),
        "max": max(per_hour),
        "idle_poll": min(per_hour) / polls_per_hour,
        "exchanges": sandbox.count("/api/jwt"),
    }


def main() -> int:
    """Run the measurement and print the figures."""
    log_setup.configure(level="warning")
    figures = asyncio.run(measure())
    print(f"atr_requests_per_hour_50_votes: {figures['mean']:.1f} requests/h")
    print(f"atr_requests_worst_hour_50_votes: {figures['max']:.0f} requests/h")
    print(f"atr_requests_per_idle_poll_50_votes: {figures['idle_poll']:.1f} requests")
    print(f"atr_first_poll_requests_50_votes: {figures['first_poll']:.0f} requests")
    print(f"atr_jwt_exchanges_discovery: {figures['exchanges']:.0f} exchanges")
    print(f"atr_discovery_poll_interval: {discovery.DEFAULT_INTERVAL:.0f} s")
    print(f"atr_committee_cache_ttl: {rosters.DEFAULT_TTL / HOUR:.0f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
