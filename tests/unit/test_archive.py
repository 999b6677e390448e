"""Reading mbox, Maildir and .eml archives as raw messages, in archive order."""

from __future__ import annotations

import mailbox
import os
import pathlib
import re
import tracemalloc

import pytest

import watcher.core.message as message
import watcher.sources.archive as archive

SEPARATOR = b"From jane@example.org Wed Nov 01 06:04:53 2017\n"


def msg(number: int, body: bytes = b"body\n", date: str | None = "Wed, 01 Nov 2017 06:04:53 +0000") -> bytes:
    headers = [b"From: Jane <jane@example.org>", f"Message-ID: <m{number}@example.org>".encode()]
    if date is not None:
        headers.append(f"Date: {date}".encode())
    headers.append(f"Subject: message {number}".encode())
    return b"\n".join(headers) + b"\n\n" + body


def mbox_of(*messages: bytes) -> bytes:
    return b"".join(SEPARATOR + m + b"\n" for m in messages)


def write(path: pathlib.Path, data: bytes) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- mbox -------------------------------------------------------------------------------------


def test_mbox_messages_come_out_whole_in_file_order_without_separators(tmp_path: pathlib.Path) -> None:
    messages = [msg(1), msg(2, b"line one\n\nline three\n"), msg(3)]
    path = write(tmp_path / "list.mbox", mbox_of(*messages))
    assert list(archive.iter_raw(path)) == messages
    assert archive.count_messages(path) == 3


@pytest.mark.parametrize(
    ("written", "mboxrd", "mboxo"),
    [
        (b">From the start\n", b"From the start\n", b">From the start\n"),
        (b">>From a quote\n", b">From a quote\n", b">>From a quote\n"),
        (b">>>From deeper\n", b">>From deeper\n", b">>>From deeper\n"),
        (b"> From a quote with a space\n", b"> From a quote with a space\n", b"> From a quote with a space\n"),
        (b">Fromage\n", b">Fromage\n", b">Fromage\n"),
        (b"x >From inside a line\n", b"x >From inside a line\n", b"x >From inside a line\n"),
    ],
)
def test_mboxrd_unescapes_only_from_lines_and_mboxo_keeps_them(
    tmp_path: pathlib.Path, written: bytes, mboxrd: bytes, mboxo: bytes
) -> None:
    path = write(tmp_path / "list.mbox", mbox_of(msg(1, b"before\n" + written + b"after\n")))
    assert list(archive.iter_raw(path)) == [msg(1, b"before\n" + mboxrd + b"after\n")]
    assert list(archive.iter_raw(path, mbox_format="mboxo")) == [msg(1, b"before\n" + mboxo + b"after\n")]


def test_unescaped_from_lines_of_mboxo_bodies_do_not_split_a_message(tmp_path: pathlib.Path) -> None:
    body = b"From my perspective this is fine.\nFrom here on, no date or time.\nFrom: a quoted header\n"
    path = write(tmp_path / "plain.mbox", mbox_of(msg(1, body), msg(2)))
    assert list(archive.iter_raw(path, mbox_format="mboxo")) == [msg(1, body), msg(2)]
    assert archive.count_messages(path) == 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"From dev-return-1@maven.apache.org Wed Nov 01 06:04:53 2017\n", True),
        (b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\r\n", True),
        (b"From - Tue Nov 28 10:20:48 2017\n", True),
        (b"From jane at example.org  Tue Nov 28 10:20:48 2017\n", True),
        (b"From 1234abcd Mon Sep 17 00:00:00 2001\n", True),
        (b"From my perspective\n", False),
        (b"From: Jane <jane@example.org>\n", False),
        (b">From x Wed Nov 01 06:04:53 2017\n", False),
        (b"from x Wed Nov 01 06:04:53 2017\n", False),
    ],
)
def test_separator_lines(line: bytes, expected: bool) -> None:
    assert archive.is_separator(line) is expected


def test_crlf_mbox_is_split_and_bytes_kept(tmp_path: pathlib.Path) -> None:
    first = msg(1).replace(b"\n", b"\r\n")
    second = msg(2).replace(b"\n", b"\r\n")
    sep = SEPARATOR.replace(b"\n", b"\r\n")
    path = write(tmp_path / "crlf.mbox", sep + first + b"\r\n" + sep + second + b"\r\n")
    assert list(archive.iter_raw(path)) == [first, second]


def test_last_message_without_trailing_blank_line_is_kept(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "cut.mbox", SEPARATOR + msg(1) + b"\n" + SEPARATOR + b"Subject: cut short")
    assert list(archive.iter_raw(path)) == [msg(1), b"Subject: cut short"]


