"""A tally as the JSON of the contract (DESIGN.md §8) or as text laid out like ATR's result email."""

from __future__ import annotations

import datetime
from typing import Any, Final

import watcher.core.tally as tally

_STATUS_TITLES: Final = (
    ("binding", "Binding votes"),
    ("committer", "Committer votes (non-binding)"),
    ("contributor", "Contributor votes (non-binding)"),
    ("unknown", "Votes from unknown senders (non-binding)"),
)


def iso(moment: datetime.datetime | None) -> str | None:
    """UTC time as `2017-12-21T22:31:14Z`, or None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bracketed(message_id: str) -> str:
    return f"<{message_id}>" if message_id else ""


def to_json(result: tally.Tally) -> dict[str, Any]:
    """The `tally --format json` object."""
    return {
        "thread": {
            "subject": result.thread.subject,
            "message_id": _bracketed(result.thread.message_id),
            "list": result.thread.list_id,
            "started": iso(result.thread.started),
        },
        "votes": [_vote_json(vote) for vote in result.votes],
        "possible_votes": [
            {
                "email": p.email,
                "name": p.name,
                "message_id": _bracketed(p.message_id),
                "excerpt": p.excerpt,
            }
            for p in result.possible_votes
        ],
        "summary": {
            "binding": result.summary.binding.as_dict(),
            "non_binding": result.summary.non_binding.as_dict(),
            "unknown": result.summary.unknown.as_dict(),
        },
        "passed": result.passed,
        "outcome": result.outcome,
        "stopped_at": _stopped_json(result.stopped_at),
        "no_verdict_because": result.no_verdict_because,
        "receipts": [_bracketed(mid) for mid in result.receipts],
        "warnings": list(result.warnings),
    }


def _stopped_json(stopped: tally.StopAt | None) -> dict[str, str] | None:
    if stopped is None:
        return None
    return {"message_id": _bracketed(stopped.message_id), "kind": stopped.kind}


def _vote_json(vote: tally.EmailedVote) -> dict[str, Any]:
    data: dict[str, Any] = {
        "voter": vote.voter,
        "name": vote.name,
        "email": vote.email,
        "status": vote.status,
        "vote": vote.vote,
        "message_id": _bracketed(vote.message_id),
        "date": iso(vote.date),
        "quotation": vote.quotation,
        "updated": vote.updated,
        "confidence": vote.confidence,
        "reasons": list(vote.reasons),
    }
    if vote.carried:
        data["carried"] = True
    if vote.fraction is not None:
        data["fraction"] = vote.fraction
    if vote.condition is not None:
        data["condition"] = vote.condition
    return data


def to_text(result: tally.Tally) -> str:
    """A human-readable tally: binding votes first, then the others, the summary, the outcome, then what to check."""
    lines: list[str] = [f"Thread: {result.thread.subject}"]
    if result.thread.message_id:
        lines.append(f"Message-ID: <{result.thread.message_id}>")
    if result.thread.started:
        lines.append(f"Started: {iso(result.thread.started)}")
    for status, title in _STATUS_TITLES:
        group = [vote for vote in result.votes if vote.status == status]
        if not group:
            continue
        shown = title if result.unknown_because is None else "Votes (binding status unknown)"
        lines += ["", f"{shown}:"]
        lines += [_vote_line(vote) for vote in group]
    lines += ["", *_summary_lines(result), "", _outcome(result)]
    if result.receipts:
        lines += ["", "Left out as ATR ballot receipts:", *(f"  <{mid}>" for mid in result.receipts)]
    if result.possible_votes:
        lines += ["", "Possible votes (no +1/0/-1 written; check by hand):"]
        lines += [f"  {p.name or p.email} <{p.email}>: {p.excerpt!r}" for p in result.possible_votes]
    if result.low_confidence:
        lines += ["", "Low-confidence votes (check by hand):"]
        lines += [f"  {v.vote} {v.voter}: {'; '.join(v.reasons) or 'unclear'}" for v in result.low_confidence]
    if result.warnings:
        lines += ["", "Warnings:", *(f"  {w}" for w in result.warnings)]
    return "\n".join(lines) + "\n"


def _vote_line(vote: tally.EmailedVote) -> str:
    flags = [flag for flag, on in (("updated", vote.updated), ("carried", vote.carried)) if on]
    label = f" ({', '.join(flags)})" if flags else ""
    name = f" {vote.name}" if vote.name else ""
    value = vote.fraction if vote.vote == "?" and vote.fraction else vote.vote
    return f"  {value:>3} {vote.voter}{name}{label}"


def _summary_lines(result: tally.Tally) -> list[str]:
    summary = result.summary
    if result.unknown_because is not None:
        every = [summary.binding, summary.non_binding, summary.unknown]
        counts = tally.Counts(*(sum(getattr(c, field) for c in every) for field in ("yes", "abstain", "no")))
        return [f"Binding status unknown: {result.unknown_because}.", _counts_line("All votes", counts)]
    binding = summary.binding
    total = binding.yes + binding.abstain + binding.no
    return [
        f"There {'was' if total == 1 else 'were'} {total} binding {'vote' if total == 1 else 'votes'}.",
        f"Binding votes: +1: {binding.yes}, 0: {binding.abstain}, -1: {binding.no}.",
        _counts_line("Non-binding votes", summary.non_binding),
        _counts_line("Unknown senders", summary.unknown),
    ]


def _counts_line(title: str, counts: tally.Counts) -> str:
    return f"{title}: +1: {counts.yes}, 0: {counts.abstain}, -1: {counts.no}."


def _outcome(result: tally.Tally) -> str:
    verdict = {
        "passed": "The vote passes.",
        "failed": "The vote does not pass.",
        "cancelled": "The vote was cancelled.",
        "unknown": f"No verdict: {result.no_verdict_because or 'binding status is unknown'}.",
    }[result.outcome]
    stopped = result.stopped_at
    if stopped is not None:
        tag = "[RESULT]" if stopped.kind == "result" else "[CANCEL]"
        return f"{verdict} (Tally stopped at the {tag} message <{stopped.message_id}>.)"
    return verdict
