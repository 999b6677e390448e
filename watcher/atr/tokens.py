"""One JWT for every process, and PAT exchanges spent with care (reference/atr.md §10.3, §10.4).

The JWT lives 30 minutes and ATR allows 10 PAT exchanges an hour per client. `run`, `run --once`
from cron and every instance share the JWT and the count of exchanges through the state database
(`StoreTokens`), so a cron job every 5 minutes costs about 2 exchanges an hour, not 12.

`exchange_wait` is the rule, pure: renewing a JWT that is due may use all 10; an exchange made
because ATR refused a JWT (a storm of 401s: a deploy, a PAT rotated late) waits longer after each
one in a row (30 s, 60 s, 120 s, ...) and may never use the last `RESERVE`, so that the ordinary
renewals of the next hour still have exchanges left.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
from collections.abc import Sequence
from typing import Final, Literal, Protocol

import cryptography.fernet as fernet

import watcher.core.backoff as backoff

EXCHANGES_PER_HOUR: Final = 10
RESERVE: Final = 3
STORM_BACKOFF: Final = 30.0
STORM_BACKOFF_MAX: Final = 1800.0
HOUR: Final = 3600.0
_STORM: Final = backoff.Backoff(STORM_BACKOFF, STORM_BACKOFF_MAX, backoff.Jitter.NONE)

Reason = Literal["renew", "401", "rejected"]


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """One PAT exchange: when (Unix seconds) and why."""

    at: float
    reason: Reason


def exchange_wait(history: Sequence[Exchange], now: float, reason: Reason) -> float:
    """Seconds until an exchange for `reason` may be made (0: now), given the exchanges so far."""
    recent = sorted((e for e in history if e.at > now - HOUR), key=lambda e: e.at)
    limit = EXCHANGES_PER_HOUR if reason == "renew" else EXCHANGES_PER_HOUR - RESERVE
    waits = [0.0]
    if len(recent) >= limit:
        # The hour must first forget enough of them.
        waits.append(recent[len(recent) - limit].at + HOUR - now)
    if reason != "renew":
        streak = _refused_streak(recent)
        if streak:
            waits.append(recent[-1].at + _STORM.step(streak - 1) - now)
    return max(waits)


def _refused_streak(recent: Sequence[Exchange]) -> int:
    """How many of the latest exchanges in a row followed a refusal (a renewal ends the run)."""
    count = 0
    for exchange in reversed(recent):
        if exchange.reason == "renew":
            break
        count += 1
    return count


class TokenStore(Protocol):
    """Where the JWT and the exchange history live (the state database, or memory)."""

    async def load(self) -> tuple[str, float] | None:
        """The JWT and its expiry (Unix seconds), or None."""
        ...

    async def save(self, jwt: str, expires_at: float, now: float) -> None:
        """Keep a new JWT."""
        ...

    async def drop(self, jwt: str) -> None:
        """Forget a JWT ATR refused."""
        ...

    async def history(self, since: float) -> list[Exchange]:
        """The exchanges at or after `since`."""
        ...

    async def record(self, exchange: Exchange) -> None:
        """Count an exchange."""
        ...


class MemoryTokens:
    """A TokenStore of one process (tests, tools that have no state database)."""

    def __init__(self) -> None:
        self._token: tuple[str, float] | None = None
        self.exchanges: list[Exchange] = []

    async def load(self) -> tuple[str, float] | None:
        """The JWT kept, if any."""
        return self._token

    async def save(self, jwt: str, expires_at: float, now: float) -> None:
        """Keep it."""
        self._token = (jwt, expires_at)

    async def drop(self, jwt: str) -> None:
        """Forget it, if it is the one kept."""
        if self._token is not None and self._token[0] == jwt:
            self._token = None

    async def history(self, since: float) -> list[Exchange]:
        """The exchanges since `since`."""
        return [e for e in self.exchanges if e.at >= since]

    async def record(self, exchange: Exchange) -> None:
        """Count it."""
        self.exchanges.append(exchange)


class AccountStore(Protocol):
    """The state database's side (`watcher.store.Store`)."""

    async def get_atr_token(self, account: str) -> tuple[str, datetime.datetime] | None:
        """The stored JWT."""
        ...

    async def save_atr_token(
        self, account: str, jwt: str, expires_at: datetime.datetime, now: datetime.datetime
    ) -> None:
        """Store a JWT."""
        ...

    async def drop_atr_token(self, account: str, jwt: str) -> None:
        """Forget a JWT."""
        ...

    async def record_atr_exchange(self, account: str, at: datetime.datetime, reason: str) -> None:
        """Count an exchange."""
        ...

    async def atr_exchanges_since(self, account: str, since: datetime.datetime) -> list[tuple[datetime.datetime, str]]:
        """Exchanges since a time."""
        ...


class StoreTokens:
    """The TokenStore in the state database, for one ATR account (`{base_url} {uid}`).

    The JWT is stored encrypted (Fernet) with a key derived from the PAT, which every process of
    this account holds: the database, and a debug log of its rows, never show a usable token, and
    a new PAT makes the old JWT unreadable (it is exchanged anew).
    """

    def __init__(self, store: AccountStore, base_url: str, uid: str, pat: str) -> None:
        self._store = store
        self.account = f"{base_url} {uid}"
        key = base64.urlsafe_b64encode(hashlib.sha256(b"vote-watcher atr jwt\0" + pat.encode()).digest())
        self._fernet = fernet.Fernet(key)
        self._sealed: dict[str, str] = {}

    async def load(self) -> tuple[str, float] | None:
        """The stored JWT and its expiry (None when there is none, or it was sealed with another PAT)."""
        found = await self._store.get_atr_token(self.account)
        if found is None:
            return None
        try:
            jwt = self._fernet.decrypt(found[0].encode()).decode()
        except fernet.InvalidToken:
            return None
        self._sealed[jwt] = found[0]
        return jwt, found[1].timestamp()

    async def save(self, jwt: str, expires_at: float, now: float) -> None:
        """Store a new JWT."""
        sealed = self._fernet.encrypt(jwt.encode()).decode()
        self._sealed[jwt] = sealed
        await self._store.save_atr_token(self.account, sealed, _time(expires_at), _time(now))

    async def drop(self, jwt: str) -> None:
        """Forget a refused JWT (only if it is still the one stored)."""
        sealed = self._sealed.pop(jwt, None)
        if sealed is not None:
            await self._store.drop_atr_token(self.account, sealed)

    async def history(self, since: float) -> list[Exchange]:
        """Every process's exchanges since `since`."""
        rows = await self._store.atr_exchanges_since(self.account, _time(since))
        return [Exchange(at.timestamp(), _reason(reason)) for at, reason in rows]

    async def record(self, exchange: Exchange) -> None:
        """Count an exchange for every process."""
        await self._store.record_atr_exchange(self.account, _time(exchange.at), exchange.reason)


def _time(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _reason(value: str) -> Reason:
    if value == "401":
        return "401"
    if value == "rejected":
        return "rejected"
    return "renew"
