"""ATR's API contract as data: `atr-api-schema.json` (JSON Schema 2020-12), shipped with the package.

The file is a copy of the reference's schema, written from apache/tooling-trusted-releases at
`SOURCE_COMMIT`; README ("ATR contract") says how to refresh it. The sandbox ATR validates every
answer it sends against it, tests validate what the client sends, and `check-config --probe`
compares it with a live ATR's `/api/openapi.json`.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Mapping
from typing import Any, Final

import jsonschema

SOURCE_COMMIT: Final = "1881ebb92bdbd61ec141ec8a31cdce41e5feedf0"
SOURCE_DATE: Final = "2026-10-05"
FILE_NAME: Final = "atr-api-schema.json"

# Which definition describes each answer (path template → 2xx body definition), reference/atr.md §10.5.
RESPONSES: Final[Mapping[str, str]] = {
    "/api/jwt/create": "JwtCreateResults",
    "/api/releases/list": "ReleasesListResults",
    "/api/release/get": "ReleaseGetResults",
    "/api/project/get": "ProjectGetResults",
    "/api/policy/get": "PolicyGetResults",
    "/api/committee/get": "CommitteeGetResults",
    "/api/vote/tabulate": "VoteTabulateResults",
    "/api/vote/resolve": "VoteResolveResults",
    "/api/vote/cast": "VoteCastResults",
}
REQUESTS: Final[Mapping[str, str]] = {
    "/api/jwt/create": "JwtCreateArgs",
    "/api/vote/tabulate": "VoteTabulateArgs",
    "/api/vote/resolve": "VoteResolveArgs",
    "/api/vote/cast": "VoteCastArgs",
}
ERROR_BODY: Final = "ErrorBody"


class SchemaViolationError(Exception):
    """A body that disagrees with the schema; the message names the definition and the JSON path."""


@functools.cache
def document() -> dict[str, Any]:
    """The whole schema document."""
    text = importlib.resources.files("watcher.atr").joinpath(FILE_NAME).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def definitions() -> dict[str, Any]:
    """The `$defs` by name."""
    defs: dict[str, Any] = document()["$defs"]
    return defs


def subschema(name: str) -> dict[str, Any]:
    """A self-contained schema for one definition (its references resolve within the document)."""
    if name not in definitions():
        raise KeyError(f"no definition {name!r} in {FILE_NAME}")
    return {"$schema": document()["$schema"], "$ref": f"#/$defs/{name}", "$defs": definitions()}


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(subschema(name))


def violations(name: str, instance: object) -> list[str]:
    """Every disagreement of `instance` with definition `name`, as "JSON path: message"."""
    found = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message[:200]}" for e in found]


def check(name: str, instance: object) -> None:
    """Raise `SchemaViolationError` when `instance` disagrees with definition `name`."""
    found = violations(name, instance)
    if found:
        raise SchemaViolationError(f"{name}: " + "; ".join(found[:5]))


def response_definition(path: str) -> str | None:
    """The 2xx body definition of an API path (`/api/release/get/p/v` → `ReleaseGetResults`)."""
    for prefix, name in RESPONSES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return name
    return None
