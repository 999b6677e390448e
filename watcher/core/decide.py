"""Is a reminder due? Is a resolution due? (pure: values and an explicit `now` in, a decision out).

The rules are DESIGN.md §5 (reminders) and §6 (hybrid auto-resolution). Every "no" carries a
`Reason`, so the daemon can log it, report it and schedule the next look. Nothing here reads the
clock, the database or the network: the daemon builds the input values and acts on the answer.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Final, Literal

import watcher.core.tally as tally
import watcher.core.tracking as tracking

Choice = Literal["+1", "0", "-1"]
Action = Literal["resolve", "wait", "hold", "manual", "drop", "never"]
Resolution = Literal["passed", "failed"]
UnrecordedKind = Literal["no_ballot", "differs_from_ballot"]

UID_RE: Final = re.compile(r"[a-z0-9_.-]+")
_CASTINGS: Final = frozenset({"+1", "0", "-1"})


class Reason(enum.StrEnum):
    """Why a decision came out as it did; the value is a stable key for logs and reports."""

    DUE = "due"
    NOT_TRUSTED = "not_trusted"
    NOT_CANDIDATE = "not_candidate"
    RESOLVED = "resolved"
    VOTE_SEQ_CHANGED = "vote_seq_changed"
    VOTE_ENDED = "vote_ended"
    NO_UID = "no_uid"
    NOT_BINDING = "not_binding"
    NOT_A_CASTING = "not_a_casting"
    HAS_BALLOT = "has_ballot"
    ALREADY_REMINDED = "already_reminded"
    DATE_UNKNOWN = "date_unknown"
    TOO_SOON = "too_soon"
    STALE_ATR_STATE = "stale_atr_state"
    PODLING_ROUND_ONE = "podling_round_one"
    VOTE_END_UNKNOWN = "vote_end_unknown"
    NOT_ENDED = "not_ended"
    TALLY_UNAVAILABLE = "tally_unavailable"
    PASSED = "passed"
    FAILED = "failed"
    FAILED_MANUAL = "failed_manual_resolution_required"
    UNRECORDED_WOULD_FAIL = "unrecorded_would_fail"
    UNRECORDED_WOULD_PASS = "unrecorded_would_pass"
    NO_BALLOT = "no_ballot"
    BALLOT_AGREES = "ballot_agrees"
    BALLOT_NEWER = "ballot_newer"


@dataclasses.dataclass(frozen=True, slots=True)
class Ballot:
    """A voter's effective ballot in ATR (`vote/tabulate`'s `trusted_ballots`, carried ones included)."""

    voter: str
    choice: Choice
    is_binding: bool
    is_carried: bool = False
    cast_at: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TrustedSummary:
    """ATR's `trusted_summary` counts."""

    binding_yes: int = 0
    binding_no: int = 0
    binding_abstain: int = 0
    non_binding_yes: int = 0
    non_binding_no: int = 0
    non_binding_abstain: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class AtrState:
    """What a fresh `vote/tabulate` said, and when it was read.

    `vote_seq` is ATR's current vote serial (None when no vote runs). `trusted_passed` and
    `summary` are None outside trusted mode. When `summary` is None the binding counts are taken
    from the ballots.
    """

    vote_seq: int | None
    fetched_at: datetime.datetime
    ballots: Mapping[str, Ballot] = dataclasses.field(default_factory=dict)
    trusted_passed: bool | None = None
    summary: TrustedSummary | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ReminderKey:
    """At most one reminder per (release, vote_seq, voter)."""

    release_key: str
    vote_seq: int
    voter: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReminderConfig:
    """`[reminders]` values the rule needs."""

    delay: datetime.timedelta


