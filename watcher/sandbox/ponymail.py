"""A stand-in for lists.apache.org (Apache Pony Mail Foal) on loopback, for the demo and the tests.

It serves an mbox or Maildir, and messages added while it runs, through the archive endpoints the
client uses, with Foal's URL shapes (`/api/<name>.json` and `/api/<name>.lua`, GET query strings or
a POSTed JSON/form body), fields and errors (reference/atr.md §4): redacted addresses in JSON for
callers without a token, raw unredacted source, plain-text 404 "Email not found!", `stats` with
`since=`. Archive ids are 32 lower-case letters and digits derived from the Message-ID and the
list, so a message keeps its id across restarts. It counts requests per endpoint and can be told
to fail or to stall, so that retries and timeouts can be tested against real HTTP.

    sandbox = PonyMailSandbox(mbox=path)
    async with sandbox as base_url:
        sandbox.add(raw)                      # archived now; `epoch` is the time it arrived

From another process: `python -m watcher.sandbox.ponymail --mbox PATH --port N` prints its URL;
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
import hmac
import math
import pathlib
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import aiohttp.web as web

import watcher.message as message
import watcher.sandbox.site as site
import watcher.sources.archive as archive

ARCHIVE_ID_LENGTH: Final = 32
DEFAULT_WINDOW_DAYS: Final = 30
SHORT_BODY_LENGTH: Final = 200
NOT_FOUND_TEXT: Final = "Email not found!"
ENDPOINTS: Final = ("stats", "email", "thread", "source", "mbox")
_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_HEADERS: Final = email.parser.BytesHeaderParser(policy=email.policy.compat32)
_ADDRESS_IN_TEXT: Final = re.compile(r"<(\S{1,2})\S*@([-a-zA-Z0-9_.]+)>")
_LOCAL_PART: Final = re.compile(r"(\S{1,2})\S*@([-a-zA-Z0-9_.]+)")
_NEEDS_QUOTES: Final = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES: Final = re.compile(r'[\\"]')
_TOKEN: Final = re.compile(r"[0-9a-z]+")
_RELATIVE_DAYS: Final = re.compile(r"^(lte|gte)=([0-9]+)([Mwyd])$")
_MONTH: Final = re.compile(r"^(\d{4})-(\d{1,2})$")
_SPAN: Final = re.compile(r"^dfr=(\d{4})-(\d{1,2})-(\d{1,2})\|dto=(\d{4})-(\d{1,2})-(\d{1,2})$")
_UNIT_DAYS: Final = {"d": 1, "w": 7, "M": 30, "y": 365}
_MAX_NEST: Final = 250
_TRUE: Final = frozenset({"1", "true", "yes", "on"})

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
    """The archive (permalink) id: 32 base-36 characters hashed from the Message-ID and the list."""
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
    """The archive's index: messages by archive id and by (list, Message-ID), and their threads."""

    def __init__(self, private_lists: Iterable[str] = ()) -> None:
        self.private_lists = frozenset(list_id_of(name) for name in private_lists)
        self._by_id: dict[str, Archived] = {}
        self._by_mid: dict[tuple[str, str], str] = {}
        self._order: list[str] = []
        self._parent: dict[str, str | None] | None = None
        self._children: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, raw: bytes, epoch: int, list_address_or_id: str | None = None) -> Archived:
        """Archive one message (idempotent: the same message on the same list keeps its first copy)."""
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
            epoch=epoch,
            seq=len(self._order),
            parents=parsed.parents,
            subject=parsed.subject,
            from_raw=parsed.from_raw,
            to=_header(headers, "To"),
            cc=_header(headers, "Cc"),
            date=parsed.date,
            in_reply_to=parsed.in_reply_to,
            references=" ".join(f"<{mid}>" for mid in parsed.references),
            body=parsed.text,
            private=list_id in self.private_lists,
        )
        self._by_id[ident] = entry
        if entry.message_id:
            self._by_mid.setdefault((list_id, entry.message_id), ident)
        self._order.append(ident)
        self._parent = None
        return entry

    def get(self, archive_id_or_mid: str, list_id: str | None = None) -> Archived | None:
        """Look up by archive id, else by Message-ID (optionally on one list)."""
        found = self._by_id.get(archive_id_or_mid)
        if found is not None and (list_id is None or found.list_id == list_id):
            return found
        mid = message.normalise_message_id(archive_id_or_mid)
        if list_id is not None:
            ident = self._by_mid.get((list_id, mid))
            return self._by_id[ident] if ident else None
        for ident in self._order:
            entry = self._by_id[ident]
            if entry.message_id == mid:
                return entry
        return None

    def all(self) -> list[Archived]:
        """Every message in archive order (epoch, then arrival)."""
        return sorted(self._by_id.values(), key=lambda entry: (entry.epoch, entry.seq))

    def parent(self, entry: Archived) -> Archived | None:
        """The nearest ancestor archived on the same list (In-Reply-To, then References)."""
        parent_id = self._tree()[entry.archive_id]
        return self._by_id[parent_id] if parent_id else None

    def children(self, entry: Archived) -> list[Archived]:
        """Direct replies, in archive order."""
        self._tree()
        kids = [self._by_id[ident] for ident in self._children.get(entry.archive_id, [])]
        return sorted(kids, key=lambda kid: (kid.epoch, kid.seq))

    def root(self, entry: Archived) -> Archived:
        """The first message of the thread (the thread id is its archive id)."""
        current = entry
        for _ in range(_MAX_NEST):
            above = self.parent(current)
            if above is None:
                return current
            current = above
        return current

    def subtree(self, entry: Archived) -> list[Archived]:
        """The message and every reply below it, in archive order."""
        found: dict[str, Archived] = {}
        pending = [entry]
        while pending:
            current = pending.pop()
            if current.archive_id in found:
                continue
            found[current.archive_id] = current
            pending.extend(self.children(current))
        return sorted(found.values(), key=lambda item: (item.epoch, item.seq))

    def _tree(self) -> dict[str, str | None]:
        # Threads are worked out when asked, as Foal does, so a reply archived before its parent
        # still joins the thread once the parent arrives.
        if self._parent is not None:
            return self._parent
        parents: dict[str, str | None] = {}
        children: dict[str, list[str]] = collections.defaultdict(list)
        for ident in self._order:
            entry = self._by_id[ident]
            parent = self._nearest_ancestor(entry)
            parents[ident] = parent
            if parent:
                children[parent].append(ident)
        self._parent, self._children = parents, dict(children)
        return parents

    def _nearest_ancestor(self, entry: Archived) -> str | None:
        for mid in entry.parents:
            ident = self._by_mid.get((entry.list_id, mid))
            if ident and ident != entry.archive_id:
                return ident
        return None


