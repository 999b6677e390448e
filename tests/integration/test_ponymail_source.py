"""The lists.apache.org client and source against the sandbox archive over real HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import pathlib
import time
from typing import Any

import pytest

import watcher.core.message as message
import watcher.core.tracking as tracking
import watcher.core.votesubject as votesubject
import watcher.sandbox.lists_http as lists_http
import watcher.sources.archive as archive
import watcher.sources.cursor as cursor
import watcher.sources.ponymail as ponymail
from tests.fixtures.ponymail import LIST, OTHER_LIST, mail

Sandbox = lists_http.PonyMailSandbox
VOTE_MID = "vote-1@example.org"
INDEXER_VOTE_MID = "CAPLpRQL6=3qkzAe=FgRreheGxfkiydUqBdr-yDCVoGeZTzrqbA@mail.gmail.com"
INDEXER_MBOX = "threads/04-maven-indexer-6.0.0.mbox"


def client(url: str, **overrides: Any) -> ponymail.ArchiveClient:
    """A client with short backoff, so that retry tests stay quick."""
    settings = ponymail.ArchiveSettings(base_url=url, backoff_s=0.01, backoff_max_s=0.05)
    return ponymail.ArchiveClient(dataclasses.replace(settings, **overrides))


class Store:
    """Stands in for the daemon's store: keys seen, messages in delivery order."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.delivered: list[ponymail.ArchivedMessage] = []

    def seen(self, key: str) -> bool:
        return key in self.keys

    async def deliver(self, item: ponymail.ArchivedMessage) -> None:
        self.delivered.append(item)
        self.keys.add(message.peek(item.raw).key)


