"""Prometheus metrics: what the daemon counts, in a registry of its own, served over HTTP for scrapes.

The endpoint is off unless a listen address is configured, and binds loopback unless told otherwise.
Label values must come from small fixed sets (sources, vote modes, results), never from email.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

import prometheus_client
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import watcher.services.wallclock as wallclock

DEFAULT_LISTEN: Final = "127.0.0.1:9464"
DEFAULT_HOST: Final = "127.0.0.1"
ReminderOutcome = Literal["sent", "skipped", "failed"]
ResolutionOutcome = Literal["signalled", "held"]
REMINDER_OUTCOMES: Final[tuple[ReminderOutcome, ...]] = ("sent", "skipped", "failed")
RESOLUTION_OUTCOMES: Final[tuple[ResolutionOutcome, ...]] = ("signalled", "held")
_MAX_PORT: Final = 65535
# /readyz's check: ready or not, and what each part said.
Readiness = Callable[[], tuple[bool, dict[str, Any]]]


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """A running metrics endpoint; `stop()` closes it."""

    host: str
    port: int
    _server: WSGIServer = dataclasses.field(repr=False)
    _thread: threading.Thread = dataclasses.field(repr=False)

    @property
    def url(self) -> str:
        """The address to scrape."""
        return f"{self.base_url}/metrics"

    @property
    def base_url(self) -> str:
        """`http://host:port` of the listener (/metrics, /healthz, /readyz)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Metrics:
    """The daemon's metrics; methods are safe to call from any thread, and cheap."""

    def __init__(self, version: str, sources: Iterable[str] = (), clock: wallclock.Clock = wallclock.utcnow) -> None:
        """`sources` are expected to poll: until their first success they age from now, rather than being absent."""
        self.registry = prometheus_client.CollectorRegistry()
        registry = self.registry
        self._votes_tracked = prometheus_client.Gauge(
            "vote_watcher_votes_tracked", "Votes being watched, by ATR vote mode.", ["mode"], registry=registry
        )
        self._ingested = prometheus_client.Counter(
            "vote_watcher_messages_ingested", "Messages stored, by source.", ["source"], registry=registry
        )
        self._classified = prometheus_client.Counter(
            "vote_watcher_votes_classified", "Emailed votes classified, by result.", ["result"], registry=registry
        )
        self._reminders = prometheus_client.Counter(
            "vote_watcher_reminders", "Reminders to binding voters, by outcome.", ["outcome"], registry=registry
        )
        self._resolutions = prometheus_client.Counter(
            "vote_watcher_resolutions", "Due resolutions, signalled to ATR or held.", ["outcome"], registry=registry
        )
        self._budget = prometheus_client.Gauge(
            "vote_watcher_atr_budget_remaining", "ATR API requests left in this hour's budget.", registry=registry
        )
        self._job_failures = prometheus_client.Counter(
            "vote_watcher_job_failures",
            "Jobs that failed, by job and cause (store: the database could not be used).",
            ["job", "cause"],
            registry=registry,
        )
        self._mail_waiting = prometheus_client.Gauge(
            "vote_watcher_outbox_waiting",
            "Pending mails that failed at least once on the relay and wait for another attempt, by kind.",
            ["kind"],
            registry=registry,
        )
        self._waiting_kinds: set[str] = {"reminder"}
        self._mail_waiting.labels(kind="reminder")
        self._answers_lost = prometheus_client.Counter(
            "vote_watcher_smtp_answers_lost",
            "Mails whose DATA was sent but whose answer never came: retried with the same Message-ID.",
            registry=registry,
        )
        prometheus_client.Info("vote_watcher", "The running vote-watcher.", registry=registry).info(
            {"version": version}
        )
        prometheus_client.ProcessCollector(registry=registry)
        self._polls = _PollAges(clock, sources)
        registry.register(self._polls)
        # Known outcomes are exported at 0 from the start, so that rates and alerts work before the first event.
        for outcome in REMINDER_OUTCOMES:
            self._reminders.labels(outcome=outcome)
        for resolution in RESOLUTION_OUTCOMES:
            self._resolutions.labels(outcome=resolution)

    def ingested(self, source: str, count: int = 1) -> None:
        """`count` new messages stored from `source` (e.g. "imap", "ponymail", "mbox")."""
        self._ingested.labels(source=source).inc(count)

    def classified(self, result: str) -> None:
        """One emailed vote classified, e.g. "+1", "0", "-1", "?" or "possible"."""
        self._classified.labels(result=result).inc()

    def reminder(self, outcome: ReminderOutcome) -> None:
        """One reminder sent, skipped (cap, opt-out, dry run) or failed."""
        if outcome not in REMINDER_OUTCOMES:
            raise ValueError(f"reminder outcome must be one of {', '.join(REMINDER_OUTCOMES)}, not {outcome!r}")
        self._reminders.labels(outcome=outcome).inc()

    def resolution(self, outcome: ResolutionOutcome) -> None:
        """One due resolution signalled to ATR or held for the release manager."""
        if outcome not in RESOLUTION_OUTCOMES:
            raise ValueError(f"resolution outcome must be one of {', '.join(RESOLUTION_OUTCOMES)}, not {outcome!r}")
        self._resolutions.labels(outcome=outcome).inc()

    def polled(self, source: str, when: datetime.datetime) -> None:
        """A successful poll of `source` finished at `when` (timezone-aware)."""
        self._polls.record(source, when)

    def set_votes_tracked(self, mode: str, count: int) -> None:
        """How many votes of ATR vote mode `mode` (e.g. "hybrid", "email") are being watched."""
        self._votes_tracked.labels(mode=mode).set(count)

    def job_failed(self, job: str, cause: str) -> None:
        """A job failed: `cause` is "store" for a database outage, "error" for anything else."""
        self._job_failures.labels(job=job, cause=cause).inc()

    def set_waiting(self, counts: Mapping[str, int]) -> None:
        """Pending mails waiting on the relay, by kind (kinds absent from `counts` are set to 0)."""
        self._waiting_kinds.update(counts)
        for kind in self._waiting_kinds:
            self._mail_waiting.labels(kind=kind).set(counts.get(kind, 0))

    def answer_lost(self) -> None:
        """One send whose end-of-DATA answer was lost (it is retried, same Message-ID)."""
        self._answers_lost.inc()

    def set_budget(self, remaining: int) -> None:
        """ATR API requests left in the current hour."""
        self._budget.set(remaining)

    def poll_age(self, source: str, now: datetime.datetime) -> float | None:
        """Seconds since the last successful poll of `source` (or since start, before the first)."""
        return self._polls.age(source, now)

    def start(self, listen: str, ready: Readiness | None = None) -> Endpoint | None:
        """Serve at `listen` ("host:port", ":port" or "port" for loopback); None when empty.

        /metrics for Prometheus, /healthz (200 while the process serves), /readyz (200 when `ready` says
        so, else 503, with what each part said as JSON); any other path is 404.
        """
        if not listen.strip():
            return None
        host, port = parse_listen(listen)
        app = _App(prometheus_client.make_wsgi_app(self.registry), ready)
        server_class = _Server6 if ":" in host else _Server
        server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        return Endpoint(host=host, port=server.server_port, _server=server, _thread=thread)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _App:
    """The listener's routes."""

    def __init__(self, metrics: Any, ready: Readiness | None) -> None:
        self._metrics = metrics
        self._ready = ready

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            result: Iterable[bytes] = self._metrics(environ, start_response)
            return result
        if path == "/healthz":
            return _answer(start_response, "200 OK", {"status": "alive"})
        if path == "/readyz":
            if self._ready is None:
                return _answer(start_response, "200 OK", {"status": "ready"})
            ok, checks = self._ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            return _answer(start_response, status, {"status": "ready" if ok else "not ready", "checks": checks})
        return _answer(start_response, "404 Not Found", {"error": f"no such path: {path}"})


