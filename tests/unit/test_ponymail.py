"""Pure helpers of the lists.apache.org client and sandbox."""

from __future__ import annotations

import pathlib

import pytest

import watcher.sandbox.ponymail as sandbox_ponymail
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


@pytest.mark.parametrize(
    ("subject", "wanted", "project", "version", "expected"),
    [
        ("[VOTE] Release Maven Indexer 6.0.0", None, "Maven Indexer", "6.0.0", True),
        ("[VOTE]  release maven   indexer 6.0.0", "[VOTE] Release Maven Indexer 6.0.0", "x", "9", True),
        ("[VOTE] Release Apache Maven Indexer version 6.0.0", None, "maven-indexer", "6.0.0", True),
        ("Re: [VOTE] Release Maven Indexer 6.0.0", None, "Maven Indexer", "6.0.0", False),
        ("[RESULT] [VOTE] Release Maven Indexer 6.0.0", None, "Maven Indexer", "6.0.0", False),
        ("[VOTE] Release Maven Indexer 6.0.0", None, "Maven Indexer", "6.0", False),
        ("[VOTE] Release Maven Indexer 16.0.0", None, "Maven Indexer", "6.0.0", False),
        ("[VOTE] Release Maven Indexer 6.0.0.1", None, "Maven Indexer", "6.0.0", False),
        ("[VOTE] Release Maven Indexer 6.0.0-RC1", None, "Maven Indexer", "6.0.0-RC1", True),
        ("[VOTE] Release Maven Doxia 6.0.0", None, "Maven Indexer", "6.0.0", False),
    ],
)
def test_vote_subjects(subject: str, wanted: str | None, project: str, version: str, expected: bool) -> None:
    assert ponymail.vote_subject_matches(subject, wanted, project, version) is expected


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


def test_token_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "token"
    path.write_text("pmt_abc\n")
    assert ponymail.read_token(path) == "pmt_abc"
    path.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        ponymail.read_token(path)
    with pytest.raises(ValueError, match="cannot read"):
        ponymail.read_token(tmp_path / "missing")


def test_redaction_matches_foal() -> None:
    assert (
        sandbox_ponymail.redact_addresses("User <user-tests@tooling.apache.org>") == "User <us...@tooling.apache.org>"
    )
    assert sandbox_ponymail.redact_addresses("a@b.org, Bob <bob@c.org>") == "a...@b.org,\n Bob <bo...@c.org>"
    assert sandbox_ponymail.redact_body("see <jane@example.org> or jane@example.org") == (
        "see <ja...@example.org> or jane@example.org"
    )


def test_list_ids() -> None:
    assert sandbox_ponymail.list_id_of("dev@maven.apache.org") == "dev.maven.apache.org"
    assert sandbox_ponymail.list_id_of("<dev.maven.apache.org>") == "dev.maven.apache.org"
    assert sandbox_ponymail.list_address("dev.maven.apache.org") == "dev@maven.apache.org"


def test_redaction_quotes_names_as_foal_does() -> None:
    assert sandbox_ponymail.redact_addresses('"Doe, Jane" <jane@x.org>') == '"Doe, Jane" <ja...@x.org>'
