"""Local mail archives (mbox, Maildir, .eml) read as raw message bytes, in archive order.

Reading streams: an mbox is read line by line and split on its `From ` separator lines, so
memory stays bounded by the largest message, not by the file. What is read and in which order:

- mbox: messages in file order, without their separator line and the blank line that ends
  each message. A separator is a line starting `From ` that also carries a time and a year
  (`From sender Wed Nov 01 06:04:53 2017`); that second test keeps the plain `From ` lines that
  mboxo files leave unescaped in bodies from splitting a message. With `mbox_format="mboxrd"`
  (the default) lines matching `^>+From ` lose one `>`; with `"mboxo"` lines are kept as
  written, because there a `>From ` may be an escape or a real quote and nothing tells which.
- Maildir (a directory with `cur/` or `new/`): the files of both, ordered by their Date header
  and then by file name. A Maildir has no order of its own; Date is the order people read a
  list in, and the name (which begins with the delivery time) breaks ties. Messages without a
  usable Date come last, by name.
- a directory of `.eml` files: those files, sorted by name.
- any other file: an mbox if its first line is a separator, else one RFC 822 message if it
  starts with header lines. An empty file is an empty mailbox.
"""

from __future__ import annotations

import datetime
import itertools
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, Final, Literal

import watcher.core.message as message

MboxFormat = Literal["mboxrd", "mboxo"]
Kind = Literal["mbox", "maildir", "eml", "eml-dir"]
OnUnreadable = Callable[[pathlib.Path, str], None]
"""Told of a Maildir or .eml file that cannot be read (its path and why); it is skipped."""
_FileLister = Callable[[pathlib.Path], list[pathlib.Path]]

_SNIFF_BYTES: Final = 64 * 1024
# The longest piece of one mbox line held at once (a longer line is read in pieces).
LINE_PIECE: Final = 1024 * 1024
_HEADER_BYTES_MAX: Final = 256 * 1024
_SEPARATOR_TIME: Final = re.compile(rb"\d{1,2}:\d{2}")
_SEPARATOR_YEAR: Final = re.compile(rb"(?<!\d)(?:19|20)\d\d(?!\d)")
_ESCAPED_FROM: Final = re.compile(rb">+From ")
_HEADER_LINE: Final = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_KNOWN_HEADERS: Final = frozenset(
    {
        b"from",
        b"to",
        b"cc",
        b"date",
        b"subject",
        b"message-id",
        b"received",
        b"return-path",
        b"delivered-to",
        b"mime-version",
        b"in-reply-to",
        b"references",
        b"list-id",
        b"sender",
        b"reply-to",
        b"content-type",
    }
)
_LATER_THAN_ANY_DATE: Final = datetime.datetime.max.replace(tzinfo=datetime.UTC)


class ArchiveError(Exception):
    """An archive that cannot be read; the message names the path and the reason."""


def iter_raw(
    path: pathlib.Path,
    *,
    mbox_format: MboxFormat = "mboxrd",
    on_unreadable: OnUnreadable | None = None,
    keep_bytes: int | None = None,
) -> Iterator[bytes]:
    """Every message of one mbox, Maildir, .eml directory or .eml file, as raw bytes.

    The path is checked now (ArchiveError if it is missing, unreadable or not mail); the
    messages are read as the iterator is consumed. With `on_unreadable`, a file of a Maildir or
    .eml folder that cannot be read (not mail, permission denied, gone) is reported to it and
    skipped, so one broken file never blocks the ones after it; without, it raises ArchiveError.
    With `keep_bytes`, a message is cut after that many bytes as it is read (the daemon keeps one byte
    more than its size limit, so the intake flags it too large), so a huge message never sits in memory.
    """
    kind = detect(path)
    if kind == "mbox":
        return _iter_mbox(path, mbox_format, keep_bytes)
    if kind == "maildir":
        return _iter_files(path, _maildir_files, on_unreadable, keep_bytes)
    if kind == "eml-dir":
        return _iter_files(path, _eml_files, on_unreadable, keep_bytes)
    return _iter_files(path, lambda _: [path], keep_bytes=keep_bytes)


def iter_sources(paths: Sequence[pathlib.Path], *, mbox_format: MboxFormat = "mboxrd") -> Iterator[bytes]:
    """Every message of every source, source by source in the given order.

    All paths are checked before the first message is read, so a typo fails fast.
    """
    readers = [iter_raw(path, mbox_format=mbox_format) for path in paths]
    return itertools.chain.from_iterable(readers)