def _answer(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode() + b"\n"
    # A fresh list each time: the server adds its own headers to the list it is given.
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def parse_listen(listen: str) -> tuple[str, int]:
    """("host", port) from "host:port", "[v6]:port", ":port" or "port"; a missing host means loopback."""
    text = listen.strip()
    host, _, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or DEFAULT_HOST
    if not port_text.isdigit() or int(port_text) > _MAX_PORT:
        raise ValueError(f"metrics listen address {listen!r}: expected host:port with a port from 0 to {_MAX_PORT}")
    return host, int(port_text)


class _PollAges(Collector):
    """vote_watcher_seconds_since_last_poll, computed when scraped from the last success per source."""

    def __init__(self, clock: wallclock.Clock, sources: Iterable[str]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        started = clock()
        self._last: dict[str, datetime.datetime] = dict.fromkeys(sources, started)

    def record(self, source: str, when: datetime.datetime) -> None:
        # Checked here: at scrape time, in the server's thread, the mistake would be much harder to see.
        if when.tzinfo is None:
            raise ValueError(f"poll time of {source!r} must be timezone-aware, got {when.isoformat()}")
        with self._lock:
            self._last[source] = when

    def age(self, source: str, now: datetime.datetime) -> float | None:
        with self._lock:
            when = self._last.get(source)
        return None if when is None else max(0.0, (now - when).total_seconds())

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        family = self._family()
        with self._lock:
            last = dict(self._last)
        for source, when in sorted(last.items()):
            family.add_metric([source], max(0.0, (now - when).total_seconds()))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "vote_watcher_seconds_since_last_poll",
            "Seconds since the last successful poll, by source.",
            labels=["source"],
        )
