"""Where a source has got to, so that a restart resumes instead of re-reading everything."""

from __future__ import annotations

import dataclasses
from typing import Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    """A source's position: IMAP UIDVALIDITY and last UID, or an archive's last-seen epoch."""

    validity: int = 0
    position: int = 0


class CursorStore(Protocol):
    """Persists cursors by (source, folder); the state store implements it."""

    async def get_cursor(self, source: str, folder: str) -> Cursor | None:
        """The saved cursor, or None before the first run."""
        ...

    async def set_cursor(self, source: str, folder: str, cursor: Cursor) -> None:
        """Save a cursor (after the messages up to it were handed on)."""
        ...


@dataclasses.dataclass
class MemoryCursorStore:
    """Cursors kept in memory, for one-shot runs and tests of sources."""

    cursors: dict[tuple[str, str], Cursor] = dataclasses.field(default_factory=dict)

    async def get_cursor(self, source: str, folder: str) -> Cursor | None:
        """The saved cursor, or None."""
        return self.cursors.get((source, folder))

    async def set_cursor(self, source: str, folder: str, cursor: Cursor) -> None:
        """Save a cursor."""
        self.cursors[(source, folder)] = cursor
