"""The lists.apache.org archive (Apache Pony Mail Foal): a polite HTTP client and a polling source.

Polling costs one request per list while nothing happens: `stats.json?since=&emailsOnly=1`
answers `{"changed": false}` (reference/ponymail-api.md §5.1, §6.5). When a probe lists mail not
seen before, the list's tracked threads are read (`thread.json`), and only messages not yet stored
are fetched, as raw unredacted source (`source.lua`), each once.

Foal's `epoch` is the sender's Date header (§6.1), so the cursor is kept honest: it never runs
ahead of the local clock, each probe overlaps the last by `lookback_s` and reaches back to the
start of the list's earliest tracked vote, and each tracked thread is re-read every `reread_every`
polls, once shortly before its vote ends, and on `refresh` (before a decision that depends on it).
A back-dated reply (held in moderation, a slow clock) or a reply sent to another list is so seen.

The archive is read anonymously: Foal has no API tokens, only browser sessions (§3), so private
lists are read through an IMAP subscription instead. Every request goes through one client with a
concurrency limit, timeouts (connect 10 s, total 30 s, as ATR uses) and bounded retries with
exponential backoff and jitter, honouring a proxy's `Retry-After`; when the retries run out the
poll reports the failure and keeps its cursor, so the next poll fetches what was missed. TLS is
always verified; plain HTTP is accepted only to loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import email.utils
import math
import random
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from typing import Any, Final

import httpx
import structlog

import watcher.core.backoff as backoff
import watcher.core.identity as identity
import watcher.core.loopback as loopback
import watcher.core.message as message
import watcher.core.tracking as tracking
import watcher.core.votesubject as votesubject
import watcher.services.wallclock as wallclock
import watcher.sources.cursor as cursor
import watcher.store.records as records

DEFAULT_ARCHIVE_URL: Final = "https://lists.apache.org"
CONNECT_TIMEOUT_S: Final = 10.0
TOTAL_TIMEOUT_S: Final = 30.0
MAX_THREAD_MESSAGES: Final = 10000
DEFAULT_LOOKBACK_S: Final = 3600
DEFAULT_REREAD_EVERY: Final = 6
DEFAULT_FIRST_WINDOW_DAYS: Final = 30
VOTE_CLOCK_SLACK_S: Final = 600
# A thread is read once more when its vote is this close to its end.
FINAL_READ_S: Final = 900
# `refresh` skips a thread read this recently (a decision right after a poll needs no second read).
REFRESH_MAX_AGE_S: Final = 60
# Foal caps `stats` at max_hits (default 5000) and then returns an arbitrary subset (§6.5).
FOAL_MAX_HITS: Final = 5000
# Foal's `find_parent` follows In-Reply-To for at most 50 steps (§6.4); References are climbed here.
MAX_CLIMB: Final = 50
# When several messages could be the [VOTE], at most this many sources are read to see who sent them.
MAX_SENDER_CHECKS: Final = 5
_THREAD_ID: Final = re.compile(r"^[A-Za-z0-9]{1,64}$")
_THREAD_PATH: Final = re.compile(r"^(?P<base>.*?)/thread/(?P<id>[^/?#]+)/?$")
_RETRY_STATUS: Final = frozenset({429})
_RETRY_AFTER_STATUS: Final = frozenset({429, 503})
NOT_VISIBLE: Final = "not visible to this session (a private list, or deleted from the archive)"

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
class ArchiveSettings:
    """How the client talks to the archive."""

    base_url: str = DEFAULT_ARCHIVE_URL
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    total_timeout_s: float = TOTAL_TIMEOUT_S
    concurrency: int = 4
    retries: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 120.0
    """A `Retry-After` longer than this ends the attempts (the next poll tries again)."""


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
    """One message of a thread as `thread.json` lists it; `list_address` is its own list (replies cross lists)."""

    archive_id: str
    message_id: str
    epoch: int
    list_address: str = ""


class ArchiveClient:
    """Reads lists.apache.org's API; use as `async with ArchiveClient(settings) as client`."""

    def __init__(
        self,
        settings: ArchiveSettings | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings or ArchiveSettings()
        self.base_url = check_url(self.settings.base_url)
        self.requests = 0
        self.received_bytes = 0
        """Response bodies read, in bytes (for the benchmarks)."""
        self._sleep = sleep
        self._jitter = jitter
        self._semaphore = asyncio.Semaphore(max(1, self.settings.concurrency))
        # No credentials: Foal reads no Authorization header, only a browser session's cookie (§3).
        headers = {"User-Agent": "vote-watcher"}
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
        return self._checked(thread_entries(data))

    async def thread_raw(self, thread_id: str) -> list[bytes]:
        """Every raw message of the thread holding `thread_id`, in archive order; any gap raises.

        Foal's `find_parent` climbs by In-Reply-To only (§6.4); from the root it reached, the climb
        goes on here by References, so a reply that names its parent only there still finds the root.
        """
        entries, root = await self._climb(thread_id)
        raws = await asyncio.gather(*(self._raw(entry, root) for entry in entries))
        missing = [entry.archive_id for entry, raw in zip(entries, raws, strict=True) if not raw]
        if missing:
            gaps = f"{len(missing)} message(s) of thread {thread_id} {NOT_VISIBLE}"
            raise ArchiveFetchError(gaps, self._url("source.lua"))
        return [raw for raw in raws if raw]

    async def _climb(self, thread_id: str) -> tuple[list[ThreadEntry], tuple[str, bytes]]:
        """The entries of the outermost thread and its root's (archive id, raw source)."""
        current = thread_id
        for _ in range(MAX_CLIMB):
            data = await self.thread(current, find_parent=True)
            if data is None:
                raise ArchiveFetchError(f"thread {current} not found", self._url("thread.json"))
            entries = self._checked(thread_entries(data))
            top = thread_root(data)
            raw = await self.source(top.archive_id) if top is not None else None
            if top is None or raw is None:
                return entries, ("", b"")
            above = await self._referenced_parent(raw, top.list_address)
            if above is None or above == top.archive_id:
                return entries, (top.archive_id, raw)
            current = above
        raise ArchiveFetchError(f"thread {thread_id}: more than {MAX_CLIMB} parents", self._url("thread.json"))

    async def _referenced_parent(self, raw: bytes, list_address: str) -> str | None:
        """The archive id of the nearest References parent of a root that Foal could not climb from."""
        parsed = message.parse(raw)
        if parsed.in_reply_to or not parsed.references or not list_address:
            # With In-Reply-To, Foal has climbed already and stopped at a missing or private parent.
            return None
        for mid in reversed(parsed.references):
            found = await self.email(mid, list_address)
            if found is not None:
                ident = str(found.get("mid") or found.get("id") or "")
                return ident if _THREAD_ID.match(ident) else None
        return None

    async def _raw(self, entry: ThreadEntry, root: tuple[str, bytes]) -> bytes | None:
        if entry.archive_id == root[0] and root[1]:
            return root[1]
        return await self.source(entry.archive_id)

    def _checked(self, entries: list[ThreadEntry]) -> list[ThreadEntry]:
        if len(entries) > MAX_THREAD_MESSAGES:
            raise ArchiveFetchError(
                f"thread has {len(entries)} messages, over {MAX_THREAD_MESSAGES}", self._url("thread.json")
            )
        return entries

    async def find_vote_thread(
        self,
        list_address: str,
        wanted: votesubject.ReleaseName,
        since: datetime.datetime,
        *,
        managers: Iterable[str] = (),
        thread_url: str | None = None,
    ) -> VoteThread | None:
        """The [VOTE] of a release on the list, sent at or after `since` (less a clock slack), however worded.

        Foal matches `header_subject` as a phrase (§6.3), so the archive is asked broadly (every
        subject with the word "vote" in the window, `emailsOnly`) and the subject is matched here
        (`watcher.core.votesubject`). Among several openers: one a release manager sent, then the
        rendered subject word for word, then the earliest. `thread_url` (ATR's `vote_thread_url`)
        wins when set and archived.
        """
        if thread_url:
            named = await self._vote_at(thread_url, list_address)
            if named is not None:
                return named
        start = since.astimezone(datetime.UTC)
        low = start - datetime.timedelta(days=1)
        high = wallclock.utcnow() + datetime.timedelta(days=1)
        params: dict[str, str | int] = {
            "header_subject": "[VOTE]",
            "d": f"dfr={low:%Y-%m-%d}|dto={high:%Y-%m-%d}",
            "emailsOnly": 1,
        }
        found = await self.stats(list_address, **params)
        emails = [entry for entry in found.get("emails") or [] if isinstance(entry, dict)]
        if len(emails) > FOAL_MAX_HITS:
            log.warning("archive.search_capped", list=list_address, hits=len(emails))
        earliest = int(start.timestamp()) - VOTE_CLOCK_SLACK_S
        openers = [
            (entry, matched)
            for entry in emails
            if _int(entry.get("epoch")) >= earliest
            and (matched := votesubject.match(str(entry.get("subject", "")), wanted)) is not None
            and not matched.reply
        ]
        release = f"{wanted.project} {wanted.version}"
        if not openers:
            subjects = sorted({str(entry.get("subject", "")) for entry in emails})[:10]
            log.info("archive.vote_not_found", list=list_address, release=release, seen=subjects)
            return None
        senders = await self._managers_among(openers, frozenset(managers)) if len(openers) > 1 else set()

        def rank(pair: tuple[dict[str, Any], votesubject.Match]) -> tuple[bool, bool, int]:
            entry, matched = pair
            return (_archive_id(entry) not in senders, not matched.exact, _int(entry.get("epoch")))

        ranked = sorted(openers, key=rank)
        first = ranked[0][0]
        if len(ranked) > 1:
            shown = [f"{_archive_id(e)} {e.get('subject', '')} ({_int(e.get('epoch'))})" for e, _ in ranked[:10]]
            log.info("archive.vote_candidates", list=list_address, release=release, chosen=shown[0], candidates=shown)
        return self._vote_thread(first, list_address)

    async def _vote_at(self, thread_url: str, list_address: str) -> VoteThread | None:
        try:
            _, ident = parse_thread_ref(thread_url)
        except ValueError:
            log.warning("archive.bad_vote_thread_url", url=thread_url)
            return None
        found = await self.email(ident)
        return None if found is None else self._vote_thread(found, list_address)

    async def _managers_among(
        self, openers: Sequence[tuple[dict[str, Any], votesubject.Match]], managers: frozenset[str]
    ) -> set[str]:
        """Archive ids of openers a release manager sent (read from the unredacted source: JSON hides addresses)."""
        if not managers:
            return set()
        senders: set[str] = set()
        for entry, _ in openers[:MAX_SENDER_CHECKS]:
            raw = await self.source(_archive_id(entry))
            if raw is not None and identity.uid_from_address(message.parse(raw).from_address) in managers:
                senders.add(_archive_id(entry))
        return senders

    def _vote_thread(self, entry: Mapping[str, Any], list_address: str) -> VoteThread:
        ident = _archive_id(entry)
        return VoteThread(
            thread_id=ident,
            message_id=message.normalise_message_id(str(entry.get("message-id", ""))),
            subject=str(entry.get("subject", "")),
            list_address=list_address,
            epoch=_int(entry.get("epoch")),
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
            wait: float | None = None
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
                wait = retry_after(response, time.time()) if status in _RETRY_AFTER_STATUS else None
                if wait is not None and wait > self.settings.retry_after_max_s:
                    raise ArchiveFetchError(f"{endpoint}: {problem}, Retry-After {wait:.0f}s", url)
            if attempt + 1 < attempts:
                delay = max(self._backoff(attempt), wait or 0.0)
                log.warning("archive.request_retry", url=url, problem=problem, delay=delay)
                await self._sleep(delay)
        raise ArchiveFetchError(f"{endpoint}: {problem} after {attempts} attempts", url)

    async def _attempt(self, url: str, params: Mapping[str, str | int]) -> httpx.Response:
        async with self._semaphore:
            self.requests += 1
            async with asyncio.timeout(self.settings.total_timeout_s):
                response = await self._http.get(url, params=dict(params))
            self.received_bytes += len(response.content)
            return response

    def _backoff(self, attempt: int) -> float:
        policy = backoff.Backoff(self.settings.backoff_s, self.settings.backoff_max_s, backoff.Jitter.HALF)
        return policy.delay(attempt, self._jitter)

    def _url(self, endpoint: str) -> str:
        return f"{self.base_url}/api/{endpoint}"


@dataclasses.dataclass
class _FollowedThread:
    # The source's reading of one thread (polls, what it fetched), not the vote it belongs to: a thread is
    # followed by its archive id or [VOTE] Message-ID, and the vote itself is `watcher.core.tracking.TrackedVote`.
    list_address: str
    thread_id: str | None
    message_id: str | None
    started: int | None = None
    ends: int | None = None
    synced: bool = False
    waiting: bool = False
    polls: int = 0
    """Polls of its list since the thread was last read."""
    read_at: float | None = None
    final_read: bool = False
    fetched: set[str] = dataclasses.field(default_factory=set)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class PonyMailSource:
    """Polls configured lists and hands on new messages of tracked threads, each once."""

    def __init__(
        self,
        client: ArchiveClient,
        lists: Iterable[str],
        *,
        cursors: cursor.CursorStore | None = None,
        name: str = "ponymail",
        lookback_s: int = DEFAULT_LOOKBACK_S,
        reread_every: int = DEFAULT_REREAD_EVERY,
        first_window_days: int = DEFAULT_FIRST_WINDOW_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.name = name
        self.lookback_s = lookback_s
        self.reread_every = max(1, reread_every)
        self.first_window_days = first_window_days
        self._lists = list(dict.fromkeys(address.lower() for address in lists))
        self._cursors = cursors if cursors is not None else cursor.MemoryCursorStore()
        self._clock = clock
        self._tracked: list[_FollowedThread] = []
        self._considered: dict[str, dict[str, int]] = {}
        self._checked_lists: set[str] = set()
        self.unknown_lists: set[str] = set()
        """Lists Foal has never archived mail for (a typo: Foal answers 200, never 404; §6.5)."""

    @property
    def lists(self) -> tuple[str, ...]:
        """The list addresses polled."""
        return tuple(self._lists)

    def track(
        self,
        list_address: str,
        *,
        thread_id: str | None = None,
        message_id: str | None = None,
        started: datetime.datetime | None = None,
        ends: datetime.datetime | None = None,
    ) -> None:
        """Follow a thread, by its archive thread id or by its [VOTE] Message-ID (looked up when archived).

        `started` keeps the list's probes reaching back to the vote's start; `ends` schedules a last
        read shortly before the vote ends.
        """
        if not thread_id and not message_id:
            raise ValueError("track needs a thread id or a Message-ID")
        if thread_id and not _THREAD_ID.match(thread_id):
            raise ValueError("a thread id is letters and digits")
        address = list_address.lower()
        mid = message.normalise_message_id(message_id) or None
        begin = int(started.timestamp()) if started else None
        end = int(ends.timestamp()) if ends else None
        for known in self._tracked:
            if known.list_address == address and _same(known, thread_id, mid):
                if end and end != known.ends:
                    known.ends, known.final_read = end, False  # a vote extended gets its own last read
                known.started = begin or known.started
                return
        if address not in self._lists:
            self._lists.append(address)
        self._tracked.append(_FollowedThread(address, thread_id, mid, begin, end))

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

    async def refresh(
        self, message_id: str, seen: Seen, deliver: Deliver | None = None, *, max_age_s: float = REFRESH_MAX_AGE_S
    ) -> int:
        """Re-read one tracked thread now (before a decision that depends on it); returns the messages handed on.

        A thread read within `max_age_s` is not read again. Archive errors are logged, not raised:
        the decision goes ahead with what is stored.
        """
        mid = message.normalise_message_id(message_id)
        found: list[ArchivedMessage] = []
        problems: list[str] = []
        for tracked in [t for t in self._tracked if mid and t.message_id == mid]:
            if tracked.read_at is not None and self._clock() - tracked.read_at < max_age_s:
                continue
            await self._sync(tracked, seen, deliver, found, problems)
        for problem in problems:
            log.warning("archive.refresh_incomplete", source=self.name, problem=problem)
        return len(found)

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
        now = int(self._clock())
        saved = await self._cursors.get_cursor(self.name, address)
        # Never ahead of the local clock (§6.1), even for a cursor saved by an older version.
        position = min(saved.position, now) if saved else 0
        since = self._since(address, position)
        try:
            probe = await self.client.stats(address, **self._probe_params(since, now))
        except ArchiveFetchError as exc:
            return [], [f"{address}: {exc}"]
        self._check_known(address, probe)
        emails = [entry for entry in probe.get("emails") or [] if isinstance(entry, dict)]
        considered = self._considered.setdefault(address, {})
        fresh = [e for e in emails if _archive_id(e) not in considered and not _email_seen(seen, e)]
        threads = [t for t in self._tracked if t.list_address == address]
        for tracked in threads:
            tracked.polls += 1
        due = [t for t in threads if fresh or self._due(t, now)]
        found: list[ArchivedMessage] = []
        problems: list[str] = []
        for tracked in due:
            await self._sync(tracked, seen, deliver, found, problems)
        if problems:
            return found, problems
        for entry in emails:
            considered[_archive_id(entry)] = _int(entry.get("epoch"))
        newest = min(now, max([position, *(_int(entry.get("epoch")) for entry in emails)]))
        lowest = self._since(address, newest)
        if lowest is not None:
            self._forget_before(considered, lowest)
        if newest != position:
            await self._cursors.set_cursor(self.name, address, records.Cursor(0, newest))
        return found, problems

    def _due(self, tracked: _FollowedThread, now: int) -> bool:
        """Read a thread not read yet, every `reread_every` polls, and once shortly before its vote ends."""
        if not (tracked.synced or tracked.waiting) or tracked.polls >= self.reread_every:
            return True
        return tracked.ends is not None and not tracked.final_read and now >= tracked.ends - FINAL_READ_S

    def _since(self, address: str, position: int) -> int | None:
        """The probe's lower bound: `lookback_s` before the cursor, and no later than a running vote's start."""
        if position <= 0:
            return None
        starts = [t.started for t in self._tracked if t.list_address == address and t.started]
        since = position - self.lookback_s
        return min([since, *(start - VOTE_CLOCK_SLACK_S for start in starts)])

    def _probe_params(self, since: int | None, now: int) -> dict[str, str | int]:
        # `d=lte=` has no upper bound, so a future-dated mail is still listed (and clamped, above).
        if since is None:
            return {"d": f"lte={self.first_window_days}d", "emailsOnly": 1}
        days = max(1, math.ceil((now - since) / 86400) + 1)
        return {"since": since, "d": f"lte={days}d", "emailsOnly": 1}

    def _check_known(self, address: str, probe: Mapping[str, Any]) -> None:
        if address in self._checked_lists or "firstYear" not in probe:
            return
        self._checked_lists.add(address)
        if is_unknown_list(probe):
            self.unknown_lists.add(address)
            problem = PRIVATE_HINT if is_private_list(address) else "the archive has no mail for this list: mistyped?"
            log.warning("archive.unknown_list", source=self.name, list=address, problem=problem)

    async def _sync(
        self,
        tracked: _FollowedThread,
        seen: Seen,
        deliver: Deliver | None,
        found: list[ArchivedMessage],
        problems: list[str],
    ) -> None:
        async with tracked.lock:
            await self._sync_locked(tracked, seen, deliver, found, problems)

    async def _sync_locked(
        self,
        tracked: _FollowedThread,
        seen: Seen,
        deliver: Deliver | None,
        found: list[ArchivedMessage],
        problems: list[str],
    ) -> None:
        now = self._clock()
        try:
            entries = await self._thread_entries(tracked)
        except ArchiveFetchError as exc:
            problems.append(f"{tracked.list_address}: {exc}")
            return
        tracked.polls, tracked.read_at = 0, now
        if tracked.ends is not None and now >= tracked.ends - FINAL_READ_S:
            tracked.final_read = True
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
                entry.archive_id,
                tracked.thread_id,
                entry.list_address or tracked.list_address,
                entry.message_id,
                entry.epoch,
                raw,
            )
            if deliver is not None:
                await deliver(item)
            tracked.fetched.add(entry.archive_id)
            found.append(item)
        tracked.synced, tracked.waiting = complete, False

    async def _thread_entries(self, tracked: _FollowedThread) -> list[ThreadEntry] | None:
        if tracked.thread_id is None and tracked.message_id:
            tracked.thread_id = await self.client.thread_id_for(tracked.message_id, tracked.list_address)
        if tracked.thread_id is None:
            return None
        return await self.client.thread_entries(tracked.thread_id)

    @staticmethod
    def _forget_before(considered: dict[str, int], epoch: int) -> None:
        for ident in [ident for ident, when in considered.items() if when < epoch]:
            del considered[ident]


class ArchiveThreads:
    """Finds a vote's [VOTE] message in the archive for discovery (`watcher.flow.discovery.ThreadFinder`)."""

    def __init__(self, client: ArchiveClient) -> None:
        self.client = client
        self.thread_ids: dict[str, str] = {}
        """Message-ID of each [VOTE] found → its archive thread id, for `PonyMailSource.track`."""

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
        """The [VOTE] message, read from its raw source for the full body; None while not archived."""
        wanted = votesubject.release(project, version, subject)
        found = await self.client.find_vote_thread(
            list_address, wanted, since, managers=managers, thread_url=thread_url
        )
        if found is None:
            return None
        raw = await self.client.source(found.thread_id)
        if raw is None:
            return None
        parsed = message.parse(raw)
        message_id = parsed.message_id or found.message_id
        self.thread_ids[message_id] = found.thread_id
        return tracking.FoundThread(
            message_id=message_id, subject=parsed.subject or found.subject, body=parsed.text, date=parsed.date
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ListProbe:
    """What the archive says about one configured list."""

    list_address: str
    ok: bool
    text: str


# Lists the archive never serves to an anonymous client (Foal has no API tokens, §3).
PRIVATE_LIST_NAMES: Final = frozenset({"private", "security"})
PRIVATE_HINT: Final = (
    "a private list: lists.apache.org serves it only to a browser login (no API tokens), "
    'so read it through an IMAP subscription ([[sources]] kind = "imap")'
)


def is_private_list(list_address: str) -> bool:
    """Whether a list's name says it is private (private@, security@)."""
    return list_address.partition("@")[0].strip().lower() in PRIVATE_LIST_NAMES


async def probe_lists(client: ArchiveClient, lists: Iterable[str]) -> list[ListProbe]:
    """One cheap request per list (`stats` with `quick`): is it known to the archive, and readable?

    Foal answers a mistyped list with 200, 0 hits and firstYear 1970, never 404 (§6.5).
    """
    probes: list[ListProbe] = []
    for address in lists:
        try:
            found = await client.stats(address, quick=1, d="lte=1d")
        except (ArchiveFetchError, ValueError) as exc:
            probes.append(ListProbe(address, False, f"cannot be read: {exc}"))
            continue
        if is_unknown_list(found) and is_private_list(address):
            probes.append(ListProbe(address, False, PRIVATE_HINT))
        elif is_unknown_list(found):
            probes.append(
                ListProbe(address, False, "the archive has no mail for this list at all: is the address mistyped?")
            )
        else:
            probes.append(ListProbe(address, True, f"archived since {_int(found.get('firstYear'))}"))
    return probes


async def fetch_thread_raw(url_or_id: str, *, archive_url: str = DEFAULT_ARCHIVE_URL) -> list[bytes]:
    """Every raw message of a thread, in archive order, read as the daemon reads it.

    Takes `https://lists.apache.org/thread/<id>`, `<base>/thread/<id>` or a bare id. A full URL
    names its own archive unless `archive_url` is set to something other than the default. The
    walk is the daemon's: the whole `thread.children` tree (replies from any list), climbing to
    the root by In-Reply-To (Foal) and References (here). Raises ArchiveFetchError for a bad
    reference, or any message of the thread that cannot be fetched (a partial thread would give
    a wrong tally).
    """
    try:
        base, thread_id = parse_thread_ref(url_or_id)
        if base is None or archive_url.rstrip("/") != DEFAULT_ARCHIVE_URL:
            base = archive_url
        client = ArchiveClient(ArchiveSettings(base_url=base))
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
    """Messages of a `thread.json` answer, in archive order: `emails` (just the root in Foal) and the whole
    `thread.children` tree, used as a set (§6.4); each with its own list."""
    seen: dict[str, tuple[int, ThreadEntry]] = {}

    def add(item: object) -> None:
        entry = _entry(item)
        if entry is not None and entry.archive_id not in seen:
            seen[entry.archive_id] = (len(seen), entry)

    pending: list[object] = [data.get("thread")]
    while pending:
        node = pending.pop()
        add(node)
        children = node.get("children") if isinstance(node, dict) else None
        if isinstance(children, list):
            pending.extend(reversed(children))
    emails = data.get("emails")
    for item in emails if isinstance(emails, list) else []:
        add(item)
    ordered = sorted(seen.values(), key=lambda pair: (pair[1].epoch, pair[0]))
    return [entry for _, entry in ordered]


def thread_root(data: Mapping[str, Any]) -> ThreadEntry | None:
    """The root message of a `thread.json` answer (the `thread` object)."""
    return _entry(data.get("thread"))


def is_unknown_list(stats: Mapping[str, Any]) -> bool:
    """A `stats` answer for a list Foal never archived mail for: 200 with 0 hits and firstYear 1970 (§6.5)."""
    return _int(stats.get("firstYear")) == 1970 and not stats.get("emails") and _int(stats.get("hits")) == 0


def retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP date); None without one."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def check_url(base_url: str) -> str:
    """The base URL without a trailing slash; https, or http only to a loopback host."""
    parsed = urllib.parse.urlsplit(base_url.strip())
    host = parsed.hostname or ""
    if parsed.scheme == "https" and host:
        return base_url.strip().rstrip("/")
    if parsed.scheme == "http" and loopback.is_loopback(host):
        return base_url.strip().rstrip("/")
    raise ValueError(f"archive URL must be https (plain http only to loopback): {base_url!r}")


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


def list_address_of(list_raw: str) -> str:
    """`<dev.maven.apache.org>` → `dev@maven.apache.org` (Foal's `list_raw` as a list address)."""
    name, _, domain = list_raw.strip().strip("<>").lower().partition(".")
    return f"{name}@{domain}" if name and domain else ""


def _entry(item: object) -> ThreadEntry | None:
    if not isinstance(item, dict):
        return None
    ident = _archive_id(item)
    if not _THREAD_ID.match(ident):
        return None
    mid = message.normalise_message_id(str(item.get("message-id") or ""))
    return ThreadEntry(ident, mid, _int(item.get("epoch")), list_address_of(str(item.get("list_raw") or "")))


def _archive_id(entry: Mapping[str, Any]) -> str:
    return str(entry.get("mid") or entry.get("id") or "")


def _same(tracked: _FollowedThread, thread_id: str | None, message_id: str | None) -> bool:
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
    return _is_seen(seen, (mid, _archive_id(entry)))


def _entry_seen(seen: Seen, entry: ThreadEntry) -> bool:
    return _is_seen(seen, (entry.message_id, entry.archive_id))


def _describe(outcome: object) -> str:
    if outcome is None:
        # The thread (or a probe) listed it, so it exists: an anonymous session cannot see it (§3, §6.8).
        return NOT_VISIBLE
    if isinstance(outcome, BaseException):
        return str(outcome) or type(outcome).__name__
    return "empty"


def _int(value: object) -> int:
    try:
        return int(float(str(value)))
    except ValueError:
        return 0
