"""`vote-watcher status --config PATH [--format json]`: what the daemon sees and holds, read from its database.

Sources and their last good poll, ATR's request budget and the JWT's renewal, the open votes with
their end times and emailed counts, and the outbox by state. Safe while the daemon runs.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

import watcher.commands.reading as reading
import watcher.config as config
import watcher.core.tracking as tracking
import watcher.services.wallclock as wallclock
import watcher.store as store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `status`."""
    reading.add_common(parser)


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 1 when the database cannot be read."""

    async def work(db: store.Store, cfg: config.Config) -> int:
        data = await collect(db, wallclock.utcnow())
        if args.format == "json":
            reading.emit_json(data)
        else:
            print("\n".join(to_text(data, wallclock.utcnow())))
        return reading.EXIT_OK

    return reading.run(args, work)


async def collect(db: store.Store, now: datetime.datetime) -> dict[str, Any]:
    """The status as plain values (the JSON output)."""
    sources: list[dict[str, Any]] = []
    atr: list[dict[str, Any]] = []
    for seen in await db.observations():
        if seen.key.startswith("source:"):
            sources.append({"source": seen.key.removeprefix("source:"), "instance": seen.instance, **seen.value})
        elif seen.key == "atr":
            atr.append({"instance": seen.instance, "updated_at": reading.iso(seen.updated_at), **seen.value})
    votes = [await _vote(db, vote) for vote in await db.votes(open_only=True)]
    return {
        "database": db.backend,
        "at": reading.iso(now),
        "sources": sources,
        "atr": atr,
        "open_votes": votes,
        "outbox": await db.outbox_counts(),
        "waiting_on_relay": await db.waiting_on_relay(),
    }


async def _vote(db: store.Store, vote: tracking.TrackedVote) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    for voted in await db.voter_votes(vote.id):
        group = "binding" if voted.status == "binding" else "non_binding"
        bucket = counts.setdefault(group, {"+1": 0, "0": 0, "-1": 0, "?": 0})
        bucket[voted.vote if voted.vote in bucket else "?"] += 1
    mails = await db.mails(vote.release_key, vote.vote_seq)
    reminders: dict[str, int] = {}
    for mail in mails:
        if mail.kind == "reminder":
            reminders[mail.state] = reminders.get(mail.state, 0) + 1
    return {
        "release": vote.release_key,
        "vote_seq": vote.vote_seq,
        "mode": vote.mode,
        "round": vote.vote_round,
        "list": vote.list_address,
        "subject": vote.subject,
        "thread_found": bool(vote.root_message_id),
        "vote_end": reading.iso(vote.vote_end),
        "emailed": counts,
        "reminders": reminders,
    }


def to_text(data: dict[str, Any], now: datetime.datetime) -> list[str]:
    """The status for a terminal."""
    lines = [f"vote-watcher status ({data['database']}, {reading.when(now)})", "", "Sources (last good poll):"]
    for source in data["sources"]:
        last = _parse(source.get("last_ok"))
        problem = f"; failing now: {source['error']}" if source.get("error") else ""
        lines.append(f"  {source['source']:<20} {reading.when(last, now)} [{source['instance']}]{problem}")
    if not data["sources"]:
        lines.append("  none polled yet")
    lines += ["", "ATR:"]
    for seen in data["atr"]:
        reached = "reached" if seen.get("ok") else f"NOT reached: {seen.get('error')}"
        renews = _parse(seen.get("jwt_renews_at"))
        lines.append(
            f"  {reached} at {reading.when(_parse(seen.get('at')), now)} [{seen['instance']}]; budget "
            f"{seen.get('budget_remaining')} of {seen.get('budget_per_hour')} requests left this hour; "
            f"JWT renewed {reading.when(renews, now) if renews else 'at the next request'}"
        )
    if not data["atr"]:
        lines.append("  not asked yet")
    lines += ["", f"Open votes ({len(data['open_votes'])}):"]
    for vote in data["open_votes"]:
        end = _parse(vote["vote_end"])
        binding = _counts(vote["emailed"].get("binding"))
        others = _counts(vote["emailed"].get("non_binding"))
        reminders = ", ".join(f"{n} {state}" for state, n in sorted(vote["reminders"].items())) or "none"
        thread = "" if vote["thread_found"] else "; [VOTE] thread not found yet"
        lines.append(
            f"  {vote['release']}#{vote['vote_seq']} {vote['mode']}, ends {reading.when(end, now)}; emailed binding "
            f"{binding}, non-binding {others}; reminders: {reminders}{thread}"
        )
    outbox = ", ".join(f"{state} {n}" for state, n in sorted(data["outbox"].items())) or "empty"
    waiting = sum(data["waiting_on_relay"].values())
    relay = f"; {waiting} waiting on the relay (failed at least once, tried again)" if waiting else ""
    lines += ["", f"Outbox: {outbox}{relay}"]
    return lines


def _counts(bucket: dict[str, int] | None) -> str:
    if not bucket:
        return "none"
    return " ".join(f"{value}:{bucket[value]}" for value in ("+1", "0", "-1", "?") if bucket.get(value))


def _parse(text: object) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
