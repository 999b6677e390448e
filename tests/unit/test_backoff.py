"""The one backoff policy, and the figures each caller keeps with it."""

import datetime
import random

import pytest

import watcher.atr.tokens as tokens
import watcher.core.backoff as backoff
import watcher.mail.outbox as outbox
import watcher.sources.imap as imap


def test_step_doubles_from_base_and_stops_at_the_cap() -> None:
    policy = backoff.Backoff(1.0, 60.0)
    assert [policy.step(n) for n in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_a_huge_or_negative_count_neither_overflows_nor_shrinks() -> None:
    policy = backoff.Backoff(1.0, 60.0)
    assert policy.step(10_000) == 60.0
    assert policy.step(-5) == 1.0


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [(backoff.Jitter.NONE, 8.0, 8.0), (backoff.Jitter.FULL, 0.0, 8.0), (backoff.Jitter.HALF, 4.0, 8.0)],
)
def test_each_jitter_kind_spans_its_share_of_the_step(jitter: backoff.Jitter, low: float, high: float) -> None:
    policy = backoff.Backoff(1.0, 60.0, jitter)
    assert policy.delay(3, lambda: 0.0) == low
    assert policy.delay(3, lambda: 1.0) == high
    rand = random.Random(7)
    waits = [policy.delay(3, rand.random) for _ in range(200)]
    assert all(low <= wait <= high for wait in waits)
    assert (len(set(waits)) > 1) is (jitter is not backoff.Jitter.NONE)


def test_callers_keep_their_figures() -> None:
    # IMAP counts retries from 1: the first waits 1 s (base), half jittered.
    assert imap.backoff_delay(1, 1.0, 60.0, random.Random(1)) <= 1.0
    assert imap.backoff_delay(3, 1.0, 60.0, random.Random(1)) >= 2.0
    # The outbox counts failed attempts from 1: one minute, then two, up to 15.
    policy = outbox.OutboxPolicy()
    assert datetime.timedelta(seconds=30) <= outbox.retry_delay(1, policy, random.Random(1)) <= policy.base_delay
    assert outbox.retry_delay(99, policy, random.Random(1)) >= policy.max_delay / 2
    # A storm of refused JWTs: 30 s, 60 s, 120 s ... no jitter, at most 30 minutes.
    refusals = [tokens.Exchange(at=float(i), reason="401") for i in range(1, 4)]
    assert tokens.exchange_wait(refusals, 3.0, "401") == pytest.approx(tokens.STORM_BACKOFF * 4)
