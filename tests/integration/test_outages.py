"""Outages, with the daemon as a process against real servers: a full disk, a stopped PostgreSQL.

Each test counts what the issue asks for: messages offered, stored, lost; reminders due, sent,
doubled, failed for good (only an answer about the recipient may fail one). Run with `-s` to see
the FIGURES lines.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import pathlib
import time

import pytest

import tests.fixtures.outages as world
import tests.support.dovecot as dovecot
import tests.support.postgres as postgres
import watcher.config as config
import watcher.flow.intake as intake
import watcher.sandbox.serve as serve
import watcher.store as store

VOTERS = 8
# Failed retries of a job the daemon must live through during an outage, before the database comes back.
RETRIES = 3
# Big enough that the messages cannot hide in the free pages of SQLite's WAL file.
PADDING_LINES = 600
BIG_PADDING_LINES = 12_000  # about 1.4 MB: under watcher.max_message_bytes (2 MB), which flags larger mail


async def upgrade(config_path: pathlib.Path) -> str:
    url = config.load(config_path).watcher.database_url
    db = await store.open(url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    return url


def stored_ids(database: pathlib.Path, message_ids: list[str]) -> int:
    keys = {key for (key,) in world.sqlite_rows(database, "SELECT key FROM messages")}
    return sum(1 for mid in message_ids if mid in keys)


def tracked(database: pathlib.Path) -> bool:
    rows = world.sqlite_rows(database, "SELECT root_message_id FROM votes WHERE status = 'open'")
    return bool(rows) and all(root for (root,) in rows)


@pytest.mark.parametrize("fill", ["full", "nearly-full"])
@pytest.mark.parametrize("kind", ["ponymail", "imap", "mbox", "maildir"])
async def test_disk_full_loses_no_message_and_no_reminder(
    tmp_path: pathlib.Path, dovecot_server: dovecot.DovecotServer, kind: str, fill: str
) -> None:
    async with serve.StandIns(world.scenario(time.time(), VOTERS)) as stand_ins:
        with world.small_filesystem(tmp_path / "state", "6m") as disk:
            source = world.source(kind, tmp_path, stand_ins, dovecot_server if kind == "imap" else None)
            config_path = world.write_config(
                tmp_path, stand_ins, [source], state_dir=disk.path, smtp_port=stand_ins.smtp_port
            )
            await upgrade(config_path)
            database = disk.path / "vote-watcher.db"
            daemon = world.Daemon(config_path, tmp_path / "daemon.log")
            await daemon.start()
            try:
                await daemon.until(lambda: tracked(database), "the vote to be tracked", timeout=world.START_TIMEOUT_S)
                # Full: not a byte left. Nearly full: room for small writes (a cursor, a lease), none for mail.
                left = disk.fill(0 if fill == "full" else 24 * 1024)
                offered = [
                    world.email_vote(stand_ins, uid, padding_lines=PADDING_LINES) for uid in world.voters(VOTERS)
                ]
                for _, raw in offered:
                    await asyncio.to_thread(source.offer, raw)
                await daemon.until(lambda: daemon.events("daemon.store_unavailable"), "the outage to be noticed")
                # Several retries (store_retry = 1 s) fail while the disk stays full: counted, not timed.
                await daemon.until(lambda: daemon.retries() >= RETRIES, f"{RETRIES} failed retries of a job")
                daemon.alive()
                during = stored_ids(database, [mid for mid, _ in offered])
                assert len(daemon.events("daemon.store_unavailable")) == 1, "one clear line per outage"
                mails_during = len(stand_ins.mails)

                disk.free()
                ids = [mid for mid, _ in offered]
                await daemon.until(lambda: stored_ids(database, ids) == VOTERS, "every message stored", timeout=60)
                due = world.voters(VOTERS)
                await daemon.until(
                    lambda: world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], due)[0] == VOTERS,
                    "every reminder sent",
                    timeout=60,
                )
                await asyncio.sleep(3)  # a double would go out at the next outbox turns
                assert daemon.events("daemon.store_recovered")
                assert await daemon.stop() == 0
            finally:
                daemon.kill()
            sent, doubled = world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], due)
            failed = world.sqlite_rows(database, "SELECT count(*) FROM outbox WHERE state = 'failed'")[0][0]
            counts = world.Counts(VOTERS, stored_ids(database, ids), VOTERS, sent, doubled, failed)
            print(
                counts.line(f"SQLite disk {fill} via {kind}")
                + f" (free while full: {left} B; stored during the outage: {during}; mails during: {mails_during})"
            )
            assert counts.lost == 0
            assert (counts.sent, counts.doubled, counts.failed) == (VOTERS, 0, 0)
            assert len(stand_ins.mails) == VOTERS


async def test_postgresql_stopped_mid_insert_loses_no_message_and_no_reminder(tmp_path: pathlib.Path) -> None:
    # A throwaway cluster of this test's own: the shared server on 127.0.0.1:5432 is never stopped.
    cluster = await asyncio.to_thread(postgres.start_cluster)
    try:
        url = cluster.create_database("vw_outage")
        name = url.rsplit("/", 1)[1]
        async with serve.StandIns(world.scenario(time.time(), VOTERS)) as stand_ins:
            source = world.source("ponymail", tmp_path, stand_ins, None)
            config_path = world.write_config(
                tmp_path,
                stand_ins,
                [source],
                state_dir=tmp_path / "state",
                smtp_port=stand_ins.smtp_port,
                database_url=url,
            )
            await upgrade(config_path)

            def rows(sql: str) -> list[str]:
                return cluster.psql(sql, name).split()

            def stored(ids: list[str]) -> int:
                try:
                    keys = set(rows("SELECT key FROM messages"))
                except postgres.PostgresError:
                    return -1
                return sum(1 for mid in ids if mid in keys)

            daemon = world.Daemon(config_path, tmp_path / "daemon.log")
            await daemon.start()
            try:
                await daemon.until(
                    lambda: rows("SELECT count(*) FROM votes WHERE root_message_id != ''") == ["1"],
                    "the vote to be tracked",
                    timeout=world.START_TIMEOUT_S,
                )
                uids = world.voters(VOTERS)
                half = VOTERS // 2
                # The first half large (about 1.4 MB each), so that the stop lands while they are being stored.
                offered = [
                    world.email_vote(stand_ins, uid, padding_lines=BIG_PADDING_LINES if n < half else PADDING_LINES)
                    for n, uid in enumerate(uids)
                ]
                ids = [mid for mid, _ in offered]
                for _, raw in offered[:half]:
                    source.offer(raw)
                await daemon.until(lambda: stored(ids) >= 1, "the first message stored", timeout=30)
                before = stored(ids)
                await asyncio.to_thread(cluster.stop)
                for _, raw in offered[half:]:
                    source.offer(raw)
                await daemon.until(lambda: daemon.events("daemon.store_unavailable"), "the outage to be noticed")
                await daemon.until(lambda: daemon.retries() >= RETRIES, f"{RETRIES} failed retries of a job")
                daemon.alive()
                await asyncio.to_thread(cluster.start)
                await daemon.until(lambda: stored(ids) == VOTERS, "every message stored", timeout=60)
                await daemon.until(
                    lambda: world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], uids)[0] == VOTERS,
                    "every reminder sent",
                    timeout=60,
                )
                await asyncio.sleep(3)
                assert daemon.events("daemon.store_recovered")
                assert await daemon.stop() == 0
            finally:
                daemon.kill()
            sent, doubled = world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], uids)
            failed = int(rows("SELECT count(*) FROM outbox WHERE state = 'failed'")[0])
            counts = world.Counts(VOTERS, stored(ids), VOTERS, sent, doubled, failed)
            print(counts.line("PostgreSQL stopped mid-insert") + f" (stored before the stop: {before} of {half})")
            assert counts.lost == 0
            assert (counts.sent, counts.doubled, counts.failed) == (VOTERS, 0, 0)
    finally:
        await asyncio.to_thread(postgres.cleanup, cluster)


async def test_broken_maildir_file_blocks_nothing(tmp_path: pathlib.Path) -> None:
    async with serve.StandIns(world.scenario(time.time(), VOTERS)) as stand_ins:
        source = world.source("maildir", tmp_path, stand_ins, None)
        uids = world.voters(VOTERS)
        offered = [world.email_vote(stand_ins, uid) for uid in uids]
        half = VOTERS // 2
        for _, raw in offered[:half]:
            source.offer(raw)
        # A file whose Date puts it before the votes (Maildirs are read in Date order), broken below it.
        broken = tmp_path / "Maildir" / "new" / f"{int(time.time())}.broken.host"
        date = email.utils.formatdate(time.time() - 600).encode()
        broken.write_bytes(b"Date: " + date + b"\nSubject: Re: [VOTE]\nthis line is no header field\n\n\xff\xfe")
        for _, raw in offered[half:]:
            source.offer(raw)
        config_path = world.write_config(
            tmp_path, stand_ins, [source], state_dir=tmp_path / "state", smtp_port=stand_ins.smtp_port
        )
        await upgrade(config_path)
        database = tmp_path / "state" / "vote-watcher.db"
        ids = [mid for mid, _ in offered]
        daemon = world.Daemon(config_path, tmp_path / "daemon.log")
        await daemon.start()
        try:
            await daemon.until(lambda: stored_ids(database, ids) == VOTERS, "every vote stored", timeout=60)
            await daemon.until(
                lambda: world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], uids)[0] == VOTERS,
                "every reminder sent",
                timeout=60,
            )
            await asyncio.sleep(3)  # three more reads of the Maildir: the broken file is recorded once
            skipped = daemon.events("files.message_unreadable")
            assert await daemon.stop() == 0
        finally:
            daemon.kill()
        sent, doubled = world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], uids)
        failed = world.sqlite_rows(database, "SELECT count(*) FROM outbox WHERE state = 'failed'")[0][0]
        counts = world.Counts(VOTERS, stored_ids(database, ids), VOTERS, sent, doubled, failed)
    print(counts.line("a broken Maildir file among the votes") + f"; recorded: {skipped}")
    assert [entry["path"] for entry in skipped] == [str(broken)]
    assert "not an RFC 822 message" in skipped[0]["reason"]
    assert counts.lost == 0
    assert (counts.sent, counts.doubled, counts.failed) == (VOTERS, 0, 0)


async def test_rotated_mbox_is_read_from_its_start(tmp_path: pathlib.Path) -> None:
    async with serve.StandIns(world.scenario(time.time(), VOTERS)) as stand_ins:
        source = world.source("mbox", tmp_path, stand_ins, None)
        uids = world.voters(VOTERS)
        offered = [world.email_vote(stand_ins, uid) for uid in uids]
        half = VOTERS // 2
        for _, raw in offered[:half]:
            source.offer(raw)
        config_path = world.write_config(
            tmp_path, stand_ins, [source], state_dir=tmp_path / "state", smtp_port=stand_ins.smtp_port
        )
        await upgrade(config_path)
        database = tmp_path / "state" / "vote-watcher.db"
        ids = [mid for mid, _ in offered]
        daemon = world.Daemon(config_path, tmp_path / "daemon.log")
        await daemon.start()
        try:
            await daemon.until(lambda: stored_ids(database, ids[:half]) == half, "the first votes stored", 60)
            # logrotate: the file moves away and a new one begins, with fewer messages than were read
            # (the [VOTE] and the first votes): its first messages must not be taken as read.
            mbox = tmp_path / "dev.mbox"
            mbox.rename(tmp_path / "dev.mbox.1")
            for _, raw in offered[half:]:
                source.offer(raw)
            await daemon.until(lambda: stored_ids(database, ids) == VOTERS, "every vote stored", timeout=60)
            await daemon.until(
                lambda: world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], uids)[0] == VOTERS,
                "every reminder sent",
                timeout=60,
            )
            await asyncio.sleep(3)
            replaced = daemon.events("files.mbox_replaced")
            assert await daemon.stop() == 0
        finally:
            daemon.kill()
        sent, doubled = world.mail_counts([t for m in stand_ins.mails for t in m.rcpt_tos], uids)
        failed = world.sqlite_rows(database, "SELECT count(*) FROM outbox WHERE state = 'failed'")[0][0]
        counts = world.Counts(VOTERS, stored_ids(database, ids), VOTERS, sent, doubled, failed)
    print(counts.line("an mbox rotated") + f"; warnings: {len(replaced)}")
    assert len(replaced) == 1
    assert counts.lost == 0
    assert (counts.sent, counts.doubled, counts.failed) == (VOTERS, 0, 0)


async def test_full_sqlite_disk_is_a_store_error_and_the_intake_acknowledges_nothing(tmp_path: pathlib.Path) -> None:
    changed: list[int] = []

    async def on_changed(vote_id: int) -> None:
        changed.append(vote_id)

    with world.small_filesystem(tmp_path / "state", "3m") as disk:
        db = await store.open(f"sqlite:///{disk.path / 'state.db'}")
        try:
            await db.upgrade()
            mail_intake = intake.Intake(db, on_changed, clock=lambda: datetime.datetime.now(datetime.UTC))
            raws = [
                f"Message-ID: <full{n}@x>\nSubject: [VOTE] Release foo {n}\n\n".encode() + b"y" * 20_000
                for n in range(20)
            ]
            disk.fill()
            for raw in raws:
                with pytest.raises(store.StoreUnavailableError, match="database or disk is full"):
                    await mail_intake.take(raw, "test")
            assert not any(mail_intake.seen(f"full{n}@x") for n in range(20))
            disk.free()
            assert [await mail_intake.take(raw, "test") for raw in raws] == [True] * 20
            assert all(mail_intake.seen(f"full{n}@x") for n in range(20))
            assert len(await db.known_keys([f"full{n}@x" for n in range(20)])) == 20
        finally:
            await db.close()