@dataclasses.dataclass(frozen=True, slots=True)
class ResolveConfig:
    """`[resolve]` values the rule needs: grace after the vote end, and whether to resolve failed votes."""

    grace: datetime.timedelta
    failed: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ReminderDecision:
    """Whether to remind; when not yet, `at` is the earliest time to look again."""

    due: bool
    reason: Reason
    detail: str
    at: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Unrecorded:
    """A binding emailed vote that ATR's ballots do not reflect.

    `no_ballot`: the voter has no effective ballot. `differs_from_ballot`: the voter's email is
    newer than their ballot and says something else (`ballot_choice`).
    """

    voter: str
    name: str
    vote: Choice
    kind: UnrecordedKind
    message_id: str
    date: datetime.datetime | None
    quotation: str
    ballot_choice: Choice | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ResolutionDecision:
    """What to do with a vote now.

    `action`: `resolve` (call `vote/resolve` with `resolution`), `wait` (look again at `at`, or
    when the missing input arrives), `hold` (disagreement: tell the RM, list `unrecorded`),
    `manual` (failing tally, resolving failed votes is off: tell the RM), `drop` (the vote
    restarted, ended elsewhere or was resolved: forget it), `never` (not this watcher's vote to
    resolve: EMAIL, MANUAL, podling round 1).
    """

    action: Action
    reason: Reason
    detail: str
    resolution: Resolution | None = None
    at: datetime.datetime | None = None
    unrecorded: tuple[Unrecorded, ...] = ()
    trusted: tally.Counts | None = None
    with_email: tally.Counts | None = None

    @property
    def due(self) -> bool:
        """True when `vote/resolve` should be called now."""
        return self.action == "resolve"


def binding_passes(yes: int, no: int) -> bool:
    """ATR's pass rule (the one rule, kept in `tally`): binding +1 >= 3 and binding +1 > binding -1."""
    return tally.passes(yes, no)


def reminder_due(
    state: tracking.TrackedVote,
    vote: tally.EmailedVote,
    atr: AtrState,
    *,
    config: ReminderConfig,
    reminded: Collection[ReminderKey],
    now: datetime.datetime,
    seen_at: datetime.datetime | None = None,
) -> ReminderDecision:
    """Whether `vote`'s sender should be reminded to cast their vote in ATR now (DESIGN.md §5).

    The delay runs from the later of the mail's Date and `seen_at` (when the watcher first
    stored it), so a back-dated Date does not cut it short. `atr` must have been read after the
    delay ran out: an older tabulate cannot show that the voter has not cast in the meantime.
    """
    closed = _reminder_vote_closed(state, atr, now)
    if closed is not None:
        return closed
    if not UID_RE.fullmatch(vote.voter):
        return _no(Reason.NO_UID, f"{vote.voter!r} is not an ASF uid")
    if vote.status != "binding":
        round_ = f"round {state.vote_round} of this podling vote" if state.vote_round else "this vote"
        return _no(Reason.NOT_BINDING, f"{vote.voter} is not binding in {round_} ({vote.status})")
    if vote.vote not in _CASTINGS:
        return _no(Reason.NOT_A_CASTING, f"the latest email of {vote.voter} holds no clear +1, 0 or -1 ({vote.vote})")
    since = _latest(_maybe_aware(vote.date), _maybe_aware(seen_at))
    ballot = atr.ballots.get(vote.voter)
    if ballot is not None:
        return _no(Reason.HAS_BALLOT, _ballot_text(vote, ballot, since, config.delay))
    if ReminderKey(state.release_key, state.vote_seq, vote.voter) in reminded:
        return _no(Reason.ALREADY_REMINDED, f"{vote.voter} was reminded already for vote_seq {state.vote_seq}")
    if since is None:
        return _no(Reason.DATE_UNKNOWN, "the mail has no date and was not seen by the watcher")
    after = since + config.delay
    if _aware(now) < after:
        detail = f"{vote.voter} voted by email at {_iso(since)}; the reminder delay runs until {_iso(after)}"
        return _no(Reason.TOO_SOON, detail, at=after)
    if _aware(atr.fetched_at) < after:
        return _no(Reason.STALE_ATR_STATE, f"ATR was read at {_iso(atr.fetched_at)}, before {_iso(after)}", at=after)
    return ReminderDecision(True, Reason.DUE, f"{vote.voter} voted {vote.vote} by email and has no ballot in ATR")


def _ballot_text(
    vote: tally.EmailedVote, ballot: Ballot, since: datetime.datetime | None, delay: datetime.timedelta
) -> str:
    """Why a ballot makes a reminder needless, in words."""
    differs = f"; the email says {vote.vote}, which ATR does not count" if vote.vote != ballot.choice else ""
    return f"{_ballot_words(vote, ballot, since, delay)}{differs}"


def _ballot_words(
    vote: tally.EmailedVote, ballot: Ballot, since: datetime.datetime | None, delay: datetime.timedelta
) -> str:
    voter = vote.voter
    if ballot.is_carried:
        return f"{voter} has a ballot in ATR ({ballot.choice}, carried from round 1)"
    if ballot.cast_at is None:
        return f"{voter} has a ballot in ATR ({ballot.choice})"
    cast_at = _aware(ballot.cast_at)
    cast = _iso(cast_at)
    emailed = _maybe_aware(vote.date) or since
    if emailed is not None and cast_at < emailed:
        return f"{voter} has a ballot in ATR ({ballot.choice}, cast {cast}, before the email)"
    if since is not None and cast_at <= since + delay:
        return f"{voter} cast a ballot in ATR ({ballot.choice}, {cast}) within the reminder delay after the email"
    return f"{voter} has a ballot in ATR ({ballot.choice}, cast {cast})"


