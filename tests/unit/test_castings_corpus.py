"""The casting classifier on the real vote threads and the November stream of ../shared/asf-vote-corpus."""

from __future__ import annotations

import mailbox
import pathlib
from typing import Any

import pytest

import watcher.core.castings as castings
import watcher.core.message as message

pytestmark = pytest.mark.corpus

THREADS = [f"thread-{n:02d}" for n in range(1, 7)]
# Approvals without a +1 token that the RESULT counted: reported as possible votes, never counted.
NO_TOKEN_APPROVALS = {("01", 2), ("04", 2)}
STREAM = "stream/maven-dev-2017-11-listsao.mbox"
# Messages of the November stream outside vote threads that read as a vote, and why each is right:
# votes on proposals in discussion threads and on pull requests are votes; none is a number, a date,
# a diff hunk, a phone number, a question ("Why -1 on ...?") or talk about a vote ("give a -1").
STREAM_VOTES_OUTSIDE_VOTE_THREADS = {
    "1549856.He1MSBx3US@giga": "-1",  # "-1" on a proposal to switch checksums, inline below a quote
    "1667195.t7Hg2OM9be@giga": "?",  # "In summary, +1 to merge demos, -1 to merge ant-tasks"
    "20171115094510.AD9ABDFFD7@git1-us-west.apache.org": "+1",  # "Great improvement to the PR! +1"
    "op.y9s42zr8kdkhrr@desktop-2khsk44": "+1",
    "CAFNCU-9aK1BMmNFp4SPFkR=rEsNf76iS3yFi8MwdPsxnS69dYQ@mail.gmail.com": "+1",
    "2075682.UDmnpMX7js@giga": "+1",
    "CAFNCU-_ud0XR_N--KAfQMkp=HGbXdDfyao1tivcdGCSRx24O6g@mail.gmail.com": "+1",
    "151163426177.16882.10769365710638890897.gitbox@gitbox.apache.org": "+1",
}


def _messages(path: pathlib.Path) -> list[message.Message]:
    return [message.parse(raw.as_bytes()) for raw in mailbox.mbox(path)]


@pytest.fixture(scope="module")
def thread_messages(corpus_dir: pathlib.Path) -> dict[str, list[message.Message]]:
    """Each thread's parsed messages, in file order, by thread number ("01")."""
    return {path.name[:2]: _messages(path) for path in sorted((corpus_dir / "threads").glob("*.mbox"))}


def _thread(ground_truth: dict[str, Any], thread_id: str) -> dict[str, Any]:
    number = thread_id.removeprefix("thread-")
    found: dict[str, Any] = next(t for t in ground_truth["threads"] if t["file"].startswith(f"threads/{number}-"))
    return found


@pytest.mark.parametrize("thread_id", THREADS)
def test_every_annotated_vote_is_read(
    thread_messages: dict[str, list[message.Message]], ground_truth: dict[str, Any], thread_id: str
) -> None:
    thread = _thread(ground_truth, thread_id)
    number = thread_id.removeprefix("thread-")
    messages = thread_messages[number]
    assert len(messages) == len(thread["annotations"])
    wrong = []
    for note in thread["annotations"]:
        reading = castings.read(messages[note["n"] - 1].text)
        if (number, note["n"]) in NO_TOKEN_APPROVALS:
            ok = reading.vote is None and reading.possible is not None
        else:
            ok = reading.vote == note["vote"]
        if not ok:
            wrong.append((note["n"], note["vote"], reading.vote, reading.quotation, reading.possible))
    assert wrong == []


@pytest.mark.parametrize("thread_id", THREADS)
def test_self_labels_match_annotations(
    thread_messages: dict[str, list[message.Message]], ground_truth: dict[str, Any], thread_id: str
) -> None:
    thread = _thread(ground_truth, thread_id)
    messages = thread_messages[thread_id.removeprefix("thread-")]
    for note in thread["annotations"]:
        if note["vote"] is None:
            continue
        reading = castings.read(messages[note["n"] - 1].text)
        assert reading.self_label == note["self_label"], (note["n"], reading)


@pytest.fixture(scope="module")
def corpus_readings(thread_messages: dict[str, list[message.Message]]) -> dict[tuple[str, int], castings.Reading]:
    """Every thread message's reading, by (thread number, message number from 1)."""
    return {
        (number, n): castings.read(msg.text)
        for number, messages in thread_messages.items()
        for n, msg in enumerate(messages, start=1)
    }


def test_hard_cases(corpus_readings: dict[tuple[str, int], castings.Reading]) -> None:
    # Votes in the middle of a line count, at low confidence, and say so.
    awesome = corpus_readings[("04", 4)]
    assert (awesome.vote, awesome.confidence, awesome.quotation) == ("+1", "low", "Awesome! +1")
    assert "vote mid-line" in awesome.reasons
    here_is_my = corpus_readings[("06", 2)]
    assert (here_is_my.vote, here_is_my.confidence, here_is_my.quotation) == ("+1", "low", "here is my +1")
    assert corpus_readings[("06", 5)].quotation == "+1 from me."
    # The RM talking about someone else's message is not a vote by the RM.
    translate = corpus_readings[("01", 5)]
    assert translate.vote is None
    assert translate.reasons == ("+1 talked about, not cast",)
    # The RM's interim tally and the RESULT lists are not votes.
    assert corpus_readings[("04", 11)].vote is None
    for key in [("01", 9), ("04", 13), ("05", 6), ("06", 7)]:
        assert corpus_readings[key].vote is None, key
        assert corpus_readings[key].castings == ()
    # A vote below a quote (inline reply) counts.
    inline = corpus_readings[("05", 2)]
    assert inline.vote == "+1"
    assert "vote below quoted text" in inline.reasons
    # Reading stops at the Outlook "-----Message d'origine-----" copy of the previous mail.
    outlook = corpus_readings[("04", 3)]
    assert (outlook.vote, outlook.quotation) == ("+1", "+1 (non-binding)")
    # The [VOTE] calls carry the template and no vote.
    for key in [("01", 1), ("02", 1), ("03", 1), ("04", 1), ("05", 1), ("06", 1)]:
        assert corpus_readings[key].vote is None, key
        assert corpus_readings[key].possible is None, key


def test_no_token_approvals_are_possible_votes(corpus_readings: dict[tuple[str, int], castings.Reading]) -> None:
    works = corpus_readings[("01", 2)]
    assert works.possible == "Non binding but it works well for me on Latest 3.5.2 and Java 9.0.1"
    assert works.self_label == "non-binding"
    tested = corpus_readings[("04", 2)]
    assert tested.possible is not None
    assert tested.possible.endswith("In both cases, I experienced no trouble.")


def test_explicit_votes_are_high_confidence_where_they_open_a_line(
    corpus_readings: dict[tuple[str, int], castings.Reading],
) -> None:
    mid_line = {("04", 4), ("06", 2)}
    for key, reading in corpus_readings.items():
        if reading.vote is None or key in mid_line:
            continue
        assert reading.confidence == "high", (key, reading)


def test_stream_votes_outside_vote_threads_are_justified(corpus_dir: pathlib.Path) -> None:
    messages = _messages(corpus_dir / STREAM)
    assert len(messages) == 320
    outside = {}
    for msg in messages:
        reading = castings.read(msg.text)
        if "[VOTE]" not in msg.subject and (reading.vote is not None or reading.castings):
            outside[msg.message_id] = reading.vote
    assert outside == STREAM_VOTES_OUTSIDE_VOTE_THREADS
