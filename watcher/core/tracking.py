"""Which running votes are tracked, and how: their list, [VOTE] subject, round, binding committee and end (pure).

ATR's facts (release, project, policy, committee) become a `TrackedVote`; the [VOTE] body's "open for
at least N hours" gives the vote end; a new vote_seq replaces the old vote. `watcher.flow.discovery` reads
those facts from ATR and finds the threads; the store keeps the same `TrackedVote`, with its id and status.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Final, Literal, Protocol

import watcher.core.lifecycle as lifecycle
import watcher.core.roster as roster

# ATR's values (reference/atr.md; `watcher.atr.models` takes them from here).
MODE_EMAIL: Final = "email"
MODE_TRUSTED: Final = "trusted"
MODE_MANUAL: Final = "manual"
CANDIDATE_PHASE: Final = "release_candidate"
DEFAULT_MIN_HOURS: Final = 72
DEFAULT_SUBJECT_TEMPLATE: Final = "[VOTE] Release {{PROJECT_NAME}} {{VERSION}}"

Mode = Literal["trusted", "email", "manual"]
ChangeKind = Literal["started", "restarted", "next_round", "thread_found", "closed"]
EndSource = Literal["body", "policy"]
MODES: Final[tuple[Mode, ...]] = (MODE_TRUSTED, MODE_EMAIL, MODE_MANUAL)
END_SOURCES: Final[tuple[EndSource, ...]] = ("body", "policy")

SECOND_ROUND_LIST: Final = "general@incubator.apache.org"
THREAD_SLACK: Final = datetime.timedelta(minutes=10)
MAX_STATED_HOURS: Final = 30 * 24
_WATCHED_MODES: Final = frozenset({MODE_TRUSTED, MODE_EMAIL})
_PLACEHOLDER: Final = re.compile(r"\{\{([A-Z_]+)\}\}")
_NUMBER_WORDS: Final = {
    "a": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "ten": 10,
    "twelve": 12,
    "twenty-four": 24,
    "forty-eight": 48,
    "seventy-two": 72,
    "seventy two": 72,
    "ninety-six": 96,
}
_NUMBER: Final = r"(\d{1,4}|" + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True)) + r")"
_UNIT: Final = r"(hours?|hrs?|h|days?)\b"
_LEAD: Final = r"(?:the\s+(?:next|usual|standard|customary)\s+)?"
_MINIMUM: Final = r"(?:(?:at\s+least|a\s+minimum\s+of|minimum\s+of|minimum|no\s+less\s+than)\s+)?"
_OPEN_FOR: Final = re.compile(
    r"\b(?:open|run|runs|last|lasts|remain\s+open|stay\s+open|be\s+held)\s+(?:for\s+)?"
    + _LEAD
    + _MINIMUM
    + _LEAD
    + _NUMBER
    + r"[\s-]*"
    + _UNIT,
    re.IGNORECASE,
)
_AT_LEAST: Final = re.compile(
    r"\b(?:at\s+least|a\s+minimum\s+of|no\s+less\s+than)\s+" + _NUMBER + r"[\s-]*" + _UNIT, re.IGNORECASE
)


@dataclasses.dataclass(frozen=True, slots=True)
class FoundThread:
    """A vote's [VOTE] message as an archive source found it."""

    message_id: str
    """Message-ID without angle brackets."""
    subject: str
    body: str
    date: datetime.datetime | None