def reminders_due(
    state: tracking.TrackedVote,
    votes: Iterable[tally.EmailedVote],
    atr: AtrState,
    *,
    config: ReminderConfig,
    reminded: Collection[ReminderKey],
    now: datetime.datetime,
    seen_at: Mapping[str, datetime.datetime] | None = None,
) -> list[tuple[tally.EmailedVote, ReminderDecision]]:
    """`reminder_due` for every voter's latest emailed vote; `seen_at` maps a Message-ID to when it was stored."""
    seen = seen_at or {}
    return [
        (
            vote,
            reminder_due(
                state, vote, atr, config=config, reminded=reminded, now=now, seen_at=seen.get(vote.message_id)
            ),
        )
        for vote in votes
    ]


def ballot_note_due(
    state: tracking.TrackedVote,
    vote: tally.EmailedVote,
    atr: AtrState,
    *,
    config: ReminderConfig,
    noted: Collection[ReminderKey],
    now: datetime.datetime,
    seen_at: datetime.datetime | None = None,
) -> ReminderDecision:
    """Whether to tell a binding voter that their latest emailed vote differs from their ballot in ATR (once).

    Only the ballot counts, so a voter who meant the email should change the ballot before the end.
    Not when the ballot is newer than the mail (the ballot is then their latest word); the delay and
    the fresh tabulate are those of a reminder (they may be changing the ballot right now).
    """
    closed = _reminder_vote_closed(state, atr, now)
    if closed is not None:
        return closed
    if not UID_RE.fullmatch(vote.voter):
        return _no(Reason.NO_UID, f"{vote.voter!r} is not an ASF uid")
    if vote.status != "binding":
        return _no(Reason.NOT_BINDING, f"{vote.voter} is {vote.status} in this round")
    if vote.vote not in _CASTINGS:
        return _no(Reason.NOT_A_CASTING, f"latest emailed vote of {vote.voter} is {vote.vote!r}")
    ballot = atr.ballots.get(vote.voter)
    if ballot is None:
        return _no(Reason.NO_BALLOT, f"{vote.voter} has no ballot in ATR")
    if ballot.choice == vote.vote:
        return _no(Reason.BALLOT_AGREES, f"{vote.voter}'s ballot in ATR is {ballot.choice}, as the email says")
    date = _maybe_aware(vote.date)
    if ballot.cast_at is not None and date is not None and date <= _aware(ballot.cast_at):
        return _no(Reason.BALLOT_NEWER, f"{vote.voter}'s ballot in ATR was cast after the email")
    if ReminderKey(state.release_key, state.vote_seq, vote.voter) in noted:
        return _no(Reason.ALREADY_REMINDED, f"{vote.voter} was told for vote_seq {state.vote_seq}")
    since = _latest(date, _maybe_aware(seen_at))
    if since is None:
        return _no(Reason.DATE_UNKNOWN, "the mail has no date and was not seen by the watcher")
    after = since + config.delay
    if _aware(now) < after:
        return _no(Reason.TOO_SOON, f"the delay runs until {_iso(after)}", at=after)
    if _aware(atr.fetched_at) < after:
        return _no(Reason.STALE_ATR_STATE, f"ATR was read at {_iso(atr.fetched_at)}, before {_iso(after)}", at=after)
    detail = f"{vote.voter} emailed {vote.vote}, their ballot in ATR is {ballot.choice}"
    return ReminderDecision(True, Reason.DUE, detail)


