"""Async client of ATR's HTTP API: PAT → JWT, one request budget, retries, typed answers.

Every call takes a token from one bucket (the hourly budget), including retries and PAT
exchanges. Reads are retried on 5xx and timeouts with capped exponential backoff and full
jitter; calls that change state (resolve, cast) are retried only when the request never left
(a refused connection), so a retry can never act twice. A 429 waits for `Retry-After` (or a
backoff) before trying again through the same bucket. A 401 renews the JWT once and retries.
The PAT and JWT are held as `SecretStr` and scrubbed from every error; they are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import json
import pathlib
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, Literal, Protocol, TypeVar

import httpx
import pydantic
import structlog

import watcher
import watcher.atr.budget as budget
import watcher.atr.errors as errors
import watcher.atr.models as models
import watcher.atr.tokens as tokens
import watcher.core.backoff as backoff
import watcher.core.loopback as loopback
import watcher.services.log as log

PROJECT_URL: Final = "https://github.com/apache/vote-watcher"
USER_AGENT: Final = f"vote-watcher/{watcher.__version__} (+{PROJECT_URL})"
# `/api/jwt` (named in ATR's auth docs) is not a route at 1881ebb9 (reference/atr.md §10.4).
JWT_PATH: Final = "/api/jwt/create"
JWT_EXCHANGES_PER_HOUR: Final = tokens.EXCHANGES_PER_HOUR
DEFAULT_JWT_LIFETIME: Final = 1800.0
# Two minutes of life left is enough for any request in flight; cron runs every 5 minutes reuse the JWT longer.
DEFAULT_RENEW_MARGIN: Final = 120.0
REDACTED: Final = "[redacted]"
# Routes with a limit of their own besides every route's 100/min and 1000/h (reference/atr.md §10.3).
OWN_LIMITS: Final = {"/api/vote/resolve": 10, "/api/vote/cast": 60}
_ROUTES: Final = (
    "/api/releases/list",
    "/api/release/get",
    "/api/project/get",
    "/api/policy/get",
    "/api/committee/get",
    "/api/vote/tabulate",
    "/api/vote/resolve",
    "/api/vote/cast",
    "/api/jwt/create",
)
_MAX_ERROR_TEXT: Final = 500

Resolution = Literal["passed", "failed", "cancelled"]
Choice = Literal["+1", "0", "-1"]
Model = TypeVar("Model", bound=pydantic.BaseModel)

logger = structlog.get_logger("watcher.atr")


class Revealable(Protocol):
    """A secret wrapper whose value is read only where it is sent (`watcher.services.secrets.Secret`)."""

    def reveal(self) -> str:
        """The secret value."""
        ...


Secret = Revealable | pydantic.SecretStr


class AtrClient:
    """ATR's API for one account (a committer's uid and PAT); use as `async with`."""

    def __init__(
        self,
        base_url: str,
        uid: str,
        pat: Secret | None,
        *,
        budget_per_hour: int = 300,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        user_agent: str = USER_AGENT,
        ca_file: str | pathlib.Path | None = None,
        max_retries: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_rate_limit_wait: float = 3600.0,
        renew_margin: float = DEFAULT_RENEW_MARGIN,
        clock: budget.Clock = time.monotonic,
        sleep: budget.Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        token_store: tokens.TokenStore | None = None,
        wall_clock: budget.Clock = time.time,
    ) -> None:
        self.base_url = checked_base_url(base_url)
        self.uid = uid
        self._pat = pydantic.SecretStr(reveal(pat)) if pat is not None else None
        if self._pat is not None:
            # A second guard: the log pipeline masks it too, should it ever reach a message.
            log.register_secret(self._pat.get_secret_value())
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._max_retries = max_retries
        self._retry_policy = backoff.Backoff(backoff_base, backoff_max, backoff.Jitter.FULL)
        self._backoff_max = backoff_max
        self._max_rate_limit_wait = max_rate_limit_wait
        self._renew_margin = renew_margin
        # ATR's limits per route (atr.md §10.3), the hourly one the operator's budget.
        self.budget = budget.RouteBudget(budget_per_hour, own=OWN_LIMITS, clock=clock)
        self.tokens: tokens.TokenStore = token_store or tokens.MemoryTokens()
        self._wall = wall_clock
        self._jwt: pydantic.SecretStr | None = None
        self._renew_at = 0.0
        self._refused = False
        self._exchanged = 0
        self.pat_rejected = False
        """ATR refused the PAT itself; `run --once` exits 2."""
        self._jwt_path = JWT_PATH
        self._auth_lock = asyncio.Lock()
        self.requests_sent = 0
        self._logged: set[tuple[str, str, str]] = set()
        self.drift: list[str] = []
        """What the tolerant reader left out, "subject: JSON path" (for `check-config --probe`)."""
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            verify=_verification(ca_file),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"AtrClient(base_url={self.base_url!r}, uid={self.uid!r})"

    async def __aenter__(self) -> AtrClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def jwt_renews_in(self) -> float | None:
        """Seconds until the JWT in hand is renewed (shortly before it expires); None without one (for `status`)."""
        if self._jwt is None:
            return None
        return max(0.0, self._renew_at - self._clock())

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # Public endpoints (no token needed).

    async def releases_list(
        self, phase: str | None = models.PHASE_CANDIDATE, page_size: int = 50
    ) -> list[models.Release]:
        """Every release in a phase (default: running votes), following the pages.

        A release whose essential fields cannot be read is left out (and logged once); the others are kept.
        """
        releases: list[models.Release] = []
        offset = 0
        path = "/api/releases/list"
        while True:
            params: dict[str, str | int] = {"offset": offset, "limit": page_size}
            if phase is not None:
                params["phase"] = phase
            data = await self._call("GET", path, params=params)
            page = self._parse(models.ReleasesPage, {"data": [], "count": data.get("count")}, path, path)
            items = data.get("data")
            if not isinstance(items, list):
                raise errors.ResponseError(path, 200, "unexpected answer shape at data")
            for index, item in enumerate(items):
                release = self._release_item(item, path, index)
                if release is not None:
                    releases.append(release)
            offset += len(items)
            if not items or offset >= page.count:
                return releases

    def _release_item(self, item: object, path: str, index: int) -> models.Release | None:
        key = str(item.get("key")) if isinstance(item, dict) else f"data.{index}"
        try:
            return self._parse(models.Release, item, path, key, models.RELEASE_ESSENTIAL)
        except errors.ResponseError as exc:
            self._once("atr.release_dropped", key, exc.error, path=path)
            return None

    async def release_get(self, project: str, version: str) -> models.Release:
        """One release."""
        path = f"/api/release/get/{_segment(project)}/{_segment(version)}"
        data = _field(await self._call("GET", path), "release", path)
        return self._parse(models.Release, data, path, f"{project}-{version}", models.RELEASE_ESSENTIAL)

    async def project_get(self, project: str) -> models.Project:
        """One project (its committee and name)."""
        path = f"/api/project/get/{_segment(project)}"
        return self._parse(models.Project, _field(await self._call("GET", path), "project", path), path, project)

    async def policy_get(self, project: str) -> models.Policy:
        """A project's release policy (vote mode, minimum hours, subject template, recipients)."""
        path = f"/api/policy/get/{_segment(project)}"
        return self._parse(models.Policy, await self._call("GET", path), path, project)

    async def committee_get(self, key: str) -> models.AtrCommittee:
        """A committee with its members, committers and release managers."""
        path = f"/api/committee/get/{_segment(key)}"
        return self._parse(models.AtrCommittee, _field(await self._call("GET", path), "committee", path), path, key)

    async def openapi(self) -> dict[str, Any]:
        """ATR's OpenAPI document (`/api/openapi.json`, atr.md §10.1), as JSON; for `check-config --probe`."""
        return await self._call("GET", "/api/openapi.json")

    async def authenticate(self) -> str:
        """Make sure a JWT is at hand; says whether it was this process's, the stored one, or a new exchange."""
        if self._jwt is not None and self._wall() < self._renew_at:
            return "this process's JWT"
        before = self._exchanged
        await self._token()
        return "a new JWT from the PAT (jwt/create)" if self._exchanged != before else "the stored JWT, still valid"

    # Endpoints that need the JWT.

    async def vote_tabulate(self, project: str, version: str) -> models.VoteTabulateResults:
        """The trusted ballots, their summary and ATR's email tabulation of the running vote."""
        path = "/api/vote/tabulate"
        data = await self._call("POST", path, json=tabulate_body(project, version), auth=True)
        return self._parse(models.VoteTabulateResults, data, path, f"{project}-{version}", models.TABULATE_ESSENTIAL)

    async def vote_resolve(self, project: str, version: str, resolution: Resolution) -> models.VoteResolveResults:
        """Resolve the vote; never retried once sent (ATR refuses a second resolve anyway)."""
        path = "/api/vote/resolve"
        data = await self._call("POST", path, json=resolve_body(project, version, resolution), auth=True, safe=False)
        return self._parse(models.VoteResolveResults, data, path, f"{project}-{version}")

    async def vote_cast(self, project: str, version: str, choice: Choice, comment: str = "") -> models.VoteCastResults:
        """Cast a trusted ballot as this account; never retried once sent."""
        path = "/api/vote/cast"
        body = cast_body(project, version, choice, comment)
        data = await self._call("POST", path, json=body, auth=True, safe=False)
        return self._parse(models.VoteCastResults, data, path, f"{project}-{version}", ("success",))

    # The tolerant reader.

    def _parse(
        self, model: type[Model], data: object, path: str, subject: str, essential: Collection[str] = ()
    ) -> Model:
        """The model; fields left out are logged once per subject (release, project, committee) and path."""
        try:
            value, ignored = models.parse(model, data, essential)
        except pydantic.ValidationError as exc:
            # Only the field locations: pydantic's own text repeats input values, which may be secret.
            fields = ", ".join(".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()[:5])
            raise errors.ResponseError(path, 200, f"unexpected answer shape at {fields}") from None
        for json_path in ignored:
            self._once("atr.field_ignored", subject, json_path, path=path)
        return value

    def _once(self, event: str, subject: str, detail: str, **fields: object) -> None:
        key = (event, subject, detail)
        if key in self._logged:
            return
        self._logged.add(key)
        self.drift.append(f"{subject}: {detail}")
        logger.warning(event, subject=subject, detail=detail, **fields)

    # The request loop.

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Mapping[str, object] | None = None,
        auth: bool = False,
        safe: bool = True,
    ) -> dict[str, Any]:
        renewed = False
        failures = 0
        limited = 0
        while True:
            token = await self._token() if auth else None
            response = await self._send(
                method, path, params=params, body=json, token=token, safe=safe, failures=failures
            )
            if response is None:
                failures += 1
                await self._sleep(self._backoff(failures))
                continue
            status = response.status_code
            if 200 <= status < 300:
                return _json_object(response, path)
            if status == errors.UNAUTHORIZED and token is not None and not renewed:
                renewed = True
                await self._forget(token)
                continue
            if status == errors.TOO_MANY_REQUESTS and limited < self._max_retries:
                wait = self._rate_limit_wait(response, limited + 1)
                if wait <= self._max_rate_limit_wait:
                    limited += 1
                    logger.warning("atr.rate_limited", path=path, wait_s=round(wait, 1))
                    await self._sleep(wait)
                    continue
            if status >= errors.SERVER_ERROR and safe and failures < self._max_retries:
                failures += 1
                logger.warning("atr.server_error", path=path, status=status, attempt=failures)
                await self._sleep(self._backoff(failures))
                continue
            raise errors.for_status(path, status, self._error_text(response), _retry_after(response))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, object] | None,
        token: pydantic.SecretStr | None,
        safe: bool,
        failures: int,
    ) -> httpx.Response | None:
        """One request through the budget; None means "failed in transit, retry"; raises when out of retries."""
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
        route = route_of(path)
        await self.budget.take(route, self._sleep)
        self.requests_sent += 1
        try:
            response = await self._http.request(method, path, params=params, json=body, headers=headers)
        except httpx.TransportError as exc:
            # Unsafe calls retry only what never reached ATR; a read timeout may have acted.
            unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            if failures >= self._max_retries or not (safe or unsent):
                raise errors.TransportError(path, None, self.redact(f"{type(exc).__name__}: {exc}")) from None
            logger.warning("atr.transport_error", path=path, error=type(exc).__name__, attempt=failures + 1)
            return None
        logger.debug("atr.request", method=method, path=path, status=response.status_code)
        self.budget.observe(
            route, _header_int(response, "RateLimit-Remaining"), _header_int(response, "RateLimit-Limit")
        )
        if response.status_code == errors.TOO_MANY_REQUESTS:
            retry_after = _retry_after(response)
            self.budget.hold(route, retry_after if retry_after is not None else self._backoff_max)
        return response

    def _backoff(self, attempt: int) -> float:
        # Full jitter: a random wait up to the capped exponential step.
        return self._retry_policy.delay(attempt, self._jitter)

    def _rate_limit_wait(self, response: httpx.Response, attempt: int) -> float:
        retry_after = _retry_after(response)
        if retry_after is not None:
            return retry_after
        return self._retry_policy.step(attempt)

    def _error_text(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            data = None
        text = str(data["error"]) if isinstance(data, dict) and "error" in data else response.text
        return self.redact(text.strip()[:_MAX_ERROR_TEXT] or response.reason_phrase)

    def redact(self, text: str) -> str:
        """The text with the PAT and JWT replaced, for anything that may reach a log or an error."""
        for secret in (self._pat, self._jwt):
            value = secret.get_secret_value() if secret is not None else ""
            if value:
                text = text.replace(value, REDACTED)
        return text

    # Tokens.

    async def _token(self) -> pydantic.SecretStr:
        """The JWT: this process's, else the one every process shares (the state database), else a new one."""
        async with self._auth_lock:
            now = self._wall()
            if self._jwt is not None and now < self._renew_at:
                return self._jwt
            self._jwt = None
            stored = await self.tokens.load()
            if stored is not None and now < self._renew_time(*stored):
                return self._adopt(stored[0], self._renew_time(*stored))
            jwt = (await self._exchange(now)).get_secret_value()
            # Masked in every log line before anything (the store's SQL at debug level) can carry it.
            log.register_secret(jwt)
            expires = now + jwt_lifetime(jwt)
            await self.tokens.save(jwt, expires, now)
            return self._adopt(jwt, self._renew_time(jwt, expires))

    def _renew_time(self, jwt: str, expires: float) -> float:
        # A few minutes before it expires, or half way for short-lived tokens.
        return expires - min(self._renew_margin, jwt_lifetime(jwt) / 2)

    def _adopt(self, jwt: str, renew_at: float) -> pydantic.SecretStr:
        self._jwt = pydantic.SecretStr(jwt)
        log.register_secret(jwt)
        self._renew_at = renew_at
        return self._jwt

    async def _forget(self, token: pydantic.SecretStr) -> None:
        # Only drop the token that failed; another task may already hold a fresh one.
        self._refused = True
        await self.tokens.drop(token.get_secret_value())
        if self._jwt is not None and self._jwt.get_secret_value() == token.get_secret_value():
            self._jwt = None

    async def _exchange(self, now: float) -> pydantic.SecretStr:
        if self._pat is None or not self._pat.get_secret_value():
            raise errors.UnauthorizedError(self._jwt_path, None, "no PAT configured for ATR")
        reason: tokens.Reason = "401" if self._refused else "renew"
        wait = tokens.exchange_wait(await self.tokens.history(now - tokens.HOUR), now, reason)
        if wait > 0:
            raise errors.AuthLimitError(
                self._jwt_path, None, f"PAT exchanges are spaced out after ATR refused the JWT; next in {wait:.0f} s"
            )
        body = jwt_body(self.uid, self._pat.get_secret_value())
        try:
            data = await self._call("POST", self._jwt_path, json=body, safe=False)
        except (errors.UnauthorizedError, errors.ForbiddenError) as exc:
            # Counted as a refusal: the next try waits (30 s, then longer), it does not spend the hour's 10.
            await self.tokens.record(tokens.Exchange(now, "rejected"))
            self.pat_rejected = self._refused = True
            logger.error("atr.pat_rejected", uid=self.uid, status=exc.status, error=exc.error)
            text = f"ATR refused the PAT of {self.uid}: {exc.error}"
            raise errors.PatRejectedError(exc.path, exc.status, text) from None
        except errors.AtrError:
            await self.tokens.record(tokens.Exchange(now, reason))
            raise
        await self.tokens.record(tokens.Exchange(now, reason))
        self._exchanged += 1
        self._refused = False
        self.pat_rejected = False
        logger.info("atr.jwt_renewed", path=self._jwt_path, reason=reason)
        return self._parse(models.JwtCreateResults, data, self._jwt_path, self.uid, models.JWT_ESSENTIAL).jwt


# Request bodies (reference/atr.md §10.5; atr-api-schema.json's *Args: unknown fields are a 400).


def jwt_body(uid: str, pat: str) -> dict[str, str]:
    """`JwtCreateArgs`."""
    return {"asfuid": uid, "pat": pat}


def tabulate_body(project: str, version: str) -> dict[str, str]:
    """`VoteTabulateArgs`."""
    return {"project": project, "version": version}


def resolve_body(project: str, version: str, resolution: Resolution) -> dict[str, str]:
    """`VoteResolveArgs`."""
    return {"project": project, "version": version, "resolution": resolution}


def cast_body(project: str, version: str, choice: Choice, comment: str = "") -> dict[str, str]:
    """`VoteCastArgs`."""
    return {"project": project, "version": version, "choice": choice, "comment": comment}


def reveal(secret: Secret) -> str:
    """The value of either kind of secret wrapper."""
    if isinstance(secret, pydantic.SecretStr):
        return secret.get_secret_value()
    return secret.reveal()


def checked_base_url(base_url: str) -> str:
    """The API's root URL; https, except plain http to a loopback host. Raises ValueError."""
    url = urllib.parse.urlsplit(base_url.strip())
    if url.scheme not in {"https", "http"} or not url.hostname:
        raise ValueError(f"ATR base_url must be an https:// URL, not {base_url!r}")
    if url.scheme == "http" and not loopback.is_loopback(url.hostname):
        raise ValueError(f"ATR base_url must use https unless it is on loopback: {base_url!r}")
    path = url.path.rstrip("/").removesuffix("/api")
    return urllib.parse.urlunsplit((url.scheme, url.netloc, path, "", ""))


def jwt_lifetime(jwt: str) -> float:
    """Seconds the token lives (`exp - iat` from its claims, unverified), else ATR's 30 minutes."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return DEFAULT_JWT_LIFETIME
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return DEFAULT_JWT_LIFETIME
    if not isinstance(claims, dict):
        return DEFAULT_JWT_LIFETIME
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float) or exp <= iat:
        return DEFAULT_JWT_LIFETIME
    return float(exp - iat)


def _verification(ca_file: str | pathlib.Path | None) -> ssl.SSLContext | bool:
    # Verification is always on; a CA file (tests, private CAs) replaces the default trust store.
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(ca_file))


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def route_of(path: str) -> str:
    """The route a path belongs to (`/api/release/get/p/v` → `/api/release/get`): ATR counts limits per route."""
    return next((route for route in _ROUTES if path == route or path.startswith(route + "/")), path)


def _header_int(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: ATR's 429 body `retry_after` (it sends no header, atr.md §10.3), else `Retry-After`."""
    try:
        data = response.json()
    except ValueError:
        data = None
    said = data.get("retry_after") if isinstance(data, dict) else None
    if isinstance(said, int | float) and not isinstance(said, bool) and said >= 0:
        return float(said)
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        said = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    # Relative to the server's own Date header, so no local clock is read.
    return max(0.0, (when - said).total_seconds())


def _json_object(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise errors.ResponseError(path, response.status_code, "the answer is not JSON") from None
    if not isinstance(data, dict):
        raise errors.ResponseError(path, response.status_code, "the answer is not a JSON object")
    return data


def _field(data: dict[str, Any], name: str, path: str) -> object:
    if name not in data:
        raise errors.ResponseError(path, 200, f"the answer has no {name!r}")
    return data[name]
