"""A stand-in for ATR's HTTP API on loopback, for the demo and the tests (reference/atr.md §10).

It serves the endpoints vote-watcher uses, with ATR's JSON shapes and errors, from a scenario
(`atr_scenario`) and the rules in `atr_state`: PAT → JWT with expiry, ATR's rate limits (every
route 100/min and 1000/h, jwt/create and vote/resolve 10/h, vote/cast 60/h; a 429 says
`retry_after` in its body, §10.3), trusted ballots with the IPMC carry, `vote/tabulate`,
`vote/resolve` and `vote/cast`. Every answer is checked against `atr-api-schema.json` before it
leaves (an answer that disagrees is a 500 and is kept in `schema_violations`, so a test that
relies on a fiction fails). Time comes from an injected clock, so a test or
the demo decides when votes end. Every request is logged (`requests`) for tests and benchmarks.
Mails ATR would send (ballot receipts, [RESULT], a round-2 [VOTE]) go to `on_receipt(raw, list)`,
which the sandbox lists.apache.org accepts; `tally` may supply the email tabulation (`details`).

    async with AtrSandbox(scenario, clock=clock, on_receipt=ponymail.add) as base_url:
        ...

From another process: `python -m watcher.sandbox.atr_http --scenario PATH [--port N] [--speed X]
[--archive-url URL]` prints its URL; `GET /_sandbox/requests` gives the request log and
`POST /_sandbox/restart/<release key>` restarts a vote.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import json
import pathlib
import signal
import ssl
import sys
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp
import aiohttp.web as web
import structlog

import watcher.atr.contract as contract
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.atr_state as atr_state
import watcher.sandbox.clocks as clocks
import watcher.sandbox.site as site

BEARER_PATHS: Final = frozenset({"/api/vote/tabulate", "/api/vote/cast", "/api/vote/resolve"})
JWT_PATH: Final = "/api/jwt/create"
UID: Final = web.RequestKey("uid", str)
CLIENT_CLOSED: Final = 499

log = structlog.get_logger("watcher.sandbox.atr_http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OnReceipt = Callable[[bytes, str], object]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the sandbox saw it (never its body or headers, which hold secrets)."""

    at: float
    method: str
    path: str
    query: str
    status: int
    uid: str | None
    user_agent: str


@dataclasses.dataclass(frozen=True, slots=True)
class TallyRequest:
    """What a tally hook needs to tabulate the vote's thread as ATR would."""

    project_key: str
    version: str
    vote_seq: int | None
    vote_round: int | None
    committee_key: str | None
    list_address: str
    vote_message_id: str
    vote_subject: str
    excluded_message_ids: frozenset[str]


Tally = Callable[[TallyRequest], Awaitable[Mapping[str, Any] | None]]


@dataclasses.dataclass(slots=True)
class _AtrFaults:
    failures: int = 0
    status: int = 500
    delays: int = 0
    delay_s: float = 0.0
    prefix: str = "/api/"


