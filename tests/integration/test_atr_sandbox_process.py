"""The sandbox ATR as its own process (as `vote-watcher demo` runs it), and beside the sandbox archive."""

from __future__ import annotations

import asyncio
import pathlib
import sys

import httpx
import pydantic

import watcher.atr.client as client
import watcher.core.tracking as tracking
import watcher.flow.discovery as discovery
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.clocks as clocks
import watcher.sandbox.lists_http as lists_http
from tests.fixtures.atr import MemoryLists, StartAtr, client_for

EXAMPLE = pathlib.Path(atr_http.__file__).with_name("atr_example.toml")


async def test_the_example_scenario_runs_as_a_process_and_posts_to_the_sandbox_archive(
    ponymail_sandbox: lists_http.PonyMailSandbox,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "watcher.sandbox.atr_http",
        "--scenario",
        str(EXAMPLE),
        "--archive-url",
        ponymail_sandbox.url,
        "--announce",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with client.AtrClient(url, "bob", pydantic.SecretStr("sandbox-pat-bob")) as bob:
            releases = await bob.releases_list()
            cast = await bob.vote_cast("fooling", "0.3.0", "+1", "Checked the signatures.")
        async with httpx.AsyncClient(base_url=url) as http:
            log = (await http.get("/_sandbox/requests")).json()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    assert {r.key for r in releases} == {"example-1.2.0", "mailer-2.0.0", "fooling-0.3.0"}
    assert cast.receipt_email_to == ["dev@fooling.apache.org"]
    assert [r["path"] for r in log["requests"]][-2:] == ["/api/jwt/create", "/api/vote/cast"]
    archived = [entry.subject for entry in ponymail_sandbox.archive.all()]
    assert "[VOTE] Release Example 1.2.0" in archived
    assert "Re: [VOTE] Release Fooling (Incubating) 0.3.0" in archived


def test_the_example_scenario_loads() -> None:
    scenario = atr_scenario.load(EXAMPLE, 0.0)
    assert len(scenario.releases) == 3
    assert scenario.committees["fooling"].is_podling


async def test_receipts_reach_the_sandbox_archive_in_process(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, ponymail_sandbox: lists_http.PonyMailSandbox
) -> None:
    async with (
        start_atr(on_receipt=ponymail_sandbox.add) as atr,
        client_for(atr, atr_clock, uid="bob", pat="pat-bob-0000") as bob,
    ):
        await atr.announce_votes()
        await bob.vote_cast("example", "1.2.0", "+1")
        results = await bob.vote_tabulate("example", "1.2.0")
    (receipt_id,) = results.receipt_message_ids()
    async with httpx.AsyncClient(base_url=ponymail_sandbox.url) as http:
        found = await http.get(
            "/api/email.json", params={"id": f"<{receipt_id}>", "listid": "<dev.example.apache.org>"}
        )
        thread = await http.get("/api/thread.json", params={"id": found.json()["mid"], "find_parent": "true"})
    assert found.status_code == 200
    assert found.json()["subject"] == "Re: [VOTE] Release Example 1.2.0"
    assert thread.json()["thread"]["subject"] == "[VOTE] Release Example 1.2.0"


async def test_discovery_runs_on_an_interval_and_hands_changes_on(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, memory_lists: MemoryLists
) -> None:
    handed: list[list[tracking.Change]] = []

    async def on_changes(changes: list[tracking.Change]) -> None:
        handed.append(changes)

    async with start_atr() as atr, client_for(atr, atr_clock) as api:
        finder = discovery.Discovery(api, memory_lists, clock=atr_clock)
        atr.fail_next(20, 503, prefix="/api/releases/list")
        await finder.run(on_changes, interval=600, sleep=atr_clock.sleep, cycles=1)
        assert handed == []
        atr.fail_next(0)
        await atr.announce_votes()
        await finder.run(on_changes, interval=600, sleep=atr_clock.sleep, cycles=3)
    assert [len(changes) for changes in handed] == [3]
    # One failed poll (the first try and four retries), then three polls, an interval apart.
    assert atr.count("/api/releases/list") == 5 + 3
    assert atr_clock.slept >= 4 * 600
