"""Discovery: which votes are running in ATR, where their threads are, and when they end.

The core is pure: ATR's facts (release, project, policy, committee) become a `TrackedVote`; the
[VOTE] body's "open for at least N hours" gives the vote end; a new vote_seq replaces the old
vote. The edge, `Discovery.poll()`, reads ATR (`releases/list` every cycle; project, policy and
committee from caches, so the steady state costs one request per page of running votes) and asks
a `ThreadFinder` (the archive or IMAP source) for each vote's [VOTE] thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Literal, Protocol

import structlog

import watcher.atr.budget as budget
import watcher.atr.cache as cache
import watcher.atr.errors as errors
import watcher.atr.models as models
import watcher.atr.rosters as rosters
import watcher.core.roster as roster

Mode = Literal["trusted", "email"]
ChangeKind = Literal["started", "restarted", "next_round", "thread_found", "closed"]
EndSource = Literal["body", "policy"]

SECOND_ROUND_LIST: Final = "general@incubator.apache.org"
DEFAULT_INTERVAL: Final = 600.0
DEFAULT_FACTS_TTL: Final = 24 * 3600.0
DEFAULT_REFRESH_PER_CYCLE: Final = 3
DEFAULT_PAGE_SIZE: Final = 50
# New votes whose facts are read in one poll: within the client's per-minute bucket of each route
# (90), so the first poll never waits on ATR's limits; the rest follow in the next polls.
DEFAULT_NEW_PER_POLL: Final = 80
THREAD_SLACK: Final = datetime.timedelta(minutes=10)
MAX_STATED_HOURS: Final = 30 * 24
_WATCHED_MODES: Final = frozenset({models.MODE_TRUSTED, models.MODE_EMAIL})
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

log = structlog.get_logger("watcher.discovery")


@dataclasses.dataclass(frozen=True, slots=True)
class FoundThread:
    """A vote's [VOTE] message as an archive source found it."""

    message_id: str
    """Message-ID without angle brackets."""
    subject: str
    body: str
    date: datetime.datetime | None


class ThreadFinder(Protocol):
    """Finds a vote's [VOTE] message; the archive and IMAP sources implement it."""

    async def find_vote_thread(
        self,
        list_address: str,
        subject: str,
        project: str,
        version: str,
        since: datetime.datetime,
        *,
        managers: Iterable[str] = (),
        thread_url: str | None = None,
    ) -> FoundThread | None:
        """The [VOTE] message on `list_address` sent at or after `since` that names the project and
        version, however worded (`subject`, the rendered one, is preferred; so is one sent by one of
        the committee's `managers`; `thread_url`, ATR's link, wins); None when it is not there yet."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class TrackedVote:
    """A running vote as the daemon tracks it."""

    release_key: str
    project: str
    version: str
    vote_seq: int
    mode: Mode
    round: int | None
    """None for a top-level project; 1 (PPMC) or 2 (IPMC) for a podling."""
    committee_key: str
    """The project's committee (PMC or PPMC)."""
    binding_committee_key: str
    """Whose members are binding in this round: the project's committee, or `incubator` in round 2."""
    list_address: str
    subject: str
    min_hours: int
    vote_started: datetime.datetime
    vote_end: datetime.datetime
    end_source: EndSource
    podling_thread_id: str | None = None
    thread: FoundThread | None = None
    project_name: str = ""
    """ATR's `display_name` of the project ("Apache Example", " (Incubating)" added for podlings)."""
    vote_thread_url: str | None = None
    """ATR's link to the vote's thread, when it has one (set when a vote passes)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What changed for one vote since the last poll."""

    kind: ChangeKind
    vote: TrackedVote
    previous: TrackedVote | None = None
    phase: str | None = None
    """For `closed`: the release's phase now (None when the release is gone)."""


# The pure core.


def vote_round(is_podling: bool, podling_thread_id: str | None) -> int | None:
    """None for top-level projects; a podling is in round 2 once round 1's thread id is recorded."""
    if not is_podling:
        return None
    return 1 if podling_thread_id is None else 2


def vote_mode(release: models.Release, policy: models.Policy) -> str:
    """The mode frozen at vote start, else the policy's."""
    return release.vote_mode or policy.policy_vote_mode


def min_hours(policy: models.Policy) -> int:
    """The policy's minimum, or ATR's default of 72 hours."""
    if policy.policy_min_hours is None:
        return models.DEFAULT_MIN_HOURS
    return policy.policy_min_hours


def list_address(policy: models.Policy, committee_key: str, round_: int | None, second_round_list: str) -> str:
    """Where the [VOTE] went: the round-2 list, else the policy's default `to`, else dev@ (atr.md §10.9)."""
    if round_ == 2:
        return second_round_list
    recipients = policy.policy_vote_recipients
    if recipients is not None and recipients.to:
        return recipients.to
    return f"dev@{committee_key}.apache.org"


