"""The PAT exchange rule (watcher/atr/tokens.py): within ATR's 10 an hour, spaced out in a storm of 401s."""

from __future__ import annotations

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
