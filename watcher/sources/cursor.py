"""Where a source has got to, so that a restart resumes instead of re-reading everything."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import watcher.store.records as records


class CursorStore(Protocol):
    """Persists cursors by (source, folder); the state store implements it."""

    async def get_cursor(self, source: str, folder: str) -> records.Cursor | None:
        """The saved cursor, or None before the first run."""
        ...

    async def set_cursor(self, source: str, folder: str, cursor: records.Cursor) -> None:
        """Save a cursor (after the messages up to it were handed on)."""
        ...


@dataclasses.dataclass
class MemoryCursorStore:
    """Cursors kept in memory, for one-shot runs and tests of sources."""

    cursors: dict[tuple[str, str], records.Cursor] = dataclasses.field(default_factory=dict)

    async def get_cursor(self, source: str, folder: str) -> records.Cursor | None:
        """The saved cursor, or None."""
        return self.cursors.get((source, folder))

    async def set_cursor(self, source: str, folder: str, cursor: records.Cursor) -> None:
        """Save a cursor."""
        self.cursors[(source, folder)] = cursor
