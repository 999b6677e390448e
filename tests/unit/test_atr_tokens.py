"""The PAT exchange rule (watcher/atr/tokens.py): within ATR's 10 an hour, spaced out in a storm of 401s."""

from __future__ import annotations

import datetime

import pytest

import watcher.atr.tokens as tokens

HOUR = 3600.0


def history(*items: tuple[float, tokens.Reason]) -> list[tokens.Exchange]:
    return [tokens.Exchange(at, reason) for at, reason in items]


def test_a_renewal_is_made_at_once_until_ten_in_the_hour() -> None:
    nine = history(*((i * 60.0, "renew") for i in range(9)))
    assert tokens.exchange_wait(nine, 600.0, "renew") == 0
    ten = history(*((i * 60.0, "renew") for i in range(10)))
    # The first of the ten leaves the hour at 3600 s.
    assert tokens.exchange_wait(ten, 600.0, "renew") == pytest.approx(HOUR - 600.0)


def test_exchanges_after_refusals_wait_longer_each_time() -> None:
    assert tokens.exchange_wait(history((0.0, "renew")), 1.0, "401") == 0
    one = history((0.0, "renew"), (1.0, "401"))
    assert tokens.exchange_wait(one, 2.0, "401") == pytest.approx(29.0)
    three = history((0.0, "renew"), (1.0, "401"), (40.0, "401"), (110.0, "401"))
    assert tokens.exchange_wait(three, 111.0, "401") == pytest.approx(110.0 + 120.0 - 111.0)
    # A rejected PAT counts as a refusal too.
    rejected = history((0.0, "rejected"))
    assert tokens.exchange_wait(rejected, 1.0, "401") == pytest.approx(29.0)


def test_a_renewal_ends_the_run_of_refusals() -> None:
    mixed = history((0.0, "401"), (100.0, "401"), (400.0, "renew"))
    assert tokens.exchange_wait(mixed, 401.0, "401") == 0


def test_refusals_never_use_the_last_exchanges_of_the_hour() -> None:
    seven = history(*((i * 10.0, "renew") for i in range(7)))
    assert tokens.exchange_wait(seven, 100.0, "401") > 0
    assert tokens.exchange_wait(seven, 100.0, "renew") == 0
    assert tokens.EXCHANGES_PER_HOUR - tokens.RESERVE == 7


async def test_memory_tokens_drop_only_the_refused_jwt() -> None:
    store = tokens.MemoryTokens()
    await store.save("a.b.c", 100.0, 0.0)
    await store.drop("other")
    assert await store.load() == ("a.b.c", 100.0)
    await store.drop("a.b.c")
    assert await store.load() is None


class _Rows:
    """The state database's two methods for tokens, in memory."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[str, datetime.datetime]] = {}
        self.exchanges: list[tuple[str, datetime.datetime, str]] = []

    async def get_atr_token(self, account: str) -> tuple[str, datetime.datetime] | None:
        return self.tokens.get(account)

    async def save_atr_token(
        self, account: str, jwt: str, expires_at: datetime.datetime, now: datetime.datetime
    ) -> None:
        self.tokens[account] = (jwt, expires_at)

    async def drop_atr_token(self, account: str, jwt: str) -> None:
        if self.tokens.get(account, ("",))[0] == jwt:
            del self.tokens[account]

    async def record_atr_exchange(self, account: str, at: datetime.datetime, reason: str) -> None:
        self.exchanges.append((account, at, reason))

    async def atr_exchanges_since(self, account: str, since: datetime.datetime) -> list[tuple[datetime.datetime, str]]:
        return [(at, reason) for acc, at, reason in self.exchanges if acc == account and at >= since]


async def test_the_stored_jwt_is_sealed_with_the_pat() -> None:
    rows = _Rows()
    store = tokens.StoreTokens(rows, "https://atr.example", "watcher", "the-pat")
    await store.save("header.claims.signature", 1_000_000.0, 0.0)
    (sealed, expires) = rows.tokens["https://atr.example watcher"]
    # The database (and a debug log of its rows) never holds the usable token.
    assert "header.claims.signature" not in sealed
    assert expires.timestamp() == 1_000_000.0
    again = tokens.StoreTokens(rows, "https://atr.example", "watcher", "the-pat")
    assert await again.load() == ("header.claims.signature", 1_000_000.0)
    # A new PAT cannot read the old JWT: it is exchanged anew.
    rotated = tokens.StoreTokens(rows, "https://atr.example", "watcher", "a-new-pat")
    assert await rotated.load() is None
    await again.drop("header.claims.signature")
    assert rows.tokens == {}


async def test_exchanges_are_counted_for_every_process() -> None:
    rows = _Rows()
    one = tokens.StoreTokens(rows, "u", "w", "p")
    two = tokens.StoreTokens(rows, "u", "w", "p")
    await one.record(tokens.Exchange(100.0, "renew"))
    await two.record(tokens.Exchange(200.0, "401"))
    assert await one.history(0.0) == [tokens.Exchange(100.0, "renew"), tokens.Exchange(200.0, "401")]