def count_messages(path: pathlib.Path) -> int:
    """How many messages `iter_raw` will yield, without parsing them (for progress bars)."""
    kind = detect(path)
    if kind == "eml":
        return 1
    if kind == "maildir":
        return len(_maildir_names(path))
    if kind == "eml-dir":
        return len(_eml_files(path))
    try:
        with path.open("rb") as handle:
            return _count_separators(_pieces(handle))
    except OSError as exc:
        raise _error(path, exc) from exc


def _count_separators(pieces: Iterable[bytes]) -> int:
    count = 0
    at_line_start = True
    for piece in pieces:
        count += at_line_start and is_separator(piece)
        at_line_start = piece.endswith(b"\n")
    return count


def detect(path: pathlib.Path) -> Kind:
    """What kind of archive a path is; ArchiveError when it is none."""
    try:
        if path.is_dir():
            return _detect_directory(path)
        if not path.exists():
            raise ArchiveError(f"{path}: no such file or directory")
        if not path.is_file():
            raise ArchiveError(f"{path}: not a regular file or directory")
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise _error(path, exc) from exc
    return _detect_file(path, head)


def is_separator(line: bytes) -> bool:
    """Whether an mbox line is a `From ` separator (it must carry a time and a year)."""
    if not line.startswith(b"From "):
        return False
    return bool(_SEPARATOR_TIME.search(line)) and bool(_SEPARATOR_YEAR.search(line))


def split_mbox(
    lines: Iterable[bytes], *, mbox_format: MboxFormat = "mboxrd", keep_bytes: int | None = None
) -> Iterator[bytes]:
    """Split mbox lines (with their line endings) into raw messages; pure, streaming.

    A piece that does not end a line (a long line read in chunks) makes the next piece a continuation:
    only a piece at the start of a line can be a separator or an escaped From. With `keep_bytes`, each
    message keeps at most that many bytes.
    """
    unescape = mbox_format == "mboxrd"
    # A bytearray, not a list of lines: a 50 MB message of short lines would cost 600 MB as a list.
    current: bytearray | None = None
    last = b""
    at_line_start = True
    for line in lines:
        starts = at_line_start
        at_line_start = line.endswith(b"\n")
        if starts and is_separator(line):
            if current is not None:
                yield _finish(current, last)
            current = bytearray()
            continue
        if current is None:
            if not line.strip():
                continue
            # Text before the first separator (a file that changed since it was sniffed) is
            # still mail someone may need: keep it as a message rather than drop it.
            current = bytearray()
        escaped = starts and unescape and line.startswith(b">") and _ESCAPED_FROM.match(line) is not None
        last = line[1:] if escaped else line
        if keep_bytes is None or len(current) + len(last) <= keep_bytes:
            current += last
            continue
        current += last[: max(0, keep_bytes - len(current))]
        last = b""  # cut: there is no trailing blank line of the writer's to take off
    if current is not None:
        yield _finish(current, last)


def looks_like_message(head: bytes) -> bool:
    """Whether bytes start like an RFC 822 message: header lines, one of them a known field."""
    known = False
    lines = head.split(b"\n")
    complete = lines[:-1] if len(lines) > 1 else lines
    for index, raw_line in enumerate(complete):
        line = raw_line.rstrip(b"\r")
        if not line:
            return index > 0 and known
        if line[:1] in (b" ", b"\t"):
            if index == 0:
                return False
            continue
        field = _HEADER_LINE.match(line)
        if field is None:
            return False
        known = known or field.group(0).rstrip(b": \t").lower() in _KNOWN_HEADERS
    return known


def _detect_directory(path: pathlib.Path) -> Kind:
    if (path / "cur").is_dir() or (path / "new").is_dir():
        return "maildir"
    if _eml_files(path):
        return "eml-dir"
    raise ArchiveError(f"{path}: directory is neither a Maildir (no cur/ or new/) nor a folder of .eml files")


