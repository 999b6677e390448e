"""Discovery, the edge: which votes are running in ATR, and where their threads are.

`Discovery.poll()` reads ATR (`releases/list` every cycle; project, policy and committee from caches, so
the steady state costs one request per page of running votes), turns the facts into tracked votes by the
rules of `watcher.core.tracking`, and asks a `ThreadFinder` (the archive or IMAP source) for each vote's
[VOTE] thread.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol

import structlog

import watcher.atr.budget as budget
import watcher.atr.cache as cache
import watcher.atr.errors as errors
import watcher.atr.models as models
import watcher.atr.rosters as rosters
import watcher.core.tracking as tracking

DEFAULT_INTERVAL: Final = 600.0
DEFAULT_FACTS_TTL: Final = 24 * 3600.0
DEFAULT_REFRESH_PER_CYCLE: Final = 3
DEFAULT_PAGE_SIZE: Final = 50
# New votes whose facts are read in one poll: within the client's per-minute bucket of each route
# (90), so the first poll never waits on ATR's limits; the rest follow in the next polls.
DEFAULT_NEW_PER_POLL: Final = 80

log = structlog.get_logger("watcher.flow.discovery")


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
    ) -> tracking.FoundThread | None:
        """The [VOTE] message on `list_address` sent at or after `since` that names the project and
        version, however worded (`subject`, the rendered one, is preferred; so is one sent by one of
        the committee's `managers`; `thread_url`, ATR's link, wins); None when it is not there yet."""
        ...


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


OnChanges = Callable[[list[tracking.Change]], Awaitable[None]]


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
        second_round_list: str = tracking.SECOND_ROUND_LIST,
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
        self.votes: dict[str, tracking.TrackedVote] = {}
        self._new_per_poll = new_per_poll
        self._new_left: int | None = new_per_poll
        self.pending = 0
        """Running votes left for a later poll (more new votes than one poll reads)."""

    async def poll(self) -> list[tracking.Change]:
        """One cycle: read the running votes, track new and restarted ones, close finished ones.

        Raises the ATR error when the list of running votes cannot be read (nothing changes then).
        """
        self._limit.new_cycle()
        self._new_left = self._new_per_poll
        self.pending = 0
        releases = await self._reader.releases_list(models.PHASE_CANDIDATE, self._page_size)
        running = {r.key: r for r in releases if r.phase == models.PHASE_CANDIDATE}
        changes: list[tracking.Change] = []
        for key in [k for k in self.votes if k not in running]:
            changes += await self._gone(self.votes[key])
        for release in running.values():
            change = await self._update(release)
            if change is not None:
                changes.append(change)
        return changes

    async def look_for_threads(self) -> list[tracking.Change]:
        """Look again for the [VOTE] of every vote whose thread is not found yet (no ATR call).

        `run --once` reads its sources after discovery: a mailbox or an mbox may have just brought it.
        """
        changes = [await self._look_for_thread(vote) for vote in list(self.votes.values()) if not vote.root_message_id]
        return [change for change in changes if change is not None]

    async def is_binding(self, vote: tracking.TrackedVote, uid: str) -> bool:
        """Whether `uid` is binding on this vote (PMC; PPMC in round 1; IPMC in round 2)."""
        return await self.rosters.is_binding(uid, vote.committee_key, vote.vote_round)

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

    async def _update(self, release: models.Release) -> tracking.Change | None:
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
            return tracking.Change("closed", previous, phase=release.phase)
        thread = await self._find(vote)
        vote = tracking.with_thread(vote, thread) if thread is not None else vote
        self.votes[release.key] = vote
        log.info(
            "discovery.vote", release=vote.release_key, vote_seq=vote.vote_seq, mode=vote.mode, round=vote.vote_round
        )
        return tracking.Change(tracking.change_kind(previous, vote), vote, previous)

    def _take_new(self, release: models.Release) -> bool:
        # A project already known costs nothing new (its facts are cached): never deferred.
        if self._new_left is None or self._projects.peek(release.project_key) is not None:
            return True
        if self._new_left <= 0:
            return False
        self._new_left -= 1
        return True

    async def _gone(self, vote: tracking.TrackedVote) -> list[tracking.Change]:
        # Not listed any more: confirm, since a page can shift while releases change.
        try:
            release = await self._reader.release_get(vote.project, vote.version)
        except errors.NotFoundError:
            del self.votes[vote.release_key]
            return [tracking.Change("closed", vote)]
        except errors.AtrError as exc:
            log.warning("discovery.confirm_failed", release=vote.release_key, error=str(exc))
            return []
        if release.phase == models.PHASE_CANDIDATE:
            change = await self._update(release)
            return [change] if change is not None else []
        del self.votes[vote.release_key]
        log.info("discovery.closed", release=vote.release_key, phase=release.phase)
        return [tracking.Change("closed", vote, phase=release.phase)]

    async def _track(self, release: models.Release) -> tracking.TrackedVote | None:
        reader = self._reader
        key = release.project_key
        try:
            project = await self._projects.get(key, lambda: reader.project_get(key))
            policy = await self._policies.get(key, lambda: reader.policy_get(key))
            committee = await self.rosters.committee(project.committee_key or key)
        except errors.AtrError as exc:
            log.warning("discovery.facts_failed", release=release.key, error=str(exc))
            return None
        vote = tracking.track(release, project, policy, committee, second_round_list=self._second_round_list)
        if vote is not None and vote.vote_round == 2:
            await self._refresh_roster(vote)
        return vote

    async def _refresh_roster(self, vote: tracking.TrackedVote) -> None:
        try:
            await self.rosters.for_vote(vote.committee_key, vote.vote_round)
        except errors.AtrError as exc:
            log.warning("discovery.roster_failed", release=vote.release_key, error=str(exc))

    async def _look_for_thread(self, vote: tracking.TrackedVote) -> tracking.Change | None:
        if vote.root_message_id:
            return None
        thread = await self._find(vote)
        if thread is None:
            return None
        found = tracking.with_thread(vote, thread)
        self.votes[vote.release_key] = found
        return tracking.Change("thread_found", found, vote)

    async def _find(self, vote: tracking.TrackedVote) -> tracking.FoundThread | None:
        since = tracking.thread_since(vote)
        if since is None:
            return None
        try:
            # The committee is cached (discovery read it to track the vote): its release managers send the [VOTE].
            managers = (await self.rosters.committee(vote.committee_key)).release_managers
            return await self._finder.find_vote_thread(
                vote.list_address,
                vote.subject,
                vote.project,
                vote.version,
                since,
                managers=managers,
                thread_url=vote.vote_thread_url,
            )
        except Exception as exc:
            # A source's failure must not stop discovery; the next poll asks again.
            log.warning("discovery.find_failed", release=vote.release_key, error=f"{type(exc).__name__}: {exc}")
            return None