class AtrSandbox(site.LoopbackServer):
    """The sandbox ATR server: `async with AtrSandbox(scenario) as base_url: ...`."""

    def __init__(
        self,
        scenario: atr_scenario.Scenario,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        on_receipt: OnReceipt | None = None,
        tally: Tally | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.state = atr_state.SandboxState(scenario)
        self.host = host
        self.port = port
        self.clock = clock
        self.on_receipt = on_receipt
        self.tally = tally
        self.ssl_context = ssl_context
        self.requests: list[RequestRecord] = []
        self.schema_violations: list[str] = []
        """Answers that disagreed with atr-api-schema.json (each was sent as a 500 instead)."""
        self.openapi_document: dict[str, Any] = openapi_document()
        """What `/api/openapi.json` serves (a test may change it to show drift)."""
        self.request_violations: list[str] = []
        """Request bodies that disagreed with the schema's request definitions (each answered 400)."""
        self.posted: list[atr_state.Outgoing] = []
        self._faults = _AtrFaults()
        self._site = site.LoopbackSite()

    def __repr__(self) -> str:
        return f"AtrSandbox(url={self.url!r}, releases={len(self.state.releases)})"

    @property
    def url(self) -> str:
        """The base URL (valid once started); the API is under /api."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    # Test and demo controls.

    def count(self, prefix: str = "/api/", since: float | None = None) -> int:
        """Requests whose path starts with `prefix`, optionally only those at or after `since`."""
        return sum(1 for r in self.requests if r.path.startswith(prefix) and (since is None or r.at >= since))

    def fail_next(self, n: int, status: int = 500, prefix: str = "/api/") -> None:
        """Answer the next `n` requests under `prefix` with `status` (a JSON error)."""
        self._faults.failures, self._faults.status, self._faults.prefix = n, status, prefix

    def delay_next(self, n: int, seconds: float, prefix: str = "/api/") -> None:
        """Stall the next `n` requests under `prefix` for `seconds` of real time."""
        self._faults.delays, self._faults.delay_s, self._faults.prefix = n, seconds, prefix

    def invalidate_tokens(self) -> None:
        """Every JWT issued so far becomes invalid (the next bearer call gets 401)."""
        self.state.invalidate_tokens()

    async def restart_vote(self, release_key: str, vote_mode: str | None = None) -> None:
        """Start the release's vote again with a new vote_seq, and post its [VOTE]."""
        await self._post([self.state.restart_vote(release_key, self.clock(), vote_mode)])

    async def announce_votes(self) -> None:
        """Post the [VOTE] mail of every running vote (for an archive that starts empty)."""
        running = [r for r in self.state.releases.values() if r.phase == atr_state.CANDIDATE]
        await self._post([self.state.announcement(r) for r in running])

    # Lifecycle.

    async def start(self) -> str:
        """Listen on the loopback port (0 picks a free one); returns the base URL."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(JWT_PATH, self._jwt_create)
        app.router.add_get("/api/releases/list", self._releases_list)
        app.router.add_get("/api/release/get/{project}/{version}", self._release_get)
        app.router.add_get("/api/project/get/{project}", self._project_get)
        app.router.add_get("/api/policy/get/{project}", self._policy_get)
        app.router.add_get("/api/committee/get/{key}", self._committee_get)
        app.router.add_post("/api/vote/tabulate", self._vote_tabulate)
        app.router.add_post("/api/vote/cast", self._vote_cast)
        app.router.add_post("/api/vote/resolve", self._vote_resolve)
        app.router.add_get("/api/openapi.json", self._openapi)
        app.router.add_get("/_sandbox/requests", self._sandbox_requests)
        app.router.add_post("/_sandbox/restart/{key}", self._sandbox_restart)
        self.port = await self._site.start(app, self.host, self.port, self.ssl_context)
        return self.url

    # Middleware: log, faults, the API-wide limit, errors as ATR's JSON.

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = self.clock()
        status = CLIENT_CLOSED
        try:
            response = await self._answer(request, handler, now)
            status = response.status
            return response
        finally:
            # Logged even when the client went away mid-request: it still reached "ATR".
            agent = request.headers.get("User-Agent", "")
            record = RequestRecord(
                now, request.method, request.path, request.query_string, status, request.get(UID), agent
            )
            self.requests.append(record)

    async def _answer(self, request: web.Request, handler: Handler, now: float) -> web.StreamResponse:
        api = request.path.startswith("/api/")
        response = await self._respond(request, handler, now)
        if api and isinstance(response, web.Response):
            return self._checked(request.path, response)
        return response

    async def _respond(self, request: web.Request, handler: Handler, now: float) -> web.StreamResponse:
        api = request.path.startswith("/api/")
        faults = self._faults
        if api and request.path.startswith(faults.prefix) and faults.failures > 0:
            faults.failures -= 1
            return _error(faults.status, "Sandbox: injected failure")
        if api and request.path.startswith(faults.prefix) and faults.delays > 0:
            faults.delays -= 1
            await asyncio.sleep(faults.delay_s)
        headers: atr_state.RateHeaders = {}
        try:
            route = _route(request)
            if api and route is not None:
                headers = self.state.limit(route, now, self._own_limit(route))
            if request.path in BEARER_PATHS:
                request[UID] = self.state.verify_jwt(request.headers.get("Authorization", ""), now)
            response = await handler(request)
        except atr_state.RefusalError as refusal:
            response = _error(refusal.status, refusal.error, refusal.retry_after, refusal.details)
            headers = refusal.headers or headers
            if refusal.details:
                self.request_violations.append(f"{request.path}: " + "; ".join(refusal.details))
        except web.HTTPNotFound:
            response = _error(404, "404 Not Found")
        except web.HTTPMethodNotAllowed:
            response = _error(405, "405 Method Not Allowed")
        response.headers.update(headers)
        return response

    def _own_limit(self, route: str) -> int | None:
        # Routes with a limit of their own besides the defaults (§10.3).
        settings = self.state.settings
        own = {
            JWT_PATH: settings.jwt_per_hour,
            "/api/vote/resolve": settings.resolve_per_hour,
            "/api/vote/cast": settings.cast_per_hour,
        }
        return own.get(route)

    def _checked(self, path: str, response: web.Response) -> web.Response:
        """The answer, if it agrees with atr-api-schema.json; else a loud 500 (§10.1: ATR validates its answers)."""
        name = contract.response_definition(path) if 200 <= response.status < 300 else contract.ERROR_BODY
        if name is None or not isinstance(response.body, bytes):
            return response
        found = contract.violations(name, json.loads(response.body))
        if not found:
            return response
        text = f"sandbox answer to {path} breaks {name}: " + "; ".join(found[:5])
        self.schema_violations.append(text)
        log.error("sandbox_atr.schema_violation", path=path, definition=name, violations=found[:5])
        return _error(500, text)

    # Handlers.

    async def _jwt_create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        now = self.clock()
        jwt = self.state.issue_jwt(body["asfuid"], body["pat"], now)
        request[UID] = body["asfuid"]
        return web.json_response({"endpoint": "/jwt/create", "asfuid": body["asfuid"], "jwt": jwt})

    async def _releases_list(self, request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            raise atr_state.RefusalError(400, "Input validation failed") from None
        return web.json_response(self.state.releases_page(request.query.get("phase"), offset, limit))

    async def _release_get(self, request: web.Request) -> web.Response:
        release = self.state.release(request.match_info["project"], request.match_info["version"])
        return web.json_response({"endpoint": "/release/get", "release": self.state.release_json(release)})

    async def _project_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.project_json(request.match_info["project"]))

    async def _policy_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.policy_json(request.match_info["project"]))

    async def _committee_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.committee_json(request.match_info["key"]))

    async def _vote_tabulate(self, request: web.Request) -> web.Response:
        body = await _body(request)
        result = self.state.tabulate(request[UID], body["project"], body["version"])
        if self.tally is not None:
            release = self.state.release(body["project"], body["version"])
            result["details"] = await self.tally(self._tally_request(release))
        return web.json_response(result)

    async def _vote_cast(self, request: web.Request) -> web.Response:
        body = await _body(request)
        now = self.clock()
        receipt = self.state.cast(
            request[UID],
            body["project"],
            body["version"],
            choice=body["choice"],
            comment=body.get("comment", ""),
            now=now,
        )
        await self._post([receipt])
        return web.json_response(
            {"endpoint": "/vote/cast", "success": True, "receipt_email_to": [receipt.list_address]}
        )

    async def _vote_resolve(self, request: web.Request) -> web.Response:
        body = await _body(request)
        now = self.clock()
        mails = self.state.resolve(
            request[UID], body["project"], body["version"], resolution=body["resolution"], now=now
        )
        await self._post(mails)
        return web.json_response({"endpoint": "/vote/resolve", "success": True})

    async def _openapi(self, request: web.Request) -> web.Response:
        """§10.1: ATR serves its OpenAPI document; the sandbox's is its own schema, as components."""
        return web.json_response(self.openapi_document)

    async def _sandbox_requests(self, request: web.Request) -> web.Response:
        records = [dataclasses.asdict(r) for r in self.requests]
        return web.json_response({"requests": records, "total": len(records)})

    async def _sandbox_restart(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key not in self.state.releases:
            return _error(404, f"Release {key} not found")
        await self.restart_vote(key)
        return web.json_response(self.state.release_json(self.state.releases[key]))

    def _tally_request(self, release: atr_state.ReleaseRow) -> TallyRequest:
        vote_round = self.state.vote_round(release)
        committee = self.state.committee_of(release.project_key)
        committee_key = atr_state.IPMC_KEY if vote_round == 2 else (committee.key if committee else None)
        return TallyRequest(
            project_key=release.project_key,
            version=release.version,
            vote_seq=release.current_vote_seq,
            vote_round=vote_round,
            committee_key=committee_key,
            list_address=release.email_to,
            vote_message_id=release.vote_message_id,
            vote_subject=release.vote_subject,
            excluded_message_ids=self.state.receipt_ids(release),
        )

    async def _post(self, mails: list[atr_state.Outgoing]) -> None:
        for mail in mails:
            self.posted.append(mail)
            if self.on_receipt is None:
                continue
            try:
                result = self.on_receipt(mail.raw, mail.list_address)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                # ATR queues these mails as tasks: a failed send does not undo the ballot.
                log.warning("sandbox_atr.post_failed", list=mail.list_address, error=str(exc))


def openapi_document() -> dict[str, Any]:
    """An OpenAPI 3.1 document whose components are atr-api-schema.json's definitions."""
    text = json.dumps(contract.definitions()).replace('"#/$defs/', '"#/components/schemas/')
    return {"openapi": "3.1.0", "info": {"title": "ATR API (sandbox)"}, "components": {"schemas": json.loads(text)}}


def _route(request: web.Request) -> str | None:
    """The route's path template (limits are counted per route, §10.3); None for an unknown path."""
    info = request.match_info
    if isinstance(info, web.UrlMappingMatchInfo) and info.route.resource is not None:
        return info.route.resource.canonical
    return None


def _error(status: int, text: str, retry_after: int | None = None, details: list[str] | None = None) -> web.Response:
    """ATR's error body (§10.2): `error` and `request_id`; a 429 adds `detail` and `retry_after`, no header;
    a 400 from validation adds `validation_details`."""
    body: dict[str, Any] = {"error": text, "request_id": str(uuid.uuid4())}
    if status == 429:
        body |= {"detail": "Too many requests, please retry later.", "retry_after": retry_after}
    if details:
        body["validation_details"] = [{"type": "schema", "loc": [], "msg": detail} for detail in details]
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, str]:
    """The JSON body, checked against the route's request definition in atr-api-schema.json.

    ATR's request models are `schema.Strict` (§10.1): an unknown field or a wrong JSON type is a
    400 "Input validation failed" with pydantic's `validation_details`.
    """
    try:
        data = await request.json()
    except ValueError:
        raise atr_state.RefusalError(400, "Input validation failed") from None
    name = contract.REQUESTS[request.path]
    found = contract.violations(name, data)
    if found:
        raise atr_state.RefusalError(400, "Input validation failed", details=found)
    return {str(k): str(v) for k, v in data.items()}


def poster(archive_url: str) -> OnReceipt:
    """An `on_receipt` that posts each mail to a sandbox lists.apache.org in another process."""
    endpoint = archive_url.rstrip("/") + "/_sandbox/messages"

    async def post(raw: bytes, list_address: str) -> None:
        url = f"{endpoint}?{urllib.parse.urlencode({'list': list_address})}"
        async with aiohttp.ClientSession() as session, session.post(url, data=raw) as response:
            response.raise_for_status()

    return post


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m watcher.sandbox.atr_http", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=pathlib.Path, required=True, help="scenario TOML (the [atr] table)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--speed", type=float, default=1.0, help="how much faster than real time the clock runs")
    parser.add_argument("--archive-url", help="sandbox lists.apache.org that receives ATR's mails")
    parser.add_argument("--announce", action="store_true", help="post the [VOTE] mail of every running vote at start")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    scenario = atr_scenario.load(args.scenario, time.time())
    clock = clocks.ScaledClock(scenario.settings.now, args.speed)
    on_receipt = poster(args.archive_url) if args.archive_url else None
    sandbox = AtrSandbox(scenario, host=args.host, port=args.port, clock=clock, on_receipt=on_receipt)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with sandbox as url:
        if args.announce:
            await sandbox.announce_votes()
        print(url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until SIGINT or SIGTERM; prints its base URL on the first line."""
    args = _parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print("the sandbox listens on loopback only", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args))
    except atr_scenario.ScenarioError as exc:
        print(f"sandbox ATR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
