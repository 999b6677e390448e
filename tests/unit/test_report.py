"""A tally as text and as the JSON contract (watcher.flow.report): the lines a release manager reads."""

from __future__ import annotations

import datetime

import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.flow.report as report
from tests.mailfactory import at, mail

PEOPLE = roster.Roster(
    committees={
        "example": roster.Committee(
            "example", members=frozenset({"m1", "m2", "m3", "rm"}), committers=frozenset({"c1"})
        )
    },
    people={"m1": roster.Person("m1", "Member One", ())},
)
OPTIONS = tally.Options(committee="example", leave_out_receipts=True)


def thread(*replies: tuple[str, str], subject_last: str | None = None) -> list[message.Message]:
    msgs = [
        mail(
            "Please vote.\n",
            sender="RM <rm@apache.org>",
            subject="[VOTE] Release Example 1.0.0",
            message_id="vote@example.org",
            in_reply_to=None,
            date=at(0),
        )
    ]
    for hour, (who, body) in enumerate(replies, start=1):
        sender = who if "@" in who else f"{who} <{who}@apache.org>"
        msgs.append(mail(body, sender=sender, message_id=f"r{hour}@example.org", date=at(hour)))
    if subject_last is not None:
        msgs.append(
            mail(
                "Closing.\n",
                sender="RM <rm@apache.org>",
                subject=subject_last,
                message_id="result@example.org",
                date=at(len(replies) + 1),
            )
        )
    return [message.parse(raw) for raw in msgs]


def test_a_passing_vote_reads_like_atrs_result_mail() -> None:
    result = tally.tally(
        thread(
            ("Member One <m1@apache.org>", "+1\n"),
            ("m2", "+1\n"),
            ("m3", "+1\n"),
            ("c1", "+1\n"),
            ("m2", "-1, found a problem\n"),
        ),
        PEOPLE,
        OPTIONS,
    )
    text = report.to_text(result)
    assert text.splitlines()[:3] == [
        "Thread: [VOTE] Release Example 1.0.0",
        "Message-ID: <vote@example.org>",
        "Started: 2026-05-01T12:00:00Z",
    ]
    assert "Binding votes:\n   +1 m1 Member One\n   -1 m2 m2 (updated)\n   +1 m3 m3\n" in text
    assert "Committer votes (non-binding):\n   +1 c1 c1\n" in text
    assert "There were 3 binding votes.\nBinding votes: +1: 2, 0: 0, -1: 1.\n" in text
    assert "Non-binding votes: +1: 1, 0: 0, -1: 0.\nUnknown senders: +1: 0, 0: 0, -1: 0.\n" in text
    assert "\nThe vote does not pass.\n" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_one_vote_a_stop_message_a_receipt_and_a_possible_vote() -> None:
    receipt = (
        "+1 (binding) (m3) Three\n\nThis email was sent by m3@apache.org on the Apache Trusted Releases platform\n"
    )
    result = tally.tally(
        thread(
            ("m1", "+1\n"),
            ("m3", receipt),
            ("Sam <sam@home.example>", "Looks good to me, ship it.\n"),
            subject_last="[RESULT] [VOTE] Release Example 1.0.0",
        ),
        PEOPLE,
        OPTIONS,
    )
    text = report.to_text(result)
    assert "There was 1 binding vote.\n" in text
    assert "The vote does not pass. (Tally stopped at the [RESULT] message <result@example.org>.)" in text
    assert "Left out as ATR ballot receipts:\n  <r2@example.org>\n" in text
    assert "Possible votes (no +1/0/-1 written; check by hand):\n  Sam <sam@home.example>: 'Looks good" in text
    assert "Warnings:\n  vote closed after 4 hours, before the 72 hours" in text


def test_without_a_roster_there_is_no_verdict_and_all_votes_are_counted_together() -> None:
    result = tally.tally(thread(("m1", "+1\n"), ("m2", "-1\n")), PEOPLE, tally.Options(committee="nosuch"))
    text = report.to_text(result)
    assert "Votes (binding status unknown):" in text
    assert "Binding status unknown: " in text
    assert "All votes: +1: 1, 0: 0, -1: 1." in text
    assert "No verdict: " in text
    assert "The vote passes." not in text and "The vote does not pass." not in text


def test_json_brackets_message_ids_and_writes_utc_times() -> None:
    result = tally.tally(thread(("m1", "+1\n"), ("m2", "0\n")), PEOPLE, OPTIONS)
    data = report.to_json(result)
    assert data["thread"] == {
        "subject": "[VOTE] Release Example 1.0.0",
        "message_id": "<vote@example.org>",
        "list": result.thread.list_id,
        "started": "2026-05-01T12:00:00Z",
    }
    first = data["votes"][0]
    assert (first["voter"], first["vote"], first["status"]) == ("m1", "+1", "binding")
    assert first["message_id"] == "<r1@example.org>"
    assert first["date"] == "2026-05-01T13:00:00Z"
    assert "carried" not in first and "fraction" not in first
    assert data["summary"]["binding"] == {"+1": 1, "0": 1, "-1": 0}
    assert data["passed"] is False and data["outcome"] == "failed"
    assert data["stopped_at"] is None


def test_iso_is_utc_whatever_the_offset() -> None:
    moment = datetime.datetime(2017, 12, 21, 23, 31, 14, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert report.iso(moment) == "2017-12-21T22:31:14Z"
    assert report.iso(None) is None
