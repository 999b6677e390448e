"""The [VOTE] subject matcher: one rule for the archive and the IMAP-only paths."""

from __future__ import annotations

import pytest

import watcher.core.votesubject as votesubject

RENDERED = "[VOTE] Release Apache Foo 1.2.0"


@pytest.mark.parametrize(
    "subject",
    [
        "[VOTE] Release Apache Foo 1.2.0",
        "[VOTE] Release Apache Foo 1.2.0 RC1",
        "[VOTE] Release Foo 1.2.0",
        "[VOTE] Apache Foo (incubating) 1.2.0",
        "[vote] apache foo v1.2.0, take 2",
        "[VOTE] Release Apache Foo 1.2.0-rc3",
        "[VOTE] Release Apache Foo 1.2.0rc3",
        "[VOTE] Release Apache Foo 1.2.0-incubating-rc1",
        "[VOTE] 1.2.0 of Apache Foo",
        "[VOTE][LAZY] Release Foo 1.2.0",
    ],
)
def test_worded_differently_still_opens_the_vote(subject: str) -> None:
    wanted = votesubject.release("foo", "1.2.0", RENDERED)
    assert votesubject.is_vote_call(subject, wanted)


@pytest.mark.parametrize(
    "subject",
    [
        "[RESULT] [VOTE] Release Apache Foo 1.2.0",
        "[CANCEL] [VOTE] Release Apache Foo 1.2.0",
        "[DISCUSS] [VOTE] Release Apache Foo 1.2.0",
        "Release Apache Foo 1.2.0",
        "[VOTE] Release Apache Foo 1.2.01",
        "[VOTE] Release Apache Foo 11.2.0",
        "[VOTE] Release Apache Foo 1.2.0.1",
        "[VOTE] Release Apache Foo 1.2.0-M1",
        "[VOTE] Release Apache Foo 1.2",
        "[VOTE] Release Apache Bar 1.2.0",
        "Re: [VOTE] Release Apache Foo 1.2.0",
        "AW: [VOTE] Release Apache Foo 1.2.0",
    ],
)
def test_other_subjects_do_not_open_the_vote(subject: str) -> None:
    wanted = votesubject.release("foo", "1.2.0", RENDERED)
    assert not votesubject.is_vote_call(subject, wanted)


def test_replies_match_as_replies() -> None:
    wanted = votesubject.release("foo", "1.2.0", RENDERED)
    found = votesubject.match("Re: [VOTE] Release Apache Foo 1.2.0 RC1", wanted)
    assert found == votesubject.Match(reply=True, exact=False)


def test_the_rendered_subject_is_exact() -> None:
    wanted = votesubject.release("foo", "1.2.0", RENDERED)
    assert votesubject.match("[VOTE]  release apache  FOO 1.2.0", wanted) == votesubject.Match(False, True)
    assert votesubject.match("[VOTE] Release Foo 1.2.0", wanted) == votesubject.Match(False, False)


def test_the_display_name_comes_from_the_rendered_subject() -> None:
    # The key ("tooling") is not in the subject; the name ATR rendered ("Trusted Releases") is.
    wanted = votesubject.release("tooling", "0.4", "[VOTE] Release Apache Trusted Releases 0.4")
    assert wanted.names == ("trusted releases",)
    assert votesubject.is_vote_call("[VOTE] Trusted Releases 0.4 RC2", wanted)
    assert not votesubject.is_vote_call("[VOTE] Release Apache Trusted 0.4", wanted)


def test_a_hyphenated_key_names_the_project_by_its_words() -> None:
    wanted = votesubject.release("maven-indexer", "6.0.0")
    assert votesubject.is_vote_call("[VOTE] Release Apache Maven Indexer version 6.0.0", wanted)
    assert not votesubject.is_vote_call("[VOTE] Release Apache Maven Doxia 6.0.0", wanted)


def test_a_version_with_an_rc_suffix_of_its_own() -> None:
    wanted = votesubject.release("maven-indexer", "6.0.0-RC1")
    assert votesubject.is_vote_call("[VOTE] Release Maven Indexer 6.0.0-RC1", wanted)
    assert not votesubject.is_vote_call("[VOTE] Release Maven Indexer 6.0.0-RC2", wanted)
