"""What `tally --atr BASE_URL PROJECT VERSION` reads from ATR: the release, its committee, its ballots.

Public endpoints give the release (`release/get`: vote mode, start, `vote_thread_url`), the
project's committee (`project/get`, `committee/get`; the IPMC too in a podling's round 2, which
ATR marks by the round-1 thread, `podling_thread_id`). With a token (`ATR_UID` and `ATR_PAT`, or
`--atr-uid` and `--atr-pat-file`), `vote/tabulate` adds the trusted ballots and their receipts'
Message-IDs, which the email tally leaves out. Only the ATR client's public methods are used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import pathlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import watcher.core.roster as roster

if TYPE_CHECKING:
    # The ATR client (httpx, pydantic, structlog) loads only when --atr is given: `tally` starts fast.
    import pydantic

    import watcher.atr.models as models


class AtrReadError(Exception):
    """ATR could not be read; the message says what and why."""


@dataclasses.dataclass(frozen=True, slots=True)
class FromAtr:
    """The release's facts that the tally uses and shows."""

    project: str
    version: str
    committee: str
    vote_round: int | None
    people: roster.Roster
    vote_mode: str | None
    vote_started: datetime.datetime | None
    thread_url: str | None
    receipts: frozenset[str]
    tabulation: models.VoteTabulateResults | None
    notes: tuple[str, ...]


T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class _Token:
    uid: str
    pat: pydantic.SecretStr


def read(base_url: str, project: str, version: str, *, uid: str | None, pat_file: pathlib.Path | None) -> FromAtr:
    """Everything the tally needs from ATR; AtrReadError naming the call that failed."""
    token = _token(uid, pat_file)
    try:
        return asyncio.run(_read(base_url, project, version, token))
    except ValueError as exc:  # a base URL the client refuses (not https, except on loopback)
        raise AtrReadError(f"--atr {base_url}: {exc}") from exc


def to_json(found: FromAtr) -> dict[str, Any]:
    """The `atr` object of `tally --format json`."""
    tabulation = found.tabulation
    ballots = (tabulation.trusted_ballots or []) if tabulation else []
    return {
        "project": found.project,
        "version": found.version,
        "committee": found.committee,
        "vote_mode": found.vote_mode,
        "vote_round": found.vote_round,
        "thread_url": found.thread_url,
        "trusted_ballots": [_ballot_json(ballot) for ballot in ballots] if tabulation else None,
        "trusted_passed": tabulation.trusted_passed if tabulation else None,
        "notes": list(found.notes),
    }


def to_text(found: FromAtr) -> str:
    """The ATR part of the text report: the trusted ballots beside the emailed votes."""
    lines = ["", f"ATR: {found.project} {found.version}, committee {found.committee}, vote mode {found.vote_mode}"]
    tabulation = found.tabulation
    if tabulation is not None:
        ballots = tabulation.trusted_ballots or []
        lines.append("Ballots cast in ATR:" if ballots else "Ballots cast in ATR: none")
        lines += [f"  {_ballot_line(ballot)}" for ballot in ballots]
        if tabulation.trusted_passed is not None:
            lines.append(f"ATR's trusted tally: {'passes' if tabulation.trusted_passed else 'does not pass'}.")
    lines += [f"  note: {note}" for note in found.notes]
    return "\n".join(lines) + "\n"


async def _read(base_url: str, project: str, version: str, token: _Token | None) -> FromAtr:
    import watcher.atr.client as client
    import watcher.atr.rosters as rosters

    notes: list[str] = []
    async with client.AtrClient(base_url, token.uid if token else "", token.pat if token else None) as atr:
        release = await _call(atr.release_get(project, version), f"release/get {project} {version}")
        about = await _call(atr.project_get(project), f"project/get {project}")
        key = about.committee_key or project
        committee = await _call(atr.committee_get(key), f"committee/get {key}")
        committees = {key: rosters.committee_value(committee)}
        vote_round = 2 if committee.is_podling and release.podling_thread_id else None
        if vote_round == 2:
            ipmc = await _call(atr.committee_get(roster.IPMC_KEY), f"committee/get {roster.IPMC_KEY}")
            committees[roster.IPMC_KEY] = rosters.committee_value(ipmc)
            notes.append("round 2 of a podling vote: IPMC members bind; round-1 votes are not carried here")
        tabulation = None
        if token is None:
            notes.append("no ATR token (ATR_UID, ATR_PAT): trusted ballots not read; receipts left out by shape only")
        else:
            tabulation = await _call(atr.vote_tabulate(project, version), f"vote/tabulate {project} {version}")
    return FromAtr(
        project=project,
        version=version,
        committee=key,
        vote_round=vote_round,
        people=roster.Roster(committees),
        vote_mode=release.vote_mode,
        vote_started=release.vote_started,
        thread_url=release.vote_thread_url,
        receipts=tabulation.receipt_message_ids() if tabulation else frozenset(),
        tabulation=tabulation,
        notes=tuple(notes),
    )


async def _call(pending: Awaitable[T], what: str) -> T:
    import watcher.atr.errors as errors

    try:
        return await pending
    except errors.AtrError as exc:
        raise AtrReadError(f"ATR {what}: {exc}") from exc


def _token(uid: str | None, pat_file: pathlib.Path | None) -> _Token | None:
    """The account to read `vote/tabulate` as, from options or the environment; None without a PAT."""
    uid = uid or os.environ.get("ATR_UID")
    pat = os.environ.get("ATR_PAT")
    if pat_file is not None:
        try:
            pat = pat_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AtrReadError(f"{pat_file}: cannot read the ATR token: {exc.strerror or exc}") from exc
    if not pat:
        return None
    if not uid:
        raise AtrReadError("an ATR token needs its account: give --atr-uid or ATR_UID")
    import pydantic

    return _Token(uid, pydantic.SecretStr(pat))


def _ballot_json(ballot: models.TrustedBallotEntry) -> dict[str, Any]:
    return {
        "voter": ballot.voter_asf_uid,
        "name": ballot.voter_fullname,
        "vote": ballot.choice,
        "binding": ballot.is_binding,
        "carried": ballot.is_carried,
        "cast_at": ballot.cast_at.strftime("%Y-%m-%dT%H:%M:%SZ") if ballot.cast_at else None,
        "receipt_message_id": f"<{ballot.receipt_message_id.strip('<>')}>" if ballot.receipt_message_id else None,
    }


def _ballot_line(ballot: models.TrustedBallotEntry) -> str:
    flags = [flag for flag, on in (("binding", ballot.is_binding), ("carried", ballot.is_carried)) if on]
    label = f" ({', '.join(flags)})" if flags else ""
    return f"{ballot.choice:>3} {ballot.voter_asf_uid} {ballot.voter_fullname}{label}".rstrip()
