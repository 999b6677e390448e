"""Tally rules: latest vote wins, stop subjects, receipts, status by round, carry, pass rule."""

from __future__ import annotations

import pytest

import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
from tests.mailfactory import at, mail

PEOPLE = roster.Roster(
    committees={
        "example": roster.Committee(
            "example", members=frozenset({"m1", "m2", "m3", "m4"}), committers=frozenset({"c1"})
        ),
        "pod": roster.Committee("pod", members=frozenset({"p1", "p2", "p3", "i1"}), is_podling=True),
        "incubator": roster.Committee("incubator", members=frozenset({"i1", "i2", "i3", "i4"})),
    },
    people={"m1": roster.Person("m1", "Member One", ("one@home.example",))},
)
VOTE_CALL = mail(
    "Please vote.\n\n[ ] +1 Release this package\n[ ] +0 No opinion\n[ ] -1 Do not release because...\n",
    sender="RM <m4@apache.org>",
    subject="[VOTE] Release Example 1.0.0",
    message_id="vote@example.org",
    in_reply_to=None,
    date=at(0),
)


def thread(*bodies: tuple[str, str], start: int = 1) -> list[message.Message]:
    """A [VOTE] call followed by (uid-or-address, body) replies an hour apart."""
    msgs = [message.parse(VOTE_CALL)]
    for offset, (who, body) in enumerate(bodies, start=start):
        sender = who if "@" in who else f"{who} <{who}@apache.org>"
        msgs.append(message.parse(mail(body, sender=sender, message_id=f"r{offset}@example.org", date=at(offset))))
    return msgs


def votes_of(result: tally.Tally) -> dict[str, tuple[str, str]]:
    return {vote.voter: (vote.vote, vote.status) for vote in result.votes}


def test_three_binding_yes_pass_and_the_template_is_not_a_vote() -> None:
    result = tally.tally(thread(("m1", "+1\n"), ("m2", "+1\n"), ("m3", "+1 (binding)\n")), PEOPLE, _opts())
    assert votes_of(result) == {"m1": ("+1", "binding"), "m2": ("+1", "binding"), "m3": ("+1", "binding")}
    assert result.passed
    assert result.summary.binding == tally.Counts(3, 0, 0)


@pytest.mark.parametrize(
    ("yes", "no", "passed"),
    [(2, 0, False), (3, 3, False), (3, 2, True), (4, 0, True), (3, 0, True), (4, 4, False)],
)
def test_pass_rule(yes: int, no: int, passed: bool) -> None:
    assert tally.passes(yes, no) is passed


def test_latest_vote_wins_and_is_marked_updated() -> None:
    result = tally.tally(thread(("m1", "-1\n"), ("m2", "+1\n"), ("m1", "+1 after all\n")), PEOPLE, _opts())
    first = result.votes[0]
    assert (first.voter, first.vote, first.updated) == ("m1", "+1", True)
    assert [v.voter for v in result.votes] == ["m1", "m2"]


def test_statuses_committer_contributor_unknown() -> None:
    msgs = thread(("c1", "+1\n"), ("zed", "+1\n"), ("Anon <anon@example.com>", "+1\n"))
    result = tally.tally(msgs, PEOPLE, _opts())
    assert votes_of(result) == {
        "c1": ("+1", "committer"),
        "zed": ("+1", "contributor"),
        "anon@example.com": ("+1", "unknown"),
    }
    assert result.summary.non_binding == tally.Counts(2, 0, 0)
    assert result.summary.unknown == tally.Counts(1, 0, 0)
    assert not result.passed


def test_alias_makes_a_member_binding() -> None:
    result = tally.tally(thread(("Member One <one@home.example>", "+1\n")), PEOPLE, _opts())
    assert votes_of(result) == {"m1": ("+1", "binding")}


@pytest.mark.parametrize(
    "subject", ["[RESULT] [VOTE] Release Example", "Re: [result][VOTE] x", "[CANCEL] x", "[Canceled] [VOTE] x"]
)
def test_stop_at_result_or_cancel_in_any_case(subject: str) -> None:
    msgs = thread(("m1", "+1\n"))
    msgs.append(message.parse(mail("+1 counted\n", sender="m4@apache.org", subject=subject, message_id="res@x")))
    msgs.append(message.parse(mail("+1\n", sender="m2@apache.org", message_id="late@x", date=at(9))))
    result = tally.tally(msgs, PEOPLE, _opts())
    assert set(votes_of(result)) == {"m1"}
    assert result.stopped_by == "res@x"


