"""ATR's answers turned into the values the decisions read (pure)."""

from __future__ import annotations

import datetime

import watcher.atr.models as models
import watcher.core.decide as decide
import watcher.core.lifecycle as lifecycle
import watcher.core.tracking as tracking
import watcher.store.records as records


def atr_state(result: models.VoteTabulateResults, fetched_at: datetime.datetime) -> decide.AtrState:
    """The effective ballots (carried ones included), the trusted summary and whether it passes."""
    ballots: dict[str, decide.Ballot] = {}
    for entry in result.trusted_ballots or []:
        choice = _choice(entry.choice)
        if choice is None:
            continue
        ballots[entry.voter_asf_uid] = decide.Ballot(
            voter=entry.voter_asf_uid,
            choice=choice,
            is_binding=entry.is_binding,
            is_carried=entry.is_carried,
            cast_at=entry.cast_at,
        )
    summary = result.trusted_summary
    return decide.AtrState(
        vote_seq=result.vote_seq,
        fetched_at=fetched_at,
        ballots=ballots,
        trusted_passed=result.trusted_passed,
        summary=_summary(summary) if summary is not None else None,
    )


def _choice(value: str) -> decide.Choice | None:
    if value == "+1":
        return "+1"
    if value == "0":
        return "0"
    if value == "-1":
        return "-1"
    return None


def _mode(value: str) -> decide.Mode:
    if value == "trusted":
        return "trusted"
    if value == "manual":
        return "manual"
    return "email"


def _summary(summary: models.TrustedVoteSummary) -> decide.TrustedSummary:
    return decide.TrustedSummary(
        binding_yes=summary.binding_votes_yes,
        binding_no=summary.binding_votes_no,
        binding_abstain=summary.binding_votes_abstain,
        non_binding_yes=summary.non_binding_votes_yes,
        non_binding_no=summary.non_binding_votes_no,
        non_binding_abstain=summary.non_binding_votes_abstain,
    )


def vote_state(vote: records.TrackedVote) -> decide.VoteState:
    """The decision inputs of a tracked vote."""
    return decide.VoteState(
        release_key=vote.release_key,
        project=vote.project,
        version=vote.version,
        vote_seq=vote.vote_seq,
        mode=_mode(vote.mode),
        vote_round=vote.vote_round,
        vote_end=vote.vote_end,
        phase=vote.phase or decide.CANDIDATE_PHASE,
        resolved=vote.status == lifecycle.Status.RESOLVED,
    )


def stored_vote(vote: tracking.TrackedVote) -> records.TrackedVote:
    """What the store keeps of a vote discovery found."""
    thread = vote.thread
    return records.TrackedVote(
        release_key=vote.release_key,
        project=vote.project,
        version=vote.version,
        vote_seq=vote.vote_seq,
        mode=vote.mode,
        vote_round=vote.round,
        committee=vote.binding_committee_key,
        list_address=vote.list_address,
        subject=thread.subject if thread else vote.subject,
        root_message_id=thread.message_id if thread else "",
        vote_started=vote.vote_started,
        vote_end=vote.vote_end,
        phase="release_candidate",
        status=lifecycle.INITIAL,
        extra={
            "committee_key": vote.committee_key,
            "podling_thread_id": vote.podling_thread_id or "",
            "end_source": vote.end_source,
            "min_hours": vote.min_hours,
            "project_name": vote.project_name,
        },
    )
