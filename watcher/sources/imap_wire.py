"""Reading aioimaplib's raw response lines, and building IMAP arguments (pure: no I/O).

aioimaplib hands back each response as a list: untagged lines as `bytes` with the leading
`* ` (and, for SEARCH, the word `SEARCH`) removed, literals as `bytearray`, and the text of the
tagged status line last. These functions turn those lists into values.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Final

Line = bytes | bytearray

_FETCH_START_RE: Final = re.compile(rb"^\d+ FETCH \(")
_UID_RE: Final = re.compile(rb"\bUID (\d+)")
# `BODY[] {n}`, or `BODY[]<0> {n}` for a partial fetch.
_BODY_LITERAL_RE: Final = re.compile(rb"BODY\[\](?:<\d+>)? \{(\d+)\}$")
_UIDVALIDITY_RE: Final = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT_RE: Final = re.compile(rb"\[UIDNEXT (\d+)\]")
_EXISTS_RE: Final = re.compile(rb"^\d+ EXISTS$")
_SEARCH_RE: Final = re.compile(rb"^[\d ]*$")
_MAILBOX_SAFE_RE: Final = re.compile(r"^[A-Za-z0-9._/-]+$")


class ImapProtocolError(Exception):
    """The server's answer lacks something the protocol promises (a server bug, or a proxy in the way)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Selected:
    """What SELECT reported about a folder."""

    uidvalidity: int
    uidnext: int


def selected(lines: Sequence[Line]) -> Selected:
    """UIDVALIDITY and UIDNEXT from a SELECT response (UIDNEXT 0 when the server omits it)."""
    validity = _first_int(_UIDVALIDITY_RE, lines)
    if validity is None:
        raise ImapProtocolError("SELECT response has no UIDVALIDITY")
    return Selected(uidvalidity=validity, uidnext=_first_int(_UIDNEXT_RE, lines) or 0)


def search_uids(lines: Sequence[Line]) -> list[int]:
    """The UIDs of a UID SEARCH response, ascending (the tagged status text, last, is skipped)."""
    uids: set[int] = set()
    for line in lines[:-1]:
        if isinstance(line, bytearray) or not _SEARCH_RE.match(line):
            continue
        uids.update(int(word) for word in line.split())
    return sorted(uids)


def fetched_bodies(lines: Sequence[Line]) -> list[tuple[int, bytes]]:
    """(UID, raw message) pairs of a `UID FETCH (UID BODY.PEEK[])` response, by ascending UID.

    A record is `N FETCH (... BODY[] {size}`, then the literal (a bytearray), then the rest of
    the record (`)` or, with some servers, ` UID n)`). Records without a body (unsolicited
    flag updates) are skipped.
    """
    found: dict[int, bytes] = {}
    uid: int | None = None
    body: bytes | None = None
    expect_body = False
    for line in lines:
        if isinstance(line, bytearray):
            if expect_body:
                body = bytes(line)
            expect_body = False
            continue
        if _FETCH_START_RE.match(line):
            _keep(found, uid, body)
            uid, body = None, None
        uid_match = _UID_RE.search(line)
        if uid_match:
            uid = int(uid_match.group(1))
        expect_body = _BODY_LITERAL_RE.search(line) is not None
    _keep(found, uid, body)
    return sorted(found.items())


def has_exists(lines: Iterable[Line]) -> bool:
    """Whether untagged lines include `n EXISTS` (new mail, or the count after a change)."""
    return any(isinstance(line, bytes) and _EXISTS_RE.match(line) for line in lines)


def has_bye(lines: Iterable[Line]) -> bool:
    """Whether the server said BYE (it is about to close the connection)."""
    return any(isinstance(line, bytes) and line.startswith(b"BYE") for line in lines)


def uid_set(uids: Iterable[int]) -> str:
    """A compact IMAP sequence set of UIDs: `1:3,7,9:10`."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an IMAP sequence set needs at least one UID")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(_range(start, prev))
        start = prev = uid
    parts.append(_range(start, prev))
    return ",".join(parts)


def batches(uids: Sequence[int], size: int) -> list[list[int]]:
    """UIDs cut into lists of at most `size`, in order."""
    return [list(uids[i : i + size]) for i in range(0, len(uids), size)]


def mailbox_argument(name: str) -> str:
    """A folder name as a command argument: an atom when safe, else a quoted string."""
    if _MAILBOX_SAFE_RE.match(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quoted(value: str) -> str:
    """An IMAP quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _range(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}:{end}"


def _first_int(pattern: re.Pattern[bytes], lines: Iterable[Line]) -> int | None:
    for line in lines:
        found = pattern.search(line)
        if found:
            return int(found.group(1))
    return None


def _keep(found: dict[int, bytes], uid: int | None, body: bytes | None) -> None:
    if uid is not None and body is not None:
        found[uid] = body
