"""A stand-in for lists.apache.org (Apache Pony Mail Foal) on loopback, for the demo and the tests.

It serves an mbox or Maildir, and messages added while it runs, the way Foal does: each rule below
names the section of reference/ponymail-api.md it follows. URL shapes `/api/<name>`, `.json` and
`.lua`, GET query strings or a POSTed JSON/form body (§2); plain-text errors (§2); sessions only by
the `ponymail` cookie, anything else silently anonymous, never 403 (§3); addresses redacted for
anonymous callers, raw source not (§6.6); `epoch` from the sender's Date header (§6.1);
`header_*` as phrase matches (§6.3); `stats` with `since`, `emailsOnly`, `quick`, a `max_hits` cap
in no particular order, 200 `{}` without list and domain, 200 with 0 hits and firstYear 1970 for an
unknown list (§5.1, §6.5); `thread.json` with `emails` = `[root]`, children from any list,
`find_parent` by In-Reply-To only (§5.3, §6.4); `source` as decoded text (§6.7). Archive ids are 32
characters over Foal's alphabet (§4), derived from the Message-ID and the list, so a message keeps
its id across restarts. It counts requests per endpoint and can be told to fail (with a
`Retry-After`, as a proxy in front may send) or to stall, so that retries and timeouts can be
tested against real HTTP.

    sandbox = PonyMailSandbox(mbox=path)
    async with sandbox as base_url:
        sandbox.add(raw)      # archived now; `epoch` is its Date header, so a late mail can be back-dated

From another process: `python -m watcher.sandbox.lists_http --mbox PATH --port N` prints its URL;
`POST /_sandbox/messages` adds a message and `GET /_sandbox/stats` reads the request counts.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import collections
import dataclasses
import datetime
import email.parser
import email.policy
import email.utils
import hashlib
import json
import math
import pathlib
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import aiohttp.web as web

import watcher.core.message as message
import watcher.sandbox.site as site
import watcher.sources.archive as archive

ARCHIVE_ID_LENGTH: Final = 32
DEFAULT_WINDOW_DAYS: Final = 30
DEFAULT_MAX_HITS: Final = 5000
SHORT_BODY_LENGTH: Final = 200
# §2: the 404 texts, by what was missing.
EMAIL_NOT_FOUND: Final = "Email not found"
CONTENT_NOT_FOUND: Final = "Content not found"
ENDPOINT_NOT_FOUND: Final = "API Endpoint not found!"
ENDPOINTS: Final = ("stats", "email", "thread", "source", "mbox", "preferences")
SESSION_COOKIE: Final = "ponymail"
# §4: Foal's id alphabet (no a, e, i, u).
_ALPHABET: Final = "0123456789bcdfghjklmnopqrstvwxyz"
_SESSION_ID: Final = re.compile(r"^[abcdefg1234567890-]+$")
_HEADERS: Final = email.parser.BytesHeaderParser(policy=email.policy.compat32)
_ADDRESS_IN_TEXT: Final = re.compile(r"<(\S{1,2})\S*@([-a-zA-Z0-9_.]+)>")
_LOCAL_PART: Final = re.compile(r"(\S{1,2})\S*@([-a-zA-Z0-9_.]+)")
_NEEDS_QUOTES: Final = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES: Final = re.compile(r'[\\"]')
# §6.3 [inference]: the standard analyser keeps letters, digits and inner dots/apostrophes, lower-cased.
_TOKEN: Final = re.compile(r"\w+(?:[.'’]\w+)*")
_FIRST_MESSAGE_ID: Final = re.compile(r"<([^<>]+)>")
_RELATIVE_DAYS: Final = re.compile(r"^(lte|gte)=([0-9]+)([Mwyd])$")
_MONTH: Final = re.compile(r"^(\d{4})-(\d{1,2})$")
_SPAN: Final = re.compile(r"^dfr=(\d{4})-(\d{1,2})-(\d{1,2})\|dto=(\d{4})-(\d{1,2})-(\d{1,2})$")
_UNIT_DAYS: Final = {"d": 1, "w": 7, "M": 30, "y": 365}
# §6.4: caps of the thread walk.
_MAX_NEST: Final = 250
_MAX_CHILDREN: Final = 250
_MAX_PARENT_STEPS: Final = 50

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True, slots=True)
class Archived:
    """One archived email: its raw bytes and the fields the archive derives from them."""

    archive_id: str
    list_id: str
    message_id: str
    raw: bytes
    epoch: int
    seq: int
    parents: tuple[str, ...]
    subject: str
    from_raw: str
    to: str
    cc: str
    date: datetime.datetime | None
    in_reply_to: str
    references: str
    body: str
    private: bool

    @property
    def forum(self) -> str:
        """The list address, e.g. `dev@maven.apache.org`."""
        return list_address(self.list_id)

    @property
    def list_raw(self) -> str:
        """The List-Id as Foal writes it, with angle brackets."""
        return f"<{self.list_id}>"


def archive_id(message_id: str, list_id: str, raw: bytes = b"") -> str:
    """The archive (permalink) id: 32 characters of Foal's alphabet (§4), hashed from the Message-ID and the list.

    Foal's dkim_id hashes the content instead; the Message-ID keeps the sandbox's ids predictable for tests.
    """
    key = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    number = int.from_bytes(hashlib.sha256(f"{key}\0{list_id}".encode()).digest(), "big")
    chars: list[str] = []
    for _ in range(ARCHIVE_ID_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def list_id_of(address_or_id: str) -> str:
    """`dev@maven.apache.org`, `<dev.maven.apache.org>` or `dev.maven.apache.org` → `dev.maven.apache.org`."""
    value = address_or_id.strip().strip("<>").lower()
    return value.replace("@", ".", 1)


def list_address(list_id: str) -> str:
    """`dev.maven.apache.org` → `dev@maven.apache.org`."""
    name, _, domain = list_id.partition(".")
    return f"{name}@{domain}" if domain else name


def redact_addresses(value: str) -> str:
    """Foal's redaction for logged-out readers: `Jane <jane@example.org>` → `Jane <ja...@example.org>`."""
    if not value:
        return ""
    entries: list[str] = []
    for real_name, address in email.utils.getaddresses([value]):
        hidden = _LOCAL_PART.sub(r"\1...@\2", address)
        name = real_name
        if _NEEDS_QUOTES.search(real_name):
            name = '"' + _ESCAPES.sub(r"\\\g<0>", real_name) + '"'
        entries.append(f"{name} <{hidden}>" if name and hidden else hidden or name)
    return ",\n ".join(entries)