def reminder_possible(
    state: tracking.TrackedVote,
    vote: tally.EmailedVote,
    known: AtrState | None,
    *,
    config: ReminderConfig,
    reminded: Collection[ReminderKey],
    noted: Collection[ReminderKey],
    now: datetime.datetime,
    seen_at: datetime.datetime | None = None,
) -> bool:
    """Whether reading ATR now could make a reminder (or, where a ballot exists, a ballot note) due for `vote`.

    The same rules as `reminder_due` and `ballot_note_due`, asked of the tabulate a fresh read would give
    if the ballots were unchanged: `known` is the last one read (None before any), its ballots count only
    when it is of this vote_seq. So ATR, whose budget is shared, is read only when something may be due.
    """
    ballots = known.ballots if known is not None and known.vote_seq == state.vote_seq else {}
    fresh = AtrState(vote_seq=state.vote_seq, fetched_at=now, ballots=ballots)
    decision = reminder_due(state, vote, fresh, config=config, reminded=reminded, now=now, seen_at=seen_at)
    if decision.reason is Reason.HAS_BALLOT:
        decision = ballot_note_due(state, vote, fresh, config=config, noted=noted, now=now, seen_at=seen_at)
    return decision.due


def resolution_due(
    state: tracking.TrackedVote,
    atr: AtrState,
    votes: Iterable[tally.EmailedVote],
    *,
    config: ResolveConfig,
    now: datetime.datetime,
) -> ResolutionDecision:
    """What to do about resolving `state` now (DESIGN.md §6).

    `votes` are the latest emailed votes per voter (carried ones included). Unrecorded binding
    email votes are applied on top of the trusted binding counts: a voter without a ballot adds
    their vote; a voter whose email is newer than their ballot and differs replaces it. If that
    changes pass/fail, the vote is held; otherwise the trusted tally decides.
    """
    never = _resolution_never(state)
    if never is not None:
        return never
    if state.resolved:
        return ResolutionDecision("drop", Reason.RESOLVED, "the vote is already resolved")
    if state.phase != tracking.CANDIDATE_PHASE:
        return ResolutionDecision("drop", Reason.NOT_CANDIDATE, f"the release is in phase {state.phase}")
    if atr.vote_seq != state.vote_seq:
        detail = f"ATR's vote_seq is {atr.vote_seq}, this vote is {state.vote_seq}"
        return ResolutionDecision("drop", Reason.VOTE_SEQ_CHANGED, detail)
    if state.vote_end is None:
        return ResolutionDecision("wait", Reason.VOTE_END_UNKNOWN, "the vote end is not known yet")
    at = _aware(state.vote_end) + config.grace
    if _aware(now) < at:
        return ResolutionDecision("wait", Reason.NOT_ENDED, f"resolution is due at {_iso(at)}", at=at)
    if _aware(atr.fetched_at) < _aware(state.vote_end):
        detail = f"ATR was read at {_iso(atr.fetched_at)}, before the vote ended"
        return ResolutionDecision("wait", Reason.STALE_ATR_STATE, detail)
    if atr.trusted_passed is None:
        return ResolutionDecision("wait", Reason.TALLY_UNAVAILABLE, "ATR gave no trusted tally")
    return _weigh(atr, atr.trusted_passed, unrecorded_votes(atr, votes), config)


def unrecorded_votes(atr: AtrState, votes: Iterable[tally.EmailedVote]) -> tuple[Unrecorded, ...]:
    """Binding emailed castings that the ATR ballots do not reflect, sorted by voter."""
    found: list[Unrecorded] = []
    for vote in votes:
        if vote.status != "binding" or vote.vote not in _CASTINGS:
            continue
        choice = _choice(vote.vote)
        ballot = atr.ballots.get(vote.voter)
        if ballot is None:
            found.append(_unrecorded(vote, choice, "no_ballot", None))
            continue
        if _is_newer_and_different(vote, choice, ballot):
            found.append(_unrecorded(vote, choice, "differs_from_ballot", ballot.choice))
    return tuple(sorted(found, key=lambda item: item.voter))


def trusted_counts(atr: AtrState) -> tally.Counts:
    """Binding counts of the trusted tally: ATR's summary, else counted from the ballots."""
    if atr.summary is not None:
        return tally.Counts(yes=atr.summary.binding_yes, no=atr.summary.binding_no, abstain=atr.summary.binding_abstain)
    binding = [ballot.choice for ballot in atr.ballots.values() if ballot.is_binding]
    return tally.Counts(yes=binding.count("+1"), no=binding.count("-1"), abstain=binding.count("0"))


def counts_with_email(atr: AtrState, unrecorded: Iterable[Unrecorded]) -> tally.Counts:
    """The binding counts if the unrecorded email votes were ballots."""
    base = trusted_counts(atr)
    delta = {"+1": 0, "0": 0, "-1": 0}
    for item in unrecorded:
        delta[item.vote] += 1
        ballot = atr.ballots.get(item.voter)
        if item.kind == "differs_from_ballot" and ballot is not None and ballot.is_binding:
            delta[ballot.choice] -= 1
    return tally.Counts(yes=base.yes + delta["+1"], no=base.no + delta["-1"], abstain=base.abstain + delta["0"])


