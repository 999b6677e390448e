"""`vote-watcher tally --atr BASE_URL PROJECT VERSION` against the sandbox ATR over real HTTP (issue 13, item 3).

The committee comes from `committee/get`, the ballots and their receipts from `vote/tabulate`; the
receipt the sandbox ATR posted to the thread is left out of the email tally by its Message-ID.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pathlib
from typing import Any

import pytest

import watcher.cli as cli
import watcher.sandbox.clocks as clocks
from tests.fixtures.atr import PAT, UID, MemoryLists, StartAtr, client_for, scenario_data
from tests.mailfactory import mail

VOTE_ID = "vote-example-1.2.0@example.org"
SUBJECT = "[VOTE] Release Apache Example 1.2.0"


def _scenario() -> dict[str, Any]:
    data = scenario_data()
    releases = copy.deepcopy(data["atr"]["releases"])
    releases[0]["vote_message_id"] = VOTE_ID  # ATR's receipts reply to the [VOTE] of the thread below
    data["atr"]["releases"] = releases
    return data


def _mbox(path: pathlib.Path, raws: list[bytes]) -> pathlib.Path:
    path.write_bytes(
        b"".join(b"From x@y Mon Jan  1 00:00:00 2024\n" + raw.replace(b"\r\n", b"\n") + b"\n" for raw in raws)
    )
    return path


async def _tally(*argv: str) -> int:
    # cli.main runs its own event loop; the sandbox ATR serves from this one meanwhile.
    return await asyncio.to_thread(cli.main, ["tally", "--quiet", *argv])


async def test_tally_atr_uses_the_committee_ballots_and_receipts(
    start_atr: StartAtr,
    atr_clock: clocks.ManualClock,
    memory_lists: MemoryLists,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with start_atr(_scenario()) as atr:
        async with client_for(atr, atr_clock, uid="bob", pat="pat-bob-0000") as bob:
            await bob.vote_cast("example", "1.2.0", "+1")
        capsys.readouterr()  # the test's own client logged its requests; the tally's output starts here
        (receipt,) = [posted.raw for posted in memory_lists.messages]
        replies = [
            mail(
                "+1 (binding)\n",
                sender=f"{name} <{uid}@apache.org>",
                subject=f"Re: {SUBJECT}",
                message_id=f"{uid}@example.org",
                in_reply_to=VOTE_ID,
            )
            for uid, name in (("carol", "Carol"), ("dave", "Dave"))
        ]
        call = mail(
            "Please vote.\n", sender="Alice <alice@apache.org>", subject=SUBJECT, message_id=VOTE_ID, in_reply_to=None
        )
        thread = _mbox(tmp_path / "thread.mbox", [call, *replies, receipt])
        monkeypatch.setenv("ATR_UID", UID)
        monkeypatch.setenv("ATR_PAT", PAT)
        assert await _tally("--format", "json", "--atr", atr.url, "example", "1.2.0", str(thread)) == 0
        data = json.loads(capsys.readouterr().out)
        assert await _tally("--atr", atr.url, "example", "1.2.0", str(thread)) == 0
        text = capsys.readouterr().out
    statuses = {vote["voter"]: vote["status"] for vote in data["votes"]}
    assert statuses == {"carol": "binding", "dave": "committer"}  # committee/get: carol PMC, dave committer
    assert len(data["receipts"]) == 0  # left out by vote/tabulate's receipt Message-ID, before the shape check
    assert "bob" not in statuses
    assert data["atr"]["committee"] == "example"
    assert data["atr"]["vote_mode"] == "trusted"
    assert [(b["voter"], b["vote"], b["binding"]) for b in data["atr"]["trusted_ballots"]] == [("bob", "+1", True)]
    assert data["outcome"] == "failed"  # one binding emailed +1
    assert "Ballots cast in ATR:" in text
    assert "+1 bob" in text


async def test_tally_atr_without_a_token_still_uses_the_committee(
    start_atr: StartAtr, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ATR_PAT", raising=False)
    call = mail(
        "Please vote.\n", sender="Alice <alice@apache.org>", subject=SUBJECT, message_id=VOTE_ID, in_reply_to=None
    )
    reply = mail(
        "+1\n", sender="Erin <erin@apache.org>", subject=f"Re: {SUBJECT}", message_id="e@x", in_reply_to=VOTE_ID
    )
    thread = _mbox(tmp_path / "thread.mbox", [call, reply])
    async with start_atr(_scenario()) as atr:
        assert await _tally("--format", "json", "--atr", atr.url, "example", "1.2.0", str(thread)) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(vote["voter"], vote["status"]) for vote in data["votes"]] == [("erin", "binding")]
    assert data["atr"]["trusted_ballots"] is None
    assert any("no ATR token" in note for note in data["atr"]["notes"])


async def test_tally_atr_for_an_unknown_release_exits_2(
    start_atr: StartAtr, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with start_atr(_scenario()) as atr:
        assert await _tally("--atr", atr.url, "example", "9.9.9") == 2
    assert "ATR release/get example 9.9.9" in capsys.readouterr().err


async def test_tally_atr_without_a_thread_url_asks_for_the_thread(
    start_atr: StartAtr, capsys: pytest.CaptureFixture[str]
) -> None:
    async with start_atr(_scenario()) as atr:
        assert await _tally("--atr", atr.url, "example", "1.2.0") == 2
    assert "ATR gives no vote_thread_url for example 1.2.0: give the thread as SOURCE" in capsys.readouterr().err
