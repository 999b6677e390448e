"""The client against ATR's contract (watcher/atr/atr-api-schema.json, reference/atr.md §10.5).

(a) Every instance of every response definition parses with the client's models without a field
being dropped; (c) every request body the client builds validates against its definition. The
sandbox's own answers are checked in tests/integration/test_atr_contract.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis
import pydantic
import pytest
from hypothesis import strategies as st

import watcher.atr.client as client
import watcher.atr.contract as contract
import watcher.atr.models as models
import watcher.atr.probe as probe
from tests.schema_instances import instances

Reader = Callable[[dict[str, Any]], list[str]]


def _read(model: type[pydantic.BaseModel], essential: frozenset[str] = frozenset()) -> Callable[[object], list[str]]:
    def read(data: object) -> list[str]:
        return models.parse(model, data, essential)[1]

    return read


def _releases(data: dict[str, Any]) -> list[str]:
    ignored = models.parse(models.ReleasesPage, {"data": [], "count": data["count"]})[1]
    for item in data["data"]:
        ignored += models.parse(models.Release, item, models.RELEASE_ESSENTIAL)[1]
    return ignored


# How the client reads each answer (watcher/atr/client.py): the model, and where it sits.
READERS: dict[str, Reader] = {
    "JwtCreateResults": _read(models.JwtCreateResults, models.JWT_ESSENTIAL),
    "ReleasesListResults": _releases,
    "ReleaseGetResults": lambda d: _read(models.Release, models.RELEASE_ESSENTIAL)(d["release"]),
    "ProjectGetResults": lambda d: _read(models.Project)(d["project"]),
    "PolicyGetResults": _read(models.Policy),
    "CommitteeGetResults": lambda d: _read(models.AtrCommittee)(d["committee"]),
    "VoteTabulateResults": _read(models.VoteTabulateResults, models.TABULATE_ESSENTIAL),
    "VoteResolveResults": _read(models.VoteResolveResults),
    "VoteCastResults": _read(models.VoteCastResults, frozenset({"success"})),
}


def test_every_response_the_client_reads_has_a_reader() -> None:
    assert set(READERS) == set(contract.RESPONSES.values())


def test_the_schema_copy_is_valid_and_its_examples_validate() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(contract.document())
    for name, definition in contract.definitions().items():
        for example in definition["examples"]:
            assert contract.violations(name, example) == [], name


@pytest.mark.parametrize("name", sorted(contract.RESPONSES.values()))
def test_the_schemas_examples_parse_without_dropping_a_field(name: str) -> None:
    for example in contract.definitions()[name]["examples"]:
        assert READERS[name](example) == []


@pytest.mark.parametrize("name", sorted(contract.RESPONSES.values()))
@hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(data=st.data())
def test_generated_answers_parse_with_the_clients_models(name: str, data: st.DataObject) -> None:
    answer = data.draw(instances(contract.document(), contract.definitions()[name]))
    # The generator's own check: what it made is an instance of the definition.
    assert contract.violations(name, answer) == []
    # Nothing ATR may send is of a shape the models do not expect (issue 16: `to` was typed as a list).
    assert READERS[name](answer) == []


_PROJECT_KEYS = st.from_regex(r"[A-Za-z0-9-]{1,20}", fullmatch=True)
_VERSION_KEYS = st.from_regex(r"[A-Za-z0-9-]([A-Za-z0-9.+-]{0,14}[A-Za-z0-9-])?", fullmatch=True)


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(
    project=_PROJECT_KEYS,
    version=_VERSION_KEYS,
    resolution=st.sampled_from(["passed", "failed", "cancelled"]),
    choice=st.sampled_from(["+1", "0", "-1"]),
    comment=st.text(max_size=40),
    uid=st.from_regex(r"[a-z][a-z0-9]{0,15}", fullmatch=True),
    pat=st.text(min_size=1, max_size=40),
)
def test_every_request_body_the_client_builds_validates(
    project: str,
    version: str,
    resolution: client.Resolution,
    choice: client.Choice,
    comment: str,
    uid: str,
    pat: str,
) -> None:
    assert contract.violations("JwtCreateArgs", client.jwt_body(uid, pat)) == []
    assert contract.violations("VoteTabulateArgs", client.tabulate_body(project, version)) == []
    assert contract.violations("VoteResolveArgs", client.resolve_body(project, version, resolution)) == []
    assert contract.violations("VoteCastArgs", client.cast_body(project, version, choice, comment)) == []


def test_the_schema_rejects_a_list_for_policy_vote_recipients_to() -> None:
    # The mistake issue 16 found: the schema, not only the model, says `to` is one address or null.
    answer = contract.definitions()["PolicyGetResults"]["examples"][0] | {
        "policy_vote_recipients": {"to": ["dev@example.apache.org"], "cc": [], "bcc": []}
    }
    assert any("policy_vote_recipients.to" in v for v in contract.violations("PolicyGetResults", answer))


def test_the_tolerant_reader_drops_a_bad_optional_field_and_keeps_the_release() -> None:
    release = dict(contract.definitions()["Release"]["examples"][0])
    release |= {"vote_thread_url": 5, "created": "not a date"}
    value, ignored = models.parse(models.Release, release, models.RELEASE_ESSENTIAL)
    assert value.key == release["key"] and value.vote_thread_url is None
    assert sorted(ignored) == ["$.created", "$.vote_thread_url"]


def test_the_tolerant_reader_refuses_a_release_without_its_vote_serial() -> None:
    release = dict(contract.definitions()["Release"]["examples"][0]) | {"current_vote_seq": "seven"}
    with pytest.raises(pydantic.ValidationError):
        models.parse(models.Release, release, models.RELEASE_ESSENTIAL)


def test_the_tolerant_reader_never_guesses_ballots() -> None:
    answer = dict(contract.definitions()["VoteTabulateResults"]["examples"][0])
    answer["trusted_ballots"] = [{"voter_asf_uid": "bob", "choice": "yes please"}]
    with pytest.raises(pydantic.ValidationError):
        models.parse(models.VoteTabulateResults, answer, models.TABULATE_ESSENTIAL)


def _as_openapi(definitions: dict[str, Any]) -> dict[str, Any]:
    import json

    text = json.dumps(definitions).replace('"#/$defs/', '"#/components/schemas/')
    return {"openapi": "3.1.0", "components": {"schemas": json.loads(text)}}


def test_the_schema_has_no_drift_from_itself() -> None:
    assert probe.drift(contract.definitions(), _as_openapi(contract.definitions())) == []


def test_openapi_3_0_nullable_fields_are_the_same_types() -> None:
    document = _as_openapi(contract.definitions())
    release = document["components"]["schemas"]["Release"]["properties"]
    release["vote_mode"] = {"type": "string", "enum": ["manual", "email", "trusted"], "nullable": True}
    release["current_vote_seq"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert probe.drift(contract.definitions(), document) == []
    release["current_vote_seq"] = {"type": "string"}
    (found,) = probe.drift(contract.definitions(), document)
    assert str(found) == "problem: Release.current_vote_seq: type changed: ours integer | null, ATR's string"
