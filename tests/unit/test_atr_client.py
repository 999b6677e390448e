"""The client's pure parts: base URL rules, token lifetime, error mapping, redaction."""

from __future__ import annotations

import base64
import json

import pydantic
import pytest

import watcher
import watcher.atr.client as client
import watcher.atr.errors as errors


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://release-test.apache.org", "https://release-test.apache.org"),
        ("https://release-test.apache.org/", "https://release-test.apache.org"),
        ("https://release-test.apache.org/api", "https://release-test.apache.org"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080/api/", "http://localhost:8080"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_base_urls_accepted(given: str, expected: str) -> None:
    assert client.checked_base_url(given) == expected


@pytest.mark.parametrize(
    "given", ["http://release-test.apache.org", "http://10.0.0.5:8080", "ftp://example.org", "release-test.apache.org"]
)
def test_plain_http_beyond_loopback_and_other_schemes_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="https"):
        client.checked_base_url(given)


def _jwt(claims: dict[str, object]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln"


def test_token_lifetime_comes_from_its_claims() -> None:
    assert client.jwt_lifetime(_jwt({"iat": 1000, "exp": 1900})) == 900
    # Not a JWT, or no usable claims: ATR's documented 30 minutes.
    assert client.jwt_lifetime("opaque-token") == 1800
    assert client.jwt_lifetime(_jwt({"iat": 1000})) == 1800
    assert client.jwt_lifetime("a.!!!.c") == 1800


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.BadRequestError),
        (401, errors.UnauthorizedError),
        (403, errors.ForbiddenError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (429, errors.RateLimitedError),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.UnexpectedStatusError),
    ],
)
def test_statuses_map_to_typed_errors_keeping_atrs_text(status: int, kind: type[errors.AtrError]) -> None:
    error = errors.for_status("/api/vote/resolve", status, "The vote is still open.")
    assert isinstance(error, kind)
    assert error.status == status
    assert "The vote is still open." in str(error)
    assert "/api/vote/resolve" in str(error)


def test_redaction_removes_the_pat_from_any_text() -> None:
    pat = "pat-0123456789-secret"
    atr = client.AtrClient("https://atr.example.org", "u", pydantic.SecretStr(pat))
    assert atr.redact(f"Input validation failed: pat={pat!r}") == "Input validation failed: pat='[redacted]'"
    assert pat not in repr(atr)


def test_the_user_agent_names_the_project_and_its_version() -> None:
    assert client.USER_AGENT.startswith(f"vote-watcher/{watcher.__version__} (+https://")


class _Wrapped:
    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value


def test_either_kind_of_secret_wrapper_is_accepted() -> None:
    assert client.reveal(pydantic.SecretStr("a")) == "a"
    assert client.reveal(_Wrapped("b")) == "b"
