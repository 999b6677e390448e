"""The store's parts for operators, on SQLite and PostgreSQL: dry-run rows, the queue's retry and cancel,
decisions and observations."""

from __future__ import annotations

import dataclasses
import datetime

import watcher.store as store

T0 = datetime.datetime(2026, 6, 1, 9, 0, tzinfo=datetime.UTC)


async def _reminder(db: store.Store, raw: bytes, message_id: str, state: str = "pending") -> tuple[int, bool]:
    row, created = await db.enqueue(
        kind="reminder",
        release_key="foo-1.0",
        vote_seq=1,
        recipient="alice",
        voter="alice",
        raw=raw,
        message_id=message_id,
        now=T0,
        state=state,
    )
    return row.id, created


async def test_a_live_mail_takes_over_a_dry_run_row_and_a_dry_run_never_takes_a_live_one(
    state_store: store.Store,
) -> None:
    db = state_store
    first, created = await _reminder(db, b"dry", "<d@x>", state="dry_run")
    assert created
    # The dry run again: its own row stands.
    assert await _reminder(db, b"dry 2", "<d2@x>", state="dry_run") == (first, False)
    assert await db.claim_due(T0, 10, "me") == []
    # The live run's mail replaces it, and is sent; another live attempt changes nothing.
    assert await _reminder(db, b"live", "<l@x>") == (first, True)
    [claimed] = await db.claim_due(T0, 10, "me")
    assert (claimed.id, claimed.raw, claimed.message_id) == (first, b"live", "<l@x>")
    assert await _reminder(db, b"live 2", "<l2@x>") == (first, False)
    assert await _reminder(db, b"dry 3", "<d3@x>", state="dry_run") == (first, False)


async def test_retry_and_cancel(state_store: store.Store) -> None:
    db = state_store
    row_id, _ = await _reminder(db, b"mail", "<m@x>")
    assert await db.cancel_mail(row_id, T0)
    found = await db.mail(row_id)
    assert found is not None and (found[0].state, found[0].last_error, found[1]) == (
        "skipped",
        "cancelled by the operator",
        b"mail",
    )
    assert not await db.cancel_mail(row_id, T0)
    assert await db.retry_mail(row_id, T0)
    assert [r.id for r in await db.claim_due(T0, 10, "me")] == [row_id]
    # Claimed by a sender right now: neither retried nor cancelled under its feet.
    assert not await db.cancel_mail(row_id, T0)
    assert not await db.retry_mail(row_id, T0)
    await db.mark_sent(row_id, T0)
    assert not await db.retry_mail(row_id, T0)
    assert await db.outbox_counts() == {"sent": 1}
    assert [r.id for r in await db.outbox_rows(state="sent")] == [row_id]
    assert await db.outbox_rows(state="pending") == []
    assert await db.mail(row_id + 100) is None


async def test_decisions_and_observations(state_store: store.Store) -> None:
    db = state_store
    decision = store.Decision(
        release_key="foo-1.0",
        vote_seq=1,
        voter="alice",
        decision="not_due",
        reason="too_soon",
        detail="alice voted by email at ...",
        decided_at=T0,
        email_vote="+1",
        email_status="binding",
        email_date=T0,
    )
    await db.record_decision(decision)
    later = dataclasses.replace(decision, reason="has_ballot", detail="alice has a ballot in ATR", ballot="+1")
    await db.record_decision(later)
    assert await db.decisions("foo-1.0", 1) == [later]
    assert await db.decisions("foo-1.0", 2) == []
    await db.observe("source:archive", "vw-a", {"ok": True, "last_ok": "2026-06-01T09:00:00+00:00"}, T0)
    await db.observe("source:archive", "vw-a", {"ok": False, "error": "down"}, T0)
    [seen] = await db.observations()
    assert (seen.key, seen.instance, seen.value) == ("source:archive", "vw-a", {"ok": False, "error": "down"})
    assert seen.updated_at == T0
    await db.ping()
