"""Local mbox files and Maildirs as daemon sources: read from where the last read stopped.

An mbox only grows, so its cursor is the count of messages already taken. The count is only
meaningful for the same file: the cursor's `validity` is the file's identity (device, inode and
the head of its first message). A rotated, replaced or truncated file gets
a new identity, or fewer messages than the count, and is read from its start with a warning;
the store keeps each message once, so nothing is doubled and nothing is skipped.

A Maildir is read whole at every turn (the store keeps each message once). A file in it that
cannot be read is logged with its path and reason (once while it stays so) and skipped; the
messages after it are taken all the same.

The cursor moves only past messages the intake took: a store error (disk full, database gone)
stops the read there, and the next read starts again from the last message stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pathlib
from collections.abc import Awaitable, Callable
from typing import BinaryIO, Final

import structlog

import watcher.sources.archive as archive
import watcher.sources.cursor as cursor
import watcher.store.records as records

log = structlog.get_logger("watcher.sources.files")

FOLDER: Final = ""
BATCH: Final = 500
_HEAD_BYTES: Final = 4096
# 56 bits: a positive value in the store's signed 64-bit column.
_IDENTITY_BYTES: Final = 7

Take = Callable[[bytes, str], Awaitable[bool]]


def identity(path: pathlib.Path) -> int:
    """The file's identity for its cursor: device, inode and the head of its first message, hashed.

    The head (up to 4 KiB, ending before the second separator) does not change as the file grows;
    a freed inode is soon reused and mbox writers stamp the separator with the current time only,
    so neither alone tells a new file from the old one. 0 for an empty file.
    """
    try:
        status = path.stat()
        with path.open("rb") as handle:
            head = _first_message_head(handle)
    except OSError as exc:
        raise archive.ArchiveError(f"{path}: {exc.strerror or type(exc).__name__}") from exc
    if not head:
        return 0
    digest = hashlib.sha256(f"{status.st_dev}:{status.st_ino}:".encode() + head).digest()
    return int.from_bytes(digest[:_IDENTITY_BYTES], "big")


def _first_message_head(handle: BinaryIO) -> bytes:
    lines: list[bytes] = []
    size = 0
    # readline with a bound: a huge first line is never read whole just to hash its head.
    while line := handle.readline(_HEAD_BYTES):
        if lines and archive.is_separator(line):
            break
        lines.append(line)
        size += len(line)
        if size >= _HEAD_BYTES:
            break
    return b"".join(lines)[:_HEAD_BYTES]


class FileSource:
    """One mbox file or Maildir; `read()` hands each message not taken yet to `take(raw, name)`."""

    def __init__(
        self,
        name: str,
        path: pathlib.Path,
        is_mbox: bool,
        cursors: cursor.CursorStore,
        take: Take,
        *,
        keep_bytes: int | None = None,
    ) -> None:
        """`keep_bytes`: each message is cut after that many bytes as it is read (see archive.iter_raw)."""
        self.name = name
        self.keep_bytes = keep_bytes
        self.path = path
        self.is_mbox = is_mbox
        self._cursors = cursors
        self._take = take
        self.unreadable: dict[str, str] = {}
        """Maildir files that could not be read at the last turn: path → reason."""
        self._seen_now: dict[str, str] = {}

    async def read(self) -> int:
        """Take every message not taken yet; returns how many the source holds now."""
        if not self.is_mbox:
            return await self._read_from(0, 0)
        saved = await self._cursors.get_cursor(self.name, FOLDER)
        ident = identity(self.path)
        done = 0
        if saved is not None and saved.position > 0:
            if saved.validity == ident:
                done = saved.position
            else:
                log.warning(
                    "files.mbox_replaced",
                    source=self.name,
                    path=str(self.path),
                    read_before=saved.position,
                    action="the file was rotated or replaced: reading it from its start",
                )
        count = await self._read_from(done, ident)
        if count < done:
            log.warning(
                "files.mbox_truncated",
                source=self.name,
                path=str(self.path),
                read_before=done,
                holds=count,
                action="the file holds fewer messages than were read: reading it from its start",
            )
            count = await self._read_from(0, ident)
        return count

    async def _read_from(self, done: int, ident: int) -> int:
        self._seen_now = {}
        count = 0
        for raw in archive.iter_raw(self.path, on_unreadable=self._note_unreadable, keep_bytes=self.keep_bytes):
            count += 1
            if count <= done:
                if count % BATCH == 0:
                    await asyncio.sleep(0)  # a long skip must not hold up the other jobs
                continue
            await self._take(raw, self.name)
            if count % BATCH == 0:
                await self._cursors.set_cursor(self.name, FOLDER, records.Cursor(ident, count))
        self.unreadable = self._seen_now
        if count >= done:
            await self._cursors.set_cursor(self.name, FOLDER, records.Cursor(ident, count))
        return count

    def _note_unreadable(self, file: pathlib.Path, reason: str) -> None:
        key = os.fspath(file)
        self._seen_now[key] = reason
        if self.unreadable.get(key) == reason:
            return
        log.warning("files.message_unreadable", source=self.name, path=key, reason=reason, action="skipped")
