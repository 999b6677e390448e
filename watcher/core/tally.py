"""Votes of a thread to a tally and an outcome (pure).

Messages are taken in archive order. The latest vote of each voter wins; the thread
stops at the first [RESULT] or [CANCEL] subject; ATR's ballot receipts are left out by
Message-ID. In a podling's round 2, IPMC members' round-1 votes are carried unless they
voted again.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Sequence
from typing import Final, Literal

import watcher.core.castings as castings
import watcher.core.digest as digest
import watcher.core.identity as identity
import watcher.core.message as message
import watcher.core.roster as roster

VoteValue = Literal["+1", "0", "-1", "?"]
Outcome = Literal["passed", "failed", "cancelled", "unknown"]
StopKind = Literal["result", "cancel"]
COUNTED: Final[tuple[VoteValue, ...]] = ("+1", "0", "-1")
VOTE_VALUES: Final[tuple[VoteValue, ...]] = (*COUNTED, "?")
MIN_BINDING_YES: Final = 3
MIN_VOTE_HOURS: Final = 72
_STOP_RE: Final = re.compile(r"\[\s*(result|cancel(?:l?ed)?)\s*\]", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """What the tally needs besides the messages."""

    committee: str | None = None
    vote_round: int | None = None
    excluded_message_ids: frozenset[str] = frozenset()
    previous_round: Sequence[message.Message] = ()
    leave_out_receipts: bool = False
    """Leave out messages shaped like ATR's ballot receipts, besides those named by Message-ID."""


@dataclasses.dataclass(frozen=True, slots=True)
class EmailedVote:
    """One voter's counted (latest) vote by email, as the tally reads it and the store keeps it.

    The store keeps no `name`, `email`, `carried`, `fraction`, `hint_uid` or `condition` ("" or None when read
    back); `position` and `recorded_at` are the store's own (the row's order, and when it was written).
    """

    voter: str
    """The uid, or the lower-cased address when there is none."""
    vote: VoteValue
    """+1, 0, -1 or ? (no clear casting)."""
    status: roster.Status = "unknown"
    """binding, committer, contributor or unknown, for this vote's round."""
    name: str = ""
    """Display name."""
    email: str = ""
    """The address the vote came from (never mailed)."""
    message_id: str = ""
    """The Message-ID of the mail that carries the vote."""
    date: datetime.datetime | None = None
    """The mail's date (aware), or None when it had none."""
    quotation: str = ""
    """The line the vote was read from."""
    updated: bool = False
    """The voter voted before in this thread."""
    confidence: identity.Confidence = "high"
    reasons: tuple[str, ...] = ()
    carried: bool = False
    """A round-1 vote carried into a podling's round 2."""
    fraction: str | None = None
    hint_uid: str | None = None
    condition: str | None = None
    """A conditional vote's condition: the release manager should check it."""
    position: int = 0
    recorded_at: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PossibleVote:
    """A message with approval wording but no casting: for the release manager to check."""

    voter: str
    email: str
    name: str
    message_id: str
    excerpt: str


