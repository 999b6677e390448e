"""`vote-watcher outbox list|show|retry|cancel`: the mail queue, as `postqueue` and `postsuper` show and change it.

- `list [--state S] [--release R]`: the rows, newest first;
- `show ID`: one row and its stored mail (headers and body, as it will be sent);
- `retry ID`: send a failed, skipped or waiting mail again now (attempts start over);
- `cancel ID`: do not send a waiting mail (it becomes `skipped`, "cancelled by the operator").

Safe while the daemon runs: a mail the daemon is sending at this moment is neither retried nor cancelled.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import sys
from typing import Any

import watcher.commands.reading as reading
import watcher.config as config
import watcher.store as store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `outbox`."""
    parser.add_argument("action", choices=["list", "show", "retry", "cancel"], help="what to do")
    parser.add_argument("id", nargs="?", type=int, metavar="ID", help="the row (show, retry, cancel)")
    parser.add_argument("--state", help="list: only rows in this state (pending, sent, failed, skipped, dry_run)")
    parser.add_argument("--release", help="list: only rows of this release key")
    reading.add_common(parser)


def run(args: argparse.Namespace) -> int:
    """Act on the outbox; exit 1 when the row is unknown or cannot be changed, 2 on a usage error."""
    if args.action != "list" and args.id is None:
        print(f"vote-watcher outbox {args.action}: give the row's ID (see `outbox list`)", file=sys.stderr)
        return reading.EXIT_INVALID

    async def work(db: store.Store, cfg: config.Config) -> int:
        if args.action == "list":
            rows = await db.outbox_rows(state=args.state, release_key=args.release)
            _print(args.format, {"mails": [_row(r) for r in rows]}, [_line(r) for r in rows] or ["the outbox is empty"])
            return reading.EXIT_OK
        found = await db.mail(args.id)
        if found is None:
            raise reading.NotKnownError(f"no outbox row {args.id}")
        row, raw = found
        if args.action == "show":
            text = email.message_from_bytes(raw, policy=email.policy.default).as_string()
            _print(args.format, {"mail": _row(row), "raw": raw.decode("utf-8", "replace")}, [_line(row), "", text])
            return reading.EXIT_OK
        changed = await (db.retry_mail(args.id) if args.action == "retry" else db.cancel_mail(args.id))
        if not changed:
            raise reading.NotKnownError(f"row {args.id} is {row.state} (or being sent now): it cannot be {_done(args)}")
        after = await db.mail(args.id)
        current = after[0] if after is not None else row
        _print(args.format, {"mail": _row(current)}, [f"row {args.id} {_done(args)}: {_line(current)}"])
        return reading.EXIT_OK

    return reading.run(args, work)


def _done(args: argparse.Namespace) -> str:
    return "retried" if args.action == "retry" else "cancelled"


def _print(format: str, data: dict[str, Any], lines: list[str]) -> None:
    if format == "json":
        reading.emit_json(data)
    else:
        print("\n".join(lines))


def _row(row: store.MailRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "release": row.release_key,
        "vote_seq": row.vote_seq,
        "voter": row.voter,
        "to": f"{row.recipient}@apache.org",
        "message_id": row.message_id,
        "state": row.state,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": reading.iso(row.next_attempt_at),
        "sent_at": reading.iso(row.sent_at),
        "created_at": reading.iso(row.created_at),
    }


def _line(row: store.MailRecord) -> str:
    error = f" ({row.last_error})" if row.last_error else ""
    sent = f" sent {reading.when(row.sent_at)}" if row.sent_at else ""
    return (
        f"{row.id:>5} {row.state:<8} {row.kind:<12} {row.release_key}#{row.vote_seq} to {row.recipient}@apache.org "
        f"attempts {row.attempts}{sent}{error}"
    )