class ReleaseFacts(Protocol):
    """What the rules read of ATR's release (`release/get`, `releases/list`)."""

    @property
    def key(self) -> str: ...
    @property
    def project_key(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def vote_mode(self) -> str | None: ...
    @property
    def current_vote_seq(self) -> int | None: ...
    @property
    def vote_started(self) -> datetime.datetime | None: ...
    @property
    def podling_thread_id(self) -> str | None: ...
    @property
    def latest_revision_number(self) -> str | None: ...
    @property
    def vote_thread_url(self) -> str | None: ...


class ProjectFacts(Protocol):
    """What the rules read of ATR's project (`project/get`)."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str | None: ...


class RecipientsFacts(Protocol):
    """A policy's default vote recipients."""

    @property
    def to(self) -> str | None: ...


class PolicyFacts(Protocol):
    """What the rules read of ATR's release policy (`policy/get`)."""

    @property
    def policy_vote_mode(self) -> str: ...
    @property
    def policy_min_hours(self) -> int | None: ...
    @property
    def policy_start_vote_subject(self) -> str: ...
    @property
    def policy_vote_recipients(self) -> RecipientsFacts | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class TrackedVote:
    """A running vote the watcher follows: ATR's facts, its [VOTE] thread once found, and its lifecycle.

    Discovery makes it from ATR's facts (`track`, then `with_thread`); the store keeps it and hands it back
    with its row `id` (0 until stored), `status` and `updated_at` (when the store last wrote it).
    """

    release_key: str
    project: str
    version: str
    vote_seq: int
    mode: Mode
    vote_round: int | None = None
    """None for a top-level project; 1 (PPMC) or 2 (IPMC) for a podling."""
    committee_key: str = ""
    """The project's committee (PMC or PPMC)."""
    binding_committee_key: str = ""
    """Whose members are binding in this round: the project's committee, or `incubator` in round 2."""
    list_address: str = ""
    subject: str = ""
    """The [VOTE]'s subject: as ATR renders it until the thread is found, then as the message has it."""
    root_message_id: str = ""
    """The [VOTE]'s Message-ID once its thread is found ("" until then)."""
    vote_started: datetime.datetime | None = None
    vote_end: datetime.datetime | None = None
    """None while it is unknown."""
    end_source: EndSource = "policy"
    min_hours: int = DEFAULT_MIN_HOURS
    podling_thread_id: str | None = None
    project_name: str = ""
    """ATR's `display_name` of the project ("Apache Example", " (Incubating)" added for podlings)."""
    vote_thread_url: str | None = None
    """ATR's link to the vote's thread, when it has one (set when a vote passes)."""
    phase: str = CANDIDATE_PHASE
    """ATR's release phase (`release_candidate` while the vote runs)."""
    status: lifecycle.VoteStatus = lifecycle.INITIAL
    id: int = 0
    updated_at: datetime.datetime | None = None

    @property
    def resolved(self) -> bool:
        """True once this watcher or anyone else resolved the vote."""
        return self.status == lifecycle.VoteStatus.RESOLVED


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What changed for one vote since the last poll."""

    kind: ChangeKind
    vote: TrackedVote
    previous: TrackedVote | None = None
    phase: str | None = None
    """For `closed`: the release's phase now (None when the release is gone)."""


def vote_round(is_podling: bool, podling_thread_id: str | None) -> int | None:
    """None for top-level projects; a podling is in round 2 once round 1's thread id is recorded."""
    if not is_podling:
        return None
    return 1 if podling_thread_id is None else 2


def vote_mode(release: ReleaseFacts, policy: PolicyFacts) -> str:
    """The mode frozen at vote start, else the policy's."""
    return release.vote_mode or policy.policy_vote_mode


def min_hours(policy: PolicyFacts) -> int:
    """The policy's minimum, or ATR's default of 72 hours."""
    if policy.policy_min_hours is None:
        return DEFAULT_MIN_HOURS
    return policy.policy_min_hours


def list_address(policy: PolicyFacts, committee_key: str, round_: int | None, second_round_list: str) -> str:
    """Where the [VOTE] went: the round-2 list, else the policy's default `to`, else dev@ (atr.md §10.9)."""
    if round_ == 2:
        return second_round_list
    recipients = policy.policy_vote_recipients
    if recipients is not None and recipients.to:
        return recipients.to
    return f"dev@{committee_key}.apache.org"


def project_name(project: ProjectFacts, is_podling: bool) -> str:
    """ATR's `short_display_name`: "Apache " dropped, " (Incubating)" added for podlings."""
    name = (project.name or project.key) + (" (Incubating)" if is_podling else "")
    if name.startswith("Apache Software Foundation "):
        return name.removeprefix("Apache Software Foundation ")
    return name.removeprefix("Apache ")


def display_name(project: ProjectFacts, is_podling: bool) -> str:
    """ATR's project `display_name`: the full name, " (Incubating)" added for podlings (reference/atr.md §3.2)."""
    return (project.name or project.key) + (" (Incubating)" if is_podling else "")


def committee_name(committee: roster.Committee) -> str:
    """ATR's committee `display_name`."""
    name = committee.name or committee.key.title()
    return f"{name} (Incubating)" if committee.is_podling else name


def vote_ends_text(when: datetime.datetime) -> str:
    """ATR's `VOTE_ENDS_UTC` format, e.g. "4 Jun 10:00 UTC"."""
    when = when.astimezone(datetime.UTC)
    return f"{when.day} {when.strftime('%b %H:%M')} UTC"


def render_subject(template: str, values: dict[str, str]) -> str:
    """Fill `{{NAME}}` placeholders that have a value; others stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def stated_duration_hours(body: str) -> int | None:
    """Hours a [VOTE] body says the vote is open ("open for at least 72 hours", "at least 3 days")."""
    text = " ".join(line for line in body.splitlines() if not line.lstrip().startswith(">"))
    text = " ".join(text.split())
    for pattern in (_OPEN_FOR, _AT_LEAST):
        match = pattern.search(text)
        if match is None:
            continue
        hours = _hours(match.group(1), match.group(2))
        if hours is not None:
            return hours
    return None


def _hours(number: str, unit: str) -> int | None:
    count = int(number) if number.isdigit() else _NUMBER_WORDS.get(number.lower())
    if count is None:
        return None
    hours = count * 24 if unit.lower().startswith("d") else count
    return hours if 0 < hours <= MAX_STATED_HOURS else None


def vote_end(started: datetime.datetime, min_hours_: int, body: str | None) -> tuple[datetime.datetime, EndSource]:
    """The vote end: start + the body's stated hours, else start + the policy's minimum."""
    stated = stated_duration_hours(body) if body else None
    if stated is not None:
        return started + datetime.timedelta(hours=stated), "body"
    return started + datetime.timedelta(hours=min_hours_), "policy"


def track(
    release: ReleaseFacts,
    project: ProjectFacts,
    policy: PolicyFacts,
    committee: roster.Committee,
    *,
    second_round_list: str = SECOND_ROUND_LIST,
) -> TrackedVote | None:
    """The vote to track for a running release, or None (not running, manual, or incomplete)."""
    mode = vote_mode(release, policy)
    if release.phase != CANDIDATE_PHASE or mode not in _WATCHED_MODES:
        return None
    if release.current_vote_seq is None or release.vote_started is None:
        return None
    round_ = vote_round(committee.is_podling, release.podling_thread_id)
    hours = min_hours(policy)
    values = {
        "PROJECT_NAME": project_name(project, committee.is_podling),
        "VERSION": release.version,
        "COMMITTEE": committee_name(committee),
        "REVISION": release.latest_revision_number or "",
        "VOTE_ENDS_UTC": vote_ends_text(release.vote_started + datetime.timedelta(hours=hours)),
    }
    end, source = vote_end(release.vote_started, hours, None)
    return TrackedVote(
        release_key=release.key,
        project=release.project_key,
        version=release.version,
        vote_seq=release.current_vote_seq,
        mode=MODE_TRUSTED if mode == MODE_TRUSTED else MODE_EMAIL,
        vote_round=round_,
        committee_key=committee.key,
        binding_committee_key=roster.IPMC_KEY if round_ == 2 else committee.key,
        list_address=list_address(policy, committee.key, round_, second_round_list),
        subject=render_subject(policy.policy_start_vote_subject or DEFAULT_SUBJECT_TEMPLATE, values),
        min_hours=hours,
        vote_started=release.vote_started,
        vote_end=end,
        end_source=source,
        podling_thread_id=release.podling_thread_id,
        project_name=display_name(project, committee.is_podling),
        vote_thread_url=release.vote_thread_url,
    )


def with_thread(vote: TrackedVote, thread: FoundThread) -> TrackedVote:
    """The vote with its [VOTE] thread: the message's subject and Message-ID, and the end its body states."""
    found = dataclasses.replace(vote, subject=thread.subject, root_message_id=thread.message_id)
    if vote.vote_started is None:
        return found
    end, source = vote_end(vote.vote_started, vote.min_hours, thread.body)
    return dataclasses.replace(found, vote_end=end, end_source=source)


def change_kind(previous: TrackedVote | None, current: TrackedVote) -> ChangeKind:
    """How a vote relates to the one tracked before for the same release."""
    if previous is None:
        return "started"
    if previous.vote_round == 1 and current.vote_round == 2:
        return "next_round"
    return "restarted"


def thread_since(vote: TrackedVote) -> datetime.datetime | None:
    """The earliest date the [VOTE] message may carry (a little before ATR recorded the start); None without one."""
    if vote.vote_started is None:
        return None
    return vote.vote_started - THREAD_SLACK
