"""ATR API response models, field names and JSON types as ATR's at 1881ebb9 (reference/atr.md §10.5).

Every model ignores fields it does not know, so a newer ATR that adds fields still parses.
Enumerations that ATR may extend (phase, vote mode) are plain strings with known values below.

`parse` is the tolerant reader: a field of an unexpected shape that the caller can do without is
dropped (its default applies) and named by JSON path; only an essential field's failure raises.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Collection
from typing import Annotated, Any, Final, TypeVar

import pydantic

import watcher.core.tracking as tracking

PHASE_DRAFT: Final = "release_candidate_draft"
PHASE_CANDIDATE: Final = "release_candidate"
PHASE_PREVIEW: Final = "release_preview"
PHASE_RELEASE: Final = "release"
MODE_MANUAL: Final = "manual"
MODE_EMAIL: Final = tracking.MODE_EMAIL
MODE_TRUSTED: Final = tracking.MODE_TRUSTED
DEFAULT_MIN_HOURS: Final = tracking.DEFAULT_MIN_HOURS
DEFAULT_SUBJECT_TEMPLATE: Final = tracking.DEFAULT_SUBJECT_TEMPLATE
# What a vote cannot be tracked without (issue 16 item 1); everything else has a safe default.
RELEASE_ESSENTIAL: Final = frozenset({"key", "project_key", "version", "phase", "current_vote_seq", "vote_mode"})
# Ballots decide reminders and resolutions: guessing them is worse than failing the call.
TABULATE_ESSENTIAL: Final = frozenset({"vote_mode", "vote_seq", "trusted_ballots", "trusted_summary", "trusted_passed"})
JWT_ESSENTIAL: Final = frozenset({"jwt"})
_MAX_REPAIRS: Final = 50


def _as_utc(value: datetime.datetime) -> datetime.datetime:
    # ATR stores UTC; a value without an offset is UTC, not local time.
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


UtcDatetime = Annotated[datetime.datetime, pydantic.AfterValidator(_as_utc)]


class AtrModel(pydantic.BaseModel):
    """Base: frozen, unknown fields ignored."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)


class Release(AtrModel):
    """A release (`release/get`, `releases/list`): the vote's phase, mode, serial and start."""

    key: str
    project_key: str
    version: str
    phase: str
    created: UtcDatetime | None = None
    vote_mode: str | None = None
    current_vote_seq: int | None = None
    vote_started: UtcDatetime | None = None
    vote_resolved: UtcDatetime | None = None
    podling_thread_id: str | None = None
    latest_revision_number: str | None = None
    vote_thread_url: str | None = None


class ReleasesPage(AtrModel):
    """One page of `releases/list`."""

    data: list[Release]
    count: int


class Project(AtrModel):
    """A project (`project/get`): its committee and full name ("Apache Example")."""

    key: str = ""
    name: str | None = None
    committee_key: str | None = None
    status: str | None = None


class Recipients(AtrModel):
    """`RecipientDefaults` (reference/atr.md §10.5.5): the default [VOTE] recipients.

    `to` is one address or null (null unless a default is stored), never a list.
    """

    to: str | None = None
    cc: list[str] = []
    bcc: list[str] = []


class Policy(AtrModel):
    """A release policy (`policy/get`, reference/atr.md §10.5.5)."""

    project_key: str = ""
    policy_vote_mode: str = MODE_EMAIL
    policy_manual_vote: bool = False
    policy_min_hours: int | None = None
    policy_start_vote_subject: str = DEFAULT_SUBJECT_TEMPLATE
    policy_start_vote_template: str = ""
    policy_vote_recipients: Recipients | None = None


class AtrCommittee(AtrModel):
    """A committee (`committee/get`); the IPMC is `incubator`."""

    key: str = ""
    name: str | None = None
    is_podling: bool = False
    committee_members: list[str] = []
    committers: list[str] = []
    release_managers: list[str] = []
    parent_committee_key: str | None = None


class TrustedBallotEntry(AtrModel):
    """One effective ballot in `vote/tabulate` (carried round-1 ballots have `is_carried`)."""

    voter_asf_uid: str
    voter_fullname: str = ""
    choice: str
    comment: str = ""
    is_binding: bool
    is_carried: bool = False
    vote_round: int | None = None
    revision_number_at_cast: str = ""
    receipt_message_id: str = ""
    cast_at: UtcDatetime | None = None


