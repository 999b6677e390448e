"""The sandbox lists.apache.org follows Pony Mail Foal's contract (reference/atr.md §4) over HTTP."""

from __future__ import annotations

import asyncio
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest

import watcher.sandbox.ponymail as sandbox_ponymail
from tests.fixtures.ponymail import LIST, mail

Sandbox = sandbox_ponymail.PonyMailSandbox
ROOT = "root@example.org"
LIST_ID = "dev.maven.apache.org"


@pytest.fixture
async def http(ponymail_sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ponymail_sandbox.url) as client:
        yield client


def add_thread(sandbox: Sandbox) -> tuple[str, str, str]:
    root = sandbox.add(mail(ROOT, "[VOTE] Release Foo 1.0", body="Vote, see <jane.doe@example.org>.\n"))
    reply = sandbox.add(mail("a@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=ROOT))
    nested = sandbox.add(
        mail(
            "b@example.org",
            "Re: [VOTE] Release Foo 1.0",
            in_reply_to="a@example.org",
            references=(ROOT, "a@example.org"),
        )
    )
    return root, reply, nested


def test_archive_ids_are_32_base36_characters_from_message_id_and_list() -> None:
    first = sandbox_ponymail.archive_id("x@example.org", LIST_ID)
    assert re.fullmatch(r"[0-9a-z]{32}", first)
    assert first == sandbox_ponymail.archive_id("x@example.org", LIST_ID)
    assert first != sandbox_ponymail.archive_id("x@example.org", "dev.foo.apache.org")
    assert first != sandbox_ponymail.archive_id("y@example.org", LIST_ID)


async def test_json_and_lua_shapes_and_post_bodies(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    root, _, _ = add_thread(ponymail_sandbox)
    by_json = (await http.get("/api/email.json", params={"id": root})).json()
    by_lua = (await http.get("/api/email.lua", params={"id": root})).json()
    by_post = (await http.post("/api/email.json", json={"id": root})).json()
    by_form = (await http.post("/api/email.lua", data={"id": root})).json()
    assert by_json == by_lua == by_post == by_form
    assert by_json["mid"] == by_json["id"] == root
    assert by_json["message-id"] == f"<{ROOT}>"
    assert by_json["list_raw"] == f"<{LIST_ID}>"
    assert by_json["forum"] == LIST
    assert by_json["subject"] == "[VOTE] Release Foo 1.0"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d", by_json["date"])
    assert isinstance(by_json["epoch"], int)
    assert ponymail_sandbox.request_counts() == {"email": 4}


async def test_lookup_by_message_id_and_listid(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    root, _, _ = add_thread(ponymail_sandbox)
    found = await http.get("/api/email.json", params={"id": f"<{ROOT}>", "listid": f"<{LIST_ID}>"})
    assert found.status_code == 200
    assert found.json()["mid"] == root
    other_list = await http.get("/api/email.json", params={"id": f"<{ROOT}>", "listid": "<dev.foo.apache.org>"})
    assert other_list.status_code == 404


async def test_not_found_is_plain_text(http: httpx.AsyncClient) -> None:
    for endpoint in ("email.json", "thread.json", "source.lua"):
        response = await http.get(f"/api/{endpoint}", params={"id": "0" * 32})
        assert response.status_code == 404
        assert response.text == "Email not found!"
        assert response.headers["content-type"].startswith("text/plain")


async def test_json_redacts_addresses_for_anonymous_callers(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    root, _, _ = add_thread(ponymail_sandbox)
    found = (await http.get("/api/email.json", params={"id": root})).json()
    assert found["from"] == "Jane Doe <ja...@example.org>"
    assert found["to"] == "de...@maven.apache.org"
    assert "<ja...@example.org>" in found["body"]
    raw = (await http.get("/api/source.lua", params={"id": root})).content
    assert b"From: Jane Doe <jane.doe@example.org>" in raw
    assert b"<jane.doe@example.org>" in raw


async def test_thread_tree_and_find_parent(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    root, reply, nested = add_thread(ponymail_sandbox)
    whole = (await http.get("/api/thread.json", params={"id": root})).json()
    assert whole["thread"]["id"] == root
    assert [kid["id"] for kid in whole["thread"]["children"]] == [reply]
    assert [kid["id"] for kid in whole["thread"]["children"][0]["children"]] == [nested]
    assert [email["id"] for email in whole["emails"]] == [root, reply, nested]
    below = (await http.get("/api/thread.json", params={"id": reply})).json()
    assert [email["id"] for email in below["emails"]] == [reply, nested]
    climbed = (await http.get("/api/thread.json", params={"id": nested, "find_parent": "true"})).json()
    assert climbed["thread"]["id"] == root
    assert len(climbed["emails"]) == 3


async def test_a_reply_archived_before_its_parent_joins_the_thread(
    ponymail_sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    early = ponymail_sandbox.add(mail("early@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=ROOT))
    root = ponymail_sandbox.add(mail(ROOT, "[VOTE] Release Foo 1.0"))
    thread = (await http.get("/api/thread.json", params={"id": early, "find_parent": "1"})).json()
    assert thread["thread"]["id"] == root
    assert {email["id"] for email in thread["emails"]} == {root, early}


async def test_stats_since_and_header_subject(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    add_thread(ponymail_sandbox)
    ponymail_sandbox.add(mail("jira@example.org", "[jira] Created: FOO-1"))
    params = {"list": "dev", "domain": "maven.apache.org"}
    full = (await http.get("/api/stats.json", params=params)).json()
    assert full["hits"] == 4
    assert full["no_threads"] == 2
    assert full["list"] == LIST
    assert sorted(t["nest"] for t in full["thread_struct"]) == [1, 3]
    newest = max(email["epoch"] for email in full["emails"])
    unchanged = await http.get("/api/stats.lua", params={**params, "since": newest})
    assert unchanged.json() == {"changed": False}
    assert "emails" in (await http.get("/api/stats.json", params={**params, "since": newest - 1})).json()
    votes = (await http.get("/api/stats.json", params={**params, "header_subject": "[VOTE]"})).json()
    assert votes["hits"] == 3
    other = (await http.get("/api/stats.json", params={"list": "dev", "domain": "foo.apache.org"})).json()
    assert other["hits"] == 0


async def test_date_window_defaults_to_thirty_days(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    old = time.time() - 60 * 86400
    ponymail_sandbox.add(mail("old@example.org", "[VOTE] Old", date=old), epoch=int(old))
    params = {"list": "dev", "domain": "maven.apache.org"}
    assert (await http.get("/api/stats.json", params=params)).json()["hits"] == 0
    assert (await http.get("/api/stats.json", params={**params, "d": "lte=90d"})).json()["hits"] == 1
    month = time.strftime("%Y-%m", time.gmtime(old))
    assert (await http.get("/api/stats.json", params={**params, "d": month})).json()["hits"] == 1


async def test_preloaded_epoch_is_the_date_header_and_added_epoch_is_arrival(corpus_dir: pathlib.Path) -> None:
    sandbox = Sandbox(mbox=corpus_dir / "threads" / "04-maven-indexer-6.0.0.mbox", clock=lambda: 2_000_000_000.0)
    added = sandbox.add(mail("late@example.org", "Re: [VOTE] Release Maven Indexer 6.0.0"))
    async with sandbox as url, httpx.AsyncClient(base_url=url) as client:
        vote = sandbox_ponymail.archive_id(
            "CAPLpRQL6=3qkzAe=FgRreheGxfkiydUqBdr-yDCVoGeZTzrqbA@mail.gmail.com", LIST_ID
        )
        assert (await client.get("/api/email.json", params={"id": vote})).json()["epoch"] == 1511864431
        assert (await client.get("/api/email.json", params={"id": added})).json()["epoch"] == 2_000_000_000


async def test_private_lists_and_tokens() -> None:
    sandbox = Sandbox(token="pmt_secret", private_lists=["private@maven.apache.org"])
    ident = sandbox.add(mail(ROOT, "[VOTE] Release Foo 1.0", list_address="private@maven.apache.org"))
    async with sandbox as url, httpx.AsyncClient(base_url=url) as client:
        params = {"id": ident}
        assert (await client.get("/api/email.json", params=params)).status_code == 404
        good = await client.get("/api/email.json", params=params, headers={"Authorization": "Bearer pmt_secret"})
        assert good.status_code == 200
        assert good.json()["from"] == "Jane Doe <jane.doe@example.org>"
        bad = await client.get("/api/email.json", params=params, headers={"Authorization": "Bearer pmt_nope"})
        assert bad.status_code == 403
        stats = await client.get("/api/stats.json", params={"list": "private", "domain": "maven.apache.org"})
        assert stats.json()["hits"] == 0


async def test_failures_and_delays_can_be_injected(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    root, _, _ = add_thread(ponymail_sandbox)
    ponymail_sandbox.fail_next(1, status=502)
    assert (await http.get("/api/email.json", params={"id": root})).status_code == 502
    assert (await http.get("/api/email.json", params={"id": root})).status_code == 200
    ponymail_sandbox.delay_next(1, 0.3)
    started = time.monotonic()
    assert (await http.get("/api/source.lua", params={"id": root})).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert ponymail_sandbox.request_counts() == {"email": 2, "source": 1}


async def test_separate_process_accepts_messages_and_reports_counts(corpus_dir: pathlib.Path) -> None:
    mbox = corpus_dir / "threads" / "04-maven-indexer-6.0.0.mbox"
    command = [sys.executable, "-m", "watcher.sandbox.ponymail", "--mbox", str(mbox), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=30)
        url = line.decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), process.stderr.read() if process.stderr else line
        async with httpx.AsyncClient(base_url=url) as client:
            posted = await client.post(
                "/_sandbox/messages", content=mail("new@example.org", "Re: [VOTE] Release Maven Indexer 6.0.0")
            )
            assert posted.status_code == 201
            created = posted.json()
            assert created["id"] == sandbox_ponymail.archive_id("new@example.org", LIST_ID)
            assert (await client.get("/api/source.lua", params={"id": created["id"]})).status_code == 200
            counts = (await client.get("/_sandbox/stats")).json()
        assert counts == {"requests": {"source": 1}, "total": 1, "messages": 14}
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