@dataclasses.dataclass(frozen=True, slots=True)
class ThreadInfo:
    """The thread's opening message."""

    subject: str
    message_id: str
    list_id: str
    started: datetime.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """Counts of +1, 0 and -1 (of one status group; the pass rule reads binding ones)."""

    yes: int = 0
    abstain: int = 0
    no: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts keyed as in the JSON contract."""
        return {"+1": self.yes, "0": self.abstain, "-1": self.no}

    @property
    def passes(self) -> bool:
        """The pass rule, for binding counts: at least 3 binding +1 and more binding +1 than -1."""
        return passes(self.yes, self.no)


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """Counts by status group: binding, non-binding (committers and contributors), unknown."""

    binding: Counts
    non_binding: Counts
    unknown: Counts


@dataclasses.dataclass(frozen=True, slots=True)
class StopAt:
    """The [RESULT] or [CANCEL] message the tally stopped at."""

    message_id: str
    kind: StopKind
    date: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Tally:
    """The outcome of a thread."""

    thread: ThreadInfo
    votes: tuple[EmailedVote, ...]
    possible_votes: tuple[PossibleVote, ...]
    summary: Summary
    passed: bool | None
    """None when binding status is not known (no roster for the committee): no verdict is given."""
    stopped_by: str | None
    warnings: tuple[str, ...]
    outcome: Outcome = "unknown"
    stopped_at: StopAt | None = None
    receipts: tuple[str, ...] = ()
    """Message-IDs left out as ATR ballot receipts (recognised by their shape)."""
    unknown_because: str | None = None
    """Why binding status (and so the verdict) is unknown, when it is."""
    no_verdict_because: str | None = None
    """Why there is no verdict (`passed` is None): binding status unknown, or votes the roster cannot place."""

    @property
    def low_confidence(self) -> tuple[EmailedVote, ...]:
        """Votes the release manager should check."""
        return tuple(vote for vote in self.votes if vote.confidence == "low")


def passes(binding_yes: int, binding_no: int) -> bool:
    """ASF pass rule: at least three binding +1 and more binding +1 than binding -1."""
    return binding_yes >= MIN_BINDING_YES and binding_yes > binding_no


def is_stop_subject(subject: str) -> bool:
    """True for a [RESULT] or [CANCEL]/[CANCELED] subject, in any case."""
    return _STOP_RE.search(subject) is not None


def tally(messages: Sequence[message.Message], people: roster.Roster, options: Options = Options()) -> Tally:
    """Tally the votes of one thread, given in archive order."""
    previous = [digest.read(msg) for msg in options.previous_round]
    return combine([digest.read(msg) for msg in messages], people, options, previous)


def combine(
    digests: Sequence[digest.Digest],
    people: roster.Roster,
    options: Options = Options(),
    previous: Sequence[digest.Digest] = (),
) -> Tally:
    """Tally a thread from its messages' digests, in archive order (`options.previous_round` is not read)."""
    committee = roster.committee_for_round(people, options.committee, options.vote_round)
    unknown_because = _unknown_because(people, committee)
    state = _Collector(people, committee, options, known=unknown_because is None)
    state.read_all(digests)
    votes = list(state.votes.values())
    if options.vote_round == 2 and previous:
        votes.extend(_carried(previous, people, set(state.votes)))
    voted = {vote.voter for vote in votes if vote.vote in COUNTED}
    possible = tuple(p for p in state.possible if p.voter not in voted)
    summary = summarise(votes)
    thread = state.thread_info(digests)
    passed = None if unknown_because else passes(summary.binding.yes, summary.binding.no)
    no_verdict_because = unknown_because
    if passed is not None:
        no_verdict_because = _hinted_flip(votes, people, committee, summary, passed=passed)
        passed = None if no_verdict_because else passed
    warnings = [*state.warnings, *_early_close(thread, state.stopped_at)]
    return Tally(
        thread=thread,
        votes=tuple(votes),
        possible_votes=possible,
        summary=summary,
        passed=passed,
        stopped_by=state.stopped_at.message_id if state.stopped_at else None,
        warnings=tuple(warnings),
        outcome=_outcome(passed, state.stopped_at),
        stopped_at=state.stopped_at,
        receipts=tuple(state.receipts),
        unknown_because=unknown_because,
        no_verdict_because=no_verdict_because,
    )


def _unknown_because(people: roster.Roster, committee: str | None) -> str | None:
    """Why nobody's binding status can be told, or None when the roster has the committee."""
    if committee is None:
        return "no committee is known (give --committee), so binding votes cannot be told apart"
    if not people.committees:
        return f"no roster was given for {committee!r} (give --roster, --roster-url or --atr)"
    if committee not in people.committees:
        return f"the roster has no committee {committee!r}, so binding votes cannot be told apart"
    return None