def redact_body(body: str) -> str:
    """Addresses in angle brackets inside a body are redacted the same way."""
    return _ADDRESS_IN_TEXT.sub(r"<\1...@\2>", body)


class Archive:
    """The archive's index: messages by archive id and by (list, Message-ID), and who replies to whom."""

    def __init__(self, private_lists: Iterable[str] = ()) -> None:
        self.private_lists = frozenset(list_id_of(name) for name in private_lists)
        self._by_id: dict[str, Archived] = {}
        self._by_mid: dict[tuple[str, str], str] = {}
        self._any_list: dict[str, list[str]] = collections.defaultdict(list)
        self._repliers: dict[str, list[str]] = collections.defaultdict(list)
        self._order: list[str] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, raw: bytes, epoch: int, list_address_or_id: str | None = None) -> Archived:
        """Archive one message (idempotent: the same message on the same list keeps its first copy).

        `epoch` is the sender's Date header when there is one (§6.1), else the given time.
        """
        parsed = message.parse(raw)
        list_id = list_id_of(list_address_or_id) if list_address_or_id else parsed.list_id
        if not list_id:
            raise ValueError("message has no List-Id header and no list was given")
        ident = archive_id(parsed.message_id, list_id, raw)
        existing = self._by_id.get(ident)
        if existing is not None:
            return existing
        headers = _HEADERS.parsebytes(raw)
        entry = Archived(
            archive_id=ident,
            list_id=list_id,
            message_id=parsed.message_id,
            raw=raw,
            epoch=int(parsed.date.timestamp()) if parsed.date else epoch,
            seq=len(self._order),
            parents=parsed.parents,
            subject=parsed.subject,
            from_raw=parsed.from_raw,
            to=_header(headers, "To"),
            cc=_header(headers, "Cc"),
            date=parsed.date,
            in_reply_to=_header(headers, "In-Reply-To"),
            references=_header(headers, "References"),
            body=parsed.text,
            private=list_id in self.private_lists,
        )
        self._by_id[ident] = entry
        if entry.message_id:
            self._by_mid.setdefault((list_id, entry.message_id), ident)
            self._any_list[entry.message_id].append(ident)
        # §6.4: a node's children are the messages whose In-Reply-To or References hold its Message-ID.
        for mid in dict.fromkeys(_FIRST_MESSAGE_ID.findall(f"{entry.in_reply_to} {entry.references}")):
            self._repliers[mid].append(ident)
        self._order.append(ident)
        return entry

    def by_id(self, ident: str) -> Archived | None:
        """The message with this archive id."""
        return self._by_id.get(ident)

    def by_message_id(self, message_id: str, list_id: str) -> Archived | None:
        """The message with this Message-ID on this list (both exact, §4)."""
        ident = self._by_mid.get((list_id, message.normalise_message_id(message_id)))
        return self._by_id[ident] if ident else None

    def on_any_list(self, message_id: str) -> list[Archived]:
        """Every copy of a Message-ID, on any list."""
        return [self._by_id[ident] for ident in self._any_list.get(message_id, [])]

    def repliers(self, entry: Archived) -> list[Archived]:
        """Messages whose In-Reply-To or References name this one, on any list, in archive order."""
        kids = [self._by_id[ident] for ident in self._repliers.get(entry.message_id, []) if ident != entry.archive_id]
        return sorted(kids, key=lambda kid: (kid.epoch, kid.seq))

    def all(self) -> list[Archived]:
        """Every message in archive order (epoch, then arrival)."""
        return sorted(self._by_id.values(), key=lambda entry: (entry.epoch, entry.seq))

    def in_index_order(self) -> list[Archived]:
        """Every message in the order it was indexed (Elasticsearch's `_doc` order, §6.5)."""
        return [self._by_id[ident] for ident in self._order]


