"""Hypothesis strategies for instances of a JSON Schema, for the subset atr-api-schema.json uses.

hypothesis-jsonschema would do this, but 0.23.1 (its newest) fails on the Hypothesis this project
pins (`'many' object has no attribute 'more'`), so this covers the keywords the schema has: type
(one or a list), const, enum, anyOf, $ref, properties, required, additionalProperties, items,
minItems, maxItems, pattern, and the formats date-time and email. Instances validate against the
schema (the contract tests check that too).
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import strategies as st

_JSON_SCALAR = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=8)
JSON = st.recursive(
    _JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_DATETIMES = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1), timezones=st.just(datetime.UTC)
).map(lambda d: d.isoformat().replace("+00:00", "Z"))
_EMAILS = st.from_regex(r"[a-z][a-z0-9.-]{0,10}@[a-z][a-z0-9-]{0,10}\.apache\.org", fullmatch=True)


def instances(document: dict[str, Any], node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Instances of `node`, whose `$ref`s point into `document`'s `$defs`."""
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        return st.deferred(lambda: instances(document, document["$defs"][name]))
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "anyOf" in node:
        return st.one_of([instances(document, option) for option in node["anyOf"]])
    kinds = node.get("type")
    if kinds is None:
        return JSON
    if isinstance(kinds, list):
        return st.one_of([instances(document, node | {"type": kind}) for kind in kinds])
    return _typed(document, node, kinds)


def _typed(document: dict[str, Any], node: dict[str, Any], kind: str) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(-(2**31), 2**31)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "string":
        return _string(node)
    if kind == "array":
        items = instances(document, node.get("items", {}))
        return st.lists(items, min_size=node.get("minItems", 0), max_size=node.get("maxItems", 3))
    if kind == "object":
        return _object(document, node)
    raise ValueError(f"type {kind!r} is not covered")


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    if node.get("format") == "date-time":
        return _DATETIMES
    if node.get("format") == "email":
        return _EMAILS
    if "pattern" in node:
        return st.from_regex(node["pattern"])
    return st.text(max_size=12)


def _object(document: dict[str, Any], node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", []))
    fixed = {name: instances(document, properties[name]) for name in properties if name in required}
    optional = {name: instances(document, properties[name]) for name in properties if name not in required}
    base = st.fixed_dictionaries(fixed, optional=optional)
    extra = node.get("additionalProperties", True)
    if extra is False:
        return base
    values = JSON if extra is True else instances(document, extra)
    # Fields ATR may add later: names the schema does not list.
    names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
        lambda name: name not in properties
    )
    extras = st.dictionaries(names, values, max_size=2)
    return st.tuples(base, extras).map(lambda pair: pair[1] | pair[0])