def project_name(project: models.Project, is_podling: bool) -> str:
    """ATR's `short_display_name`: "Apache " dropped, " (Incubating)" added for podlings."""
    name = (project.name or project.key) + (" (Incubating)" if is_podling else "")
    if name.startswith("Apache Software Foundation "):
        return name.removeprefix("Apache Software Foundation ")
    return name.removeprefix("Apache ")


def display_name(project: models.Project, is_podling: bool) -> str:
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
    release: models.Release,
    project: models.Project,
    policy: models.Policy,
    committee: roster.Committee,
    *,
    second_round_list: str = SECOND_ROUND_LIST,
) -> TrackedVote | None:
    """The vote to track for a running release, or None (not running, manual, or incomplete)."""
    mode = vote_mode(release, policy)
    if release.phase != models.PHASE_CANDIDATE or mode not in _WATCHED_MODES:
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
        mode=models.MODE_TRUSTED if mode == models.MODE_TRUSTED else models.MODE_EMAIL,
        round=round_,
        committee_key=committee.key,
        binding_committee_key=roster.IPMC_KEY if round_ == 2 else committee.key,
        list_address=list_address(policy, committee.key, round_, second_round_list),
        subject=render_subject(policy.policy_start_vote_subject or models.DEFAULT_SUBJECT_TEMPLATE, values),
        min_hours=hours,
        vote_started=release.vote_started,
        vote_end=end,
        end_source=source,
        podling_thread_id=release.podling_thread_id,
        project_name=display_name(project, committee.is_podling),
        vote_thread_url=release.vote_thread_url,
    )


def with_thread(vote: TrackedVote, thread: FoundThread) -> TrackedVote:
    """The vote with its [VOTE] thread, and the end the [VOTE] body states."""
    end, source = vote_end(vote.vote_started, vote.min_hours, thread.body)
    return dataclasses.replace(vote, thread=thread, vote_end=end, end_source=source)


def change_kind(previous: TrackedVote | None, current: TrackedVote) -> ChangeKind:
    """How a vote relates to the one tracked before for the same release."""
    if previous is None:
        return "started"
    if previous.round == 1 and current.round == 2:
        return "next_round"
    return "restarted"


def thread_since(vote: TrackedVote) -> datetime.datetime:
    """The earliest date the [VOTE] message may carry (a little before ATR recorded the start)."""
    return vote.vote_started - THREAD_SLACK


# The edge.


class AtrReader(rosters.CommitteeReader, Protocol):
    """What discovery needs from the ATR client."""

    async def releases_list(self, phase: str | None = ..., page_size: int = ...) -> list[models.Release]:
        """Releases in a phase."""
        ...

    async def release_get(self, project: str, version: str) -> models.Release:
        """One release."""
        ...

    async def project_get(self, project: str) -> models.Project:
        """One project."""
        ...

    async def policy_get(self, project: str) -> models.Policy:
        """A project's policy."""
        ...


OnChanges = Callable[[list[Change]], Awaitable[None]]


