"""`check-config --probe`: try the live ATR with this configuration, and compare its contract with ours.

It exchanges the PAT (or reuses the JWT the state database holds), lists the running votes, and,
where ATR serves `/api/openapi.json` (reference/atr.md §10.1), compares the schemas of the bodies
the daemon reads with `atr-api-schema.json`: each field missing, each JSON type changed, each new
field. A change to a field the client's models read is a problem (the probe fails); the rest is
information. The comparison (`drift`) is pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import pydantic

import watcher.atr.client as client
import watcher.atr.contract as contract
import watcher.atr.errors as errors
import watcher.atr.models as models

Severity = Literal["problem", "note"]

# The definitions the daemon reads, and the model whose fields it needs from each.
NEEDED: Final[Mapping[str, type[pydantic.BaseModel]]] = {
    "JwtCreateResults": models.JwtCreateResults,
    "ReleasesListResults": models.ReleasesPage,
    "Release": models.Release,
    "Project": models.Project,
    "PolicyGetResults": models.Policy,
    "RecipientDefaults": models.Recipients,
    "Committee": models.AtrCommittee,
    "VoteTabulateResults": models.VoteTabulateResults,
    "TrustedBallotEntry": models.TrustedBallotEntry,
    "TrustedVoteSummary": models.TrustedVoteSummary,
    "VoteDetails": models.VoteDetails,
    "VoteEmail": models.VoteEmail,
    "VoteResolveResults": models.VoteResolveResults,
    "VoteCastResults": models.VoteCastResults,
}
OPENAPI_PATH: Final = "/api/openapi.json"


@dataclasses.dataclass(frozen=True, slots=True)
class Drift:
    """One difference between ATR's live schema and ours."""

    severity: Severity
    definition: str
    field: str
    text: str

    def __str__(self) -> str:
        where = f"{self.definition}.{self.field}" if self.field else self.definition
        return f"{self.severity}: {where}: {self.text}"


def drift(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[Drift]:
    """Differences between our `$defs` and an OpenAPI document's `components.schemas`, by definition."""
    components: Mapping[str, Any] = theirs.get("components", {}).get("schemas", {})
    found: list[Drift] = []
    for name, model in NEEDED.items():
        mine = ours.get(name)
        if mine is None:
            continue
        live = components.get(name)
        if live is None:
            found.append(Drift("note", name, "", "not in ATR's OpenAPI document (under another name?)"))
            continue
        found += _compare(name, mine, _resolve(live, components), components, set(model.model_fields))
    return found


def _compare(
    name: str, mine: Mapping[str, Any], live: Mapping[str, Any], components: Mapping[str, Any], needed: set[str]
) -> list[Drift]:
    found: list[Drift] = []
    live_properties: Mapping[str, Any] = live.get("properties", {})
    for field, spec in mine.get("properties", {}).items():
        severity: Severity = "problem" if field in needed else "note"
        if field not in live_properties:
            found.append(Drift(severity, name, field, "missing in ATR's schema"))
            continue
        ours_types, live_types = _types(spec, {}), _types(live_properties[field], components)
        if ours_types != live_types:
            text = f"type changed: ours {_render(ours_types)}, ATR's {_render(live_types)}"
            found.append(Drift(severity, name, field, text))
    for field in sorted(set(live_properties) - set(mine.get("properties", {}))):
        found.append(Drift("note", name, field, "new field in ATR's schema"))
    return found


def _resolve(node: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _resolve(components.get(ref.rsplit("/", 1)[-1], {}), components)
    return node


def _types(node: Mapping[str, Any], components: Mapping[str, Any]) -> frozenset[str]:
    """A field's JSON types, the same whether written as OpenAPI 3.0 (`nullable`) or 3.1 / JSON Schema."""
    if "$ref" in node:
        return frozenset({"object"})
    found: set[str] = set()
    kinds = node.get("type")
    if isinstance(kinds, str):
        found.add(kinds)
    elif isinstance(kinds, list):
        found.update(str(kind) for kind in kinds)
    for key in ("anyOf", "oneOf"):
        for option in node.get(key, []):
            found |= _types(option, components)
    if "const" in node:
        found.add(_json_type(node["const"]))
    if "enum" in node and not kinds:
        found.update(_json_type(value) for value in node["enum"])
    if node.get("nullable") is True:
        found.add("null")
    return frozenset(found)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _render(types: Iterable[str]) -> str:
    return " | ".join(sorted(types)) or "any"


@dataclasses.dataclass
class Report:
    """What the probe found: lines to print, and whether the daemon can work with this ATR."""

    lines: list[str] = dataclasses.field(default_factory=list)
    ok: bool = True

    def say(self, line: str) -> None:
        """Add a line."""
        self.lines.append(line)

    def fail(self, line: str) -> None:
        """Add a problem: the probe fails."""
        self.lines.append(line)
        self.ok = False


async def probe(atr: client.AtrClient) -> Report:
    """Exchange the PAT (or reuse the stored JWT), list the running votes, compare the live schema."""
    report = Report()
    try:
        how = await atr.authenticate()
    except errors.AtrError as exc:
        report.fail(f"ATR token: {exc}")
        return report
    report.say(f"ATR token: {how}")
    try:
        running = await atr.releases_list()
    except errors.AtrError as exc:
        report.fail(f"ATR releases/list: {exc}")
        return report
    report.say(f"ATR releases/list: {len(running)} running vote{'s' if len(running) != 1 else ''}")
    for line in atr.drift:
        report.say(f"ATR answer: field left out: {line}")
    try:
        document = await atr.openapi()
    except errors.NotFoundError:
        report.say(f"ATR {OPENAPI_PATH}: not served; the schemas were not compared")
        return report
    except errors.AtrError as exc:
        report.say(f"ATR {OPENAPI_PATH}: {exc}; the schemas were not compared")
        return report
    differences = drift(contract.definitions(), document)
    if not differences:
        report.say(f"ATR schema: no drift from atr-api-schema.json ({contract.SOURCE_COMMIT[:8]})")
    for item in differences:
        (report.fail if item.severity == "problem" else report.say)(f"ATR schema: {item}")
    return report
