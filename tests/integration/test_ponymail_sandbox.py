"""The sandbox lists.apache.org follows Pony Mail Foal's contract (reference/ponymail-api.md) over HTTP."""

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

import watcher.sandbox.lists_http as lists_http
from tests.fixtures.ponymail import LIST, mail

Sandbox = lists_http.PonyMailSandbox
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


def test_archive_ids_are_32_characters_of_foals_alphabet_from_message_id_and_list() -> None:
    first = lists_http.archive_id("x@example.org", LIST_ID)
    assert re.fullmatch(r"[0-9bcdfghjklmnopqrstvwxyz]{32}", first)  # §4
    assert first == lists_http.archive_id("x@example.org", LIST_ID)
    assert first != lists_http.archive_id("x@example.org", "dev.foo.apache.org")
    assert first != lists_http.archive_id("y@example.org", LIST_ID)


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
    # §2: each missing thing has its own text.
    expected = {
        "email.json": "Email not found",
        "source.lua": "Email not found",
        "thread.json": "Content not found",
        "nonsense.json": "API Endpoint not found!",
    }
    for endpoint, text in expected.items():
        response = await http.get(f"/api/{endpoint}", params={"id": "0" * 32})
        assert response.status_code == 404
        assert response.text == text
        assert response.headers["content-type"].startswith("text/plain")


async def test_bare_names_route_too_and_stats_needs_list_and_domain(http: httpx.AsyncClient) -> None:
    # §2: /api/stats is /api/stats.json; without list or domain, 200 {}.
    assert (await http.get("/api/stats")).json() == {}
    assert (await http.get("/api/stats.json", params={"list": "dev"})).json() == {}
    assert (
        await http.get("/api/stats.json", params={"list": "dev", "domain": "x.org", "since": "soon"})
    ).status_code == 500


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
    # §6.4: the nested reply names the root in References, so it is the root's child too; each once.
    assert sorted(kid["id"] for kid in whole["thread"]["children"]) == sorted([reply, nested])
    assert all(kid["children"] == [] for kid in whole["thread"]["children"])
    # §5.3 [sim]: emails holds the root only.
    assert [email["id"] for email in whole["emails"]] == [root]
    below = (await http.get("/api/thread.json", params={"id": reply})).json()
    assert [kid["id"] for kid in below["thread"]["children"]] == [nested]
    climbed = (await http.get("/api/thread.json", params={"id": nested, "find_parent": "false"})).json()
    assert climbed["thread"]["id"] == root