class Discovery:
    """Keeps `votes` (by release key) in step with ATR; `poll()` returns what changed."""

    def __init__(
        self,
        reader: AtrReader,
        finder: ThreadFinder,
        *,
        atr_rosters: rosters.AtrRosters | None = None,
        clock: budget.Clock = time.monotonic,
        facts_ttl: float = DEFAULT_FACTS_TTL,
        refresh_per_cycle: int = DEFAULT_REFRESH_PER_CYCLE,
        page_size: int = DEFAULT_PAGE_SIZE,
        second_round_list: str = SECOND_ROUND_LIST,
        new_per_poll: int | None = DEFAULT_NEW_PER_POLL,
    ) -> None:
        self._reader = reader
        self._finder = finder
        self._limit = cache.RefreshLimit(refresh_per_cycle)
        self._projects: cache.Cache[str, models.Project] = cache.Cache(facts_ttl, clock=clock, limit=self._limit)
        self._policies: cache.Cache[str, models.Policy] = cache.Cache(facts_ttl, clock=clock, limit=self._limit)
        self.rosters = atr_rosters or rosters.AtrRosters(reader, clock=clock, limit=self._limit)
        self._page_size = page_size
        self._second_round_list = second_round_list
        self.votes: dict[str, TrackedVote] = {}
        self._new_per_poll = new_per_poll
        self._new_left: int | None = new_per_poll
        self.pending = 0
        """Running votes left for a later poll (more new votes than one poll reads)."""

    async def poll(self) -> list[Change]:
        """One cycle: read the running votes, track new and restarted ones, close finished ones.

        Raises the ATR error when the list of running votes cannot be read (nothing changes then).
        """
        self._limit.new_cycle()
        self._new_left = self._new_per_poll
        self.pending = 0
        releases = await self._reader.releases_list(models.PHASE_CANDIDATE, self._page_size)
        running = {r.key: r for r in releases if r.phase == models.PHASE_CANDIDATE}
        changes: list[Change] = []
        for key in [k for k in self.votes if k not in running]:
            changes += await self._gone(self.votes[key])
        for release in running.values():
            change = await self._update(release)
            if change is not None:
                changes.append(change)
        return changes

    async def look_for_threads(self) -> list[Change]:
        """Look again for the [VOTE] of every vote whose thread is not found yet (no ATR call).

        `run --once` reads its sources after discovery: a mailbox or an mbox may have just brought it.
        """
        changes = [await self._look_for_thread(vote) for vote in list(self.votes.values()) if vote.thread is None]
        return [change for change in changes if change is not None]

    async def is_binding(self, vote: TrackedVote, uid: str) -> bool:
        """Whether `uid` is binding on this vote (PMC; PPMC in round 1; IPMC in round 2)."""
        return await self.rosters.is_binding(uid, vote.committee_key, vote.round)

    async def run(
        self,
        on_changes: OnChanges,
        *,
        interval: float = DEFAULT_INTERVAL,
        sleep: budget.Sleep = asyncio.sleep,
        cycles: int | None = None,
    ) -> None:
        """Poll every `interval` seconds (forever, or `cycles` times), handing changes on."""
        done = 0
        while cycles is None or done < cycles:
            try:
                changes = await self.poll()
            except errors.AtrError as exc:
                log.warning("discovery.poll_failed", error=str(exc))
                changes = []
            if changes:
                await on_changes(changes)
            done += 1
            await sleep(interval)

    async def _update(self, release: models.Release) -> Change | None:
        previous = self.votes.get(release.key)
        if previous is not None and previous.vote_seq == release.current_vote_seq:
            await self._refresh_roster(previous)
            return await self._look_for_thread(previous)
        if previous is None and not self._take_new(release):
            self.pending += 1
            return None
        vote = await self._track(release)
        if vote is None:
            if previous is None:
                return None
            del self.votes[release.key]
            return Change("closed", previous, phase=release.phase)
        thread = await self._find(vote)
        vote = with_thread(vote, thread) if thread is not None else vote
        self.votes[release.key] = vote
        log.info("discovery.vote", release=vote.release_key, vote_seq=vote.vote_seq, mode=vote.mode, round=vote.round)
        return Change(change_kind(previous, vote), vote, previous)

    def _take_new(self, release: models.Release) -> bool:
        # A project already known costs nothing new (its facts are cached): never deferred.
        if self._new_left is None or self._projects.peek(release.project_key) is not None:
            return True
        if self._new_left <= 0:
            return False
        self._new_left -= 1
        return True

    async def _gone(self, vote: TrackedVote) -> list[Change]:
        # Not listed any more: confirm, since a page can shift while releases change.
        try:
            release = await self._reader.release_get(vote.project, vote.version)
        except errors.NotFoundError:
            del self.votes[vote.release_key]
            return [Change("closed", vote)]
        except errors.AtrError as exc:
            log.warning("discovery.confirm_failed", release=vote.release_key, error=str(exc))
            return []
        if release.phase == models.PHASE_CANDIDATE:
            change = await self._update(release)
            return [change] if change is not None else []
        del self.votes[vote.release_key]
        log.info("discovery.closed", release=vote.release_key, phase=release.phase)
        return [Change("closed", vote, phase=release.phase)]

    async def _track(self, release: models.Release) -> TrackedVote | None:
        reader = self._reader
        key = release.project_key
        try:
            project = await self._projects.get(key, lambda: reader.project_get(key))
            policy = await self._policies.get(key, lambda: reader.policy_get(key))
            committee = await self.rosters.committee(project.committee_key or key)
        except errors.AtrError as exc:
            log.warning("discovery.facts_failed", release=release.key, error=str(exc))
            return None
        vote = track(release, project, policy, committee, second_round_list=self._second_round_list)
        if vote is not None and vote.round == 2:
            await self._refresh_roster(vote)
        return vote

    async def _refresh_roster(self, vote: TrackedVote) -> None:
        try:
            await self.rosters.for_vote(vote.committee_key, vote.round)
        except errors.AtrError as exc:
            log.warning("discovery.roster_failed", release=vote.release_key, error=str(exc))

    async def _look_for_thread(self, vote: TrackedVote) -> Change | None:
        if vote.thread is not None:
            return None
        thread = await self._find(vote)
        if thread is None:
            return None
        found = with_thread(vote, thread)
        self.votes[vote.release_key] = found
        return Change("thread_found", found, vote)

    async def _find(self, vote: TrackedVote) -> FoundThread | None:
        try:
            # The committee is cached (discovery read it to track the vote): its release managers send the [VOTE].
            managers = (await self.rosters.committee(vote.committee_key)).release_managers
            return await self._finder.find_vote_thread(
                vote.list_address,
                vote.subject,
                vote.project,
                vote.version,
                thread_since(vote),
                managers=managers,
                thread_url=vote.vote_thread_url,
            )
        except Exception as exc:
            # A source's failure must not stop discovery; the next poll asks again.
            log.warning("discovery.find_failed", release=vote.release_key, error=f"{type(exc).__name__}: {exc}")
            return None