def _detect_file(path: pathlib.Path, head: bytes) -> Kind:
    if not head.strip():
        return "mbox"
    first_line = head.lstrip(b"\r\n").split(b"\n", 1)[0]
    if is_separator(first_line):
        return "mbox"
    if looks_like_message(head):
        return "eml"
    raise ArchiveError(
        f"{path}: not mail: neither an mbox (first line is not a 'From ' separator) "
        "nor an RFC 822 message (it does not start with header fields)"
    )


def _finish(message: bytearray, last: bytes) -> bytes:
    # Every mbox writer ends a message with one blank line before the next separator.
    if message and last in (b"\n", b"\r\n"):
        del message[-len(last) :]
    return bytes(message)


def _iter_mbox(path: pathlib.Path, mbox_format: MboxFormat, keep_bytes: int | None = None) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            yield from split_mbox(_pieces(handle), mbox_format=mbox_format, keep_bytes=keep_bytes)
    except OSError as exc:
        raise _error(path, exc) from exc


def _pieces(handle: BinaryIO) -> Iterator[bytes]:
    """The file's lines, a line longer than LINE_PIECE in pieces (one 50 MB line is never one object)."""
    while piece := handle.readline(LINE_PIECE):
        yield piece


def _iter_files(
    root: pathlib.Path,
    list_files: _FileLister,
    on_unreadable: OnUnreadable | None = None,
    keep_bytes: int | None = None,
) -> Iterator[bytes]:
    try:
        files = list_files(root)
    except OSError as exc:
        raise _error(root, exc) from exc
    for file in files:
        try:
            raw = _read_message_file(file, keep_bytes)
        except ArchiveError as exc:
            if on_unreadable is None:
                raise
            on_unreadable(file, str(exc).removeprefix(f"{file}: "))
            continue
        yield raw


def _read_message_file(path: pathlib.Path, keep_bytes: int | None = None) -> bytes:
    try:
        with path.open("rb") as handle:
            # One line more than kept: a separator line kept by a converter is cut off below.
            raw = handle.read() if keep_bytes is None else handle.read(keep_bytes + LINE_PIECE)
    except OSError as exc:
        raise _error(path, exc) from exc
    newline = raw.find(b"\n")
    # Not partition(): its tail is a copy of the whole message, made even when it is not needed.
    if newline >= 0 and is_separator(raw[:newline]):
        # Some tools that convert mbox to Maildir keep the separator line; it is not mail.
        raw = raw[newline + 1 :]
    if not looks_like_message(raw[:_SNIFF_BYTES]):
        raise ArchiveError(f"{path}: not an RFC 822 message (it does not start with header fields)")
    if keep_bytes is not None and len(raw) > keep_bytes:
        raw = raw[:keep_bytes]
    return raw


def _eml_files(directory: pathlib.Path) -> list[pathlib.Path]:
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise _error(directory, exc) from exc
    return [entry for entry in entries if entry.suffix.lower() == ".eml" and entry.is_file()]


def _maildir_names(maildir: pathlib.Path) -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    for sub in ("cur", "new"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise _error(folder, exc) from exc
        # Dot files are the MUA's own bookkeeping, not mail (Maildir spec).
        files += [pathlib.Path(e.path) for e in entries if not e.name.startswith(".") and e.is_file()]
    return files


def _maildir_files(maildir: pathlib.Path) -> list[pathlib.Path]:
    keyed = [(_maildir_sort_key(file), file) for file in _maildir_names(maildir)]
    keyed.sort(key=lambda pair: pair[0])
    return [file for _, file in keyed]


def _maildir_sort_key(file: pathlib.Path) -> tuple[datetime.datetime, str]:
    try:
        date = message.peek(_read_header_block(file)).date
    except ArchiveError:
        # Unreadable now: it sorts last, and reading it says why (or finds it readable by then).
        date = None
    return (date or _LATER_THAN_ANY_DATE, file.name)


def _read_header_block(file: pathlib.Path) -> bytes:
    """The bytes up to the first blank line (bounded), enough to read the Date."""
    chunks: list[bytes] = []
    size = 0
    try:
        with file.open("rb") as handle:
            for line in handle:
                if not line.strip() or size > _HEADER_BYTES_MAX:
                    break
                chunks.append(line)
                size += len(line)
    except OSError as exc:
        raise _error(file, exc) from exc
    return b"".join(chunks)


def _error(path: pathlib.Path, exc: OSError) -> ArchiveError:
    return ArchiveError(f"{path}: {exc.strerror or type(exc).__name__}")