def _hinted_flip(
    votes: Sequence[EmailedVote], people: roster.Roster, committee: str | None, summary: Summary, *, passed: bool
) -> str | None:
    """Why there is no verdict when votes whose display names match committee members would change it.

    A display name is never enough to make a vote binding, but neither is it right to declare a
    result those votes could overturn: the roster lacks their addresses.
    """
    hinted = [
        vote
        for vote in votes
        if vote.status != "binding"
        and vote.vote in ("+1", "-1")
        and vote.hint_uid
        and people.status(vote.hint_uid, committee) == "binding"
    ]
    yes = summary.binding.yes + sum(1 for vote in hinted if vote.vote == "+1")
    no = summary.binding.no + sum(1 for vote in hinted if vote.vote == "-1")
    if not hinted or passes(yes, no) == passed:
        return None
    named = ", ".join(f"{vote.email} ({vote.hint_uid}?)" for vote in hinted)
    return (
        f"votes from addresses the roster does not know carry committee members' names, {named}, "
        "and would change the result; add the addresses as aliases (--roster)"
    )


def _outcome(passed: bool | None, stopped_at: StopAt | None) -> Outcome:
    if stopped_at is not None and stopped_at.kind == "cancel":
        return "cancelled"
    if passed is None:
        return "unknown"
    return "passed" if passed else "failed"


def _early_close(thread: ThreadInfo, stopped_at: StopAt | None) -> list[str]:
    """A vote closed before 72 hours: ASF votes run at least that long, unless an emergency says why."""
    if stopped_at is None or stopped_at.kind != "result" or stopped_at.date is None or thread.started is None:
        return []
    hours = (stopped_at.date - thread.started).total_seconds() / 3600
    if hours >= MIN_VOTE_HOURS:
        return []
    return [f"vote closed after {hours:.0f} hours, before the {MIN_VOTE_HOURS} hours an ASF vote runs for"]


def summarise(votes: Iterable[EmailedVote]) -> Summary:
    """Count the votes by status group; "?" and fractions count nowhere."""
    groups: dict[str, list[int]] = {"binding": [0, 0, 0], "non_binding": [0, 0, 0], "unknown": [0, 0, 0]}
    for vote in votes:
        if vote.vote not in COUNTED:
            continue
        group = _group(vote.status)
        groups[group][COUNTED.index(vote.vote)] += 1
    return Summary(*(Counts(*groups[name]) for name in ("binding", "non_binding", "unknown")))


def _group(status: roster.Status) -> str:
    if status == "binding":
        return "binding"
    if status == "unknown":
        return "unknown"
    return "non_binding"


def _carried(previous: Sequence[digest.Digest], people: roster.Roster, voted_again: set[str]) -> list[EmailedVote]:
    """IPMC members' round-1 votes that stand in round 2 because they did not vote again."""
    first = combine(previous, people, Options(committee=roster.IPMC_KEY))
    carried: list[EmailedVote] = []
    for vote in first.votes:
        if vote.voter in voted_again or vote.status != "binding" or vote.vote not in COUNTED:
            continue
        reasons = (*vote.reasons, "carried from round 1")
        carried.append(dataclasses.replace(vote, carried=True, updated=False, reasons=reasons))
    return carried