def test_receipts_are_left_out_by_message_id() -> None:
    msgs = thread(("m1", "+1 (binding) (m1) Member One\n"), ("m2", "+1\n"))
    options = tally.Options(committee="example", excluded_message_ids=frozenset({"<r1@example.org>"}))
    result = tally.tally(msgs, PEOPLE, options)
    assert set(votes_of(result)) == {"m2"}


def test_podling_round_one_binds_the_ppmc_and_round_two_the_ipmc() -> None:
    msgs = thread(("p1", "+1\n"), ("i2", "+1\n"))
    first = tally.tally(msgs, PEOPLE, tally.Options(committee="pod", vote_round=1))
    second = tally.tally(msgs, PEOPLE, tally.Options(committee="pod", vote_round=2))
    assert votes_of(first) == {"p1": ("+1", "binding"), "i2": ("+1", "contributor")}
    assert votes_of(second) == {"p1": ("+1", "contributor"), "i2": ("+1", "binding")}


def test_ipmc_round_one_votes_are_carried_unless_cast_again() -> None:
    round_one = thread(("i1", "+1\n"), ("i2", "+1\n"), ("p1", "+1\n"), ("i3", "-1\n"))
    round_two = thread(("i2", "-1\n"), ("i4", "+1\n"), start=20)
    options = tally.Options(committee="pod", vote_round=2, previous_round=round_one)
    result = tally.tally(round_two, PEOPLE, options)
    by_voter = {v.voter: v for v in result.votes}
    assert {k: (v.vote, v.carried) for k, v in by_voter.items()} == {
        "i2": ("-1", False),
        "i4": ("+1", False),
        "i1": ("+1", True),
        "i3": ("-1", True),
    }
    assert "p1" not in by_voter
    assert result.summary.binding == tally.Counts(2, 0, 2)


def test_a_date_running_backwards_is_flagged_and_archive_order_kept() -> None:
    msgs = [message.parse(VOTE_CALL)]
    msgs.append(message.parse(mail("-1\n", sender="m1@apache.org", message_id="a@x", date=at(5))))
    msgs.append(message.parse(mail("+1\n", sender="m1@apache.org", message_id="b@x", date=at(2))))
    result = tally.tally(msgs, PEOPLE, _opts())
    assert result.votes[0].vote == "+1"
    assert any("runs backwards" in w for w in result.warnings)


def test_disagreeing_castings_are_unknown_and_do_not_count() -> None:
    result = tally.tally(thread(("m1", "+1\n\n-1\n")), PEOPLE, _opts())
    assert result.votes[0].vote == "?"
    assert result.votes[0].confidence == "low"
    assert result.summary.binding == tally.Counts(0, 0, 0)


def test_fraction_is_recorded_not_counted() -> None:
    result = tally.tally(thread(("m1", "+0.5\n")), PEOPLE, _opts())
    vote = result.votes[0]
    assert (vote.vote, vote.fraction) == ("?", "+0.5")
    assert result.summary.binding == tally.Counts(0, 0, 0)


def test_self_label_disagreeing_with_roster_is_low_confidence() -> None:
    result = tally.tally(thread(("c1", "+1 (binding)\n")), PEOPLE, _opts())
    vote = result.votes[0]
    assert vote.status == "committer"
    assert vote.confidence == "low"


def test_thread_info_from_the_opening_message() -> None:
    result = tally.tally(thread(("m1", "+1\n")), PEOPLE, _opts())
    assert result.thread.subject == "[VOTE] Release Example 1.0.0"
    assert result.thread.message_id == "vote@example.org"
    assert result.thread.list_id == "dev.example.apache.org"
    assert result.thread.started == at(0)


def _opts() -> tally.Options:
    return tally.Options(committee="example")


# --- The vote as meant, through the tally (issue 13) ----------------------------------------------


def test_a_retraction_withdraws_the_earlier_vote() -> None:
    msgs = thread(("m1", "+1\n"), ("m2", "+1\n"), ("m1", "Sorry all, I retract my +1: the wheel bundles a font\n"))
    result = tally.tally(msgs, PEOPLE, _opts())
    assert votes_of(result) == {"m2": ("+1", "binding")}
    assert "m1 withdrew their vote in <r3@example.org>" in result.warnings