def add_vote_thread(sandbox: Sandbox) -> None:
    sandbox.add(mail(VOTE_MID, "[VOTE] Release Foo 1.0", body="Please vote.\n"))
    sandbox.add(mail("r1@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID))


def mids(items: list[ponymail.ArchivedMessage] | tuple[ponymail.ArchivedMessage, ...]) -> list[str]:
    return [item.message_id for item in items]


async def test_idle_poll_costs_one_request_per_list(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    ponymail_sandbox.add(mail("other-1@example.org", "[DISCUSS] something", list_address=OTHER_LIST))
    store = Store()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST, OTHER_LIST])
        source.track(LIST, message_id=VOTE_MID)
        first = await source.poll(store.seen, store.deliver)
        assert first.ok
        assert mids(first.messages) == [VOTE_MID, "r1@example.org"]
        for _ in range(3):
            ponymail_sandbox.reset_counts()
            idle = await source.poll(store.seen, store.deliver)
            assert idle.ok
            assert idle.messages == ()
            assert idle.requests == 2
            assert ponymail_sandbox.request_counts() == {"stats": 2}


async def test_new_message_in_tracked_thread_is_fetched_once(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    store = Store()
    cursors = cursor.MemoryCursorStore()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST], cursors=cursors)
        source.track(LIST, message_id=VOTE_MID)
        await source.poll(store.seen, store.deliver)
        ponymail_sandbox.add(mail("r2@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to="r1@example.org"))
        ponymail_sandbox.add(mail("noise@example.org", "[jira] Created: FOO-1"))
        ponymail_sandbox.reset_counts()

        changed = await source.poll(store.seen, store.deliver)

        assert changed.ok
        assert mids(changed.messages) == ["r2@example.org"]
        assert ponymail_sandbox.request_counts() == {"stats": 1, "thread": 1, "source": 1}
        ponymail_sandbox.reset_counts()
        again = await source.poll(store.seen, store.deliver)
        assert again.messages == ()
        assert ponymail_sandbox.request_counts() == {"stats": 1}
    assert mids(store.delivered) == [VOTE_MID, "r1@example.org", "r2@example.org"]
    saved = await cursors.get_cursor("ponymail", LIST)
    assert saved is not None and saved.position > 0


async def test_a_future_dated_mail_does_not_blind_the_cursor(ponymail_sandbox: Sandbox) -> None:
    # reference §6.1: epoch is the sender's Date; a fast clock must not push the cursor ahead of ours.
    add_vote_thread(ponymail_sandbox)
    store = Store()
    cursors = cursor.MemoryCursorStore()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST], cursors=cursors)
        source.track(LIST, message_id=VOTE_MID)
        await source.poll(store.seen, store.deliver)
        ponymail_sandbox.add(mail("fast@example.org", "[jira] clock ahead", date=time.time() + 2 * 86400))
        await source.poll(store.seen, store.deliver)
        saved = await cursors.get_cursor("ponymail", LIST)
        assert saved is not None and saved.position <= time.time()
        ponymail_sandbox.add(mail("r2@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID))
        report = await source.poll(store.seen, store.deliver)
    assert mids(report.messages) == ["r2@example.org"]


async def test_a_back_dated_reply_is_seen_at_the_next_poll(ponymail_sandbox: Sandbox) -> None:
    # A reply held two hours in moderation arrives with its old Date (§6.1, §6.2): the probe reaches
    # back to the vote's start, so the next poll lists it as news.
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=3)
    add_vote_thread(ponymail_sandbox)
    store = Store()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST], lookback_s=60)
        source.track(LIST, message_id=VOTE_MID, started=started)
        await source.poll(store.seen, store.deliver)
        await source.poll(store.seen, store.deliver)
        held = mail("held@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID, date=time.time() - 7200)
        ponymail_sandbox.add(held)
        report = await source.poll(store.seen, store.deliver)
    assert mids(report.messages) == ["held@example.org"]


async def test_every_thread_is_read_again_every_k_polls(ponymail_sandbox: Sandbox) -> None:
    # Older than any probe reaches (the vote's start is unknown here), or sent to another list:
    # neither shows in this list's probes, so only the re-read every K polls finds them.
    add_vote_thread(ponymail_sandbox)
    store = Store()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST], lookback_s=60, reread_every=3)
        source.track(LIST, message_id=VOTE_MID)
        await source.poll(store.seen, store.deliver)
        await source.poll(store.seen, store.deliver)
        ponymail_sandbox.add(
            mail("old@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID, date=time.time() - 86400)
        )
        general = "general@incubator.apache.org"
        ponymail_sandbox.add(
            mail("g@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID, list_address=general)
        )
        ponymail_sandbox.reset_counts()
        counts = []
        found: list[ponymail.ArchivedMessage] = []
        for _ in range(3):
            report = await source.poll(store.seen, store.deliver)
            found += report.messages
            counts.append(report.requests)
    assert sorted(mids(found)) == ["g@example.org", "old@example.org"]
    assert {item.list_address for item in found} == {LIST, general}
    # Read at the first poll, so again at the fourth (K = 3 polls later): probe + thread + 2 sources.
    assert counts == [1, 4, 1]


async def test_refresh_reads_the_thread_before_a_decision(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    store = Store()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST], lookback_s=60)
        source.track(LIST, message_id=VOTE_MID)
        await source.poll(store.seen, store.deliver)
        ponymail_sandbox.add(
            mail("old@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID, date=time.time() - 86400)
        )
        assert await source.refresh(VOTE_MID, store.seen, store.deliver) == 0  # read a moment ago
        assert await source.refresh(f"<{VOTE_MID}>", store.seen, store.deliver, max_age_s=0) == 1
    assert mids(store.delivered)[-1] == "old@example.org"


async def test_a_thread_is_read_once_more_shortly_before_its_vote_ends(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    store = Store()
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST], lookback_s=60)
        source.track(LIST, message_id=VOTE_MID, ends=ends + datetime.timedelta(hours=1))
        await source.poll(store.seen, store.deliver)
        source.track(LIST, message_id=VOTE_MID, ends=ends)  # the vote's end, as the [VOTE] body states it
        ponymail_sandbox.reset_counts()
        await source.poll(store.seen, store.deliver)
        assert ponymail_sandbox.request_counts() == {"stats": 1, "thread": 1}
        ponymail_sandbox.reset_counts()
        await source.poll(store.seen, store.deliver)
        assert ponymail_sandbox.request_counts() == {"stats": 1}


async def test_a_mistyped_list_is_reported(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST, "dev@mavne.apache.org"])
        report = await source.poll(Store().seen)
    assert report.ok
    assert source.unknown_lists == {"dev@mavne.apache.org"}