class TrustedVoteSummary(AtrModel):
    """The trusted tally's six counts."""

    binding_votes_yes: int = 0
    binding_votes_no: int = 0
    binding_votes_abstain: int = 0
    non_binding_votes_yes: int = 0
    non_binding_votes_no: int = 0
    non_binding_votes_abstain: int = 0


class VoteEmail(AtrModel):
    """One emailed vote in ATR's tabulation of the thread (`details.votes`)."""

    name: str = ""
    asf_uid_or_email: str = ""
    from_email: str = ""
    status: str = ""
    asf_eid: str = ""
    iso_datetime: str = ""
    vote: str = ""
    quotation: str = ""
    updated: bool = False


class VoteDetails(AtrModel):
    """ATR's email tabulation (`details`), with ballot receipts left out in trusted mode."""

    start_unixtime: int | None = None
    votes: dict[str, VoteEmail] = {}
    summary: dict[str, int] = {}
    passed: bool = False
    outcome: str = ""


class VoteTabulateResults(AtrModel):
    """`vote/tabulate`: trusted ballots and summary (trusted mode), and the email tabulation."""

    details: VoteDetails | None = None
    vote_mode: str
    vote_seq: int | None = None
    trusted_ballots: list[TrustedBallotEntry] | None = None
    trusted_summary: TrustedVoteSummary | None = None
    trusted_passed: bool | None = None

    def receipt_message_ids(self) -> frozenset[str]:
        """Message-IDs (without <>) of ATR's ballot receipts, to leave out of an email tally."""
        ballots = self.trusted_ballots or []
        return frozenset(b.receipt_message_id.strip().strip("<>") for b in ballots if b.receipt_message_id)


class VoteCastResults(AtrModel):
    """`vote/cast`: the lists the receipt went to."""

    success: bool
    receipt_email_to: list[str] = []


class VoteResolveResults(AtrModel):
    """`vote/resolve` (`success` is always true, §10.5.8)."""

    success: bool = True


class JwtCreateResults(AtrModel):
    """`jwt/create`: the JWT, held as a secret so it never shows in a repr."""

    asfuid: str
    jwt: pydantic.SecretStr


Model = TypeVar("Model", bound=pydantic.BaseModel)


def parse(model: type[Model], data: object, essential: Collection[str] = ()) -> tuple[Model, list[str]]:
    """The model, and the JSON paths of the fields left out because their shape was unexpected.

    Raises `pydantic.ValidationError` when a top-level field in `essential` (or a required field
    without a default) fails, or when `data` is not an object.
    """
    current: Any = copy.deepcopy(data)
    ignored: list[str] = []
    for _ in range(_MAX_REPAIRS):
        try:
            return model.model_validate(current), ignored
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            loc = tuple(first["loc"])
            if first["type"] == "missing":
                loc = loc[:-1]
            if not isinstance(current, dict) or not loc or loc[0] in essential or str(loc[0]) not in current:
                raise
            ignored.append(_drop(current, loc))
    return model.model_validate(current), ignored


def _drop(data: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """Remove the value at `loc` (as deep as the data reaches); returns its JSON path."""
    parent: Any = data
    path = "$"
    for index, step in enumerate(loc):
        last = index == len(loc) - 1
        child = _child(parent, step)
        if child is _ABSENT:
            break
        if last or not isinstance(child, dict | list):
            _remove(parent, step)
            return f"{path}.{step}"
        parent, path = child, f"{path}.{step}"
    # The location's tail is not in the data (a union tag): drop what it reached.
    return _drop_path(data, path)


_ABSENT: Final = object()


def _child(parent: Any, step: int | str) -> Any:
    if isinstance(parent, dict):
        return parent.get(str(step), _ABSENT)
    if isinstance(parent, list) and isinstance(step, int) and 0 <= step < len(parent):
        return parent[step]
    return _ABSENT


def _remove(parent: Any, step: int | str) -> None:
    if isinstance(parent, dict):
        parent.pop(str(step), None)
    elif isinstance(parent, list) and isinstance(step, int):
        parent.pop(step)


def _drop_path(data: dict[str, Any], path: str) -> str:
    steps = path.split(".")[1:]
    parent: Any = data
    for step in steps[:-1]:
        parent = parent[int(step)] if isinstance(parent, list) else parent[step]
    last = steps[-1]
    _remove(parent, int(last) if isinstance(parent, list) else last)
    return path
