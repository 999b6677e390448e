"""`vote-watcher explain RELEASE [VOTER] --config PATH [--format json]`: why each email voter was reminded or not.

RELEASE is a release key (`lantern-2.0.0`, its latest vote) or `lantern-2.0.0#2` for one vote_seq. The
answer: the emailed tally, ATR's ballots as last seen, and for each email voter whether a reminder
went out and, if not, why, in the words `watcher.core.decide` chose. Read from the database; safe while
the daemon runs.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any, Final

import watcher.commands.reading as reading
import watcher.config as config
import watcher.core.tally as tally
import watcher.core.tracking as tracking
import watcher.store as store

OPTED_OUT: Final = "recipient opted out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `explain`."""
    parser.add_argument("release", metavar="RELEASE", help="release key (project-version), optionally #vote_seq")
    parser.add_argument("voter", metavar="VOTER", nargs="?", help="only this voter (uid)")
    reading.add_common(parser)


def run(args: argparse.Namespace) -> int:
    """Print the explanation; exit 1 when the vote (or voter) is not known."""

    async def work(db: store.Store, cfg: config.Config) -> int:
        data = await collect(db, cfg, args.release, args.voter)
        if args.format == "json":
            reading.emit_json(data)
        else:
            print("\n".join(to_text(data)))
        return reading.EXIT_OK

    return reading.run(args, work)


async def collect(db: store.Store, cfg: config.Config, release: str, voter: str | None) -> dict[str, Any]:
    """The explanation as plain values (the JSON output)."""
    vote = await _find(db, release)
    emailed = await db.voter_votes(vote.id)
    decisions = {d.voter: d for d in await db.decisions(vote.release_key, vote.vote_seq)}
    mails = [m for m in await db.mails(vote.release_key, vote.vote_seq) if m.kind == "reminder"]
    reminders = {m.voter: m for m in mails}
    ballots = await _ballots(db, vote)
    voters = []
    for voted in emailed:
        if voter is not None and voted.voter != voter:
            continue
        reminded, why = _answer(vote, voted, decisions.get(voted.voter), reminders.get(voted.voter), cfg)
        decision = decisions.get(voted.voter)
        voters.append(
            {
                "voter": voted.voter,
                "status": voted.status,
                "binding": voted.status == "binding",
                "vote": voted.vote,
                "date": reading.iso(voted.date),
                "quotation": voted.quotation,
                "ballot": (ballots.get("ballots") or {}).get(voted.voter),
                "reminded": reminded,
                "why": why,
                "reason": decision.reason if decision else None,
                "decided_at": reading.iso(decision.decided_at) if decision else None,
            }
        )
    if voter is not None and not voters:
        raise reading.NotKnownError(f"{voter} sent no vote by email in {vote.release_key}#{vote.vote_seq}")
    resolution = await db.get_resolution(vote.release_key, vote.vote_seq)
    return {
        "release": vote.release_key,
        "vote_seq": vote.vote_seq,
        "mode": vote.mode,
        "round": vote.vote_round,
        "status": vote.status,
        "vote_end": reading.iso(vote.vote_end),
        "atr_ballots": ballots,
        "voters": voters,
        "resolution": None
        if resolution is None
        else {"state": resolution.state, "resolution": resolution.resolution, "detail": resolution.detail},
    }


async def _find(db: store.Store, release: str) -> tracking.TrackedVote:
    key, _, seq = release.partition("#")
    known = [v for v in await db.votes(open_only=False) if v.release_key == key]
    if seq:
        known = [v for v in known if str(v.vote_seq) == seq]
    if not known:
        raise reading.NotKnownError(f"no vote of {release} is known to this database (is the release key right?)")
    return max(known, key=lambda v: v.vote_seq)


async def _ballots(db: store.Store, vote: tracking.TrackedVote) -> dict[str, Any]:
    key = f"ballots:{vote.release_key}#{vote.vote_seq}"
    for seen in await db.observations():
        if seen.key == key:
            return dict(seen.value)
    return {}


def _answer(
    vote: tracking.TrackedVote,
    voted: tally.EmailedVote,
    decision: store.Decision | None,
    mail: store.MailRecord | None,
    cfg: config.Config,
) -> tuple[bool, str]:
    """(reminded, why) in words."""
    if vote.mode != "trusted":
        return False, f"not reminded: the vote is in {vote.mode} mode, where email votes count"
    if mail is not None and mail.state == "sent":
        sent = reading.when(mail.sent_at)
        return True, f"reminded: sent to {mail.recipient}@apache.org at {sent} ({mail.message_id})"
    if mail is not None and mail.state == "skipped" and mail.last_error == OPTED_OUT:
        return False, f"not reminded: {voted.voter} opted out of reminders (reminders.opt_out)"
    if mail is not None and mail.state == "pending":
        error = f"; last attempt: {mail.last_error}" if mail.last_error else ""
        return False, f"a reminder is waiting to be sent (attempts {mail.attempts}){error}"
    if mail is not None and mail.state == "failed":
        return False, f"the reminder could not be sent: {mail.last_error}"
    if mail is not None and mail.state == "skipped":
        return False, f"the reminder was not sent: {mail.last_error}"
    if mail is not None and mail.state == "dry_run" and not cfg.watcher.dry_run:
        return False, "a dry run wrote a reminder down (not sent; a live run sends it when it is still due)"
    if mail is not None and mail.state == "dry_run":
        return False, "a dry run would have sent a reminder (written as an .eml file)"
    if voted.voter in cfg.reminders.opt_out_uids():
        return False, f"not reminded: {voted.voter} opted out of reminders (reminders.opt_out)"
    if decision is not None:
        return False, f"not reminded: {decision.detail}"
    return False, "not decided yet: no reminder check has looked at this vote since the email"


def to_text(data: dict[str, Any]) -> list[str]:
    """The explanation for a terminal."""
    round_ = f", podling round {data['round']}" if data["round"] else ""
    end = _when(data["vote_end"])
    lines = [f"{data['release']}#{data['vote_seq']}: {data['mode']} vote{round_}, {data['status']}, ends {end}", ""]
    lines.append("Emailed votes:")
    for voter in data["voters"]:
        quote = f' "{voter["quotation"]}"' if voter["quotation"] else ""
        lines.append(f"  {voter['vote']:>3} {voter['voter']} ({voter['status']}) {_when(voter['date'])}{quote}")
    if not data["voters"]:
        lines.append("  none")
    ballots = data["atr_ballots"]
    lines += ["", f"ATR ballots as last seen ({_when(ballots.get('read_at'))}):"]
    for uid, ballot in sorted((ballots.get("ballots") or {}).items()):
        flags = ", ".join(f for f, on in (("binding", ballot["binding"]), ("carried", ballot["carried"])) if on)
        lines.append(f"  {ballot['choice']:>3} {uid}{f' ({flags})' if flags else ''}")
    if not ballots.get("ballots"):
        lines.append("  none seen")
    lines += ["", "Reminders:"]
    for voter in data["voters"]:
        lines.append(f"  {voter['voter']}: {voter['why']}")
    resolution = data["resolution"]
    if resolution is not None:
        detail = f": {resolution['detail']}" if resolution["detail"] not in ("", resolution["resolution"]) else ""
        outcome = resolution["resolution"]
        named = f" ({outcome})" if outcome and outcome != resolution["state"] else ""
        lines += ["", f"Resolution: {resolution['state']}{named}{detail}"]
    return lines


def _when(text: object) -> str:
    if not isinstance(text, str) or not text:
        return "unknown"
    return reading.when(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))