@dataclasses.dataclass
class _ListFaults:
    failures: int = 0
    status: int = 500
    fail_endpoint: str | None = None
    retry_after: str | None = None
    delays: int = 0
    delay_s: float = 0.0
    delay_endpoint: str | None = None


class PonyMailSandbox(site.LoopbackServer):
    """The sandbox server: `async with PonyMailSandbox(...) as base_url: ...`."""

    def __init__(
        self,
        *,
        mbox: pathlib.Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        sessions: Iterable[str] = (),
        private_lists: Iterable[str] = (),
        max_hits: int = DEFAULT_MAX_HITS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.archive = Archive(private_lists)
        self.host = host
        self.port = port
        self.sessions = set(sessions)
        """Session ids (`ponymail` cookie values) of logged-in browsers: they see private lists (§3)."""
        self.max_hits = max_hits
        self._clock = clock
        self._counts: collections.Counter[str] = collections.Counter()
        self._faults = _ListFaults()
        self._site = site.LoopbackSite()
        if mbox is not None:
            self.load(pathlib.Path(mbox))

    def __repr__(self) -> str:
        return f"PonyMailSandbox(url={self.url!r}, messages={len(self.archive)})"

    @property
    def url(self) -> str:
        """The base URL (valid once started)."""
        return f"http://{self.host}:{self.port}"

    def load(self, path: pathlib.Path, list_address: str | None = None) -> int:
        """Preload an mbox or Maildir; each message's `epoch` is its Date header. Returns the count."""
        count = 0
        for raw in archive.iter_raw(path):
            self.archive.add(raw, int(self._clock()), list_address)
            count += 1
        return count

    def add(self, raw: bytes, list_address: str | None = None, *, epoch: int | None = None) -> str:
        """Archive a message now; returns its archive id.

        Its `epoch` is its Date header, as in Foal (§6.1): a mail added late with an old Date is a
        reply that sat in moderation; one with a Date ahead is a sender's fast clock. `epoch` (else
        the arrival time) stands in only for a message without a Date header.
        """
        when = int(self._clock()) if epoch is None else epoch
        return self.archive.add(raw, when, list_address).archive_id

    def request_counts(self) -> dict[str, int]:
        """Requests received per endpoint name (`stats`, `email`, `thread`, `source`, `mbox`)."""
        return dict(self._counts)

    def reset_counts(self) -> None:
        """Forget the request counts."""
        self._counts.clear()

    def fail_next(
        self, n: int, status: int = 500, endpoint: str | None = None, *, retry_after: str | None = None
    ) -> None:
        """Answer the next `n` API requests (to `endpoint`, or any) with `status` instead of serving them.

        Foal sends no `Retry-After`; `retry_after` plays a proxy in front that does (§2, §8).
        """
        faults = self._faults
        faults.failures, faults.status, faults.fail_endpoint, faults.retry_after = n, status, endpoint, retry_after

    def delay_next(self, n: int, seconds: float, endpoint: str | None = None) -> None:
        """Stall the next `n` API requests (to `endpoint`, or any) for `seconds` before answering."""
        self._faults.delays, self._faults.delay_s, self._faults.delay_endpoint = n, seconds, endpoint

    async def start(self) -> str:
        """Listen on the loopback port (0 picks a free one); returns the base URL."""
        app = web.Application(middlewares=[self._middleware])
        # §2: `/api/<name>`, `/api/<name>.json` and `/api/<name>.lua` are one handler.
        app.router.add_route("*", r"/api/{name:[a-z]+}", self._api)
        app.router.add_route("*", r"/api/{name:[a-z]+}.{ext:json|lua}", self._api)
        app.router.add_post("/_sandbox/messages", self._post_message)
        app.router.add_get("/_sandbox/stats", self._get_stats)
        self.port = await self._site.start(app, self.host, self.port)
        return self.url

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.match_info.get("name")
        if name is None:
            return await handler(request)
        self._counts[name] += 1
        faults = self._faults
        if faults.failures > 0 and faults.fail_endpoint in (None, name):
            faults.failures -= 1
            headers = {"Retry-After": faults.retry_after} if faults.retry_after is not None else None
            return web.Response(status=faults.status, text="sandbox: injected failure", headers=headers)
        if faults.delays > 0 and faults.delay_endpoint in (None, name):
            faults.delays -= 1
            await asyncio.sleep(faults.delay_s)
        return await handler(request)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        params = await _params(request)
        view = _View(self.archive, self._session(request), self._clock(), self.max_hits)
        if name == "stats":
            try:
                return _json(view.stats(params))
            except ValueError as exc:
                # §2: a non-integer `since` is an exception in Foal: 500 with the error's text.
                return web.Response(status=500, text=f"API error occurred: {exc}")
        if name == "email":
            return _json_or_404(view.email(params), EMAIL_NOT_FOUND)
        if name == "thread":
            return _json_or_404(view.thread(params), CONTENT_NOT_FOUND)
        if name == "source":
            text = view.source(params)
            if text is None:
                return web.Response(status=404, text=EMAIL_NOT_FOUND)
            return web.Response(text=text, content_type="text/plain")
        if name == "mbox":
            return web.Response(body=view.mbox(params), content_type="application/mbox")
        if name == "preferences":
            return _json(view.preferences())
        return web.Response(status=404, text=ENDPOINT_NOT_FOUND)

    def _session(self, request: web.Request) -> bool:
        """§3: a known `ponymail` cookie is a session; anything else (Authorization included) is anonymous."""
        value = request.cookies.get(SESSION_COOKIE, "")
        return bool(value) and _SESSION_ID.match(value) is not None and value in self.sessions

    async def _post_message(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            entry = self.archive.add(raw, int(self._clock()), request.query.get("list") or None)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        thread = _View(self.archive, True, self._clock(), self.max_hits).root(entry).archive_id
        return web.json_response({"id": entry.archive_id, "thread": thread, "epoch": entry.epoch}, status=201)

    async def _get_stats(self, request: web.Request) -> web.Response:
        counts = self.request_counts()
        return web.json_response({"requests": counts, "total": sum(counts.values()), "messages": len(self.archive)})


class _View:
    """What one caller may see, rendered as Foal's JSON."""

    def __init__(self, index: Archive, authorised: bool, now: float, max_hits: int) -> None:
        self.archive = index
        self.authorised = authorised
        self.now = now
        self.max_hits = max_hits

    def visible(self, entry: Archived | None) -> Archived | None:
        # §3: anonymous callers see public lists only; private mail is simply not there (404, absent).
        if entry is None or (entry.private and not self.authorised):
            return None
        return entry

    def stats(self, params: Mapping[str, str]) -> dict[str, Any]:
        name, domain = params.get("list", ""), params.get("domain", "")
        if not name or not domain:
            return {}  # §2: 200 `{}` without list or domain
        lists = _list_filter(name, domain)
        matching = [e for e in self.archive.in_index_order() if self.visible(e) and lists(e.list_id)]
        matching = [e for e in matching if _headers_match(e, params)]
        low, high = _date_range(params, self.now)
        window = [entry for entry in matching if low < entry.epoch < high]
        if "since" in params:
            # §5.1: only mail dated after `since` (its Date header, §6.1) is news, and only that is listed.
            since = _since(params["since"], self.now)
            window = [entry for entry in window if entry.epoch > since]
            if not window:
                return {"changed": False}
        # §6.5: the scroll stops at max_hits + 1 in index order, so a capped answer is an arbitrary subset.
        hits = sorted(window[: self.max_hits + 1], key=lambda entry: (entry.epoch, entry.seq))
        brief = "emailsOnly" in params or "quick" in params
        found: dict[str, Any] = {
            **_activity(matching),
            "hits": len(hits),
            "numparts": 0,
            "no_threads": 0,
            "emails": [{"epoch": e.epoch} if "quick" in params else self._short(e) for e in hits],
            "participants": {},
            "searchlist": f"<{name}.{domain}>",
            "domain": domain,
            "name": name,
            "list": f"{name}@{domain}",
            "searchParams": dict(params),
            "unixtime": int(self.now),
        }
        if brief:
            return found
        authors = collections.Counter(self._address(e.from_raw) for e in hits)
        structure = self._thread_struct(hits)
        found.update(
            {
                "numparts": len(authors),
                "no_threads": len(structure),
                "participants": [_participant(a, count) for a, count in authors.most_common(10)] or {},
                "thread_struct": structure,
            }
        )
        return found

    def email(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        entry = self._lookup(params)
        return None if entry is None else self._full(entry)

    def thread(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        entry = self._lookup(params)
        if entry is None:
            return None
        if params.get("find_parent"):
            # §5.3: any non-empty value, "false" included, climbs first.
            entry = self.root(entry)
        top = self._root_fields(entry)
        top["children"] = self._children(entry, {entry.archive_id}, 0)
        # §6.4 [sim]: `emails` holds only the root; the members are in the tree.
        return {"thread": top, "emails": [top]}

    def root(self, entry: Archived) -> Archived:
        """§6.4: climb through the first `<...>` of In-Reply-To only, 50 steps, any list, to the first gap."""
        current = entry
        for _ in range(_MAX_PARENT_STEPS):
            first = _FIRST_MESSAGE_ID.search(current.in_reply_to)
            if first is None:
                return current
            above = next((e for e in self.archive.on_any_list(first[1]) if self.visible(e)), None)
            if above is None or above.archive_id == current.archive_id:
                return current
            current = above
        return current

    def source(self, params: Mapping[str, str]) -> str | None:
        entry = self._lookup(params)
        # §6.7: ASCII is kept as is; other bytes come back decoded as UTF-8 with replacement characters.
        return None if entry is None else entry.raw.decode("utf-8", "replace")

    def preferences(self) -> dict[str, Any]:
        lists: dict[str, dict[str, int]] = collections.defaultdict(dict)
        for entry in self.archive.all():
            if self.visible(entry):
                name, _, domain = entry.list_id.partition(".")
                lists[domain][name] = lists[domain].get(name, 0) + 1
        login = {"credentials": {"uid": "sandbox", "email": "sandbox@apache.org"}} if self.authorised else {}
        return {"login": login, "versions": {"foal": "sandbox"}, "lists": dict(lists)}

    def mbox(self, params: Mapping[str, str]) -> bytes:
        lists = _list_filter(params.get("list", "*") or "*", params.get("domain", "*") or "*")
        low, high = _date_range(params, self.now)
        chunks: list[bytes] = []
        for entry in self.archive.all():
            if not (self.visible(entry) and lists(entry.list_id) and low < entry.epoch < high):
                continue
            stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(entry.epoch))
            body = re.sub(rb"^(>*From )", rb">\1", entry.raw, flags=re.MULTILINE)
            chunks.append(f"From {self._address(entry.from_raw) or 'unknown'} {stamp}\n".encode() + body + b"\n")
        return b"".join(chunks)

    def _lookup(self, params: Mapping[str, str]) -> Archived | None:
        # §5.2: an archive id; or a Message-ID with `<>` plus `listid` (both exact). Without listid, an archive id.
        ident, listid = params.get("id", ""), params.get("listid")
        if listid is None:
            return self.visible(self.archive.by_id(ident))
        if not (ident.startswith("<") and listid.startswith("<")):
            return None
        return self.visible(self.archive.by_message_id(ident, listid.strip("<>")))

    def _address(self, value: str) -> str:
        address = email.utils.parseaddr(value)[1]
        return address if self.authorised else redact_addresses(address)

    def _addresses(self, value: str) -> str:
        return value if self.authorised else redact_addresses(value)

    def _short(self, entry: Archived) -> dict[str, Any]:
        # §6.6 [sim]: the 200-character `body` in stats is not anonymised upstream.
        body = entry.body
        if len(body) > SHORT_BODY_LENGTH:
            body = body[:SHORT_BODY_LENGTH] + "..."
        return {
            "id": entry.archive_id,
            "mid": entry.archive_id,
            "message-id": f"<{entry.message_id}>" if entry.message_id else "",
            "in-reply-to": entry.in_reply_to,
            "from": self._addresses(entry.from_raw),
            "subject": entry.subject,
            "epoch": entry.epoch,
            "list": entry.list_raw,
            "list_raw": entry.list_raw,
            "private": entry.private,
            "attachments": [],
            "gravatar": _gravatar(entry.from_raw),
            "body": body,
        }

    def _root_fields(self, entry: Archived) -> dict[str, Any]:
        short = self._short(entry)
        short["body"] = entry.body if self.authorised else redact_body(entry.body)
        return short

    def _full(self, entry: Archived) -> dict[str, Any]:
        found = self._short(entry)
        found.update(
            {
                "from_raw": entry.from_raw,
                "to": self._addresses(entry.to),
                "cc": self._addresses(entry.cc),
                "date": _foal_date(entry.date, entry.epoch),
                "references": entry.references,
                "forum": entry.forum,
                "body": entry.body if self.authorised else redact_body(entry.body),
                "body_short": entry.body[: SHORT_BODY_LENGTH + 1],
                "permalinks": [entry.archive_id],
                "dbid": hashlib.sha3_256(entry.raw).hexdigest(),
                "size": len(entry.raw),
                "html_source_only": False,
            }
        )
        return found

    def _children(self, entry: Archived, seen: set[str], depth: int) -> list[dict[str, Any]]:
        """§6.4: every visible reply naming this message, on any list; each message once, marked before the walk."""
        if depth >= _MAX_NEST:
            return []
        kids = [k for k in self.archive.repliers(entry) if self.visible(k) and k.archive_id not in seen]
        kids = kids[:_MAX_CHILDREN]
        seen.update(kid.archive_id for kid in kids)
        return [
            {
                "tid": kid.archive_id,
                "mid": kid.archive_id,
                "id": kid.archive_id,
                "message-id": f"<{kid.message_id}>" if kid.message_id else "",
                "subject": kid.subject,
                "from": self._addresses(kid.from_raw),
                "epoch": kid.epoch,
                "irt": kid.in_reply_to,
                "list_raw": kid.list_raw,
                "children": self._children(kid, seen, depth + 1),
            }
            for kid in kids
        ]

    def _thread_struct(self, hits: list[Archived]) -> list[dict[str, Any]]:
        # §5.1: threads built from the hits only (display only): a reply whose parent is outside heads its own.
        by_mid = {entry.message_id: entry for entry in hits if entry.message_id}
        kids: dict[str, list[Archived]] = collections.defaultdict(list)
        roots: list[Archived] = []
        for entry in hits:
            first = _FIRST_MESSAGE_ID.search(entry.in_reply_to)
            parent = by_mid.get(first[1]) if first else None
            if parent is not None and parent.archive_id != entry.archive_id:
                kids[parent.archive_id].append(entry)
            else:
                roots.append(entry)

        def node(entry: Archived, depth: int) -> dict[str, Any]:
            below = [node(kid, depth + 1) for kid in kids.get(entry.archive_id, [])] if depth < _MAX_NEST else []
            nest = 1 + sum(int(child["nest"]) for child in below)
            return {
                "tid": entry.archive_id,
                "subject": entry.subject,
                "tsubject": f"{entry.subject}_{entry.list_raw}",
                "epoch": entry.epoch,
                "nest": nest,
                "children": below,
            }

        return [node(root, 0) for root in roots]


def _json(found: dict[str, Any]) -> web.Response:
    # §2: pretty-printed JSON.
    return web.json_response(found, dumps=lambda value: json.dumps(value, indent=2))


def _json_or_404(found: dict[str, Any] | None, text: str) -> web.Response:
    if found is None:
        return web.Response(status=404, text=text)
    return _json(found)


async def _params(request: web.Request) -> dict[str, str]:
    """Query string, then a POSTed JSON object (`.json`) or form (`.lua`) on top."""
    params = {key: value for key, value in request.query.items()}
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return params
        if isinstance(body, dict):
            params.update({str(key): str(value) for key, value in body.items()})
        return params
    form = await request.post()
    params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


def _header(headers: Any, name: str) -> str:
    value = headers.get(name)
    if value is None:
        return ""
    text = str(value).encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())


def _list_filter(name: str, domain: str) -> Callable[[str], bool]:
    """§5.1: `list` and `domain` become an exact `<list.domain>` term; `*` in either is a wildcard."""
    name, domain = name.lower(), domain.lower()

    def matches(list_id: str) -> bool:
        own_name, _, own_domain = list_id.partition(".")
        return name in ("*", own_name) and domain in ("*", own_domain)

    return matches


def tokens(text: str) -> list[str]:
    """§6.3 [inference]: the words Elasticsearch's standard analyser makes of a text, lower-cased."""
    return _TOKEN.findall(text.casefold())


def phrase_matches(query: str, text: str) -> bool:
    """§6.3: `match_phrase`: every token of the query, adjacent and in order ("[VOTE]" is the phrase "vote")."""
    wanted, have = tokens(query), tokens(text)
    if not wanted:
        return True
    size = len(wanted)
    return any(have[index : index + size] == wanted for index in range(len(have) - size + 1))


def _headers_match(entry: Archived, params: Mapping[str, str]) -> bool:
    """§5.1: each `header_<field>` is a phrase match on its field; `q` words or "phrases" on from, body, subject."""
    fields = {
        "from": entry.from_raw,
        "subject": entry.subject,
        "body": entry.body,
        "to": entry.to,
        "messageid": entry.message_id,
    }
    for field, text in fields.items():
        query = params.get(f"header_{field}")
        if query is not None and not phrase_matches(query, text):
            return False
    haystack = f"{entry.from_raw}\n{entry.subject}\n{entry.body}"
    for term in re.findall(r'-?"[^"]*"|\S+', params.get("q", "")):
        negative = term.startswith("-") and not term.startswith("--")
        phrase = (term[1:] if term.startswith("-") else term).strip('"')
        if phrase_matches(phrase, haystack) == negative:
            return False
    return True


def _since(value: str, now: float) -> int:
    """§5.1: `since` is an integer epoch; empty is now; anything else raises (Foal answers 500)."""
    if value == "":
        return int(now)
    return int(value)


def _activity(matching: list[Archived]) -> dict[str, Any]:
    """§5.1: the span of all matching mail, ignoring the date window; 1970/1 when nothing matches."""
    months = collections.Counter(f"{year:04d}-{month:02d}" for year, month in (_month(e.epoch) for e in matching))
    first = min(months) if months else "1970-01"
    last = max(months) if months else "1970-01"
    return {
        "firstYear": int(first[:4]),
        "firstMonth": int(first[5:]),
        "lastYear": int(last[:4]),
        "lastMonth": int(last[5:]),
        "active_months": dict(sorted(months.items())),
    }


def _date_range(params: Mapping[str, str], now: float) -> tuple[float, float]:
    """Foal's date parameters as epoch bounds; the default is the last 30 days."""
    day = 86400.0
    start, end = params.get("s"), params.get("e")
    if params.get("date") and not end:
        start = end = params["date"]
    if start and end:
        first, last = _MONTH.match(start), _MONTH.match(end)
        if first and last:
            return _month_start(int(first[1]), int(first[2])), _month_end(int(last[1]), int(last[2]))
    selector = params.get("d", "")
    relative = _RELATIVE_DAYS.match(selector)
    if relative:
        span = int(relative[2]) * _UNIT_DAYS[relative[3]] * day
        return (now - span, math.inf) if relative[1] == "lte" else (-math.inf, now - span)
    month = _MONTH.match(selector)
    if month:
        return _month_start(int(month[1]), int(month[2])), _month_end(int(month[1]), int(month[2]))
    span_match = _SPAN.match(selector)
    if span_match:
        values = [int(part) for part in span_match.groups()]
        low = calendar.timegm((values[0], values[1], values[2], 0, 0, 0))
        high = calendar.timegm((values[3], values[4], values[5], 23, 59, 59))
        return float(low), float(high)
    return now - DEFAULT_WINDOW_DAYS * day, now + day


def _month_start(year: int, month: int) -> float:
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


def _month_end(year: int, month: int) -> float:
    last = calendar.monthrange(year, month)[1]
    return float(calendar.timegm((year, month, last, 23, 59, 59)))


def _month(epoch: int) -> tuple[int, int]:
    moment = time.gmtime(epoch)
    return moment.tm_year, moment.tm_mon


def _foal_date(date: datetime.datetime | None, epoch: int) -> str:
    moment = date or datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y/%m/%d %H:%M:%S")


def _gravatar(from_raw: str) -> str:
    address = email.utils.parseaddr(from_raw)[1].strip().lower()
    return hashlib.md5(address.encode(), usedforsecurity=False).hexdigest()


def _participant(author: str, count: int) -> dict[str, Any]:
    return {"email": author, "name": "", "count": count, "gravatar": ""}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m watcher.sandbox.lists_http", description=__doc__.splitlines()[0])
    parser.add_argument("--mbox", type=pathlib.Path, action="append", default=[], help="mbox file or Maildir to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--session", action="append", default=[], help="a logged-in `ponymail` cookie value")
    parser.add_argument("--private", action="append", default=[], help="a private list address (repeatable)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sandbox = PonyMailSandbox(host=args.host, port=args.port, sessions=args.session, private_lists=args.private)
    for path in args.mbox:
        sandbox.load(path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with sandbox as url:
        print(url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until SIGINT or SIGTERM; prints its base URL on the first line."""
    args = _parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print("the sandbox listens on loopback only", file=sys.stderr)
        return 2
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
