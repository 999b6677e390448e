"""Typed ATR errors, one per HTTP status class, each keeping ATR's own `error` text.

Messages never carry a token: the client scrubs secrets from ATR's text before building these.
"""

from __future__ import annotations

from typing import Final

BAD_REQUEST: Final = 400
UNAUTHORIZED: Final = 401
FORBIDDEN: Final = 403
NOT_FOUND: Final = 404
CONFLICT: Final = 409
TOO_MANY_REQUESTS: Final = 429
SERVER_ERROR: Final = 500


class AtrError(Exception):
    """An ATR call that failed; `status` is the HTTP status, or None when no answer came."""

    def __init__(self, path: str, status: int | None, error: str) -> None:
        self.path = path
        self.status = status
        self.error = error
        super().__init__(self._text())

    def _text(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"ATR {self.path}: {status}: {self.error}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, status={self.status!r}, error={self.error!r})"


class BadRequestError(AtrError):
    """400: ATR refused the request's input (for example "Input validation failed")."""


class UnauthorizedError(AtrError):
    """401: the token is missing, expired, revoked, or the PAT was refused."""


class ForbiddenError(AtrError):
    """403: the account lacks the rights (for example not a release manager)."""


class NotFoundError(AtrError):
    """404: no such release, project, committee, or (email mode) no archived thread."""


class ConflictError(AtrError):
    """409: a logical refusal, such as resolving before the vote ends or twice."""


class RateLimitedError(AtrError):
    """429 that outlasted the waiting the client allows; `retry_after` in seconds when ATR said."""

    def __init__(self, path: str, status: int | None, error: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(path, status, error)


class ServerError(AtrError):
    """5xx after the client's retries ran out."""


class TransportError(AtrError):
    """No usable answer: a timeout or connection failure after the retries, or an unsafe call not retried."""


class ResponseError(AtrError):
    """An answer that is not the JSON shape the API promises."""


class AuthLimitError(AtrError):
    """The client refused to exchange the PAT again: ATR allows 10 exchanges an hour."""


class PatRejectedError(UnauthorizedError):
    """ATR refused the PAT itself (`jwt/create` answered 401 or 403): expired, revoked, or not this uid's."""


class UnexpectedStatusError(AtrError):
    """Any other non-success status."""


_BY_STATUS: Final[dict[int, type[AtrError]]] = {
    BAD_REQUEST: BadRequestError,
    UNAUTHORIZED: UnauthorizedError,
    FORBIDDEN: ForbiddenError,
    NOT_FOUND: NotFoundError,
    CONFLICT: ConflictError,
}


def for_status(path: str, status: int, error: str, retry_after: float | None = None) -> AtrError:
    """The typed error for an HTTP status."""
    if status == TOO_MANY_REQUESTS:
        return RateLimitedError(path, status, error, retry_after)
    if status >= SERVER_ERROR:
        return ServerError(path, status, error)
    return _BY_STATUS.get(status, UnexpectedStatusError)(path, status, error)