async def test_find_parent_follows_in_reply_to_only(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    root = ponymail_sandbox.add(mail(ROOT, "[VOTE] Release Foo 1.0"))
    refs_only = ponymail_sandbox.add(mail("refs@example.org", "Re: [VOTE] Release Foo 1.0", references=(ROOT,)))
    stays = (await http.get("/api/thread.json", params={"id": refs_only, "find_parent": "1"})).json()
    assert stays["thread"]["id"] == refs_only  # §6.4 [sim]: 1 message instead of 2
    tree = (await http.get("/api/thread.json", params={"id": root})).json()
    assert [kid["id"] for kid in tree["thread"]["children"]] == [refs_only]


async def test_replies_from_other_lists_join_the_tree(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    root = ponymail_sandbox.add(mail(ROOT, "[VOTE] Release Foo 1.0"))
    general = "general@incubator.apache.org"
    elsewhere = ponymail_sandbox.add(
        mail("g@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=ROOT, list_address=general)
    )
    tree = (await http.get("/api/thread.json", params={"id": root})).json()
    kids = tree["thread"]["children"]
    assert [(kid["id"], kid["list_raw"]) for kid in kids] == [(elsewhere, "<general.incubator.apache.org>")]
    climbed = (await http.get("/api/thread.json", params={"id": elsewhere, "find_parent": "1"})).json()
    assert climbed["thread"]["id"] == root


async def test_a_reply_archived_before_its_parent_joins_the_thread(
    ponymail_sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    early = ponymail_sandbox.add(mail("early@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=ROOT))
    root = ponymail_sandbox.add(mail(ROOT, "[VOTE] Release Foo 1.0"))
    thread = (await http.get("/api/thread.json", params={"id": early, "find_parent": "1"})).json()
    assert thread["thread"]["id"] == root
    assert [kid["id"] for kid in thread["thread"]["children"]] == [early]


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
    assert other["firstYear"] == 1970  # §6.5: an unknown list is 200, not 404


async def test_header_subject_is_a_phrase(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    # §6.3: every token, adjacent, in order; case does not matter.
    for n, subject in enumerate(
        ["[VOTE] Release Apache Foo 1.2.0 RC1", "[VOTE] Release Foo 1.2.0", "[VOTE] Apache Foo (incubating) 1.2.0"]
    ):
        ponymail_sandbox.add(mail(f"s{n}@example.org", subject))
    params = {"list": "dev", "domain": "maven.apache.org", "emailsOnly": "1"}

    async def subjects(query: str) -> list[str]:
        found = (await http.get("/api/stats.json", params={**params, "header_subject": query})).json()
        return sorted(email["subject"] for email in found["emails"])

    assert await subjects("[vote] release apache foo 1.2.0") == ["[VOTE] Release Apache Foo 1.2.0 RC1"]
    # "(incubating)" sits between "Foo" and "1.2.0": not adjacent, not found.
    assert await subjects("foo 1.2.0") == ["[VOTE] Release Apache Foo 1.2.0 RC1", "[VOTE] Release Foo 1.2.0"]
    assert len(await subjects("[VOTE]")) == 3


async def test_since_lists_only_newer_mail_by_date_header(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    now = time.time()
    ponymail_sandbox.add(mail("old@example.org", "old", date=now - 7200))
    ponymail_sandbox.add(mail("future@example.org", "fast clock", date=now + 2 * 86400))
    ponymail_sandbox.add(mail("new@example.org", "new", date=now - 60))
    # Added last, yet dated before the others: held in moderation (§6.1, §6.2).
    ponymail_sandbox.add(mail("held@example.org", "held", date=now - 3600))
    params = {"list": "dev", "domain": "maven.apache.org", "emailsOnly": "1"}
    since = {**params, "since": str(int(now - 1800)), "d": "lte=2d"}
    newer = (await http.get("/api/stats.json", params=since)).json()
    # §5.1 [sim]: only mail dated after `since` is listed; `d=lte` has no upper bound.
    assert [email["subject"] for email in newer["emails"]] == ["new", "fast clock"]
    default = (await http.get("/api/stats.json", params={**params, "since": str(int(now - 1800))})).json()
    assert [email["subject"] for email in default["emails"]] == ["new"]  # the default window ends at now+1d
    ahead = {**params, "since": str(int(now + 3 * 86400)), "d": "lte=2d"}
    assert (await http.get("/api/stats.json", params=ahead)).json() == {"changed": False}


async def test_emails_only_quick_and_the_cap(http: httpx.AsyncClient) -> None:
    sandbox = Sandbox(max_hits=2)
    for n in range(5):
        sandbox.add(mail(f"m{n}@example.org", f"message {n}"))
    async with sandbox as url, httpx.AsyncClient(base_url=url) as client:
        params = {"list": "dev", "domain": "maven.apache.org"}
        full = (await client.get("/api/stats.json", params=params)).json()
        brief = (await client.get("/api/stats.json", params={**params, "emailsOnly": "1"})).json()
        quick = (await client.get("/api/stats.json", params={**params, "quick": "1"})).json()
    # §6.5: max_hits + 1 at most.
    assert full["hits"] == brief["hits"] == quick["hits"] == 3
    assert "thread_struct" in full and full["numparts"] == 1
    assert "thread_struct" not in brief and brief["participants"] == {} and brief["numparts"] == 0
    assert all(set(email) == {"epoch"} for email in quick["emails"])


async def test_date_window_defaults_to_thirty_days(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    old = time.time() - 60 * 86400
    ponymail_sandbox.add(mail("old@example.org", "[VOTE] Old", date=old), epoch=int(old))
    params = {"list": "dev", "domain": "maven.apache.org"}
    assert (await http.get("/api/stats.json", params=params)).json()["hits"] == 0
    assert (await http.get("/api/stats.json", params={**params, "d": "lte=90d"})).json()["hits"] == 1
    month = time.strftime("%Y-%m", time.gmtime(old))
    assert (await http.get("/api/stats.json", params={**params, "d": month})).json()["hits"] == 1


async def test_epoch_is_the_date_header_even_for_mail_added_late(corpus_dir: pathlib.Path) -> None:
    # §6.1: the sender's Date, not the archive time, whenever the message arrives.
    sandbox = Sandbox(mbox=corpus_dir / "threads" / "04-maven-indexer-6.0.0.mbox", clock=lambda: 2_000_000_000.0)
    late = sandbox.add(mail("late@example.org", "Re: [VOTE] Release Maven Indexer 6.0.0", date=1_600_000_000))
    async with sandbox as url, httpx.AsyncClient(base_url=url) as client:
        vote = lists_http.archive_id("CAPLpRQL6=3qkzAe=FgRreheGxfkiydUqBdr-yDCVoGeZTzrqbA@mail.gmail.com", LIST_ID)
        assert (await client.get("/api/email.json", params={"id": vote})).json()["epoch"] == 1511864431
        assert (await client.get("/api/email.json", params={"id": late})).json()["epoch"] == 1_600_000_000


async def test_private_lists_need_a_session_cookie_and_tokens_are_ignored() -> None:
    session = "1234abcd-0000-4000-8000-abcdef123456"
    sandbox = Sandbox(sessions=[session], private_lists=["private@maven.apache.org"])
    ident = sandbox.add(mail(ROOT, "[VOTE] Release Foo 1.0", list_address="private@maven.apache.org"))
    async with sandbox as url, httpx.AsyncClient(base_url=url) as client:
        params = {"id": ident}
        assert (await client.get("/api/email.json", params=params)).status_code == 404
        # §3: Authorization is never read; a bad credential is silently anonymous, never 403.
        bearer = await client.get("/api/email.json", params=params, headers={"Authorization": "Bearer pmt_x"})
        assert bearer.status_code == 404
        stranger = await client.get("/api/email.json", params=params, headers={"Cookie": "ponymail=1234abcd-dead"})
        assert stranger.status_code == 404
        member = await client.get("/api/email.json", params=params, headers={"Cookie": f"ponymail={session}"})
        assert member.status_code == 200
        assert member.json()["from"] == "Jane Doe <jane.doe@example.org>"
        stats = await client.get("/api/stats.json", params={"list": "private", "domain": "maven.apache.org"})
        assert stats.json()["hits"] == 0
        login = await client.get("/api/preferences.json", headers={"Cookie": f"ponymail={session}"})
        assert login.json()["login"]["credentials"]["uid"] == "sandbox"
        assert (await client.get("/api/preferences.json")).json()["login"] == {}


async def test_source_is_decoded_text(ponymail_sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    raw = mail("latin@example.org", "+1").replace(b"Jane Doe", b"Ren\xe9 Doe")
    ident = ponymail_sandbox.add(raw)
    served = await http.get("/api/source.lua", params={"id": ident})
    assert "Ren\ufffd Doe" in served.text  # §6.7


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
    command = [sys.executable, "-m", "watcher.sandbox.lists_http", "--mbox", str(mbox), "--port", "0"]
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
            assert created["id"] == lists_http.archive_id("new@example.org", LIST_ID)
            assert (await client.get("/api/source.lua", params={"id": created["id"]})).status_code == 200
            counts = (await client.get("/_sandbox/stats")).json()
        assert counts == {"requests": {"source": 1}, "total": 1, "messages": 14}
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
