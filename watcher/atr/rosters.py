"""Committee rosters from ATR's `committee/get`, cached, merged with the aliases file.

Answers "is this uid binding for this release and round": PMC (or PPMC, podling round 1)
members bind; in a podling's round 2 only IPMC (`incubator`) members do (reference/atr.md §6.4).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Final, Protocol

import watcher.atr.budget as budget
import watcher.atr.cache as cache
import watcher.atr.models as models
import watcher.core.roster as roster

DEFAULT_TTL: Final = 6 * 3600.0


class CommitteeReader(Protocol):
    """What rosters need from the ATR client."""

    async def committee_get(self, key: str) -> models.AtrCommittee:
        """One committee."""
        ...


def committee_value(committee: models.AtrCommittee) -> roster.Committee:
    """ATR's committee as a roster value."""
    return roster.Committee(
        key=committee.key,
        members=frozenset(committee.committee_members),
        committers=frozenset(committee.committers),
        release_managers=frozenset(committee.release_managers),
        is_podling=committee.is_podling,
        name=committee.name or "",
    )


def is_binding(values: roster.Roster, uid: str | None, committee_key: str | None, vote_round: int | None) -> bool:
    """Whether `uid` is binding on the vote of `committee_key`'s release in `vote_round`."""
    return values.status(uid, roster.committee_for_round(values, committee_key, vote_round)) == "binding"


def committee_keys(committee_key: str, vote_round: int | None) -> tuple[str, ...]:
    """The committees a vote needs: the project's, plus the IPMC in a podling's round 2."""
    if vote_round == 2:
        return (committee_key, roster.IPMC_KEY)
    return (committee_key,)


class AtrRosters:
    """Committees read from ATR on demand and kept for `ttl` seconds, with the aliases' people."""

    def __init__(
        self,
        reader: CommitteeReader,
        *,
        aliases: roster.Roster | None = None,
        ttl: float = DEFAULT_TTL,
        clock: budget.Clock = time.monotonic,
        limit: cache.RefreshLimit | None = None,
    ) -> None:
        self._reader = reader
        self.aliases = aliases or roster.Roster()
        self._cache: cache.Cache[str, roster.Committee] = cache.Cache(ttl, clock=clock, limit=limit)

    async def committee(self, key: str) -> roster.Committee:
        """One committee (cached)."""

        async def fetch() -> roster.Committee:
            return committee_value(await self._reader.committee_get(key))

        return await self._cache.get(key, fetch)

    async def roster_of(self, keys: Iterable[str]) -> roster.Roster:
        """A roster of these committees (ATR's facts win over the file's) with the aliases' people."""
        committees = {key: await self.committee(key) for key in dict.fromkeys(keys)}
        return self.aliases.merged(roster.Roster(committees=committees))

    async def for_vote(self, committee_key: str, vote_round: int | None) -> roster.Roster:
        """The roster a vote's classification needs."""
        return await self.roster_of(committee_keys(committee_key, vote_round))

    async def is_binding(self, uid: str, committee_key: str, vote_round: int | None) -> bool:
        """Whether `uid` is binding on a vote of this committee's release in this round."""
        values = await self.for_vote(committee_key, vote_round)
        return is_binding(values, uid, committee_key, vote_round)
