"""The metrics endpoint, scraped over real HTTP on loopback."""

from __future__ import annotations

import datetime
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import watcher
import watcher.services.metrics as metrics

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock(NOW)


@pytest.fixture
def served(clock: _Clock) -> Iterator[tuple[metrics.Metrics, metrics.Endpoint]]:
    """Metrics with their endpoint on a free loopback port."""
    recorder = metrics.Metrics(watcher.__version__, sources=["imap"], clock=clock)
    endpoint = recorder.start("127.0.0.1:0")
    assert endpoint is not None
    try:
        yield recorder, endpoint
    finally:
        endpoint.stop()


def _scrape(endpoint: metrics.Endpoint) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on the page: (name, sorted labels) -> value."""
    response = httpx.get(endpoint.url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_counters_and_gauges_are_scraped(served: tuple[metrics.Metrics, metrics.Endpoint], clock: _Clock) -> None:
    recorder, endpoint = served
    recorder.set_votes_tracked("hybrid", 4)
    recorder.set_votes_tracked("email", 1)
    recorder.ingested("imap")
    recorder.ingested("imap", 2)
    recorder.ingested("ponymail")
    for result in ["+1", "+1", "-1", "possible"]:
        recorder.classified(result)
    recorder.reminder("sent")
    recorder.reminder("sent")
    recorder.reminder("failed")
    recorder.resolution("held")
    recorder.set_budget(431)
    recorder.polled("ponymail", NOW - datetime.timedelta(seconds=42))
    clock.now = NOW + datetime.timedelta(seconds=8)

    samples = _scrape(endpoint)
    assert samples[("vote_watcher_votes_tracked", (("mode", "hybrid"),))] == 4
    assert samples[("vote_watcher_votes_tracked", (("mode", "email"),))] == 1
    assert samples[("vote_watcher_messages_ingested_total", (("source", "imap"),))] == 3
    assert samples[("vote_watcher_messages_ingested_total", (("source", "ponymail"),))] == 1
    assert samples[("vote_watcher_votes_classified_total", (("result", "+1"),))] == 2
    assert samples[("vote_watcher_votes_classified_total", (("result", "-1"),))] == 1
    assert samples[("vote_watcher_votes_classified_total", (("result", "possible"),))] == 1
    assert samples[("vote_watcher_reminders_total", (("outcome", "sent"),))] == 2
    assert samples[("vote_watcher_reminders_total", (("outcome", "skipped"),))] == 0
    assert samples[("vote_watcher_reminders_total", (("outcome", "failed"),))] == 1
    assert samples[("vote_watcher_resolutions_total", (("outcome", "signalled"),))] == 0
    assert samples[("vote_watcher_resolutions_total", (("outcome", "held"),))] == 1
    assert samples[("vote_watcher_atr_budget_remaining", ())] == 431
    assert samples[("vote_watcher_info", (("version", watcher.__version__),))] == 1
    # Ages are computed at scrape time: a polled source from its poll, an expected one from the start.
    assert samples[("vote_watcher_seconds_since_last_poll", (("source", "ponymail"),))] == 50
    assert samples[("vote_watcher_seconds_since_last_poll", (("source", "imap"),))] == 8
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_poll_age_grows_between_scrapes_and_resets_on_poll(
    served: tuple[metrics.Metrics, metrics.Endpoint], clock: _Clock
) -> None:
    recorder, endpoint = served
    key = ("vote_watcher_seconds_since_last_poll", (("source", "imap"),))
    recorder.polled("imap", NOW)
    clock.now = NOW + datetime.timedelta(minutes=5)
    assert _scrape(endpoint)[key] == 300
    clock.now = NOW + datetime.timedelta(minutes=7)
    assert _scrape(endpoint)[key] == 420
    recorder.polled("imap", clock.now)
    assert _scrape(endpoint)[key] == 0


def test_registry_is_private() -> None:
    first = metrics.Metrics("1")
    second = metrics.Metrics("2")  # a second instance does not clash with the first
    first.ingested("imap")
    assert (
        prometheus_client.REGISTRY.get_sample_value("vote_watcher_messages_ingested_total", {"source": "imap"}) is None
    )
    assert first.registry.get_sample_value("vote_watcher_messages_ingested_total", {"source": "imap"}) == 1
    assert second.registry.get_sample_value("vote_watcher_messages_ingested_total", {"source": "imap"}) is None


def test_endpoint_is_off_when_unset_and_loopback_by_default() -> None:
    recorder = metrics.Metrics("1")
    assert recorder.start("") is None
    assert recorder.start("   ") is None
    endpoint = recorder.start(":0")
    assert endpoint is not None
    try:
        assert endpoint.host == "127.0.0.1"
        assert endpoint.port > 0
        assert httpx.get(endpoint.url, timeout=5).status_code == 200
    finally:
        endpoint.stop()
    # Stopped means the port is free again.
    with socket.create_server(("127.0.0.1", endpoint.port)):
        pass


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
        (":9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("localhost:9464", ("localhost", 9464)),
    ],
)
def test_listen_addresses(listen: str, expected: tuple[str, int]) -> None:
    assert metrics.parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:http", "127.0.0.1:70000", "127.0.0.1:-1"])
def test_bad_listen_addresses_are_refused_clearly(listen: str) -> None:
    with pytest.raises(ValueError, match="metrics listen address"):
        metrics.parse_listen(listen)


def test_unknown_outcomes_and_naive_times_are_refused() -> None:
    recorder = metrics.Metrics("1")
    lost: Any = "lost"  # a value past the type checker
    with pytest.raises(ValueError, match="reminder outcome"):
        recorder.reminder(lost)
    with pytest.raises(ValueError, match="resolution outcome"):
        recorder.resolution(lost)
    with pytest.raises(ValueError, match="timezone-aware"):
        recorder.polled("imap", datetime.datetime(2026, 11, 26, 12, 0))


def test_health_paths_and_404() -> None:
    """/healthz answers while the process serves; /readyz says what is not ready (503); other paths are 404."""
    checks = {"database": "ok", "atr": "not reached within twice its poll interval"}
    recorder = metrics.Metrics(watcher.__version__)
    endpoint = recorder.start("127.0.0.1:0", ready=lambda: (False, checks))
    assert endpoint is not None
    try:
        alive = httpx.get(f"{endpoint.base_url}/healthz", timeout=5)
        ready = httpx.get(f"{endpoint.base_url}/readyz", timeout=5)
        missing = httpx.get(f"{endpoint.base_url}/", timeout=5)
        scraped = httpx.get(endpoint.url, timeout=5)
    finally:
        endpoint.stop()
    assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
    assert (ready.status_code, ready.json()) == (503, {"status": "not ready", "checks": checks})
    assert missing.status_code == 404
    assert scraped.status_code == 200 and "vote_watcher_info" in scraped.text