class _Collector:
    """Walks the messages once, keeping each voter's latest vote in first-vote order."""

    def __init__(self, people: roster.Roster, committee: str | None, options: Options, *, known: bool) -> None:
        self.people = people
        self.committee = committee
        self.known = known
        self.excluded = frozenset(message.normalise_message_id(mid) for mid in options.excluded_message_ids)
        self.leave_out_receipts = options.leave_out_receipts
        self.votes: dict[str, EmailedVote] = {}
        self.possible: list[PossibleVote] = []
        self.warnings: list[str] = []
        self.receipts: list[str] = []
        self.stopped_at: StopAt | None = None
        self._last_date: datetime.datetime | None = None

    def read_all(self, digests: Sequence[digest.Digest]) -> None:
        for read in digests:
            msg = read.headers
            if msg.message_id and msg.message_id in self.excluded:
                continue
            stop = _STOP_RE.search(msg.subject)
            if stop is not None:
                kind: StopKind = "result" if stop.group(1).lower() == "result" else "cancel"
                self.stopped_at = StopAt(msg.message_id or msg.key, kind, msg.date)
                return
            if self.leave_out_receipts and read.receipt:
                self.receipts.append(msg.message_id or msg.key)
                continue
            self._check_date(msg)
            self._read(read)

    def thread_info(self, digests: Sequence[digest.Digest]) -> ThreadInfo:
        heads = (read.headers for read in digests)
        opener = next((m for m in heads if not is_stop_subject(m.subject)), None)
        if opener is None:
            return ThreadInfo("", "", "", None)
        return ThreadInfo(opener.subject, opener.message_id, opener.list_id, opener.date)

    def _check_date(self, msg: message.Message) -> None:
        if msg.date is None:
            return
        if self._last_date is not None and msg.date < self._last_date:
            self.warnings.append(f"Date of <{msg.message_id}> runs backwards; archive order kept")
            return
        self._last_date = msg.date

    def _read(self, read: digest.Digest) -> None:
        msg = read.headers
        sender = identity.identify(msg, self.people)
        if sender is None:
            self.warnings.append(f"no sender address in <{msg.message_id or msg.key}>; message skipped")
            return
        self.warnings.extend(warning for warning in sender.warnings if warning not in self.warnings)
        reading = read.reading
        if reading.vote is None and reading.fraction is None:
            if reading.withdrawn and self.votes.pop(sender.key, None) is not None:
                self.warnings.append(f"{sender.key} withdrew their vote in <{msg.message_id or msg.key}>")
                return
            self._maybe_possible(msg, sender, reading)
            return
        self._record(read, sender, reading)

    def _maybe_possible(self, msg: message.Message, sender: identity.Sender, reading: castings.Reading) -> None:
        if not reading.possible:
            return
        self.possible.append(PossibleVote(sender.key, sender.address, sender.name, msg.message_id, reading.possible))

    def _record(self, read: digest.Digest, sender: identity.Sender, reading: castings.Reading) -> None:
        msg = read.headers
        status = self.people.status(sender.uid, self.committee) if self.known else "unknown"
        value: VoteValue = reading.vote if reading.vote is not None else "?"
        label_reasons = _label_reasons(reading.self_label, status) if self.known else []
        reasons = [*sender.reasons, *reading.reasons, *label_reasons]
        if reading.vote is None and reading.fraction is not None:
            reasons.append(f"fractional vote {reading.fraction}: recorded, not counted")
        if read.blank:
            reasons.append("no readable text part")
        low = sender.confidence == "low" or reading.confidence == "low" or value == "?" or bool(label_reasons)
        previous = self.votes.get(sender.key)
        self.votes[sender.key] = EmailedVote(
            voter=sender.key,
            name=sender.name,
            email=sender.address,
            status=status,
            vote=value,
            message_id=msg.message_id,
            date=msg.date,
            quotation=reading.quotation,
            updated=previous is not None,
            confidence="low" if low else "high",
            reasons=tuple(dict.fromkeys(reasons)),
            fraction=reading.fraction,
            hint_uid=sender.hint_uid,
            condition=reading.condition,
        )


def _label_reasons(label: str | None, status: roster.Status) -> list[str]:
    """A self-label that disagrees with the roster is worth a look; the roster decides."""
    if label == "binding" and status != "binding":
        return ["labelled binding, but not a member of the voting committee"]
    if label == "non-binding" and status == "binding":
        return ["labelled non-binding by a member of the voting committee"]
    return []