async def test_restart_fetches_nothing_already_stored(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    store = Store()
    cursors = cursor.MemoryCursorStore()
    async with client(ponymail_sandbox.url) as archive_client:
        before = ponymail.PonyMailSource(archive_client, [LIST], cursors=cursors)
        before.track(LIST, message_id=VOTE_MID)
        await before.poll(store.seen, store.deliver)
    ponymail_sandbox.reset_counts()
    async with client(ponymail_sandbox.url) as archive_client:
        after = ponymail.PonyMailSource(archive_client, [LIST], cursors=cursors)
        after.track(LIST, message_id=VOTE_MID)
        report = await after.poll(store.seen, store.deliver)
    assert report.ok
    assert report.messages == ()
    assert "source" not in ponymail_sandbox.request_counts()
    assert len(store.delivered) == 2


async def test_server_errors_are_retried(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    ponymail_sandbox.fail_next(2, status=503)
    async with client(ponymail_sandbox.url, retries=3) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST])
        report = await source.poll(set())
    assert report.ok
    assert ponymail_sandbox.request_counts()["stats"] == 3


async def test_persistent_errors_are_survived_and_nothing_is_lost(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    store = Store()
    cursors = cursor.MemoryCursorStore()
    async with client(ponymail_sandbox.url, retries=2) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST], cursors=cursors)
        source.track(LIST, message_id=VOTE_MID)
        await source.poll(store.seen, store.deliver)
        position = await cursors.get_cursor("ponymail", LIST)
        ponymail_sandbox.add(mail("r2@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID))
        ponymail_sandbox.fail_next(100, endpoint="source")
        ponymail_sandbox.reset_counts()

        failed = await source.poll(store.seen, store.deliver)

        assert not failed.ok
        assert failed.messages == ()
        assert "source of" in failed.failures[0]
        assert ponymail_sandbox.request_counts()["source"] == 3
        assert await cursors.get_cursor("ponymail", LIST) == position

        ponymail_sandbox.fail_next(100, endpoint="stats")
        down = await source.poll(store.seen, store.deliver)
        assert not down.ok
        assert "HTTP 500 after 3 attempts" in down.failures[0]

        ponymail_sandbox.fail_next(0)
        recovered = await source.poll(store.seen, store.deliver)
        assert recovered.ok
        assert mids(recovered.messages) == ["r2@example.org"]
        assert (await source.poll(store.seen, store.deliver)).messages == ()
    assert mids(store.delivered) == [VOTE_MID, "r1@example.org", "r2@example.org"]


async def test_timeouts_are_retried_then_survived(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    async with client(ponymail_sandbox.url, total_timeout_s=0.3, retries=1) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST])
        ponymail_sandbox.delay_next(1, 1.0)
        retried = await source.poll(set())
        assert retried.ok
        assert ponymail_sandbox.request_counts()["stats"] == 2

        ponymail_sandbox.delay_next(2, 1.0)
        timed_out = await source.poll(set())
        assert not timed_out.ok
        assert "TimeoutError after 2 attempts" in timed_out.failures[0]

        assert (await source.poll(set())).ok


async def test_connection_refused_is_survived() -> None:
    closed = Sandbox()
    async with closed as url:
        pass
    async with client(url, retries=1) as archive_client:
        report = await ponymail.PonyMailSource(archive_client, [LIST]).poll(set())
    assert not report.ok
    assert "ConnectError" in report.failures[0]


async def test_thread_found_from_vote_message_id(ponymail_sandbox: Sandbox) -> None:
    store = Store()
    async with client(ponymail_sandbox.url) as archive_client:
        assert await archive_client.thread_id_for(VOTE_MID, LIST) is None
        source = ponymail.PonyMailSource(archive_client, [LIST])
        source.track(LIST, message_id=VOTE_MID)

        early = await source.poll(store.seen, store.deliver)
        assert early.ok and early.messages == ()
        assert source.thread_ids() == {VOTE_MID: None}
        ponymail_sandbox.reset_counts()
        assert (await source.poll(store.seen, store.deliver)).messages == ()
        assert ponymail_sandbox.request_counts() == {"stats": 1}

        add_vote_thread(ponymail_sandbox)
        found = await source.poll(store.seen, store.deliver)

        expected = lists_http.archive_id(VOTE_MID, "dev.maven.apache.org")
        assert mids(found.messages) == [VOTE_MID, "r1@example.org"]
        assert source.thread_ids() == {VOTE_MID: expected}
        assert {item.thread_id for item in found.messages} == {expected}
        assert await archive_client.thread_id_for(f"<{VOTE_MID}>", LIST) == expected
        assert await archive_client.thread_id_for(VOTE_MID, OTHER_LIST) is None


async def test_json_is_redacted_and_source_is_not(ponymail_sandbox: Sandbox) -> None:
    ponymail_sandbox.add(
        mail(
            VOTE_MID,
            "[VOTE] Release Foo 1.0",
            sender="User Tests <user-tests@tooling.apache.org>",
            cc="Bob <bob@x.org>",
        )
    )
    ident = lists_http.archive_id(VOTE_MID, "dev.maven.apache.org")
    async with client(ponymail_sandbox.url) as archive_client:
        found = await archive_client.email(ident)
        raw = await archive_client.source(ident)
    assert found is not None and raw is not None
    assert found["from"] == "User Tests <us...@tooling.apache.org>"
    assert found["cc"] == "Bob <bo...@x.org>"
    # Upstream leaves from_raw unredacted (reference §6.6 [sim]); the client reads only the source.
    assert found["from_raw"] == "User Tests <user-tests@tooling.apache.org>"
    assert b"From: User Tests <user-tests@tooling.apache.org>" in raw
    assert b"Cc: Bob <bob@x.org>" in raw


async def test_private_lists_are_not_visible_and_say_so() -> None:
    # Foal has no tokens (reference §3): anonymous requests for private mail answer 404, and the
    # client says "not visible to this session", never "not archived yet".
    private = "private@maven.apache.org"
    sandbox = Sandbox(private_lists=[private])
    sandbox.add(mail(VOTE_MID, "[VOTE] Release Foo 1.0", list_address=private, sender="Jane <jane@example.org>"))
    ident = lists_http.archive_id(VOTE_MID, "private.maven.apache.org")
    async with sandbox as url, client(url) as anonymous:
        assert await anonymous.thread_id_for(VOTE_MID, private) is None
        assert await anonymous.source(ident) is None
        with pytest.raises(ponymail.ArchiveFetchError, match="not found"):
            await anonymous.thread_raw(ident)
        stats = await anonymous.stats(private, d="lte=30d")
    assert ponymail.is_unknown_list(stats)


async def test_a_listed_message_that_is_not_served_is_not_visible(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    ponymail_sandbox.fail_next(10, status=404, endpoint="source")
    store = Store()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST])
        source.track(LIST, message_id=VOTE_MID)
        report = await source.poll(store.seen, store.deliver)
    assert not report.ok
    assert all(ponymail.NOT_VISIBLE in problem for problem in report.failures)