def test_empty_file_is_an_empty_mailbox(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "empty.mbox", b"")
    assert list(archive.iter_raw(path)) == []
    assert archive.count_messages(path) == 0


def test_split_mbox_keeps_text_found_before_the_first_separator() -> None:
    lines = [b"\n", b"Subject: stray\n", b"\n", b"text\n", SEPARATOR, b"Subject: next\n"]
    assert list(archive.split_mbox(lines)) == [b"Subject: stray\n\ntext\n", b"Subject: next\n"]


def test_corpus_stream_matches_stdlib_mailbox_after_unescaping(corpus_dir: pathlib.Path) -> None:
    path = corpus_dir / "stream" / "maven-dev-2017-11-listsao.mbox"
    ours = list(archive.iter_raw(path))
    box = mailbox.mbox(str(path))
    # The stdlib reads mboxo-style (no unescaping); apply mboxrd's rule to its output to compare.
    theirs = [re.sub(rb"(?m)^>(>*From )", rb"\1", box.get_bytes(key)) for key in box.iterkeys()]
    assert len(ours) == 320
    assert ours == theirs
    assert archive.count_messages(path) == 320
    unescaped = [raw for raw in ours if b"\nFrom my perspective" in raw]
    assert len(unescaped) == 2


def test_mbox_is_streamed_not_loaded(tmp_path: pathlib.Path) -> None:
    one = mbox_of(msg(1, b"x" * 70 + b"\n") * 1)
    path = tmp_path / "big.mbox"
    copies = 30_000_000 // len(one)
    with path.open("wb") as handle:
        for _ in range(copies // 1000):
            handle.write(one * 1000)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in archive.iter_raw(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == copies // 1000 * 1000
    assert size > 25_000_000
    assert peak < 1_000_000, f"peak {peak} bytes while reading a {size}-byte mbox"


# --- Maildir ----------------------------------------------------------------------------------


def test_maildir_reads_cur_and_new_ordered_by_date_then_name(tmp_path: pathlib.Path) -> None:
    box = tmp_path / "Maildir"
    (box / "tmp").mkdir(parents=True)
    write(box / "tmp" / "0.in-delivery", msg(99))
    write(box / "new" / "1700000003.b.host", msg(3, date="Wed, 01 Nov 2017 09:00:00 +0000"))
    write(box / "cur" / "1700000001.a.host:2,S", msg(1, date="Wed, 01 Nov 2017 10:00:00 +0200"))
    write(box / "cur" / "1700000002.z.host:2,", msg(2, date="Wed, 01 Nov 2017 08:00:00 +0000"))
    write(box / "cur" / "1700000002.a.host:2,", msg(4, date="Wed, 01 Nov 2017 08:00:00 +0000"))
    write(box / "new" / "1600000000.undated", msg(5, date=None))
    write(box / "new" / "1500000000.bad-date", msg(6, date="yesterday"))
    write(box / "cur" / ".hidden", msg(7))
    got = [message.peek(raw).message_id for raw in archive.iter_raw(box)]
    # 10:00 +0200 is 08:00 UTC, the same instant as m2 and m4: the file name decides among them.
    # Messages without a usable Date come last, by name.
    assert got == [f"m{n}@example.org" for n in (1, 4, 2, 3, 6, 5)]
    assert archive.count_messages(box) == 6


def test_maildir_with_only_new_is_a_maildir(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "box" / "new" / "1", msg(1))
    assert list(archive.iter_raw(tmp_path / "box")) == [msg(1)]


def test_maildir_file_keeping_an_mbox_separator_line_is_read_without_it(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "box" / "cur" / "1", SEPARATOR + msg(1))
    assert list(archive.iter_raw(tmp_path / "box")) == [msg(1)]


def test_maildir_file_that_is_not_mail_is_named(tmp_path: pathlib.Path) -> None:
    bad = write(tmp_path / "box" / "cur" / "2", b"\x00\x01 binary junk")
    write(tmp_path / "box" / "cur" / "1", msg(1))
    with pytest.raises(archive.ArchiveError, match=re.escape(str(bad))):
        list(archive.iter_raw(tmp_path / "box"))


# --- .eml -------------------------------------------------------------------------------------


def test_eml_file_is_one_message_with_its_bytes_untouched(tmp_path: pathlib.Path) -> None:
    raw = msg(1, b">From stays as written in an .eml\n").replace(b"\n", b"\r\n")
    path = write(tmp_path / "one.eml", raw)
    assert list(archive.iter_raw(path)) == [raw]
    assert archive.count_messages(path) == 1


def test_headers_only_message_without_final_newline(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "short.eml", b"Subject: hi\nFrom: a@b.c")
    assert list(archive.iter_raw(path)) == [b"Subject: hi\nFrom: a@b.c"]


def test_a_file_of_rfc822_without_eml_suffix_is_one_message(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "message.txt", b"Received: from x\n\tby y\n" + msg(1))
    assert list(archive.iter_raw(path)) == [b"Received: from x\n\tby y\n" + msg(1)]


def test_directory_of_eml_files_is_read_by_name(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "b.eml", msg(2))
    write(tmp_path / "a.EML", msg(1))
    write(tmp_path / "c.eml", msg(3))
    write(tmp_path / "notes.txt", b"not mail")
    (tmp_path / "d.eml").mkdir()
    assert list(archive.iter_raw(tmp_path)) == [msg(1), msg(2), msg(3)]
    assert archive.count_messages(tmp_path) == 3


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.txt", b"Dear diary,\ntoday I wrote no mail.\n", "not mail"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not mail"),
        ("prose.mbox", b"From here on it is prose.\n", "not mail"),
        ("fake.eml", b"Note: header-like but no mail field\n\nbody\n", "not mail"),
    ],
)
def test_a_file_that_is_not_mail_is_refused_with_its_path(
    tmp_path: pathlib.Path, name: str, data: bytes, reason: str
) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(archive.ArchiveError, match=re.escape(f"{path}: {reason}")):
        archive.iter_raw(path)
    with pytest.raises(archive.ArchiveError):
        archive.count_messages(path)


