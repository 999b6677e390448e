"""mbox and Maildir sources: a broken file is skipped, a rotated or truncated mbox is read again, a store error
stops the cursor at the last message stored."""

from __future__ import annotations

import email.message
import email.utils
import mailbox
import pathlib

import pytest
import structlog.testing

import watcher.sources.cursor as cursor
import watcher.sources.files as files
import watcher.store as store
import watcher.store.records as records


def mail(n: int, subject: str = "Re: [VOTE] Release foo 1.0") -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = f"voter{n} <voter{n}@apache.org>"
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(1_700_000_000 + n * 60, usegmt=True)
    msg["Message-ID"] = f"<m{n}@test.example>"
    msg.set_content(f"+1 from {n}\n")
    return msg


class Taker:
    """Takes messages like the intake; fails with a store error from message number `fail_at` on."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.fail_at: int | None = None

    async def __call__(self, raw: bytes, source: str) -> bool:
        mid = email.message_from_bytes(raw)["Message-ID"]
        if self.fail_at is not None and len(self.taken) + 1 >= self.fail_at:
            raise store.StoreUnavailableError("database write failed: OperationalError: database or disk is full")
        self.taken.append(str(mid))
        return True


def write_mbox(path: pathlib.Path, numbers: range) -> None:
    box = mailbox.mbox(str(path))
    for n in numbers:
        box.add(mail(n))
    box.flush()
    box.close()


async def test_mbox_store_error_keeps_the_cursor_at_the_last_message_stored(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dev.mbox"
    write_mbox(path, range(1, 11))
    cursors, take = cursor.MemoryCursorStore(), Taker()
    source = files.FileSource("mbox", path, True, cursors, take)
    take.fail_at = 4
    with pytest.raises(store.StoreError):
        await source.read()
    saved = await cursors.get_cursor("mbox", files.FOLDER)
    assert saved is None or saved.position <= 3
    take.fail_at = None
    assert await source.read() == 10
    # Read again from the last cursor (the store keeps each message once): none is skipped.
    assert take.taken[-7:] == [f"<m{n}@test.example>" for n in range(4, 11)]
    assert set(take.taken) == {f"<m{n}@test.example>" for n in range(1, 11)}
    assert (await cursors.get_cursor("mbox", files.FOLDER)) == records.Cursor(files.identity(path), 10)


async def test_rotated_mbox_is_read_from_its_start_with_a_warning(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dev.mbox"
    write_mbox(path, range(1, 6))
    cursors, take = cursor.MemoryCursorStore(), Taker()
    source = files.FileSource("mbox", path, True, cursors, take)
    assert await source.read() == 5
    # logrotate: the old file moves away, a new one starts with three new messages (fewer than 5).
    path.rename(tmp_path / "dev.mbox.1")
    write_mbox(path, range(6, 9))
    with structlog.testing.capture_logs() as logs:
        assert await source.read() == 3
    assert take.taken[5:] == ["<m6@test.example>", "<m7@test.example>", "<m8@test.example>"]
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["files.mbox_replaced"]


async def test_rotated_mbox_with_more_messages_than_before_loses_none(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dev.mbox"
    write_mbox(path, range(1, 4))
    cursors, take = cursor.MemoryCursorStore(), Taker()
    source = files.FileSource("mbox", path, True, cursors, take)
    await source.read()
    path.unlink()
    write_mbox(path, range(10, 16))  # six messages: the old count (3) must not skip the first three
    assert await source.read() == 6
    assert take.taken[3:] == [f"<m{n}@test.example>" for n in range(10, 16)]


async def test_truncated_mbox_in_place_is_read_from_its_start(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dev.mbox"
    write_mbox(path, range(1, 6))
    cursors, take = cursor.MemoryCursorStore(), Taker()
    source = files.FileSource("mbox", path, True, cursors, take)
    await source.read()
    # copytruncate keeps the inode; here the file then starts with the same first message again
    # (a replay), so only the count tells: it holds 2 where 5 were read.
    original = path.read_bytes()
    second = original.index(b"\nFrom ", 1) + 1
    with path.open("r+b") as handle:
        handle.truncate(0)
    path.write_bytes(original[:second] + b"From someone Thu Nov 20 12:00:00 2026\n" + mail(20).as_bytes() + b"\n")
    with structlog.testing.capture_logs() as logs:
        assert await source.read() == 2
    assert take.taken[-1] == "<m20@test.example>"
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["files.mbox_truncated"]


async def test_grown_mbox_is_read_from_its_cursor(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dev.mbox"
    write_mbox(path, range(1, 4))
    cursors, take = cursor.MemoryCursorStore(), Taker()
    source = files.FileSource("mbox", path, True, cursors, take)
    await source.read()
    write_mbox(path, range(4, 6))  # appended
    with structlog.testing.capture_logs() as logs:
        assert await source.read() == 5
    assert take.taken == [f"<m{n}@test.example>" for n in range(1, 6)]
    assert not [entry for entry in logs if entry["log_level"] == "warning"]


async def test_broken_maildir_file_is_recorded_and_skipped(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "Maildir"
    box = mailbox.Maildir(str(folder))
    for n in range(1, 10):
        box.add(mail(n))
    (folder / "new" / "0000.broken").write_bytes(b"\x00\x01 not a mail at all\n\n\xff")
    unreadable = folder / "cur" / "1700000300.unreadable"
    unreadable.write_bytes(mail(99).as_bytes())
    unreadable.chmod(0o000)
    cursors, take = cursor.MemoryCursorStore(), Taker()
    source = files.FileSource("maildir", folder, False, cursors, take)
    with structlog.testing.capture_logs() as logs:
        await source.read()
        await source.read()
    expected = {f"<m{n}@test.example>" for n in range(1, 10)}
    readable_as_root = unreadable.stat().st_uid == 0 and take.taken.count("<m99@test.example>") == 2
    if readable_as_root:
        expected.add("<m99@test.example>")  # root reads a mode-000 file; only the broken one is skipped
    assert set(take.taken) == expected
    skipped = [entry for entry in logs if entry["event"] == "files.message_unreadable"]
    # Recorded once while it stays broken, with its path and the reason.
    assert str(folder / "new" / "0000.broken") in [entry["path"] for entry in skipped]
    assert all("reason" in entry for entry in skipped)
    assert len(skipped) == (1 if readable_as_root else 2)
    assert str(folder / "new" / "0000.broken") in source.unreadable
