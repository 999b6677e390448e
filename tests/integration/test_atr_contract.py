"""The sandbox ATR's answers against atr-api-schema.json (issue 16 item 2b).

The sandbox checks each answer as it leaves (`AtrSandbox._checked`): an answer that disagrees is a
500 and is kept in `schema_violations`, which every test's fixture asserts empty. Here: every field
of every answer the sandbox gives is one the schema describes, and changing any of them to a
value of another JSON type is caught; and such a change, made inside the running sandbox, fails
the client's call loudly.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

import watcher.atr.contract as contract
import watcher.atr.errors as errors
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.clocks as clocks
from tests.fixtures import atr as fixtures
from tests.fixtures.atr import StartAtr, client_for, scenario_data

HOUR = 3600.0
WRONG_OBJECT: dict[str, bool] = {"not": True}
WRONG_SCALAR = "not-what-the-schema-says"

Path = tuple[str | int, ...]


async def _details(request: atr_http.TallyRequest) -> Mapping[str, Any]:
    # A VoteDetails as ATR's tabulation gives it (§10.5.7), for the email-mode answer.
    return {
        "start_unixtime": 1780000000,
        "votes": {
            "bob": {
                "name": "Bob Builder",
                "asf_uid_or_email": "bob",
                "from_email": "bob@apache.org",
                "status": "Binding",
                "asf_eid": "abc123",
                "iso_datetime": "2026-06-01T12:00:00+00:00",
                "vote": "Yes",
                "quotation": "+1",
                "updated": False,
            }
        },
        "summary": {"binding_votes": 1},
        "passed": False,
        "outcome": "The vote is still open.",
    }


async def _answers(atr: atr_http.AtrSandbox, clock: clocks.ManualClock) -> dict[str, list[Any]]:
    """Every kind of answer the sandbox gives, by schema definition, as sent over HTTP."""
    answers: dict[str, list[Any]] = {}

    def keep(name: str, response: httpx.Response) -> None:
        answers.setdefault(name, []).append(response.json())

    async with httpx.AsyncClient(base_url=atr.url) as http:
        jwt = await http.post("/api/jwt/create", json={"asfuid": fixtures.RM_UID, "pat": fixtures.RM_PAT})
        keep("JwtCreateResults", jwt)
        auth = {"Authorization": f"Bearer {jwt.json()['jwt']}"}
        keep("ReleasesListResults", await http.get("/api/releases/list", params={"phase": "release_candidate"}))
        for project, version in (("example", "1.2.0"), ("mailer", "3.0.1"), ("fooling", "0.3.0")):
            keep("ReleaseGetResults", await http.get(f"/api/release/get/{project}/{version}"))
            keep("ProjectGetResults", await http.get(f"/api/project/get/{project}"))
            keep("PolicyGetResults", await http.get(f"/api/policy/get/{project}"))
            body = {"project": project, "version": version}
            keep("VoteTabulateResults", await http.post("/api/vote/tabulate", json=body, headers=auth))
        for key in ("example", "fooling", "incubator"):
            keep("CommitteeGetResults", await http.get(f"/api/committee/get/{key}"))
        cast = {"project": "example", "version": "1.2.0", "choice": "+1", "comment": "checked"}
        keep("VoteCastResults", await http.post("/api/vote/cast", json=cast, headers=auth))
        keep(
            "VoteTabulateResults",
            await http.post("/api/vote/tabulate", json={"project": "example", "version": "1.2.0"}, headers=auth),
        )
        clock.advance(80 * HOUR)
        jwt = await http.post("/api/jwt/create", json={"asfuid": fixtures.RM_UID, "pat": fixtures.RM_PAT})
        auth = {"Authorization": f"Bearer {jwt.json()['jwt']}"}
        resolve = {"project": "example", "version": "1.2.0", "resolution": "cancelled"}
        keep("VoteResolveResults", await http.post("/api/vote/resolve", json=resolve, headers=auth))
        keep("ReleaseGetResults", await http.get("/api/release/get/example/1.2.0"))
        keep("ErrorBody", await http.post("/api/vote/resolve", json=resolve, headers=auth))
        keep("ErrorBody", await http.get("/api/release/get/nope/1"))
        for _ in range(10):
            limited = await http.post("/api/jwt/create", json={"asfuid": fixtures.UID, "pat": fixtures.PAT})
        keep("ErrorBody", limited)
    return answers


def _paths(value: Any, path: Path = ()) -> Iterator[Path]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _changed(answer: Any, path: Path) -> Any:
    copied = copy.deepcopy(answer)
    parent = copied
    for step in path[:-1]:
        parent = parent[step]
    old = parent[path[-1]]
    parent[path[-1]] = WRONG_SCALAR if isinstance(old, dict | list) else WRONG_OBJECT
    return copied


async def test_every_field_of_every_sandbox_answer_is_checked_against_the_schema(
    start_atr: StartAtr, atr_clock: clocks.ManualClock
) -> None:
    data = scenario_data(ballots=[{"release_key": "example-1.2.0", "voter_asf_uid": "bob", "choice": "+1"}])
    async with start_atr(data, tally=_details) as atr:
        answers = await _answers(atr, atr_clock)
    assert set(answers) == {*contract.RESPONSES.values(), contract.ERROR_BODY}
    unchecked: list[str] = []
    fields = 0
    for name, bodies in answers.items():
        for body in bodies:
            assert contract.violations(name, body) == [], (name, body)
            for path in _paths(body):
                fields += 1
                if not contract.violations(name, _changed(body, path)):
                    unchecked.append(f"{name}: {'.'.join(map(str, path))}")
    # A field the schema does not describe (or describes as "anything") would be a fiction nobody checks.
    assert unchecked == []
    assert fields > 500


async def test_an_answer_that_breaks_the_schema_fails_the_call_loudly(
    start_atr: StartAtr, atr_clock: clocks.ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with start_atr() as atr, client_for(atr, atr_clock) as client:
        real = atr.state.policy_json

        def fiction(project_key: str) -> dict[str, Any]:
            # The shape issue 16 found in the old sandbox: `to` as a list.
            answer = real(project_key)
            answer["policy_vote_recipients"]["to"] = [answer["policy_vote_recipients"]["to"]]
            return answer

        monkeypatch.setattr(atr.state, "policy_json", fiction)
        with pytest.raises(errors.ServerError, match=r"breaks PolicyGetResults: \$\.policy_vote_recipients\.to"):
            await client.policy_get("example")
        violations = list(atr.schema_violations)
        atr.schema_violations.clear()
    assert violations and all("policy_vote_recipients.to" in v for v in violations)
