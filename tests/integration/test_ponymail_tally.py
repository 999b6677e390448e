"""`vote-watcher tally <thread URL> --archive-url <sandbox>` reads the thread over HTTP."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys

import watcher.sandbox.lists_http as lists_http

INDEXER_VOTE_MID = "CAPLpRQL6=3qkzAe=FgRreheGxfkiydUqBdr-yDCVoGeZTzrqbA@mail.gmail.com"


async def tally(*args: str) -> tuple[int, str, str]:
    # A child process, awaited without blocking the loop that serves the sandbox.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watcher", "tally", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_tally_of_a_thread_url_from_the_sandbox(corpus_dir: pathlib.Path) -> None:
    sandbox = lists_http.PonyMailSandbox(mbox=corpus_dir / "threads" / "04-maven-indexer-6.0.0.mbox")
    thread_id = lists_http.archive_id(INDEXER_VOTE_MID, "dev.maven.apache.org")
    async with sandbox as url:
        code, out, err = await tally(
            f"https://lists.apache.org/thread/{thread_id}", "--archive-url", url, "--format", "json"
        )
        assert code == 0, err
        printed = json.loads(out)
        assert printed["thread"]["message_id"] == f"<{INDEXER_VOTE_MID}>"
        assert {vote["email"] for vote in printed["votes"]} >= {"rfscholte@apache.org", "skygo@apache.org"}
        assert sandbox.request_counts() == {"thread": 1, "source": 12}

        code, _, err = await tally(f"{url}/thread/{'0' * 32}")
        assert code == 2
        assert "not found" in err
        assert "Traceback" not in err