async def test_fetch_thread_raw_returns_the_corpus_thread_in_order(corpus_dir: pathlib.Path) -> None:
    path = corpus_dir / INDEXER_MBOX
    file_raws = list(archive.iter_raw(path))
    sandbox = Sandbox(mbox=path)
    thread_id = lists_http.archive_id(INDEXER_VOTE_MID, "dev.maven.apache.org")
    async with sandbox as url:
        raws = await ponymail.fetch_thread_raw(f"{url}/thread/{thread_id}")
        via_public_url = await ponymail.fetch_thread_raw(
            f"https://lists.apache.org/thread/{thread_id}", archive_url=url
        )
        result_thread = await ponymail.fetch_thread_raw(
            lists_http.archive_id(message.peek(file_raws[-1]).message_id, "dev.maven.apache.org"),
            archive_url=url,
        )
    # The [RESULT] (last in the file) was sent as a new thread, so the [VOTE] thread holds the rest.
    in_thread = file_raws[:-1]
    assert [message.peek(raw).message_id for raw in raws] == [message.peek(raw).message_id for raw in in_thread]
    assert len(raws) == 12
    # Foal serves the source as decoded text: 8-bit mail gets replacement characters (reference §6.7).
    assert raws == [raw.decode("utf-8", "replace").encode() for raw in in_thread]
    assert via_public_url == raws
    assert result_thread == file_raws[-1:]
    assert message.peek(file_raws[-1]).subject.startswith("[RESULT]")