def test_a_changed_vote_takes_the_new_value() -> None:
    result = tally.tally(thread(("m1", "-1\n"), ("m1", "changing my -1 to a ±0\n")), PEOPLE, _opts())
    assert votes_of(result) == {"m1": ("0", "binding")}
    assert result.votes[0].updated


def test_a_conditional_vote_is_low_confidence_with_its_condition() -> None:
    result = tally.tally(thread(("m1", "+1 if the CI run passes\n")), PEOPLE, _opts())
    (vote,) = result.low_confidence
    assert (vote.voter, vote.vote, vote.condition) == ("m1", "+1", "if the CI run passes")


def test_a_roster_mapping_that_disagrees_with_the_local_part_is_a_warning() -> None:
    people = roster.Roster(
        committees={"example": roster.Committee("example", members=frozenset({"jdoe"}))},
        people={"jdoe": roster.Person("jdoe", "John Doe", ("john@apache.org",))},
    )
    result = tally.tally(thread(("john", "+1\n")), people, _opts())
    assert votes_of(result) == {"jdoe": ("+1", "binding")}
    assert "the roster maps john@apache.org to jdoe, not to john" in result.warnings


# --- Never guessing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("people", "committee", "because"),
    [
        pytest.param(roster.Roster(), "example", "no roster was given for 'example'", id="no-roster"),
        pytest.param(PEOPLE, "exampel", "the roster has no committee 'exampel'", id="committee-not-in-roster"),
        pytest.param(PEOPLE, None, "no committee is known", id="no-committee"),
    ],
)
def test_without_the_committee_binding_status_is_unknown_and_there_is_no_verdict(
    people: roster.Roster, committee: str | None, because: str
) -> None:
    msgs = thread(("m1", "+1 (binding)\n"), ("m2", "+1\n"), ("m3", "+1\n"))
    result = tally.tally(msgs, people, tally.Options(committee=committee))
    assert (result.passed, result.outcome) == (None, "unknown")
    assert result.no_verdict_because is not None
    assert result.no_verdict_because.startswith(because)
    assert {vote.status for vote in result.votes} == {"unknown"}
    assert not any("not a member" in reason for vote in result.votes for reason in vote.reasons)


def test_outcomes_and_where_the_tally_stopped() -> None:
    passed = thread(("m1", "+1\n"), ("m2", "+1\n"), ("m3", "+1\n"))
    passed.append(message.parse(mail("done\n", subject="[RESULT] [VOTE] x", message_id="res@x", date=at(80))))
    result = tally.tally(passed, PEOPLE, _opts())
    assert (result.outcome, result.stopped_at) == ("passed", tally.StopAt("res@x", "result", at(80)))
    assert not result.warnings
    cancelled = [*thread(("m1", "+1\n")), message.parse(mail("x\n", subject="[CANCEL] x", message_id="c@x"))]
    result = tally.tally(cancelled, PEOPLE, _opts())
    assert (result.outcome, result.stopped_at and result.stopped_at.kind) == ("cancelled", "cancel")
    failed = tally.tally(thread(("m1", "+1\n")), PEOPLE, _opts())
    assert (failed.outcome, failed.passed, failed.stopped_at) == ("failed", False, None)


def test_a_vote_closed_before_72_hours_is_flagged() -> None:
    msgs = thread(("m1", "+1\n"), ("m2", "+1\n"), ("m3", "+1\n"))
    msgs.append(message.parse(mail("done\n", subject="[RESULT] [VOTE] x", message_id="res@x", date=at(30))))
    result = tally.tally(msgs, PEOPLE, _opts())
    assert result.outcome == "passed"
    assert "vote closed after 30 hours, before the 72 hours an ASF vote runs for" in result.warnings


def test_receipts_are_left_out_by_shape_when_asked() -> None:
    body = "+1 (binding) (m1) Member One\n\nCast on the Apache Trusted Releases platform.\n"
    msgs = thread(("m1", body), ("m2", "+1\n"))
    options = tally.Options(committee="example", leave_out_receipts=True)
    result = tally.tally(msgs, PEOPLE, options)
    assert set(votes_of(result)) == {"m2"}
    assert result.receipts == ("r1@example.org",)