def test_missing_path_is_refused_when_iter_raw_is_called(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.mbox"
    with pytest.raises(archive.ArchiveError, match=re.escape(f"{missing}: no such file or directory")):
        archive.iter_raw(missing)


def test_directory_without_mail_is_refused(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "readme.txt", b"hello")
    with pytest.raises(archive.ArchiveError, match="neither a Maildir"):
        archive.iter_raw(tmp_path)


def test_special_file_is_refused(tmp_path: pathlib.Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(archive.ArchiveError, match="not a regular file"):
        archive.iter_raw(fifo)


def test_iter_sources_reads_in_order_and_checks_every_path_first(tmp_path: pathlib.Path) -> None:
    first = write(tmp_path / "a.mbox", mbox_of(msg(1), msg(2)))
    second = write(tmp_path / "b.eml", msg(3))
    assert list(archive.iter_sources([second, first])) == [msg(3), msg(1), msg(2)]
    with pytest.raises(archive.ArchiveError, match="missing"):
        archive.iter_sources([first, tmp_path / "missing"])


# --- huge messages: cut as they are read ----------------------------------------------------------


def test_a_line_longer_than_a_piece_stays_one_line_even_when_a_piece_looks_like_a_separator(
    tmp_path: pathlib.Path,
) -> None:
    # The second piece of the long line starts with a separator's text: it is not a separator.
    long_line = b"x" * archive.LINE_PIECE + SEPARATOR.rstrip(b"\n") + b" tail\n"
    messages = [msg(1, b"+1\n" + long_line), msg(2)]
    path = write(tmp_path / "list.mbox", mbox_of(*messages))
    assert list(archive.iter_raw(path)) == messages


def test_keep_bytes_cuts_each_mbox_message_and_leaves_the_others_whole(tmp_path: pathlib.Path) -> None:
    huge = msg(1, b"+1\n" + b"x" * 3 * archive.LINE_PIECE + b"\n")
    path = write(tmp_path / "list.mbox", mbox_of(huge, msg(2)))
    read = list(archive.iter_raw(path, keep_bytes=1001))
    assert read == [huge[:1001], msg(2)]


def test_keep_bytes_cuts_a_maildir_or_eml_file(tmp_path: pathlib.Path) -> None:
    huge = msg(1, b"+1\n" + b"x" * 5_000_000 + b"\n")
    path = write(tmp_path / "huge.eml", SEPARATOR + huge)
    assert list(archive.iter_raw(path, keep_bytes=1001)) == [huge[:1001]]


def test_a_huge_mbox_message_is_never_held_whole(tmp_path: pathlib.Path) -> None:
    huge = msg(1, b"+1\n" + b"x" * 20_000_000 + b"\n")
    path = write(tmp_path / "list.mbox", mbox_of(huge))
    del huge
    tracemalloc.start()
    try:
        read = list(archive.iter_raw(path, keep_bytes=2_000_001))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [len(raw) for raw in read] == [2_000_001]
    # The cut message, one piece of a line and their copies: far below the 20 MB line.
    assert peak < 8 * 1024 * 1024
