"""The ATR client against the sandbox ATR over real HTTP: tokens, limits, retries, errors, secrets."""

from __future__ import annotations

import logging
import ssl

import pytest
import structlog
import trustme

import watcher
import watcher.atr.errors as errors
import watcher.atr.tokens as tokens
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.clocks as clocks
from tests.fixtures import atr as fixtures
from tests.fixtures.atr import StartAtr, client_for, scenario_data

MINUTE = 60.0


def paths(atr: atr_http.AtrSandbox) -> list[tuple[str, int]]:
    """(path, status) of every request the sandbox logged."""
    return [(r.path, r.status) for r in atr.requests]


async def test_running_votes_are_read_page_by_page(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    data = atr_scenario.synthetic(50, uid=fixtures.UID, pat=fixtures.PAT)
    async with start_atr(data) as atr, client_for(atr, atr_clock) as client:
        releases = await client.releases_list(page_size=7)
    assert len(releases) == 50
    assert len({r.key for r in releases}) == 50
    assert paths(atr) == [("/api/releases/list", 200)] * 8
    assert atr.requests[0].user_agent.startswith(f"vote-watcher/{watcher.__version__} ")


async def test_the_token_is_renewed_before_it_expires(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock) as client:
        await client.vote_tabulate("example", "1.2.0")
        atr_clock.advance(20 * MINUTE)
        await client.vote_tabulate("example", "1.2.0")
        # Two minutes before the 30-minute JWT expires, it is renewed.
        atr_clock.advance(8.5 * MINUTE)
        await client.vote_tabulate("example", "1.2.0")
    assert paths(atr) == [
        ("/api/jwt/create", 200),
        ("/api/vote/tabulate", 200),
        ("/api/vote/tabulate", 200),
        ("/api/jwt/create", 200),
        ("/api/vote/tabulate", 200),
    ]


async def test_an_expired_token_is_renewed_once_on_401(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    # The client's own clock stands still, so only ATR's 401 tells it the token expired.
    client_clock = clocks.ManualClock(fixtures.START)
    async with start_atr() as atr, client_for(atr, client_clock) as client:
        await client.vote_tabulate("example", "1.2.0")
        atr_clock.advance(31 * MINUTE)
        result = await client.vote_tabulate("example", "1.2.0")
    assert result.vote_mode == "trusted"
    assert paths(atr) == [
        ("/api/jwt/create", 200),
        ("/api/vote/tabulate", 200),
        ("/api/vote/tabulate", 401),
        ("/api/jwt/create", 200),
        ("/api/vote/tabulate", 200),
    ]


async def test_a_revoked_token_is_renewed_once_then_the_call_retried(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock) as client:
        await client.vote_tabulate("example", "1.2.0")
        atr.invalidate_tokens()
        await client.vote_tabulate("example", "1.2.0")
    assert [status for _, status in paths(atr)] == [200, 200, 401, 200, 200]


async def test_a_revoked_pat_fails_after_one_renewal(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock) as client:
        await client.vote_tabulate("example", "1.2.0")
        atr.state.pats[fixtures.UID] = "a-new-pat"
        with pytest.raises(errors.UnauthorizedError, match="Invalid PAT or user"):
            await client.vote_tabulate("example", "1.2.0")
    assert paths(atr)[1:] == [("/api/vote/tabulate", 200), ("/api/vote/tabulate", 401), ("/api/jwt/create", 401)]


async def test_only_jwt_create_is_asked_for_a_jwt(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    # reference/atr.md §10.4: `/api/jwt` is not a route at 1881ebb9; nothing falls back to it.
    async with start_atr() as atr, client_for(atr, atr_clock) as client:
        await client.vote_tabulate("example", "1.2.0")
        atr.invalidate_tokens()
        await client.vote_tabulate("example", "1.2.0")
    assert paths(atr) == [
        ("/api/jwt/create", 200),
        ("/api/vote/tabulate", 200),
        ("/api/vote/tabulate", 401),
        ("/api/jwt/create", 200),
        ("/api/vote/tabulate", 200),
    ]


async def test_a_storm_of_401s_spaces_the_exchanges_out_and_keeps_some_in_reserve(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    # For ten minutes ATR refuses every JWT it issued before (its signing key changes again and again).
    async with start_atr() as atr, client_for(atr, atr_clock) as client:
        refused = 0
        for _ in range(120):
            atr.invalidate_tokens()
            try:
                await client.vote_tabulate("example", "1.2.0")
            except (errors.UnauthorizedError, errors.AuthLimitError):
                refused += 1
            atr_clock.advance(5)
        during_storm = atr.count("/api/jwt/create")
        # The storm is over: after the last wait, an exchange is still left in the hour.
        atr_clock.advance(10 * MINUTE)
        await client.vote_tabulate("example", "1.2.0")
    # The first, one more at the first refusal, then 30, 60, 120 and 240 s apart: six in ten minutes, not 10.
    assert during_storm == 6
    # Each exchange saved its call; the others failed for now (the next cycle tries again).
    assert refused == 120 - during_storm
    assert atr.count("/api/jwt/create") == during_storm + 1
    assert all(status != 429 for _, status in paths(atr))


async def test_a_refused_pat_is_a_clear_error_at_once(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock, pat="not-the-pat") as client:
        with pytest.raises(errors.PatRejectedError, match="ATR refused the PAT of watcher"):
            await client.vote_tabulate("example", "1.2.0")
    assert client.pat_rejected
    assert paths(atr) == [("/api/jwt/create", 401)]


async def test_one_jwt_is_shared_by_every_client_of_one_token_store(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    # As `run --once` from cron every 5 minutes: each run is a new client; the JWT lives 30 minutes.
    shared = tokens.MemoryTokens()
    async with start_atr() as atr:
        for _ in range(12):
            async with client_for(atr, atr_clock, token_store=shared) as client:
                await client.vote_tabulate("example", "1.2.0")
            atr_clock.advance(5 * MINUTE)
    # Renewed when less than two minutes are left: at 0 and 30 minutes (the run at 25 still reuses it).
    assert atr.count("/api/jwt/create") == 2
    assert [e.reason for e in shared.exchanges] == ["renew"] * 2


async def test_a_429_waits_for_the_bodys_retry_after_then_succeeds(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    # ATR's 429 says `retry_after` in its JSON body and sends no Retry-After header (atr.md §10.3).
    async with start_atr(scenario_data(api_per_hour=5)) as atr, client_for(atr, atr_clock) as client:
        for _ in range(5):
            await client.committee_get("example")
            atr_clock.advance(MINUTE)
        started = atr_clock()
        committee = await client.committee_get("example")
        # Limits are per route: another route is not held up by this one's.
        await client.project_get("example")
    assert committee.key == "example"
    assert [status for _, status in paths(atr)] == [200] * 5 + [429, 200, 200]
    # GCRA at 5/h: one request per 12 minutes after the burst; 5 minutes passed since the first.
    assert atr_clock() - started == pytest.approx(7 * MINUTE, abs=2)


async def test_a_429_longer_than_the_client_may_wait_raises(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    async with (
        start_atr(scenario_data(api_per_hour=1)) as atr,
        client_for(atr, atr_clock, max_rate_limit_wait=5 * MINUTE) as client,
    ):
        await client.committee_get("example")
        with pytest.raises(errors.RateLimitedError) as raised:
            await client.committee_get("example")
    assert raised.value.retry_after == pytest.approx(60 * MINUTE, abs=2)
    assert raised.value.error == "rate_limit_exceeded"


async def test_server_errors_are_retried_with_backoff_then_given_up(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock, max_retries=3) as client:
        atr.fail_next(2, 503)
        policy = await client.policy_get("example")
        assert policy.policy_vote_mode == "trusted"
        assert atr_clock.slept > 0
        atr.fail_next(10, 500)
        with pytest.raises(errors.ServerError, match="injected failure"):
            await client.policy_get("example")
    assert [status for _, status in paths(atr)] == [503, 503, 200, 500, 500, 500, 500]


async def test_timeouts_are_retried(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock, timeout=0.2) as client:
        atr.delay_next(1, 1.0)
        project = await client.project_get("example")
    assert project.committee_key == "example"
    assert atr.count("/api/project/get/example") == 2


async def test_a_resolve_that_reached_atr_is_never_sent_twice(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT) as client:
        atr_clock.advance(80 * 3600)
        atr.fail_next(1, 500, prefix="/api/vote/resolve")
        with pytest.raises(errors.ServerError):
            await client.vote_resolve("example", "1.2.0", "cancelled")
        atr.delay_next(1, 1.0, prefix="/api/vote/resolve")
        client_short = client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT, timeout=0.2)
        async with client_short:
            with pytest.raises(errors.TransportError, match="ReadTimeout"):
                await client_short.vote_resolve("example", "1.2.0", "cancelled")
    assert atr.count("/api/vote/resolve") == 2


async def test_errors_keep_atrs_own_text(start_atr: StartAtr, atr_clock: clocks.ManualClock) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock, uid=fixtures.RM_UID, pat=fixtures.RM_PAT) as client:
        with pytest.raises(errors.NotFoundError, match="The requested URL was not found on the server"):
            await client.policy_get("nope")
        with pytest.raises(errors.ConflictError, match="cannot be resolved before the voting period has ended"):
            await client.vote_resolve("example", "1.2.0", "passed")


async def test_no_secret_appears_in_logs_errors_or_reprs(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    with structlog.testing.capture_logs() as events:
        async with start_atr() as atr:
            async with client_for(atr, atr_clock) as client:
                await client.vote_tabulate("example", "1.2.0")
                atr.invalidate_tokens()
                await client.vote_tabulate("example", "1.2.0")
                atr.fail_next(5, 500)
                try:
                    await client.vote_tabulate("example", "1.2.0")
                except errors.AtrError as exc:
                    shown += [str(exc), repr(exc)]
                shown.append(repr(client))
            async with client_for(atr, atr_clock, pat="pat-wrong-but-secret-91b3") as wrong:
                try:
                    await wrong.vote_tabulate("example", "1.2.0")
                except errors.AtrError as exc:
                    shown += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
    text = "\n".join([*shown, *map(repr, events), caplog.text])
    assert len(atr.state.issued_jwts) == 2
    for secret in [fixtures.PAT, "pat-wrong-but-secret-91b3", *atr.state.issued_jwts]:
        assert secret not in text
    assert "atr.jwt_renewed" in text


async def test_tls_is_verified_against_the_given_ca(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, tmp_path: object
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = f"{tmp_path}/ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    async with start_atr(ssl_context=server_context) as atr:
        assert atr.url.startswith("https://")
        async with client_for(atr, atr_clock, ca_file=ca_file) as trusted:
            assert (await trusted.committee_get("example")).key == "example"
        async with client_for(atr, atr_clock, max_retries=0) as untrusted:
            with pytest.raises(errors.TransportError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                await untrusted.committee_get("example")
