"""A message's digest to and from the JSON kept beside its bytes (`messages.reading`)."""

from __future__ import annotations

import json
from typing import Final

import pydantic

import watcher.core.digest as digest

_ADAPTER: Final = pydantic.TypeAdapter(digest.Digest)


def encode(read: digest.Digest) -> str:
    """The digest as JSON text."""
    # ASCII JSON: mail text may hold NUL or lone surrogates, which PostgreSQL text refuses as such.
    return json.dumps(_ADAPTER.dump_python(read, mode="json"), ensure_ascii=True)


def decode(text: str | None) -> digest.Digest | None:
    """The digest stored as `text`; None when there is none or it no longer fits (it is read again once)."""
    if not text:
        return None
    try:
        return _ADAPTER.validate_python(json.loads(text))
    except (ValueError, pydantic.ValidationError):
        return None
