"""The lists.apache.org archive (Apache Pony Mail Foal): a polite HTTP client and a polling source.

Polling costs one request per list while nothing happens: `stats.json?since=` answers
`{"changed": false}`. Only when a list changed are the tracked threads read (`thread.json`), and
only messages not yet stored are fetched, as raw unredacted source (`source.lua`), each once.
Every request goes through one client with a concurrency limit, timeouts (connect 10 s, total
30 s, as ATR uses) and bounded retries with exponential backoff and jitter; when the retries run
out the poll reports the failure and keeps its cursor, so the next poll fetches what was missed.
TLS is always verified; plain HTTP is accepted only to loopback. The bearer token for private
lists is read from a file and never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import math
import pathlib
import random
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from typing import Any, Final

import httpx
import structlog

import watcher.discovery as discovery
import watcher.message as message
import watcher.sources.cursor as cursor

DEFAULT_ARCHIVE_URL: Final = "https://lists.apache.org"
CONNECT_TIMEOUT_S: Final = 10.0
TOTAL_TIMEOUT_S: Final = 30.0
MAX_THREAD_MESSAGES: Final = 10000
DEFAULT_GRACE_S: Final = 300
DEFAULT_FIRST_WINDOW_DAYS: Final = 30
VOTE_CLOCK_SLACK_S: Final = 600
_THREAD_ID: Final = re.compile(r"^[A-Za-z0-9]{1,64}$")
_THREAD_PATH: Final = re.compile(r"^(?P<base>.*?)/thread/(?P<id>[^/?#]+)/?$")
_WORD: Final = re.compile(r"[0-9a-z]+")
_RETRY_STATUS: Final = frozenset({429})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})

log = structlog.get_logger(__name__)

Seen = Callable[[str], bool] | Container[str]
"""What is stored already: a predicate or a set, asked with Message-IDs (no `<>`) and archive ids."""

Deliver = Callable[["ArchivedMessage"], Awaitable[None]]
"""Receives each new message; the cursor moves only after it returned."""


class ArchiveFetchError(RuntimeError):
    """The archive could not be read (after retries). `url` names the request, never a secret."""

    def __init__(self, text: str, url: str) -> None:
        super().__init__(f"{text} ({url})")
        self.url = url


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """How the client talks to the archive."""

    base_url: str = DEFAULT_ARCHIVE_URL
    token_file: pathlib.Path | None = None
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    total_timeout_s: float = TOTAL_TIMEOUT_S
    concurrency: int = 4
    retries: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class ArchivedMessage:
    """One raw message read from the archive."""

    archive_id: str
    thread_id: str
    list_address: str
    message_id: str
    epoch: int
    raw: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class VoteThread:
    """A [VOTE] thread found in the archive."""

    thread_id: str
    message_id: str
    subject: str
    list_address: str
    epoch: int
    url: str


@dataclasses.dataclass(frozen=True, slots=True)
class PollReport:
    """What one poll did: messages handed on, HTTP requests spent, failures survived."""

    lists: int
    requests: int
    messages: tuple[ArchivedMessage, ...]
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every list was read completely."""
        return not self.failures


@dataclasses.dataclass(frozen=True, slots=True)
class ThreadEntry:
    """One message of a thread as `thread.json` lists it."""

    archive_id: str
    message_id: str
    epoch: int


