"""Pure helpers of the lists.apache.org client and sandbox."""

from __future__ import annotations

import httpx
import pytest

import watcher.sandbox.lists_http as lists_http
import watcher.sources.ponymail as ponymail

THREAD_ID = "z0o7xnjnyw2o886rxvvq2ql4rdfn754w"


@pytest.mark.parametrize(
    ("given", "base"),
    [
        (THREAD_ID, None),
        (f"https://lists.apache.org/thread/{THREAD_ID}", "https://lists.apache.org"),
        (f"https://lists.apache.org/thread/{THREAD_ID}/", "https://lists.apache.org"),
        (f"http://127.0.0.1:8080/thread/{THREAD_ID}", "http://127.0.0.1:8080"),
        (f"https://example.org/archive/thread/{THREAD_ID}?foo=1", "https://example.org/archive"),
    ],
)
def test_thread_references(given: str, base: str | None) -> None:
    assert ponymail.parse_thread_ref(given) == (base, THREAD_ID)


@pytest.mark.parametrize(
    "given",
    ["", "https://lists.apache.org/list.html?dev@foo.apache.org", "ftp://x/thread/abc", "../etc/passwd", "a b"],
)
def test_bad_thread_references_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="not a thread"):
        ponymail.parse_thread_ref(given)


def test_thread_entries_merge_emails_and_tree_in_archive_order() -> None:
    data = {
        "thread": {
            "id": "a" * 32,
            "message-id": "<root@x>",
            "epoch": 10,
            "children": [{"id": "c" * 32, "message-id": "<c@x>", "epoch": 30, "children": []}],
        },
        "emails": [
            {"mid": "b" * 32, "message-id": "<b@x>", "epoch": 20},
            {"mid": "a" * 32, "message-id": "<root@x>", "epoch": 10},
            {"mid": "../bad", "epoch": 5},
        ],
    }
    entries = ponymail.thread_entries(data)
    assert [(e.archive_id[0], e.message_id, e.epoch) for e in entries] == [
        ("a", "root@x", 10),
        ("b", "b@x", 20),
        ("c", "c@x", 30),
    ]


@pytest.mark.parametrize(
    "url", ["https://lists.apache.org", "https://lists.apache.org/", "http://127.0.0.1:9", "http://[::1]:9"]
)
def test_allowed_archive_urls(url: str) -> None:
    assert ponymail.check_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://lists.apache.org", "http://10.0.0.1", "ftp://127.0.0.1", "lists.apache.org"])
def test_refused_archive_urls(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        ponymail.check_url(url)


def test_list_addresses() -> None:
    assert ponymail.split_list("Dev@Maven.apache.org") == ("dev", "maven.apache.org")
    assert ponymail.list_id("dev@maven.apache.org") == "dev.maven.apache.org"
    with pytest.raises(ValueError, match="list address"):
        ponymail.split_list("dev.maven.apache.org")


def test_thread_entries_keep_each_messages_own_list() -> None:
    # Foal's tree takes in replies from other lists (reference §6.4); each keeps its own list.
    data = {
        "thread": {
            "id": "b" * 32,
            "list_raw": "<dev.foo.apache.org>",
            "epoch": 1,
            "children": [{"id": "c" * 32, "list_raw": "<general.incubator.apache.org>", "epoch": 2, "children": []}],
        },
        "emails": [{"id": "b" * 32, "epoch": 1}],
    }
    entries = ponymail.thread_entries(data)
    assert [e.list_address for e in entries] == ["dev@foo.apache.org", "general@incubator.apache.org"]
    root = ponymail.thread_root(data)
    assert root is not None and root.archive_id == "b" * 32


def test_unknown_list_answer() -> None:
    # reference §6.5: 200 with 0 hits and firstYear 1970, never 404.
    assert ponymail.is_unknown_list({"firstYear": 1970, "hits": 0, "emails": []})
    assert not ponymail.is_unknown_list({"firstYear": 2019, "hits": 0, "emails": []})


def test_retry_after_in_seconds_or_as_a_date() -> None:
    def answer(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert ponymail.retry_after(answer("7"), 0.0) == 7.0
    assert ponymail.retry_after(answer("Thu, 01 Jan 1970 00:01:40 GMT"), 40.0) == 60.0
    assert ponymail.retry_after(answer("soon"), 0.0) is None
    assert ponymail.retry_after(httpx.Response(503), 0.0) is None


def test_redaction_matches_foal() -> None:
    assert lists_http.redact_addresses("User <user-tests@tooling.apache.org>") == "User <us...@tooling.apache.org>"
    assert lists_http.redact_addresses("a@b.org, Bob <bob@c.org>") == "a...@b.org,\n Bob <bo...@c.org>"
    assert lists_http.redact_body("see <jane@example.org> or jane@example.org") == (
        "see <ja...@example.org> or jane@example.org"
    )


def test_list_ids() -> None:
    assert lists_http.list_id_of("dev@maven.apache.org") == "dev.maven.apache.org"
    assert lists_http.list_id_of("<dev.maven.apache.org>") == "dev.maven.apache.org"
    assert lists_http.list_address("dev.maven.apache.org") == "dev@maven.apache.org"


def test_redaction_quotes_names_as_foal_does() -> None:
    assert lists_http.redact_addresses('"Doe, Jane" <jane@x.org>') == '"Doe, Jane" <ja...@x.org>'
