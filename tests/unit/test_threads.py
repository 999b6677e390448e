"""Thread matching and selection: subjects, reply chains, new-thread results, the corpus stream."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import pytest

import watcher.core.message as message
import watcher.core.threads as threads
import watcher.sources.archive as archive

STREAM = "stream/maven-dev-2017-11-listsao.mbox"


@dataclasses.dataclass(frozen=True)
class Msg:
    """The four headers thread matching reads (the Threaded protocol)."""

    message_id: str
    subject: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()


def reply(mid: str, parent: str, subject: str, *refs: str) -> Msg:
    return Msg(mid, subject, parent, (*refs, parent))


VOTE = "[VOTE] Release Apache Foo 1.0"
RE_VOTE = "Re: [VOTE] Release Apache Foo 1.0"


def ids(messages: list[Any]) -> list[str]:
    return [m.message_id for m in messages]


# --- subjects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("[VOTE] Release Apache Maven Indexer 6.0.0", "release apache maven indexer 6.0.0"),
        ("Re: [VOTE] Release Apache Maven Indexer 6.0.0", "release apache maven indexer 6.0.0"),
        ("RE: AW: Aw: re: [vote] Release  Apache\tMaven Indexer 6.0.0 ", "release apache maven indexer 6.0.0"),
        ("[RESULT] [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("[RESULT][VOTE] Release Foo 1.0", "release foo 1.0"),
        ("Re: [Result] Re: [vote] Release Foo 1.0", "release foo 1.0"),
        ("[CANCEL] [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("[CANCELED] [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("[cancelled] [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("[DISCUSS] [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("[ANNOUNCE] Apache Foo 1.0 released", "apache foo 1.0 released"),
        ("[ANN] Apache Foo 1.0 released", "apache foo 1.0 released"),
        ("Fwd: Fw: FW: [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("Antw: SV: VS: R: Réf. : [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("RÉF: [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("Re[2]: [VOTE] Release Foo 1.0", "release foo 1.0"),
        ("回复：[VOTE] Release Foo 1.0", "release foo 1.0"),
        ("[VOTE] Release Foo 1.0 (take 2)", "release foo 1.0 (take 2)"),
        ("[VOTE] Release Foo 1.0 [RC3]", "release foo 1.0 [rc3]"),
        ("Reactor safe/rally points", "reactor safe/rally points"),
        ("Revote on Foo", "revote on foo"),
        ("", ""),
        ("Re:", ""),
    ],
)
def test_normalise_subject(subject: str, expected: str) -> None:
    assert threads.normalise_subject(subject) == expected


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("[VOTE] Release Foo 1.0", "vote"),
        ("Re: [VOTE] Release Foo 1.0", "vote"),
        ("[vote] release foo", "vote"),
        ("[ VOTE ] Release Foo 1.0", "vote"),
        ("[RESULT] [VOTE] Release Foo 1.0", "result"),
        ("[VOTE] [RESULT] Release Foo 1.0", "result"),
        ("Re: [result][vote] Release Foo 1.0", "result"),
        ("[VOTE][RESULTS] Release Foo 1.0", "result"),
        ("[VOTE RESULT] Release Foo 1.0", "result"),
        ("[CANCEL] [VOTE] Release Foo 1.0", "cancel"),
        ("[CANCELED] [VOTE] Release Foo 1.0", "cancel"),
        ("Re: [Cancelled] [VOTE] Release Foo 1.0", "cancel"),
        ("[DISCUSS] [VOTE] Release Foo 1.0", "other"),
        ("Release Foo 1.0 vote", "other"),
        ("Voting on [VOTES]", "other"),
        ("[ANN] Apache Foo 1.0 released", "other"),
    ],
)
def test_kind_of(subject: str, kind: str) -> None:
    assert threads.kind_of(subject) == kind


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (Msg("a", VOTE), True),
        (Msg("a", "[vote] release foo 1.0"), True),
        (Msg("a", RE_VOTE), False),
        (Msg("a", "Fwd: [VOTE] Release Foo 1.0"), False),
        (Msg("a", VOTE, in_reply_to="x"), False),
        (Msg("a", VOTE, references=("x",)), False),
        (Msg("a", "[RESULT] [VOTE] Release Foo 1.0"), False),
        (Msg("a", "[DISCUSS] Release Foo 1.0"), False),
        (Msg("a", "Release Foo 1.0"), False),
    ],
)
def test_is_vote_call(msg: Msg, expected: bool) -> None:
    assert threads.is_vote_call(msg) is expected


@pytest.mark.parametrize(
    ("vote", "other", "expected"),
    [
        # The real Indexer case: the RESULT adds "Apache" and "version".
        ("[VOTE] Release Maven Indexer 6.0.0", "[RESULT] [VOTE] Release Apache Maven Indexer version 6.0.0", True),
        ("[VOTE] Release Apache Maven Indexer 6.0.0", "[RESULT] Indexer 6.0.0", True),
        ("[VOTE] Release Foo 1.0 (take 2)", "[RESULT] Release Foo 1.0 (take 2)", True),
        ("[VOTE] Release Foo 1.0 (take 2)", "[RESULT] Release Foo 1.0", True),
        ("[VOTE] Release Foo 1.0", "[RESULT] Release Foo 1.0 (take 1)", True),
        ("[VOTE] Release Foo 1.0", "[RESULT] Release Foo 1.0 (take 3)", False),
        ("[VOTE] Release Foo 1.0 RC2", "[RESULT] Release Foo 1.0-rc2", True),
        ("[VOTE] Release Foo 1.0-RC1", "[RESULT] Release Foo 1.0 RC2", False),
        ("[VOTE] Release Apache Foo 1.0 (incubating)", "[RESULT] Apache Foo 1.0-incubating", True),
        ("[VOTE] Release Maven Indexer 6.0.0", "[RESULT] Release Maven Indexer 6.0.1", False),
        ("[VOTE] Release Maven Indexer 6.0.0", "[RESULT] Release Maven Resolver 6.0.0", False),
        ("[VOTE] Release Maven 3.5.2", "[RESULT] Release Maven Wagon 3.5.2", False),
        ("[VOTE] Release Maven Wagon 3.5.2", "[RESULT] Release Maven 3.5.2", False),
        ("[VOTE] Release", "[RESULT] Release", False),
    ],
)
def test_same_release(vote: str, other: str, expected: bool) -> None:
    assert threads.same_release(vote, other) is expected


# --- select_thread: synthetic threads ---------------------------------------------------------


def test_reply_chain_with_truncated_references_and_noise_in_between() -> None:
    messages = [
        Msg("noise1", "Re: Maven 4.0.0", "n0", ("n0",)),
        Msg("root", VOTE),
        reply("r1", "root", RE_VOTE),
        Msg("noise2", "[GitHub] something"),
        reply("r2", "r1", RE_VOTE, "root"),
        # A client that keeps only the last References: it still reaches the thread through r2.
        Msg("r3", "Re: Re: [VOTE] Release Apache Foo 1.0", "r2", ("r1", "r2")),
        reply("r4", "r3", "Re: changed subject, same thread"),
        reply("result", "root", "[RESULT] [VOTE] Release Apache Foo 1.0"),
        reply("noise3", "noise2", "Re: [GitHub] something"),
    ]
    assert ids(threads.select_thread(messages, VOTE)) == ["root", "r1", "r2", "r3", "r4", "result"]


def test_reply_before_its_parent_in_archive_order_still_joins() -> None:
    messages = [Msg("root", VOTE), reply("late-child", "late", RE_VOTE, "root"), reply("late", "root", RE_VOTE)]
    assert ids(threads.select_thread(messages, "<root>")) == ["root", "late-child", "late"]


def test_subject_fallback_only_for_replies_without_usable_references() -> None:
    messages = [
        Msg("root", VOTE),
        Msg("no-refs", "RE: [VOTE] Release Apache Foo 1.0"),
        Msg("dangling", RE_VOTE, "not-in-archive"),
        Msg("other-thread", "Re: Maven 4.0.0"),
        reply("elsewhere", "other-thread", RE_VOTE),
        Msg("new-thread-same-subject", VOTE.replace("1.0", "1.0 ")),
        Msg("different", "Re: [VOTE] Release Apache Foo 1.1"),
    ]
    # "elsewhere" has a usable parent in another thread; the last two are not replies / not equal.
    selected = ids(threads.select_thread(messages, "<root>"))
    assert selected == ["root", "no-refs", "dangling"]


def test_subject_fallback_goes_to_the_latest_vote_with_that_subject() -> None:
    messages = [Msg("first", VOTE), Msg("second", VOTE), Msg("no-refs", RE_VOTE)]
    assert ids(threads.select_thread(messages, "<first>")) == ["first"]
    assert ids(threads.select_thread(messages, "<second>")) == ["second", "no-refs"]


def test_new_thread_result_with_a_different_subject_joins() -> None:
    messages = [
        Msg("root", "[VOTE] Release Maven Indexer 6.0.0"),
        reply("r1", "root", "Re: [VOTE] Release Maven Indexer 6.0.0"),
        Msg("other-result", "[RESULT] [VOTE] Release Apache Maven Resolver version 6.0.0"),
        Msg("result", "[RESULT] [VOTE] Release Apache Maven Indexer version 6.0.0"),
        reply("thanks", "result", "Re: [RESULT] [VOTE] Release Apache Maven Indexer version 6.0.0"),
    ]
    assert ids(threads.select_thread(messages, "indexer")) == ["root", "r1", "result", "thanks"]


def test_new_thread_result_before_the_vote_does_not_join() -> None:
    messages = [Msg("old-result", "[RESULT] Release Apache Foo 1.0"), Msg("root", VOTE)]
    assert ids(threads.select_thread(messages, VOTE)) == ["root"]


def test_new_thread_result_belongs_to_the_latest_take() -> None:
    messages = [
        Msg("take1", "[VOTE] Release Foo 1.0"),
        Msg("cancel1", "[CANCEL] [VOTE] Release Foo 1.0"),
        Msg("take2", "[VOTE] Release Foo 1.0 (take 2)"),
        Msg("result2", "[RESULT] [VOTE] Release Foo 1.0"),
    ]
    assert ids(threads.select_thread(messages, "<take1>")) == ["take1", "cancel1"]
    assert ids(threads.select_thread(messages, "<take2>")) == ["take2", "result2"]


def test_a_new_vote_sent_as_a_reply_forks_with_its_replies() -> None:
    messages = [
        Msg("take1", "[VOTE] Release Foo 1.0"),
        reply("cancel", "take1", "[CANCEL] [VOTE] Release Foo 1.0"),
        reply("take2", "cancel", "[VOTE] Release Foo 1.0 (take 2)", "take1"),
        reply("vote2", "take2", "Re: [VOTE] Release Foo 1.0 (take 2)", "take1", "cancel"),
        reply("vote1", "take1", "Re: [VOTE] Release Foo 1.0"),
    ]
    assert ids(threads.select_thread(messages, "[VOTE] Release Foo 1.0")) == ["take1", "cancel", "vote1"]
    assert ids(threads.select_thread(messages, "<take2>")) == ["take2", "vote2"]
    assert ids(threads.select_thread(messages, "foo (take 2)")) == ["take2", "vote2"]


def test_duplicates_are_kept_once_in_first_position() -> None:
    messages = [Msg("root", VOTE), reply("r1", "root", RE_VOTE), Msg("root", VOTE), reply("r1", "root", RE_VOTE)]
    assert ids(threads.select_thread(messages, VOTE)) == ["root", "r1"]


def test_self_referencing_message_still_joins() -> None:
    messages = [Msg("root", VOTE), Msg("odd", RE_VOTE, "root", ("root", "odd"))]
    assert ids(threads.select_thread(messages, VOTE)) == ["root", "odd"]


def test_reference_cycle_terminates() -> None:
    messages = [Msg("root", VOTE), reply("a", "root", RE_VOTE), Msg("b", RE_VOTE, "c", ("c",)), Msg("c", RE_VOTE, "b")]
    assert ids(threads.select_thread(messages, VOTE)) == ["root", "a"]


@pytest.mark.parametrize("selector", ["root@example.org", "<root@example.org>", " <root@example.org> "])
def test_select_by_message_id(selector: str) -> None:
    messages = [Msg("x@example.org", "noise"), Msg("root@example.org", VOTE), reply("r@e", "root@example.org", RE_VOTE)]
    assert ids(threads.select_thread(messages, selector)) == ["root@example.org", "r@e"]


def test_message_id_of_a_reply_selects_its_vote() -> None:
    messages = [Msg("root@x", VOTE), reply("a@x", "root@x", RE_VOTE), reply("b@x", "a@x", RE_VOTE, "root@x")]
    assert ids(threads.select_thread(messages, "<b@x>")) == ["root@x", "a@x", "b@x"]


def test_replies_whose_vote_is_not_in_the_archive_still_form_a_thread() -> None:
    messages = [
        Msg("noise", "Hello"),
        reply("a", "root-last-month", RE_VOTE),
        reply("b", "a", RE_VOTE, "root-last-month"),
        Msg("result", "[RESULT] [VOTE] Release Apache Foo 1.0"),
    ]
    assert ids(threads.select_thread(messages, VOTE)) == ["a", "b", "result"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        # An exact normalised match wins over partial ones.
        ("[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0", "take1"),
        ("Re: [vote] release apache maven javadoc plugin version 3.0.0", "take1"),
        ("Javadoc Plugin version 3.0.0 (take 2)", "take2"),
        ("javadoc (take 3)", "take3"),
        ("[VOTE] Release Maven Doxia 1.8", "doxia"),
        ("doxia", "doxia"),
    ],
)
def test_selection_among_similar_votes(selector: str, expected: str) -> None:
    messages = [
        Msg("take1", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0"),
        Msg("take2", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0 (take 2)"),
        Msg("take3", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0 (take 3)"),
        Msg("doxia", "[VOTE] Release Maven Doxia 1.8"),
    ]
    assert ids(threads.select_thread(messages, selector)) == [expected]


def test_ambiguous_selector_lists_the_candidates() -> None:
    messages = [
        Msg("take1", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0"),
        Msg("take2", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0 (take 2)"),
        Msg("doxia", "[VOTE] Release Maven Doxia 1.8"),
    ]
    with pytest.raises(threads.AmbiguousThread) as caught:
        threads.select_thread(messages, "javadoc")
    assert caught.value.candidates == (
        ("take1", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0"),
        ("take2", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0 (take 2)"),
    )
    assert "<take1>" in str(caught.value)
    assert "<take2>" in str(caught.value)
    assert isinstance(caught.value, threads.ThreadNotFound)


@pytest.mark.parametrize(
    ("selector", "error"),
    [
        ("nothing like it", "no [VOTE] thread matches 'nothing like it'"),
        ("<missing@example.org>", "no message with Message-ID <missing@example.org>"),
        ("missing@example.org", "no message with Message-ID <missing@example.org>"),
        ("   ", "no thread selector given"),
        ("Re: [VOTE]", "nothing to match"),
        ("Re: Maven 4.0.0", "no [VOTE] thread matches"),
    ],
)
def test_thread_not_found(selector: str, error: str) -> None:
    messages = [Msg("root", VOTE), Msg("talk", "Maven 4.0.0"), reply("t1", "talk", "Re: Maven 4.0.0")]
    with pytest.raises(threads.ThreadNotFound, match=error.replace("[", r"\[").replace("]", r"\]")):
        threads.select_thread(messages, selector)


def test_not_found_names_the_votes_that_exist() -> None:
    with pytest.raises(threads.ThreadNotFound, match=r"\[VOTE\] Release Apache Foo 1.0"):
        threads.select_thread([Msg("root", VOTE)], "bar")


# --- select_thread: the corpus ----------------------------------------------------------------


def read_envelopes(path: pathlib.Path) -> list[message.Envelope]:
    return [message.peek(raw) for raw in archive.iter_raw(path)]


def test_corpus_stream_threads_are_selected_exactly(corpus_dir: pathlib.Path) -> None:
    stream = read_envelopes(corpus_dir / STREAM)
    in_stream = {env.message_id for env in stream}
    checked = 0
    for thread_file in sorted((corpus_dir / "threads").glob("*.mbox")):
        thread = read_envelopes(thread_file)
        expected = [env.message_id for env in thread if env.message_id in in_stream]
        if not expected:
            continue
        root = thread[0]
        assert threads.is_vote_call(root)
        for selector in (root.subject, root.message_id, f"<{root.message_id}>"):
            assert ids(threads.select_thread(stream, selector)) == expected, (thread_file.name, selector)
        checked += 1
    assert checked == 4


def test_corpus_stream_and_threads_together(corpus_dir: pathlib.Path) -> None:
    """With December's threads appended, the Indexer's new-thread RESULT and take 3 resolve right."""
    thread_files = sorted((corpus_dir / "threads").glob("*.mbox"))
    everything = [message.peek(raw) for raw in archive.iter_sources([corpus_dir / STREAM, *thread_files])]
    for thread_file in thread_files:
        thread = read_envelopes(thread_file)
        assert ids(threads.select_thread(everything, thread[0].subject)) == ids(thread), thread_file.name


def test_corpus_parsed_messages_fit_too(corpus_dir: pathlib.Path) -> None:
    thread = [message.parse(raw) for raw in archive.iter_raw(corpus_dir / "threads/04-maven-indexer-6.0.0.mbox")]
    selected = threads.select_thread(thread, "Maven Indexer 6.0.0")
    assert len(selected) == 13
    assert threads.kind_of(selected[-1].subject) == "result"


# --- ThreadMatcher ----------------------------------------------------------------------------


def test_matcher_follows_replies_to_replies_and_ignores_noise() -> None:
    matcher = threads.ThreadMatcher()
    matcher.track("<root>", VOTE)
    assert matcher.match(Msg("root", VOTE)) == "root"
    assert matcher.match(reply("a", "root", RE_VOTE)) == "root"
    assert matcher.match(reply("b", "a", RE_VOTE)) == "root"
    assert matcher.match(Msg("c", "Re: Re: [VOTE] Release Apache Foo 1.0", "b", ("b",))) == "root"
    assert matcher.match(Msg("noise", "[GitHub] closed #13")) is None
    assert matcher.match(reply("noise-reply", "noise", "Re: [GitHub] closed #13")) is None
    assert matcher.match(reply("b", "a", RE_VOTE)) == "root"


def test_matcher_keeps_two_votes_apart_and_adopts_new_thread_results() -> None:
    matcher = threads.ThreadMatcher()
    matcher.track("indexer", "[VOTE] Release Maven Indexer 6.0.0")
    matcher.track("javadoc", "[VOTE] Release Apache Maven Javadoc Plugin version 3.0.0 (take 3)")
    assert matcher.roots == ("indexer", "javadoc")
    assert matcher.match(reply("i1", "indexer", "Re: [VOTE] Release Maven Indexer 6.0.0")) == "indexer"
    assert matcher.match(reply("j1", "javadoc", "Re: whatever")) == "javadoc"
    result = Msg("ir", "[RESULT] [VOTE] Release Apache Maven Indexer version 6.0.0")
    assert matcher.match(result) == "indexer"
    assert matcher.match(reply("ir1", "ir", "Re: [RESULT] [VOTE] Release Apache Maven Indexer version 6.0.0")) == (
        "indexer"
    )
    assert matcher.match(Msg("other", "[RESULT] [VOTE] Release Apache Maven Javadoc Plugin 3.0.0 (take 2)")) is None
    assert matcher.match(Msg("no-refs", "RE: [VOTE] Release Apache Maven Javadoc Plugin version 3.0.0 (take 3)")) == (
        "javadoc"
    )


def test_matcher_new_vote_calls_are_left_to_the_caller() -> None:
    matcher = threads.ThreadMatcher()
    matcher.track("take1", "[VOTE] Release Foo 1.0")
    call = Msg("take2", "[VOTE] Release Foo 1.0 (take 2)")
    assert threads.is_vote_call(call)
    assert matcher.match(call) is None
    matcher.track(call.message_id, call.subject)
    assert matcher.match(reply("v", "take2", "Re: [VOTE] Release Foo 1.0 (take 2)")) == "take2"
    assert matcher.match(Msg("r", "[RESULT] [VOTE] Release Foo 1.0")) == "take2"


def test_matcher_a_fork_takes_its_replies_away() -> None:
    matcher = threads.ThreadMatcher()
    matcher.track("take1", "[VOTE] Release Foo 1.0")
    assert matcher.match(reply("cancel", "take1", "[CANCEL] [VOTE] Release Foo 1.0")) == "take1"
    assert matcher.match(reply("take2", "cancel", "[VOTE] Release Foo 1.0 (take 2)", "take1")) is None
    assert matcher.match(reply("vote2", "take2", "Re: [VOTE] Release Foo 1.0 (take 2)", "take1", "cancel")) is None
    matcher.track("take2", "[VOTE] Release Foo 1.0 (take 2)")
    assert matcher.match(reply("vote3", "take2", "Re: [VOTE] Release Foo 1.0 (take 2)", "take1", "cancel")) == "take2"


def test_matcher_forget_and_remember() -> None:
    matcher = threads.ThreadMatcher()
    matcher.track("root", VOTE)
    matcher.remember("<old-reply>", "<root>")
    assert matcher.match(reply("new", "old-reply", RE_VOTE)) == "root"
    matcher.remember("stray", "not-tracked")
    assert matcher.match(reply("x", "stray", RE_VOTE)) == "root"  # by subject: "stray" was not remembered
    matcher.forget("root")
    assert matcher.roots == ()
    assert matcher.match(reply("later", "new", RE_VOTE)) is None


def test_matcher_replays_the_corpus_like_select_thread(corpus_dir: pathlib.Path) -> None:
    thread_files = sorted((corpus_dir / "threads").glob("*.mbox"))
    everything = [message.peek(raw) for raw in archive.iter_sources([corpus_dir / STREAM, *thread_files])]
    matcher = threads.ThreadMatcher()
    assigned: dict[str, list[str]] = {}
    for env in everything:
        if threads.is_vote_call(env):
            matcher.track(env.message_id, env.subject)
        root = matcher.match(env)
        if root is not None and env.message_id not in assigned.setdefault(root, []):
            assigned[root].append(env.message_id)
    assert len(assigned) == 6
    for thread_file in thread_files:
        thread = read_envelopes(thread_file)
        assert assigned[thread[0].message_id] == ids(thread), thread_file.name


# --- reply and gateway prefixes (issue 13) ------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "[EXTERNAL] RE: [VOTE] Release Apache Foo 1.0",
        "[EXT] Re: [VOTE] Release Apache Foo 1.0",
        "EXTERNAL: Re: [VOTE] Release Apache Foo 1.0",
        "RE: [EXTERNAL] [VOTE] Release Apache Foo 1.0",
        "AW: [VOTE] Release Apache Foo 1.0",
        "SV: [VOTE] Release Apache Foo 1.0",
        "Antw: [VOTE] Release Apache Foo 1.0",
        "Ref: [VOTE] Release Apache Foo 1.0",
        "R: [VOTE] Release Apache Foo 1.0",
        "[External] Re: AW: [VOTE] Release Apache Foo 1.0",
    ],
)
def test_a_prefixed_reply_without_threading_headers_joins_its_vote(subject: str) -> None:
    assert threads.normalise_subject(subject) == "release apache foo 1.0"
    messages = [Msg("root@x", VOTE), Msg("other@x", "[VOTE] Release Apache Bar 2.0"), Msg("reply@x", subject)]
    assert ids(threads.select_thread(messages, "root@x")) == ["root@x", "reply@x"]
    matcher = threads.ThreadMatcher()
    matcher.track("root@x", VOTE)
    assert matcher.match(Msg("reply@x", subject)) == "root@x"


def test_an_external_mark_alone_does_not_make_a_vote_call_a_reply() -> None:
    assert threads.is_vote_call(Msg("root@x", "[EXTERNAL] [VOTE] Release Apache Foo 1.0"))