async def test_fetch_thread_raw_from_a_reply_climbs_to_the_root(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    reply = lists_http.archive_id("r1@example.org", "dev.maven.apache.org")
    raws = await ponymail.fetch_thread_raw(reply, archive_url=ponymail_sandbox.url)
    assert [message.peek(raw).message_id for raw in raws] == [VOTE_MID, "r1@example.org"]


async def test_fetch_thread_raw_of_an_unknown_thread_fails_clearly(ponymail_sandbox: Sandbox) -> None:
    with pytest.raises(ponymail.ArchiveFetchError, match="not found"):
        await ponymail.fetch_thread_raw("0" * 32, archive_url=ponymail_sandbox.url)


async def test_find_vote_thread_among_a_month_of_noise(corpus_dir: pathlib.Path) -> None:
    sandbox = Sandbox(mbox=corpus_dir / "stream" / "maven-dev-2017-11-listsao.mbox")
    started = datetime.datetime(2017, 11, 28, 10, 0, tzinfo=datetime.UTC)
    expected = lists_http.archive_id(INDEXER_VOTE_MID, "dev.maven.apache.org")
    async with sandbox as url, client(url) as archive_client:
        by_name = await archive_client.find_vote_thread(LIST, votesubject.release("maven-indexer", "6.0.0"), started)
        # ATR's template would render "[VOTE] Release Apache Maven Indexer 6.0.0": not the subject sent.
        rendered = votesubject.release("maven-indexer", "6.0.0", "[VOTE] Release Apache Maven Indexer 6.0.0")
        by_subject = await archive_client.find_vote_thread(LIST, rendered, started)
        too_late = await archive_client.find_vote_thread(
            LIST, votesubject.release("maven-indexer", "6.0.0"), started + datetime.timedelta(days=2)
        )
        wrong_version = await archive_client.find_vote_thread(
            LIST, votesubject.release("maven-indexer", "6.0.1"), started
        )
    assert by_name is not None
    assert by_name.thread_id == expected
    assert by_name.message_id == INDEXER_VOTE_MID
    assert by_name.url == f"{url}/thread/{expected}"
    assert by_subject == by_name
    assert too_late is None
    assert wrong_version is None


async def test_a_vote_worded_unlike_the_template_is_found_and_the_managers_wins(ponymail_sandbox: Sandbox) -> None:
    # Foal matches header_subject as a phrase (reference §6.3): the rendered subject finds none of these.
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    when = started.timestamp() + 60
    ponymail_sandbox.add(mail("discuss@x.org", "[DISCUSS] Release Apache Foo 1.2.0", date=when))
    ponymail_sandbox.add(
        mail("other@x.org", "[VOTE] Release Apache Foo 1.2.0 RC1", sender="x <x@example.org>", date=when)
    )
    ponymail_sandbox.add(
        mail("rm@x.org", "[VOTE] Foo (incubating) 1.2.0 RC1", sender="RM <rm@apache.org>", date=when + 9)
    )
    ponymail_sandbox.add(mail("re@x.org", "Re: [VOTE] Foo (incubating) 1.2.0 RC1", in_reply_to="rm@x.org", date=when))
    wanted = votesubject.release("foo", "1.2.0", "[VOTE] Release Foo 1.2.0")
    async with client(ponymail_sandbox.url) as archive_client:
        phrase = await archive_client.stats(LIST, header_subject="[VOTE] Release Foo 1.2.0", emailsOnly=1)
        anyone = await archive_client.find_vote_thread(LIST, wanted, started)
        manager = await archive_client.find_vote_thread(LIST, wanted, started, managers=["rm"])
    assert phrase["hits"] == 0
    assert anyone is not None and anyone.message_id == "other@x.org"
    assert manager is not None and manager.message_id == "rm@x.org"


async def test_atrs_vote_thread_url_wins(ponymail_sandbox: Sandbox) -> None:
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    ident = ponymail_sandbox.add(mail("named@x.org", "Please vote on our release", date=started.timestamp() + 60))
    wanted = votesubject.release("foo", "1.2.0", "[VOTE] Release Foo 1.2.0")
    async with client(ponymail_sandbox.url) as archive_client:
        named = await archive_client.find_vote_thread(
            LIST, wanted, started, thread_url=f"https://lists.apache.org/thread/{ident}"
        )
        unnamed = await archive_client.find_vote_thread(LIST, wanted, started)
    assert named is not None and named.message_id == "named@x.org"
    assert unnamed is None


async def test_retry_after_is_honoured(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = ponymail.ArchiveSettings(base_url=ponymail_sandbox.url, backoff_s=0.01, backoff_max_s=0.05)
    ponymail_sandbox.fail_next(1, status=429, retry_after="3")
    async with ponymail.ArchiveClient(settings, sleep=sleep) as archive_client:
        assert await archive_client.stats(LIST) != {}
        ponymail_sandbox.fail_next(1, status=503, retry_after="3600")
        with pytest.raises(ponymail.ArchiveFetchError, match="Retry-After 3600s"):
            await archive_client.stats(LIST)
    assert slept == [3.0]


async def test_plain_http_is_refused_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        ponymail.ArchiveClient(ponymail.ArchiveSettings(base_url="http://lists.apache.org"))


async def test_a_failing_store_loses_nothing(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    store = Store()
    broken = True

    async def deliver(item: ponymail.ArchivedMessage) -> None:
        if broken:
            raise OSError("disk full")
        await store.deliver(item)

    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST])
        source.track(LIST, message_id=VOTE_MID)
        with pytest.raises(OSError, match="disk full"):
            await source.poll(store.seen, deliver)
        broken = False
        report = await source.poll(store.seen, deliver)
    assert mids(report.messages) == [VOTE_MID, "r1@example.org"]
    assert mids(store.delivered) == [VOTE_MID, "r1@example.org"]


async def test_run_polls_until_stopped(ponymail_sandbox: Sandbox) -> None:
    add_vote_thread(ponymail_sandbox)
    store = Store()
    stop = asyncio.Event()
    async with client(ponymail_sandbox.url) as archive_client:
        source = ponymail.PonyMailSource(archive_client, [LIST])
        source.track(LIST, message_id=VOTE_MID)
        runner = asyncio.create_task(source.run(store.seen, store.deliver, interval_s=0.05, stop=stop))
        ponymail_sandbox.add(mail("r2@example.org", "Re: [VOTE] Release Foo 1.0", in_reply_to=VOTE_MID))
        for _ in range(100):
            if len(store.delivered) == 3:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(runner, timeout=5)
    assert sorted(mids(store.delivered)) == sorted([VOTE_MID, "r1@example.org", "r2@example.org"])


async def test_thread_finder_for_discovery(corpus_dir: pathlib.Path) -> None:
    sandbox = Sandbox(mbox=corpus_dir / INDEXER_MBOX)
    started = datetime.datetime(2017, 11, 28, 10, 0, tzinfo=datetime.UTC)
    subject = "[VOTE] Release Maven Indexer {}"
    async with sandbox as url, client(url) as archive_client:
        finder = ponymail.ArchiveThreads(archive_client)
        found = await finder.find_vote_thread(LIST, subject.format("6.0.0"), "Maven Indexer", "6.0.0", started)
        missing = await finder.find_vote_thread(LIST, subject.format("7.0.0"), "Maven Indexer", "7.0.0", started)
    assert isinstance(found, tracking.FoundThread)
    assert found.message_id == INDEXER_VOTE_MID
    assert found.subject == subject.format("6.0.0")
    assert found.date == datetime.datetime(2017, 11, 28, 10, 20, 31, tzinfo=datetime.UTC)
    assert "Vote open for at least 72 hours." in found.body
    thread_id = lists_http.archive_id(INDEXER_VOTE_MID, "dev.maven.apache.org")
    assert finder.thread_ids == {INDEXER_VOTE_MID: thread_id}
    assert missing is None
