"""The vote lifecycle table: every allowed transition, and the ones it forbids."""

from __future__ import annotations

import itertools

import pytest

import watcher.core.lifecycle as lifecycle

S = lifecycle.VoteStatus
E = lifecycle.VoteEvent

ALLOWED = [
    *[(status, E.TRACK, S.OPEN) for status in S],
    *[(status, E.CLOSE, S.CLOSED) for status in S],
    *[(status, E.REPLACE, S.REPLACED) for status in S],
    (S.OPEN, E.DROP, S.DONE),
    (S.OPEN, E.RESOLVE, S.RESOLVED),
]
FORBIDDEN = [
    (status, event)
    for status, event in itertools.product(S, E)
    if not any(status is a and event is b for a, b, _ in ALLOWED)
]


@pytest.mark.parametrize(("status", "event", "following"), ALLOWED)
def test_an_allowed_transition_gives_its_status(status: S, event: E, following: S) -> None:
    assert lifecycle.next_status(status, event) is following


@pytest.mark.parametrize(("status", "event", "following"), ALLOWED)
def test_a_stored_string_is_read_as_its_status(status: S, event: E, following: S) -> None:
    assert lifecycle.next_status(str(status.value), event) is following


def test_the_table_holds_exactly_the_allowed_transitions() -> None:
    assert dict(lifecycle.TRANSITIONS) == {(status, event): following for status, event, following in ALLOWED}


@pytest.mark.parametrize(("status", "event"), FORBIDDEN)
def test_a_forbidden_transition_raises(status: S, event: E) -> None:
    with pytest.raises(lifecycle.LifecycleError) as raised:
        lifecycle.next_status(status, event)
    assert (raised.value.status, raised.value.event) == (status, event)
    assert str(status) in str(raised.value) and str(event) in str(raised.value)


def test_only_the_watchers_own_decisions_are_forbidden_on_an_ended_vote() -> None:
    assert {event for _, event in FORBIDDEN} == {E.DROP, E.RESOLVE}
    assert {status for status, _ in FORBIDDEN} == set(S) - {S.OPEN}


def test_an_unknown_status_string_is_refused() -> None:
    with pytest.raises(ValueError, match="'opened'"):
        lifecycle.next_status("opened", E.CLOSE)


def test_the_stored_strings_stay_those_of_before() -> None:
    assert [status.value for status in S] == ["open", "closed", "replaced", "done", "resolved"]
    assert lifecycle.INITIAL is S.OPEN


def test_only_an_open_vote_is_watched() -> None:
    assert [status for status in S if lifecycle.is_open(status)] == [S.OPEN]
    assert lifecycle.is_open("open") and not lifecycle.is_open("resolved")


def test_mail_waiting_for_a_closed_or_replaced_vote_is_skipped_with_its_reason() -> None:
    assert {status: lifecycle.skip_reason(status) for status in S} == {
        S.OPEN: None,
        S.CLOSED: "vote closed",
        S.REPLACED: "vote restarted",
        S.DONE: None,
        S.RESOLVED: None,
    }