class ArchiveClient:
    """Reads lists.apache.org's API; use as `async with ArchiveClient(settings) as client`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings or Settings()
        self.base_url = check_url(self.settings.base_url)
        self.requests = 0
        self._sleep = sleep
        self._jitter = jitter
        self._semaphore = asyncio.Semaphore(max(1, self.settings.concurrency))
        headers = {"User-Agent": "vote-watcher"}
        if self.settings.token_file is not None:
            headers["Authorization"] = "Bearer " + read_token(self.settings.token_file)
        total = self.settings.total_timeout_s
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(total, connect=self.settings.connect_timeout_s),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"ArchiveClient(base_url={self.base_url!r}, requests={self.requests})"

    async def __aenter__(self) -> ArchiveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def stats(self, list_address: str, **params: str | int) -> dict[str, Any]:
        """`stats.json` for one list (`{"changed": false}` when `since` is given and nothing is newer)."""
        name, domain = split_list(list_address)
        found = await self._json("stats.json", {"list": name, "domain": domain, **params})
        if found is None:
            raise ArchiveFetchError("stats: list not found", self._url("stats.json"))
        return found

    async def email(self, ident: str, list_address: str | None = None) -> dict[str, Any] | None:
        """One email by archive id, or by Message-ID on a list; None when it is not archived (yet)."""
        params = {"id": ident}
        if list_address is not None:
            params = {"id": f"<{message.normalise_message_id(ident)}>", "listid": f"<{list_id(list_address)}>"}
        return await self._json("email.json", params)

    async def thread(self, thread_id: str, *, find_parent: bool = False) -> dict[str, Any] | None:
        """`thread.json`: the thread's tree and emails; None when the id is unknown."""
        params = {"id": thread_id, **({"find_parent": "true"} if find_parent else {})}
        return await self._json("thread.json", params)

    async def source(self, archive_id: str) -> bytes | None:
        """The raw RFC 822 bytes of one message (unredacted); None when unknown."""
        response = await self._get("source.lua", {"id": archive_id})
        return None if response is None else response.content

    async def thread_id_for(self, message_id: str, list_address: str) -> str | None:
        """The thread id of a [VOTE] message (its archive id); None while it is not archived."""
        found = await self.email(message_id, list_address)
        if found is None:
            return None
        ident = str(found.get("mid") or found.get("id") or "")
        if not _THREAD_ID.match(ident):
            raise ArchiveFetchError(f"email.json gave no usable id for <{message_id}>", self._url("email.json"))
        return ident

    async def thread_entries(self, thread_id: str, *, find_parent: bool = False) -> list[ThreadEntry] | None:
        """The messages of a thread in archive order; None when the thread is unknown."""
        data = await self.thread(thread_id, find_parent=find_parent)
        if data is None:
            return None
        entries = thread_entries(data)
        if len(entries) > MAX_THREAD_MESSAGES:
            raise ArchiveFetchError(
                f"thread has {len(entries)} messages, over {MAX_THREAD_MESSAGES}", self._url("thread.json")
            )
        return entries

    async def thread_raw(self, thread_id: str) -> list[bytes]:
        """Every raw message of the thread holding `thread_id`, in archive order; any gap raises."""
        entries = await self.thread_entries(thread_id, find_parent=True)
        if entries is None:
            raise ArchiveFetchError(f"thread {thread_id} not found", self._url("thread.json"))
        raws = await asyncio.gather(*(self.source(entry.archive_id) for entry in entries))
        missing = [entry.archive_id for entry, raw in zip(entries, raws, strict=True) if not raw]
        if missing:
            gaps = f"{len(missing)} message(s) of thread {thread_id} not found"
            raise ArchiveFetchError(gaps, self._url("source.lua"))
        return [raw for raw in raws if raw]

    async def find_vote_thread(
        self, list_address: str, subject: str | None, project: str, version: str, since: datetime.datetime
    ) -> VoteThread | None:
        """The first [VOTE] message on the list at or after `since` matching the subject (or project and version)."""
        start = since.astimezone(datetime.UTC)
        low = start - datetime.timedelta(days=1)
        high = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        params: dict[str, str | int] = {
            "header_subject": subject or f"{project} {version}",
            "d": f"dfr={low:%Y-%m-%d}|dto={high:%Y-%m-%d}",
            "since": int(start.timestamp()) - VOTE_CLOCK_SLACK_S,
        }
        found = await self.stats(list_address, **params)
        earliest = int(start.timestamp()) - VOTE_CLOCK_SLACK_S
        candidates = [
            entry
            for entry in found.get("emails") or []
            if isinstance(entry, dict)
            and _int(entry.get("epoch")) >= earliest
            and vote_subject_matches(str(entry.get("subject", "")), subject, project, version)
        ]
        if not candidates:
            return None
        first = min(candidates, key=lambda entry: _int(entry.get("epoch")))
        ident = str(first.get("mid") or first.get("id"))
        return VoteThread(
            thread_id=ident,
            message_id=message.normalise_message_id(str(first.get("message-id", ""))),
            subject=str(first.get("subject", "")),
            list_address=list_address,
            epoch=_int(first.get("epoch")),
            url=f"{self.base_url}/thread/{ident}",
        )

    async def _json(self, endpoint: str, params: Mapping[str, str | int]) -> dict[str, Any] | None:
        response = await self._get(endpoint, params)
        if response is None:
            return None
        try:
            found = response.json()
        except ValueError as exc:
            raise ArchiveFetchError(f"{endpoint}: unparsable JSON", self._url(endpoint)) from exc
        if not isinstance(found, dict):
            raise ArchiveFetchError(f"{endpoint}: JSON is not an object", self._url(endpoint))
        return found

    async def _get(self, endpoint: str, params: Mapping[str, str | int]) -> httpx.Response | None:
        """GET with retries on 5xx, 429, timeouts and connection errors; 404 → None."""
        url = self._url(endpoint)
        attempts = self.settings.retries + 1
        problem = ""
        for attempt in range(attempts):
            try:
                response = await self._attempt(url, params)
            except (httpx.TransportError, TimeoutError) as exc:
                problem = type(exc).__name__
            else:
                status = response.status_code
                if status == 404:
                    return None
                if status < 400:
                    return response
                if status < 500 and status not in _RETRY_STATUS:
                    raise ArchiveFetchError(f"{endpoint}: HTTP {status}", url)
                problem = f"HTTP {status}"
            if attempt + 1 < attempts:
                delay = self._backoff(attempt)
                log.warning("archive.request_retry", url=url, problem=problem, delay=delay)
                await self._sleep(delay)
        raise ArchiveFetchError(f"{endpoint}: {problem} after {attempts} attempts", url)

    async def _attempt(self, url: str, params: Mapping[str, str | int]) -> httpx.Response:
        async with self._semaphore:
            self.requests += 1
            async with asyncio.timeout(self.settings.total_timeout_s):
                return await self._http.get(url, params=dict(params))

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_s * 2.0**attempt)
        return ceiling * (0.5 + 0.5 * self._jitter())

    def _url(self, endpoint: str) -> str:
        return f"{self.base_url}/api/{endpoint}"