@dataclasses.dataclass
class _Faults:
    failures: int = 0
    status: int = 500
    fail_endpoint: str | None = None
    delays: int = 0
    delay_s: float = 0.0
    delay_endpoint: str | None = None


class PonyMailSandbox:
    """The sandbox server: `async with PonyMailSandbox(...) as base_url: ...`."""

    def __init__(
        self,
        *,
        mbox: pathlib.Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        private_lists: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.archive = Archive(private_lists)
        self.host = host
        self.port = port
        self._token = token
        self._clock = clock
        self._counts: collections.Counter[str] = collections.Counter()
        self._faults = _Faults()
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
            date = message.peek(raw).date
            epoch = int(date.timestamp()) if date else int(self._clock())
            self.archive.add(raw, epoch, list_address)
            count += 1
        return count

    def add(self, raw: bytes, list_address: str | None = None, *, epoch: int | None = None) -> str:
        """Archive a message (epoch = arrival time unless given); returns its archive id."""
        when = int(self._clock()) if epoch is None else epoch
        return self.archive.add(raw, when, list_address).archive_id

    def request_counts(self) -> dict[str, int]:
        """Requests received per endpoint name (`stats`, `email`, `thread`, `source`, `mbox`)."""
        return dict(self._counts)

    def reset_counts(self) -> None:
        """Forget the request counts."""
        self._counts.clear()

    def fail_next(self, n: int, status: int = 500, endpoint: str | None = None) -> None:
        """Answer the next `n` API requests (to `endpoint`, or any) with `status` instead of serving them."""
        self._faults.failures, self._faults.status, self._faults.fail_endpoint = n, status, endpoint

    def delay_next(self, n: int, seconds: float, endpoint: str | None = None) -> None:
        """Stall the next `n` API requests (to `endpoint`, or any) for `seconds` before answering."""
        self._faults.delays, self._faults.delay_s, self._faults.delay_endpoint = n, seconds, endpoint

    async def start(self) -> str:
        """Listen on the loopback port (0 picks a free one); returns the base URL."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", r"/api/{name:[a-z]+}.{ext:json|lua}", self._api)
        app.router.add_post("/_sandbox/messages", self._post_message)
        app.router.add_get("/_sandbox/stats", self._get_stats)
        self.port = await self._site.start(app, self.host, self.port)
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        await self._site.stop()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.match_info.get("name")
        if name is None:
            return await handler(request)
        self._counts[name] += 1
        faults = self._faults
        if faults.failures > 0 and faults.fail_endpoint in (None, name):
            faults.failures -= 1
            return web.Response(status=faults.status, text="sandbox: injected failure")
        if faults.delays > 0 and faults.delay_endpoint in (None, name):
            faults.delays -= 1
            await asyncio.sleep(faults.delay_s)
        return await handler(request)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        authorised = self._authorised(request)
        if authorised is None:
            return web.Response(status=403, text="Access denied: invalid token")
        params = await _params(request)
        view = _View(self.archive, authorised, self._clock())
        if name == "stats":
            return web.json_response(view.stats(params))
        if name == "email":
            return _json_or_404(view.email(params))
        if name == "thread":
            return _json_or_404(view.thread(params))
        if name == "source":
            raw = view.source(params)
            if raw is None:
                return web.Response(status=404, text=NOT_FOUND_TEXT)
            return web.Response(body=raw, content_type="text/plain")
        if name == "mbox":
            return web.Response(body=view.mbox(params), content_type="application/mbox")
        return web.Response(status=404, text=f"API endpoint {name} not found")

    def _authorised(self, request: web.Request) -> bool | None:
        """True with a good token, False without one, None with a bad one."""
        header = request.headers.get("Authorization", "")
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        good = self._token is not None and scheme.lower() == "bearer"
        if good and hmac.compare_digest(value.strip().encode(), (self._token or "").encode()):
            return True
        return None

    async def _post_message(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            entry = self.archive.add(raw, int(self._clock()), request.query.get("list") or None)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        thread = self.archive.root(entry).archive_id
        return web.json_response({"id": entry.archive_id, "thread": thread, "epoch": entry.epoch}, status=201)

    async def _get_stats(self, request: web.Request) -> web.Response:
        counts = self.request_counts()
        return web.json_response({"requests": counts, "total": sum(counts.values()), "messages": len(self.archive)})


class _View:
    """What one caller may see, rendered as Foal's JSON."""

    def __init__(self, index: Archive, authorised: bool, now: float) -> None:
        self.archive = index
        self.authorised = authorised
        self.now = now

    def visible(self, entry: Archived | None) -> Archived | None:
        if entry is None or (entry.private and not self.authorised):
            return None
        return entry

    def stats(self, params: Mapping[str, str]) -> dict[str, Any]:
        lists = _list_filter(params)
        matching = [e for e in self.archive.all() if self.visible(e) and lists(e.list_id) and _headers_match(e, params)]
        since = _int_or_none(params.get("since"))
        if since is not None and not any(entry.epoch > since for entry in matching):
            return {"changed": False}
        low, high = _date_range(params, self.now)
        hits = [entry for entry in matching if low <= entry.epoch <= high]
        authors = collections.Counter(self._address(e.from_raw) for e in hits)
        months = [_month(entry.epoch) for entry in matching] or [_month(int(self.now))]
        name, domain = params.get("list", "*"), params.get("domain", "*")
        structure = self._thread_struct(hits)
        return {
            "firstYear": min(months)[0],
            "lastYear": max(months)[0],
            "firstMonth": min(months)[1],
            "lastMonth": max(months)[1],
            "hits": len(hits),
            "numparts": len(authors),
            "no_threads": len(structure),
            "emails": [self._short(entry) for entry in hits],
            "cloud": None,
            "participants": [_participant(author, count) for author, count in authors.most_common(10)],
            "thread_struct": structure,
            "search_list": f"<{name}.{domain}>",
            "domain": domain,
            "list": f"{name}@{domain}",
            "searchParams": dict(params),
        }

    def email(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        entry = self._lookup(params)
        return None if entry is None else self._full(entry)

    def thread(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        entry = self._lookup(params)
        if entry is None:
            return None
        if params.get("find_parent", "").lower() in _TRUE:
            entry = self.archive.root(entry)
        emails = [e for e in self.archive.subtree(entry) if self.visible(e)]
        top = self._short(entry)
        top["children"] = self._nodes(entry, 0)
        return {"thread": top, "emails": [self._short(e) for e in emails]}

    def source(self, params: Mapping[str, str]) -> bytes | None:
        entry = self.visible(self.archive.get(params.get("id", "")))
        return None if entry is None else entry.raw

    def mbox(self, params: Mapping[str, str]) -> bytes:
        lists = _list_filter(params)
        low, high = _date_range(params, self.now)
        chunks: list[bytes] = []
        for entry in self.archive.all():
            if not (self.visible(entry) and lists(entry.list_id) and low <= entry.epoch <= high):
                continue
            stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(entry.epoch))
            body = re.sub(rb"^(>*From )", rb">\1", entry.raw, flags=re.MULTILINE)
            chunks.append(f"From {self._address(entry.from_raw) or 'unknown'} {stamp}\n".encode() + body + b"\n")
        return b"".join(chunks)

    def _lookup(self, params: Mapping[str, str]) -> Archived | None:
        listid = params.get("listid")
        return self.visible(self.archive.get(params.get("id", ""), list_id_of(listid) if listid else None))

    def _address(self, value: str) -> str:
        address = email.utils.parseaddr(value)[1]
        return address if self.authorised else redact_addresses(address)

    def _addresses(self, value: str) -> str:
        return value if self.authorised else redact_addresses(value)

    def _short(self, entry: Archived) -> dict[str, Any]:
        body = entry.body if self.authorised else redact_body(entry.body)
        if len(body) > SHORT_BODY_LENGTH:
            body = body[:SHORT_BODY_LENGTH] + "..."
        return {
            "id": entry.archive_id,
            "mid": entry.archive_id,
            "message-id": f"<{entry.message_id}>" if entry.message_id else "",
            "from": self._addresses(entry.from_raw),
            "subject": entry.subject,
            "epoch": entry.epoch,
            "list": entry.list_raw,
            "list_raw": entry.list_raw,
            "in-reply-to": f"<{entry.in_reply_to}>" if entry.in_reply_to else "",
            "private": entry.private,
            "attachments": [],
            "gravatar": _gravatar(entry.from_raw),
            "body": body,
        }

    def _full(self, entry: Archived) -> dict[str, Any]:
        found = self._short(entry)
        found.update(
            {
                "from_raw": self._addresses(entry.from_raw),
                "to": self._addresses(entry.to),
                "cc": self._addresses(entry.cc),
                "date": _foal_date(entry.date, entry.epoch),
                "references": entry.references,
                "forum": entry.forum,
                "body": entry.body if self.authorised else redact_body(entry.body),
                "permalinks": [entry.archive_id],
                "dbid": hashlib.sha256(entry.raw).hexdigest(),
            }
        )
        return found

    def _nodes(self, entry: Archived, depth: int) -> list[dict[str, Any]]:
        if depth >= _MAX_NEST:
            return []
        nodes: list[dict[str, Any]] = []
        for kid in self.archive.children(entry):
            if not self.visible(kid):
                continue
            nodes.append(
                {
                    "tid": kid.archive_id,
                    "mid": kid.archive_id,
                    "id": kid.archive_id,
                    "message-id": f"<{kid.message_id}>" if kid.message_id else "",
                    "subject": kid.subject,
                    "from": self._addresses(kid.from_raw),
                    "epoch": kid.epoch,
                    "irt": f"<{kid.in_reply_to}>" if kid.in_reply_to else "",
                    "list_raw": kid.list_raw,
                    "children": self._nodes(kid, depth + 1),
                }
            )
        return nodes

    def _thread_struct(self, hits: list[Archived]) -> list[dict[str, Any]]:
        # As in Foal, threads are built from the hits only: a reply whose parent is outside the
        # date range heads its own entry.
        inside = {entry.archive_id for entry in hits}
        kids: dict[str, list[Archived]] = collections.defaultdict(list)
        roots: list[Archived] = []
        for entry in hits:
            parent = self.archive.parent(entry)
            if parent is not None and parent.archive_id in inside:
                kids[parent.archive_id].append(entry)
            else:
                roots.append(entry)

        def node(entry: Archived, depth: int) -> dict[str, Any]:
            below = [node(kid, depth + 1) for kid in kids.get(entry.archive_id, [])] if depth < _MAX_NEST else []
            nest = 1 + sum(int(child["nest"]) for child in below)
            return {
                "tid": entry.archive_id,
                "subject": entry.subject,
                "epoch": entry.epoch,
                "nest": nest,
                "children": below,
            }

        return [node(root, 0) for root in roots]


def _json_or_404(found: dict[str, Any] | None) -> web.Response:
    if found is None:
        return web.Response(status=404, text=NOT_FOUND_TEXT)
    return web.json_response(found)


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


def _list_filter(params: Mapping[str, str]) -> Callable[[str], bool]:
    name = params.get("list", "*").lower() or "*"
    domain = params.get("domain", "*").lower() or "*"

    def matches(list_id: str) -> bool:
        own_name, _, own_domain = list_id.partition(".")
        return name in ("*", own_name) and domain in ("*", own_domain)

    return matches


def _headers_match(entry: Archived, params: Mapping[str, str]) -> bool:
    """`header_<field>` is an analysed full-text match: any one word of the query is enough (as in ES)."""
    fields = {"from": entry.from_raw, "subject": entry.subject, "body": entry.body, "to": entry.to}
    for field, text in fields.items():
        query = params.get(f"header_{field}")
        if query is None:
            continue
        wanted = set(_TOKEN.findall(query.replace("/", " ").lower()))
        if wanted and not wanted & set(_TOKEN.findall(text.lower())):
            return False
    query = params.get("q")
    if query:
        haystack = f"{entry.from_raw}\n{entry.subject}\n{entry.body}".lower()
        for word in query.replace(":", "").lower().split():
            negative = word.startswith("-") and not word.startswith("--")
            term = word[1:] if word.startswith("-") else word
            if (term in haystack) == negative:
                return False
    return True


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


def _int_or_none(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _foal_date(date: datetime.datetime | None, epoch: int) -> str:
    moment = date or datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y/%m/%d %H:%M:%S")


def _gravatar(from_raw: str) -> str:
    address = email.utils.parseaddr(from_raw)[1].strip().lower()
    return hashlib.md5(address.encode(), usedforsecurity=False).hexdigest()


def _participant(author: str, count: int) -> dict[str, Any]:
    return {"email": author, "name": "", "count": count, "gravatar": ""}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m watcher.sandbox.ponymail", description=__doc__.splitlines()[0])
    parser.add_argument("--mbox", type=pathlib.Path, action="append", default=[], help="mbox file or Maildir to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--token-file", type=pathlib.Path, help="file holding the bearer token for private lists")
    parser.add_argument("--private", action="append", default=[], help="a private list address (repeatable)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    token = args.token_file.read_text().strip() if args.token_file else None
    sandbox = PonyMailSandbox(host=args.host, port=args.port, token=token, private_lists=args.private)
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