def _weigh(
    atr: AtrState, trusted_passed: bool, unrecorded: tuple[Unrecorded, ...], config: ResolveConfig
) -> ResolutionDecision:
    trusted = trusted_counts(atr)
    with_email = counts_with_email(atr, unrecorded)
    # Without unrecorded votes there is nothing to weigh: ATR's own verdict stands.
    email_passes = with_email.passes if unrecorded else trusted_passed
    tallies = f"trusted +1/-1 {trusted.yes}/{trusted.no}, with email {with_email.yes}/{with_email.no}"
    action: Action
    resolution: Resolution | None = None
    if trusted_passed and email_passes:
        action, reason, resolution, detail = "resolve", Reason.PASSED, "passed", f"passes ({tallies})"
    elif trusted_passed:
        action, reason = "hold", Reason.UNRECORDED_WOULD_FAIL
        detail = f"the trusted tally passes but the unrecorded binding email votes make it fail ({tallies})"
    elif email_passes:
        action, reason = "hold", Reason.UNRECORDED_WOULD_PASS
        detail = f"the trusted tally fails but the unrecorded binding email votes make it pass ({tallies})"
    elif config.failed:
        action, reason, resolution, detail = "resolve", Reason.FAILED, "failed", f"fails ({tallies})"
    else:
        action, reason = "manual", Reason.FAILED_MANUAL
        detail = f"fails ({tallies}); resolving failed votes is off, the release manager decides"
    return ResolutionDecision(
        action, reason, detail, resolution=resolution, unrecorded=unrecorded, trusted=trusted, with_email=with_email
    )


def _reminder_vote_closed(
    state: tracking.TrackedVote, atr: AtrState, now: datetime.datetime
) -> ReminderDecision | None:
    if state.mode != "trusted":
        return _no(Reason.NOT_TRUSTED, f"the vote is in {state.mode} mode; email votes count there")
    if state.resolved:
        return _no(Reason.RESOLVED, "the vote is resolved")
    if state.phase != tracking.CANDIDATE_PHASE:
        return _no(Reason.NOT_CANDIDATE, f"the release is in phase {state.phase}")
    if atr.vote_seq != state.vote_seq:
        return _no(Reason.VOTE_SEQ_CHANGED, f"ATR's vote_seq is {atr.vote_seq}, this vote is {state.vote_seq}")
    if state.vote_end is not None and _aware(now) >= _aware(state.vote_end):
        return _no(Reason.VOTE_ENDED, f"the vote ended at {_iso(state.vote_end)}")
    return None


def _resolution_never(state: tracking.TrackedVote) -> ResolutionDecision | None:
    if state.mode != "trusted":
        return ResolutionDecision(
            "never", Reason.NOT_TRUSTED, f"{state.mode} votes are resolved by the release manager"
        )
    if state.vote_round == 1:
        return ResolutionDecision("never", Reason.PODLING_ROUND_ONE, "a podling's round 1 is resolved by the RM")
    return None


def _is_newer_and_different(vote: tally.EmailedVote, choice: Choice, ballot: Ballot) -> bool:
    if choice == ballot.choice or ballot.cast_at is None:
        return False
    date = _maybe_aware(vote.date)
    return date is not None and date > _aware(ballot.cast_at)


def _unrecorded(vote: tally.EmailedVote, choice: Choice, kind: UnrecordedKind, ballot: Choice | None) -> Unrecorded:
    return Unrecorded(vote.voter, vote.name, choice, kind, vote.message_id, vote.date, vote.quotation, ballot)


def _choice(value: str) -> Choice:
    if value == "+1":
        return "+1"
    if value == "-1":
        return "-1"
    return "0"


def _no(reason: Reason, detail: str, at: datetime.datetime | None = None) -> ReminderDecision:
    return ReminderDecision(False, reason, detail, at)


def _latest(*moments: datetime.datetime | None) -> datetime.datetime | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def _aware(moment: datetime.datetime) -> datetime.datetime:
    # A naive datetime is taken as UTC, so comparisons never raise.
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=datetime.UTC)


def _maybe_aware(moment: datetime.datetime | None) -> datetime.datetime | None:
    return None if moment is None else _aware(moment)


def _iso(moment: datetime.datetime) -> str:
    return _aware(moment).astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