@dataclasses.dataclass
class _Tracked:
    list_address: str
    thread_id: str | None
    message_id: str | None
    synced: bool = False
    waiting: bool = False
    fetched: set[str] = dataclasses.field(default_factory=set)


class PonyMailSource:
    """Polls configured lists and hands on new messages of tracked threads, each once."""

    def __init__(
        self,
        client: ArchiveClient,
        lists: Iterable[str],
        *,
        cursors: cursor.CursorStore | None = None,
        name: str = "ponymail",
        grace_s: int = DEFAULT_GRACE_S,
        first_window_days: int = DEFAULT_FIRST_WINDOW_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.name = name
        self.grace_s = grace_s
        self.first_window_days = first_window_days
        self._lists = list(dict.fromkeys(address.lower() for address in lists))
        self._cursors = cursors if cursors is not None else cursor.MemoryCursorStore()
        self._clock = clock
        self._tracked: list[_Tracked] = []
        self._considered: dict[str, dict[str, int]] = {}

    @property
    def lists(self) -> tuple[str, ...]:
        """The list addresses polled."""
        return tuple(self._lists)

    def track(self, list_address: str, *, thread_id: str | None = None, message_id: str | None = None) -> None:
        """Follow a thread, by its archive thread id or by its [VOTE] Message-ID (looked up when archived)."""
        if not thread_id and not message_id:
            raise ValueError("track needs a thread id or a Message-ID")
        if thread_id and not _THREAD_ID.match(thread_id):
            raise ValueError("a thread id is letters and digits")
        address = list_address.lower()
        mid = message.normalise_message_id(message_id) or None
        if any(t.list_address == address and _same(t, thread_id, mid) for t in self._tracked):
            return
        if address not in self._lists:
            self._lists.append(address)
        self._tracked.append(_Tracked(address, thread_id, mid))

    def untrack(self, *, thread_id: str | None = None, message_id: str | None = None) -> None:
        """Stop following a thread (its vote is over)."""
        mid = message.normalise_message_id(message_id) or None
        self._tracked = [t for t in self._tracked if not _same(t, thread_id, mid)]

    def thread_ids(self) -> dict[str, str | None]:
        """Tracked [VOTE] Message-IDs (or thread ids) → thread id, None while not archived."""
        return {(t.message_id or t.thread_id or ""): t.thread_id for t in self._tracked}

    async def poll(self, seen: Seen, deliver: Deliver | None = None) -> PollReport:
        """One round over every list; survives archive errors, reporting them.

        Lists are polled side by side. An exception from `deliver` is raised once every list has
        finished; what it failed to take is fetched again by the next poll.
        """
        before = self.client.requests
        lists = list(self._lists)
        results = await asyncio.gather(*(self._poll_list(a, seen, deliver) for a in lists), return_exceptions=True)
        raised = [outcome for outcome in results if isinstance(outcome, BaseException)]
        if raised:
            raise raised[0]
        outcomes = [outcome for outcome in results if not isinstance(outcome, BaseException)]
        messages = tuple(item for found, _ in outcomes for item in found)
        failures = tuple(problem for _, problems in outcomes for problem in problems)
        return PollReport(len(lists), self.client.requests - before, messages, failures)

    async def run(self, seen: Seen, deliver: Deliver, *, interval_s: float, stop: asyncio.Event) -> None:
        """Poll every `interval_s` until `stop` is set; no error ends the loop."""
        while not stop.is_set():
            try:
                report = await self.poll(seen, deliver)
            except Exception:
                log.exception("archive.poll_failed", source=self.name)
            else:
                for problem in report.failures:
                    log.warning("archive.poll_incomplete", source=self.name, problem=problem)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                continue

    async def _poll_list(
        self, address: str, seen: Seen, deliver: Deliver | None
    ) -> tuple[list[ArchivedMessage], list[str]]:
        saved = await self._cursors.get_cursor(self.name, address)
        position = saved.position if saved else 0
        try:
            probe = await self.client.stats(address, **self._probe_params(position))
        except ArchiveFetchError as exc:
            return [], [f"{address}: {exc}"]
        emails = [entry for entry in probe.get("emails") or [] if isinstance(entry, dict)]
        considered = self._considered.setdefault(address, {})
        # A changed probe lists the whole date window; only what is newer than `since` is news.
        since = position - self.grace_s if position > 0 else None
        fresh = [
            entry
            for entry in emails
            if (since is None or _int(entry.get("epoch")) > since)
            and str(entry.get("mid") or entry.get("id")) not in considered
            and not _email_seen(seen, entry)
        ]
        threads = [t for t in self._tracked if t.list_address == address]
        due = [t for t in threads if fresh or not (t.synced or t.waiting)]
        found: list[ArchivedMessage] = []
        problems: list[str] = []
        for tracked in due:
            await self._sync(tracked, seen, deliver, found, problems)
        if problems:
            return found, problems
        for entry in emails:
            considered[str(entry.get("mid") or entry.get("id"))] = _int(entry.get("epoch"))
        newest = max([position, *(_int(entry.get("epoch")) for entry in emails)])
        self._forget_before(considered, newest - self.grace_s)
        if newest != position:
            await self._cursors.set_cursor(self.name, address, cursor.Cursor(0, newest))
        return found, problems

    def _probe_params(self, position: int) -> dict[str, str | int]:
        if position <= 0:
            return {"d": f"lte={self.first_window_days}d"}
        since = position - self.grace_s
        days = max(1, math.ceil((self._clock() - since) / 86400) + 1)
        return {"since": since, "d": f"lte={days}d"}

    async def _sync(
        self, tracked: _Tracked, seen: Seen, deliver: Deliver | None, found: list[ArchivedMessage], problems: list[str]
    ) -> None:
        try:
            entries = await self._thread_entries(tracked)
        except ArchiveFetchError as exc:
            problems.append(f"{tracked.list_address}: {exc}")
            return
        if entries is None or tracked.thread_id is None:
            tracked.waiting = True
            return
        wanted = [e for e in entries if e.archive_id not in tracked.fetched and not _entry_seen(seen, e)]
        raws = await asyncio.gather(*(self.client.source(e.archive_id) for e in wanted), return_exceptions=True)
        complete = True
        for entry, raw in zip(wanted, raws, strict=True):
            if not isinstance(raw, bytes) or not raw:
                complete = False
                problems.append(f"{tracked.list_address}: source of {entry.archive_id}: {_describe(raw)}")
                continue
            item = ArchivedMessage(
                entry.archive_id, tracked.thread_id, tracked.list_address, entry.message_id, entry.epoch, raw
            )
            if deliver is not None:
                await deliver(item)
            tracked.fetched.add(entry.archive_id)
            found.append(item)
        tracked.synced, tracked.waiting = complete, False

    async def _thread_entries(self, tracked: _Tracked) -> list[ThreadEntry] | None:
        if tracked.thread_id is None and tracked.message_id:
            tracked.thread_id = await self.client.thread_id_for(tracked.message_id, tracked.list_address)
        if tracked.thread_id is None:
            return None
        return await self.client.thread_entries(tracked.thread_id)

    @staticmethod
    def _forget_before(considered: dict[str, int], epoch: int) -> None:
        for ident in [ident for ident, when in considered.items() if when < epoch]:
            del considered[ident]


class ThreadFinder:
    """Finds a vote's [VOTE] message in the archive for discovery (`watcher.discovery.ThreadFinder`)."""

    def __init__(self, client: ArchiveClient) -> None:
        self.client = client
        self.thread_ids: dict[str, str] = {}
        """Message-ID of each [VOTE] found → its archive thread id, for `PonyMailSource.track`."""

    async def find_vote_thread(
        self, list_address: str, subject: str, project: str, version: str, since: datetime.datetime
    ) -> discovery.FoundThread | None:
        """The [VOTE] message, read from its raw source for the full body; None while not archived."""
        found = await self.client.find_vote_thread(list_address, subject or None, project, version, since)
        if found is None:
            return None
        raw = await self.client.source(found.thread_id)
        if raw is None:
            return None
        parsed = message.parse(raw)
        message_id = parsed.message_id or found.message_id
        self.thread_ids[message_id] = found.thread_id
        return discovery.FoundThread(
            message_id=message_id, subject=parsed.subject or found.subject, body=parsed.text, date=parsed.date
        )


async def fetch_thread_raw(
    url_or_id: str, *, archive_url: str = DEFAULT_ARCHIVE_URL, token_file: pathlib.Path | None = None
) -> list[bytes]:
    """Every raw message of a thread, in archive order.

    Takes `https://lists.apache.org/thread/<id>`, `<base>/thread/<id>` or a bare id. A full URL
    names its own archive unless `archive_url` is set to something other than the default.
    Raises ArchiveFetchError for a bad reference, an unreadable token file, or any message of
    the thread that cannot be fetched (a partial thread would give a wrong tally).
    """
    try:
        base, thread_id = parse_thread_ref(url_or_id)
        if base is None or archive_url.rstrip("/") != DEFAULT_ARCHIVE_URL:
            base = archive_url
        client = ArchiveClient(Settings(base_url=base, token_file=token_file))
    except ValueError as exc:
        raise ArchiveFetchError(str(exc), url_or_id) from None
    async with client:
        return await client.thread_raw(thread_id)


def parse_thread_ref(url_or_id: str) -> tuple[str | None, str]:
    """`<base>/thread/<id>` → (base, id); a bare id → (None, id). Raises ValueError otherwise."""
    text = url_or_id.strip()
    if _THREAD_ID.match(text):
        return None, text
    parsed = urllib.parse.urlsplit(text)
    found = _THREAD_PATH.match(parsed.path)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or found is None:
        raise ValueError(f"not a thread URL or id: {url_or_id!r}")
    thread_id = urllib.parse.unquote(found["id"])
    if not _THREAD_ID.match(thread_id):
        raise ValueError(f"not a thread id: {thread_id!r}")
    return f"{parsed.scheme}://{parsed.netloc}{found['base']}", thread_id


def thread_entries(data: Mapping[str, Any]) -> list[ThreadEntry]:
    """Message ids of a `thread.json` answer, from `emails` and the `thread` tree, in archive order."""
    seen: dict[str, tuple[int, ThreadEntry]] = {}

    def add(item: object) -> None:
        if not isinstance(item, dict):
            return
        ident = str(item.get("mid") or item.get("id") or "")
        if not _THREAD_ID.match(ident) or ident in seen:
            return
        mid = message.normalise_message_id(str(item.get("message-id") or ""))
        seen[ident] = (len(seen), ThreadEntry(ident, mid, _int(item.get("epoch"))))

    emails = data.get("emails")
    for item in emails if isinstance(emails, list) else []:
        add(item)
    pending: list[object] = [data.get("thread")]
    while pending:
        node = pending.pop()
        add(node)
        children = node.get("children") if isinstance(node, dict) else None
        if isinstance(children, list):
            pending.extend(reversed(children))
    ordered = sorted(seen.values(), key=lambda pair: (pair[1].epoch, pair[0]))
    return [entry for _, entry in ordered]


def vote_subject_matches(subject: str, wanted: str | None, project: str, version: str) -> bool:
    """A [VOTE] opening subject (not a reply) equal to `wanted`, or naming the project and version."""
    text = " ".join(subject.split()).casefold()
    if not text.startswith("[vote]"):
        return False
    if wanted and text == " ".join(wanted.split()).casefold():
        return True
    words = set(_WORD.findall(text))
    if not set(_WORD.findall(project.casefold())) <= words:
        return False
    pattern = rf"(?<![0-9a-z.]){re.escape(version.casefold())}(?![0-9a-z]|\.[0-9a-z])"
    return bool(version) and re.search(pattern, text) is not None


def check_url(base_url: str) -> str:
    """The base URL without a trailing slash; https, or http only to a loopback host."""
    parsed = urllib.parse.urlsplit(base_url.strip())
    host = parsed.hostname or ""
    if parsed.scheme == "https" and host:
        return base_url.strip().rstrip("/")
    if parsed.scheme == "http" and _is_loopback(host):
        return base_url.strip().rstrip("/")
    raise ValueError(f"archive URL must be https (plain http only to loopback): {base_url!r}")


def read_token(path: pathlib.Path) -> str:
    """The bearer token from a file (first line, stripped)."""
    try:
        token = path.read_text(encoding="utf-8").strip().splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror}") from None
    if not token or not token[0].strip():
        raise ValueError(f"token file {path} is empty")
    return token[0].strip()


