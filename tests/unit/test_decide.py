"""Reminder and resolution decisions: every branch of DESIGN.md §5 and §6, table-driven."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

import watcher.core.decide as decide
import watcher.core.lifecycle as lifecycle
import watcher.core.tally as tally
import watcher.core.tracking as tracking

T0 = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
END = T0 + 72 * HOUR

STATE = tracking.TrackedVote(
    release_key="foo-1.0.0",
    project="foo",
    version="1.0.0",
    vote_seq=7,
    mode="trusted",
    vote_round=None,
    vote_end=END,
)
EMAIL_VOTE = tally.EmailedVote(
    voter="alice", vote="+1", status="binding", date=T0 + HOUR, message_id="<a@x>", quotation="+1 (binding)"
)
REMINDER_CONFIG = decide.ReminderConfig(delay=datetime.timedelta(minutes=30))
NOW = T0 + 2 * HOUR
ATR = decide.AtrState(vote_seq=7, fetched_at=NOW)


def ballot(
    voter: str,
    choice: decide.Choice,
    *,
    binding: bool = True,
    is_carried: bool = False,
    cast_at: datetime.datetime | None = None,
) -> decide.Ballot:
    return decide.Ballot(voter, choice, binding, is_carried, cast_at)


def remind(**changes: object) -> decide.ReminderDecision:
    args: dict[str, object] = {
        "state": STATE,
        "vote": EMAIL_VOTE,
        "atr": ATR,
        "config": REMINDER_CONFIG,
        "reminded": frozenset(),
        "now": NOW,
        "seen_at": None,
    }
    args.update(changes)
    return decide.reminder_due(**args)


REMINDER_CASES: list[tuple[str, dict[str, object], decide.Reason]] = [
    ("due", {}, decide.Reason.DUE),
    ("email mode", {"state": dataclasses.replace(STATE, mode="email")}, decide.Reason.NOT_TRUSTED),
    ("manual mode", {"state": dataclasses.replace(STATE, mode="manual")}, decide.Reason.NOT_TRUSTED),
    ("resolved", {"state": dataclasses.replace(STATE, status=lifecycle.VoteStatus.RESOLVED)}, decide.Reason.RESOLVED),
    ("left candidate", {"state": dataclasses.replace(STATE, phase="release_preview")}, decide.Reason.NOT_CANDIDATE),
    ("restarted", {"atr": dataclasses.replace(ATR, vote_seq=8)}, decide.Reason.VOTE_SEQ_CHANGED),
    ("no vote running", {"atr": dataclasses.replace(ATR, vote_seq=None)}, decide.Reason.VOTE_SEQ_CHANGED),
    ("at the vote end", {"now": END, "atr": dataclasses.replace(ATR, fetched_at=END)}, decide.Reason.VOTE_ENDED),
    ("after the vote end", {"now": END + HOUR}, decide.Reason.VOTE_ENDED),
    ("address, no uid", {"vote": dataclasses.replace(EMAIL_VOTE, voter="a@example.org")}, decide.Reason.NO_UID),
    ("uid with CR/LF", {"vote": dataclasses.replace(EMAIL_VOTE, voter="al\r\nice")}, decide.Reason.NO_UID),
    ("committer", {"vote": dataclasses.replace(EMAIL_VOTE, status="committer")}, decide.Reason.NOT_BINDING),
    ("unknown", {"vote": dataclasses.replace(EMAIL_VOTE, status="unknown")}, decide.Reason.NOT_BINDING),
    ("no casting", {"vote": dataclasses.replace(EMAIL_VOTE, vote="?")}, decide.Reason.NOT_A_CASTING),
    (
        "has ballot",
        {"atr": dataclasses.replace(ATR, ballots={"alice": ballot("alice", "-1")})},
        decide.Reason.HAS_BALLOT,
    ),
    (
        "carried ballot counts",
        {"atr": dataclasses.replace(ATR, ballots={"alice": ballot("alice", "+1", is_carried=True)})},
        decide.Reason.HAS_BALLOT,
    ),
    (
        "already reminded",
        {"reminded": {decide.ReminderKey("foo-1.0.0", 7, "alice")}},
        decide.Reason.ALREADY_REMINDED,
    ),
    ("no date", {"vote": dataclasses.replace(EMAIL_VOTE, date=None)}, decide.Reason.DATE_UNKNOWN),
    ("within the delay", {"now": T0 + HOUR + datetime.timedelta(minutes=29)}, decide.Reason.TOO_SOON),
    (
        "ATR read before the delay ran out",
        {"atr": dataclasses.replace(ATR, fetched_at=T0 + HOUR)},
        decide.Reason.STALE_ATR_STATE,
    ),
]


@pytest.mark.parametrize(
    ("changes", "reason"), [case[1:] for case in REMINDER_CASES], ids=[c[0] for c in REMINDER_CASES]
)
def test_reminder_due_table(changes: dict[str, object], reason: decide.Reason) -> None:
    decision = remind(**changes)
    assert decision.reason == reason
    assert decision.due is (reason == decide.Reason.DUE)
    assert decision.detail


@pytest.mark.parametrize("value", ["+1", "0", "-1"])
def test_every_casting_is_reminded(value: str) -> None:
    assert remind(vote=dataclasses.replace(EMAIL_VOTE, vote=value)).due


def test_too_soon_says_when_to_look_again() -> None:
    decision = remind(now=T0 + HOUR)
    assert decision.reason == decide.Reason.TOO_SOON
    assert decision.at == T0 + HOUR + REMINDER_CONFIG.delay


def test_delay_runs_from_when_the_watcher_saw_a_backdated_mail() -> None:
    backdated = dataclasses.replace(EMAIL_VOTE, date=T0 - 24 * HOUR)
    seen = NOW - datetime.timedelta(minutes=10)
    decision = remind(vote=backdated, seen_at=seen)
    assert decision.reason == decide.Reason.TOO_SOON
    assert decision.at == seen + REMINDER_CONFIG.delay
    assert remind(vote=backdated, seen_at=seen, now=NOW + HOUR, atr=dataclasses.replace(ATR, fetched_at=NOW + HOUR)).due


def test_seen_at_stands_in_for_a_missing_date() -> None:
    assert remind(vote=dataclasses.replace(EMAIL_VOTE, date=None), seen_at=T0).due


def test_reminder_for_another_vote_seq_does_not_block() -> None:
    assert remind(reminded={decide.ReminderKey("foo-1.0.0", 6, "alice"), decide.ReminderKey("foo-1.0.0", 7, "bob")}).due


def test_a_ballot_of_another_voter_does_not_block() -> None:
    assert remind(atr=dataclasses.replace(ATR, ballots={"bob": ballot("bob", "+1")})).due


def test_podling_round_two_carried_email_vote_is_reminded() -> None:
    state = dataclasses.replace(STATE, vote_round=2)
    carried = dataclasses.replace(EMAIL_VOTE, carried=True, date=T0 - 96 * HOUR)
    assert remind(state=state, vote=carried).due


def test_unknown_vote_end_does_not_stop_reminders() -> None:
    assert remind(state=dataclasses.replace(STATE, vote_end=None)).due


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = dataclasses.replace(EMAIL_VOTE, date=(T0 + HOUR).replace(tzinfo=None))
    assert remind(vote=naive, now=NOW.replace(tzinfo=None)).due


# Resolution

RESOLVE_CONFIG = decide.ResolveConfig(grace=datetime.timedelta(minutes=15))
AFTER = END + HOUR
THREE_YES = {uid: ballot(uid, "+1") for uid in ("a", "b", "c")}
PASSING = decide.AtrState(vote_seq=7, fetched_at=AFTER, ballots=THREE_YES, trusted_passed=True)
FAILING = decide.AtrState(
    vote_seq=7, fetched_at=AFTER, ballots={"a": ballot("a", "+1"), "b": ballot("b", "+1")}, trusted_passed=False
)


def email(voter: str, value: str, *, status: str = "binding", date: datetime.datetime = T0 + HOUR) -> tally.EmailedVote:
    return tally.EmailedVote(voter=voter, vote=value, status=status, date=date, message_id=f"<{voter}@x>")


def resolve(**changes: object) -> decide.ResolutionDecision:
    args: dict[str, object] = {"state": STATE, "atr": PASSING, "votes": (), "config": RESOLVE_CONFIG, "now": AFTER}
    args.update(changes)
    return decide.resolution_due(**args)


RESOLUTION_CASES: list[tuple[str, dict[str, object], decide.Action, decide.Reason, str | None]] = [
    ("passes", {}, "resolve", decide.Reason.PASSED, "passed"),
    ("email mode", {"state": dataclasses.replace(STATE, mode="email")}, "never", decide.Reason.NOT_TRUSTED, None),
    ("manual mode", {"state": dataclasses.replace(STATE, mode="manual")}, "never", decide.Reason.NOT_TRUSTED, None),
    (
        "podling round 1",
        {"state": dataclasses.replace(STATE, vote_round=1)},
        "never",
        decide.Reason.PODLING_ROUND_ONE,
        None,
    ),
    ("podling round 2", {"state": dataclasses.replace(STATE, vote_round=2)}, "resolve", decide.Reason.PASSED, "passed"),
    (
        "already resolved",
        {"state": dataclasses.replace(STATE, status=lifecycle.VoteStatus.RESOLVED)},
        "drop",
        decide.Reason.RESOLVED,
        None,
    ),
    (
        "left candidate",
        {"state": dataclasses.replace(STATE, phase="release_candidate_draft")},
        "drop",
        decide.Reason.NOT_CANDIDATE,
        None,
    ),
    (
        "vote_seq changed",
        {"atr": dataclasses.replace(PASSING, vote_seq=8)},
        "drop",
        decide.Reason.VOTE_SEQ_CHANGED,
        None,
    ),
    (
        "vote end unknown",
        {"state": dataclasses.replace(STATE, vote_end=None)},
        "wait",
        decide.Reason.VOTE_END_UNKNOWN,
        None,
    ),
    ("before the end", {"now": END - HOUR}, "wait", decide.Reason.NOT_ENDED, None),
    ("within the grace", {"now": END + datetime.timedelta(minutes=14)}, "wait", decide.Reason.NOT_ENDED, None),
    (
        "tally read before the end",
        {"atr": dataclasses.replace(PASSING, fetched_at=END - HOUR)},
        "wait",
        decide.Reason.STALE_ATR_STATE,
        None,
    ),
    (
        "no trusted tally",
        {"atr": dataclasses.replace(PASSING, trusted_passed=None)},
        "wait",
        decide.Reason.TALLY_UNAVAILABLE,
        None,
    ),
    ("fails, manual", {"atr": FAILING}, "manual", decide.Reason.FAILED_MANUAL, None),
    (
        "fails, resolve failed",
        {"atr": FAILING, "config": dataclasses.replace(RESOLVE_CONFIG, failed=True)},
        "resolve",
        decide.Reason.FAILED,
        "failed",
    ),
    # 3 ballots +1, one binding -1 by email: 3 > 1, still passes.
    ("passes despite an unrecorded -1", {"votes": [email("d", "-1")]}, "resolve", decide.Reason.PASSED, "passed"),
    # 3 ballots +1, three binding -1 by email: 3 > 3 is false, so it would fail.
    (
        "unrecorded -1s flip it",
        {"votes": [email(u, "-1") for u in "def"]},
        "hold",
        decide.Reason.UNRECORDED_WOULD_FAIL,
        None,
    ),
    # 2 ballots +1 and one binding +1 by email would make 3.
    (
        "unrecorded +1 would pass",
        {"atr": FAILING, "votes": [email("d", "+1")]},
        "hold",
        decide.Reason.UNRECORDED_WOULD_PASS,
        None,
    ),
    (
        "unrecorded +1 would pass, even with resolve failed on",
        {"atr": FAILING, "votes": [email("d", "+1")], "config": dataclasses.replace(RESOLVE_CONFIG, failed=True)},
        "hold",
        decide.Reason.UNRECORDED_WOULD_PASS,
        None,
    ),
    (
        "non-binding email votes do not weigh",
        {"votes": [email(u, "-1", status="committer") for u in "defg"]},
        "resolve",
        decide.Reason.PASSED,
        "passed",
    ),
    ("? does not weigh", {"votes": [email(u, "?") for u in "defg"]}, "resolve", decide.Reason.PASSED, "passed"),
    (
        "email votes of voters with a ballot do not weigh",
        {"votes": [email(u, "+1") for u in "abc"]},
        "resolve",
        decide.Reason.PASSED,
        "passed",
    ),
]


@pytest.mark.parametrize(
    ("changes", "action", "reason", "resolution"),
    [case[1:] for case in RESOLUTION_CASES],
    ids=[c[0] for c in RESOLUTION_CASES],
)
def test_resolution_due_table(
    changes: dict[str, object], action: decide.Action, reason: decide.Reason, resolution: str | None
) -> None:
    decision = resolve(**changes)
    assert (decision.action, decision.reason, decision.resolution) == (action, reason, resolution)
    assert decision.due is (action == "resolve")
    assert decision.detail


def test_not_ended_says_when() -> None:
    assert resolve(now=END).at == END + RESOLVE_CONFIG.grace


def test_hold_lists_the_unrecorded_binding_votes_and_the_tallies() -> None:
    votes = [email("f", "-1"), email("d", "-1"), email("e", "-1"), email("g", "+1", status="contributor")]
    decision = resolve(votes=votes)
    assert decision.action == "hold"
    assert [(item.voter, item.vote, item.kind) for item in decision.unrecorded] == [
        ("d", "-1", "no_ballot"),
        ("e", "-1", "no_ballot"),
        ("f", "-1", "no_ballot"),
    ]
    assert decision.trusted == tally.Counts(yes=3, no=0, abstain=0)
    assert decision.with_email == tally.Counts(yes=3, no=3, abstain=0)


def test_a_newer_differing_email_replaces_the_ballot() -> None:
    # a cast +1 in ATR, then wrote -1 to the list: counted as -1, so 2 +1 and 1 -1: fails.
    ballots = {**THREE_YES, "a": ballot("a", "+1", cast_at=T0)}
    atr = dataclasses.replace(PASSING, ballots=ballots)
    decision = resolve(atr=atr, votes=[email("a", "-1", date=T0 + HOUR)])
    assert decision.action == "hold"
    assert decision.reason == decide.Reason.UNRECORDED_WOULD_FAIL
    [item] = decision.unrecorded
    assert (item.voter, item.kind, item.ballot_choice) == ("a", "differs_from_ballot", "+1")
    assert decision.with_email == tally.Counts(yes=2, no=1, abstain=0)


def test_an_older_differing_email_is_superseded_by_the_ballot() -> None:
    ballots = {**THREE_YES, "a": ballot("a", "+1", cast_at=T0 + 2 * HOUR)}
    decision = resolve(atr=dataclasses.replace(PASSING, ballots=ballots), votes=[email("a", "-1", date=T0 + HOUR)])
    assert decision.action == "resolve"
    assert decision.unrecorded == ()


def test_summary_counts_win_over_ballots() -> None:
    summary = decide.TrustedSummary(binding_yes=5, binding_no=1)
    atr = dataclasses.replace(PASSING, summary=summary)
    assert decide.trusted_counts(atr) == tally.Counts(yes=5, no=1, abstain=0)
    # 5 +1 against 1 + 3 unrecorded -1: 5 > 4 passes.
    assert resolve(atr=atr, votes=[email(u, "-1") for u in "def"]).action == "resolve"
    # A fifth -1: 5 > 5 fails.
    assert resolve(atr=atr, votes=[email(u, "-1") for u in "defg"]).action == "hold"


def test_non_binding_ballots_are_not_counted() -> None:
    ballots = {**THREE_YES, "x": ballot("x", "-1", binding=False)}
    assert decide.trusted_counts(dataclasses.replace(PASSING, ballots=ballots)) == tally.Counts(yes=3, no=0, abstain=0)


def test_without_unrecorded_votes_atr_verdict_stands() -> None:
    # ATR's trusted_passed is authoritative when there is nothing to weigh.
    odd = decide.AtrState(vote_seq=7, fetched_at=AFTER, ballots={}, trusted_passed=True)
    assert resolve(atr=odd).resolution == "passed"


@pytest.mark.parametrize(
    ("yes", "no", "passes"), [(2, 0, False), (3, 3, False), (3, 2, True), (4, 0, True), (0, 0, False)]
)
def test_pass_rule(yes: int, no: int, passes: bool) -> None:
    assert decide.binding_passes(yes, no) is passes


def test_reminders_due_decides_each_voter() -> None:
    votes = [
        EMAIL_VOTE,
        tally.EmailedVote(voter="bob", vote="+1", status="binding", date=T0 + HOUR, message_id="<b@x>"),
        tally.EmailedVote(voter="carol", vote="-1", status="committer", date=T0, message_id="<c@x>"),
    ]
    atr = dataclasses.replace(ATR, ballots={"bob": ballot("bob", "+1")})
    # alice's mail was stored late, so her delay has not run out yet.
    seen = {"<a@x>": NOW - datetime.timedelta(minutes=5)}
    decisions = decide.reminders_due(STATE, votes, atr, config=REMINDER_CONFIG, reminded=(), now=NOW, seen_at=seen)
    assert [(vote.voter, decision.reason) for vote, decision in decisions] == [
        ("alice", decide.Reason.TOO_SOON),
        ("bob", decide.Reason.HAS_BALLOT),
        ("carol", decide.Reason.NOT_BINDING),
    ]
    decisions = decide.reminders_due(STATE, votes, atr, config=REMINDER_CONFIG, reminded=(), now=NOW)
    assert [decision.due for _, decision in decisions] == [True, False, False]


# The pre-check of the desk: would a fresh read of ATR make anything due? ------------------------------------


def possible(**changes: object) -> bool:
    args: dict[str, object] = {
        "state": STATE,
        "vote": EMAIL_VOTE,
        "known": None,
        "config": REMINDER_CONFIG,
        "reminded": frozenset(),
        "noted": frozenset(),
        "now": NOW,
        "seen_at": None,
    }
    args.update(changes)
    return decide.reminder_possible(**args)


MINUTE = datetime.timedelta(minutes=1)
ALICE = decide.ReminderKey("foo-1.0.0", 7, "alice")
STALE = decide.AtrState(vote_seq=7, fetched_at=T0)


def known_ballot(choice: decide.Choice, cast_at: datetime.datetime | None = None) -> decide.AtrState:
    """An old tabulate (read before the delay ran out) with alice's ballot."""
    return dataclasses.replace(STALE, ballots={"alice": ballot("alice", choice, cast_at=cast_at)})