def split_list(list_address: str) -> tuple[str, str]:
    """`dev@maven.apache.org` → (`dev`, `maven.apache.org`)."""
    name, at, domain = list_address.strip().lower().partition("@")
    if not at or not name or not domain:
        raise ValueError(f"not a list address: {list_address!r}")
    return name, domain


def list_id(list_address: str) -> str:
    """`dev@maven.apache.org` → `dev.maven.apache.org` (the List-Id Foal's `listid` expects)."""
    name, domain = split_list(list_address)
    return f"{name}.{domain}"


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same(tracked: _Tracked, thread_id: str | None, message_id: str | None) -> bool:
    return bool((thread_id and tracked.thread_id == thread_id) or (message_id and tracked.message_id == message_id))


def _is_seen(seen: Seen, keys: Sequence[str]) -> bool:
    for key in keys:
        if not key:
            continue
        if callable(seen) and seen(key):
            return True
        if not callable(seen) and key in seen:
            return True
    return False


def _email_seen(seen: Seen, entry: Mapping[str, Any]) -> bool:
    mid = message.normalise_message_id(str(entry.get("message-id") or ""))
    return _is_seen(seen, (mid, str(entry.get("mid") or entry.get("id") or "")))


def _entry_seen(seen: Seen, entry: ThreadEntry) -> bool:
    return _is_seen(seen, (entry.message_id, entry.archive_id))


def _describe(outcome: object) -> str:
    if outcome is None:
        return "not found"
    if isinstance(outcome, BaseException):
        return str(outcome) or type(outcome).__name__
    return "empty"


def _int(value: object) -> int:
    try:
        return int(float(str(value)))
    except ValueError:
        return 0