POSSIBLE_CASES: list[tuple[str, dict[str, object], bool]] = [
    ("nothing known of ATR yet", {}, True),
    ("an old tabulate without a ballot", {"known": STALE}, True),
    ("the delay has not run", {"now": T0 + HOUR + 10 * MINUTE}, False),
    ("seen later than its date", {"seen_at": NOW - 10 * MINUTE}, False),
    ("the vote ended", {"now": END}, False),
    ("email mode", {"state": dataclasses.replace(STATE, mode="email")}, False),
    ("not binding", {"vote": dataclasses.replace(EMAIL_VOTE, status="committer")}, False),
    ("no casting", {"vote": dataclasses.replace(EMAIL_VOTE, vote="?")}, False),
    ("reminded already", {"reminded": {ALICE}}, False),
    ("no date, not seen", {"vote": dataclasses.replace(EMAIL_VOTE, date=None)}, False),
    ("a ballot as the email says", {"known": known_ballot("+1")}, False),
    ("a ballot that differs", {"known": known_ballot("-1")}, True),
    ("reminded, then a differing ballot: a note", {"known": known_ballot("-1"), "reminded": {ALICE}}, True),
    ("a ballot that differs, told already", {"known": known_ballot("-1"), "noted": {ALICE}}, False),
    (
        "a differing ballot cast after the email",
        {"known": known_ballot("-1", cast_at=T0 + 90 * MINUTE)},
        False,
    ),
    (
        "a ballot of another vote_seq does not count",
        {"known": decide.AtrState(vote_seq=6, fetched_at=T0, ballots={"alice": ballot("alice", "+1")})},
        True,
    ),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in POSSIBLE_CASES], ids=[c[0] for c in POSSIBLE_CASES])
def test_reminder_possible_table(changes: dict[str, object], expected: bool) -> None:
    assert possible(**changes) is expected
