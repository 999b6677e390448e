"""The sandbox ATR's scenario: what ATR knows when the sandbox starts, read from TOML.

Everything lives under `[atr]`, so that one scenario file can also feed the other sandboxes.
Keys are ATR's own field names (reference/atr.md §3):

    [atr]
    now = 2026-06-01T12:00:00Z            # the clock's start; optional
    pats = { watcher = "pat-value" }      # uid -> PAT accepted by jwt/create
    [atr.committees.example]
    name = "Example"; is_podling = false
    committee_members = ["alice", "bob", "carol"]; committers = ["dave"]; release_managers = ["alice"]
    [atr.people.alice]
    name = "Alice Example"
    [atr.projects.example]
    name = "Apache Example"; committee_key = "example"
    [atr.projects.example.policy]
    vote_mode = "trusted"; min_hours = 72
    start_vote_subject = "[VOTE] Release {{PROJECT_NAME}} {{VERSION}}"
    vote_recipients = { to = ["dev@example.apache.org"] }
    [[atr.releases]]
    project_key = "example"; version = "1.0.0"; phase = "release_candidate"
    vote_mode = "trusted"; current_vote_seq = 1; vote_started = "-2h"
    [[atr.ballots]]
    release_key = "example-1.0.0"; voter_asf_uid = "alice"; choice = "+1"; cast_at = "-1h"

Times are TOML datetimes, ISO strings, or offsets from `now` such as "-2h", "+30m", "-3d", "now".
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import re
import tomllib
from collections.abc import Mapping
from typing import Any, Final

PHASES: Final = frozenset({"release_candidate_draft", "release_candidate", "release_preview", "release"})
VOTE_MODES: Final = frozenset({"manual", "email", "trusted"})
CHOICES: Final = frozenset({"+1", "0", "-1"})
DEFAULT_SECOND_ROUND_LIST: Final = "general@incubator.apache.org"
_OFFSET: Final = re.compile(r"^(?:now)?\s*([+-])\s*(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScenarioError(Exception):
    """A scenario that cannot be used; the message names the file and the TOML path."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScenarioSettings:
    """Clock start, token lifetimes and the limits the sandbox enforces."""

    now: float
    pats: Mapping[str, str] = dataclasses.field(default_factory=dict)
    jwt_minutes: float = 30.0
    jwt_leeway_seconds: float = 0.0
    jwt_per_hour: int = 10
    api_per_minute: int = 100
    """Every route's default limits, each counted per route and client (reference/atr.md §10.3)."""
    api_per_hour: int = 1000
    cast_per_hour: int = 60
    resolve_per_hour: int = 10
    second_round_email_to: str = DEFAULT_SECOND_ROUND_LIST


@dataclasses.dataclass(frozen=True, slots=True)
class CommitteeSpec:
    """A committee as `committee/get` gives it."""

    key: str
    name: str | None = None
    is_podling: bool = False
    committee_members: tuple[str, ...] = ()
    committers: tuple[str, ...] = ()
    release_managers: tuple[str, ...] = ()
    parent_committee_key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PolicySpec:
    """A project's release policy (ReleasePolicy fields)."""

    vote_mode: str = "email"
    min_hours: int | None = None
    start_vote_subject: str = ""
    start_vote_template: str = ""
    vote_recipients_to: str | None = None
    """`recipient_defaults.vote`: one address or none (reference/atr.md §10.5.5)."""
    vote_recipients_cc: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectSpec:
    """A project and its policy (None: ATR's defaults)."""

    key: str
    name: str | None = None
    committee_key: str | None = None
    status: str = "active"
    policy: PolicySpec | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseSpec:
    """A release; the vote fields are ATR's, plus what ATR keeps in the VOTE_INITIATE task."""

    project_key: str
    version: str
    phase: str = "release_candidate_draft"
    vote_mode: str | None = None
    current_vote_seq: int | None = None
    vote_started: float | None = None
    vote_resolved: float | None = None
    podling_thread_id: str | None = None
    latest_revision_number: str | None = "00001"
    created: float | None = None
    vote_duration: int | None = None
    vote_subject: str | None = None
    vote_message_id: str | None = None
    email_to: str | None = None
    initiator: str | None = None
    expedited: bool = False
    vote_thread_url: str | None = None

    @property
    def key(self) -> str:
        """ATR's release key, `{project_key}-{version}`."""
        return f"{self.project_key}-{self.version}"


@dataclasses.dataclass(frozen=True, slots=True)
class BallotSpec:
    """A trusted ballot already cast (BallotPaper fields)."""

    release_key: str
    voter_asf_uid: str
    choice: str
    vote_seq: int | None = None
    vote_round: int | None = None
    comment: str = ""
    cast_at: float | None = None
    revision_number_at_cast: str | None = None
    receipt_message_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """Everything the sandbox ATR starts from."""

    settings: ScenarioSettings
    committees: Mapping[str, CommitteeSpec] = dataclasses.field(default_factory=dict)
    people: Mapping[str, str] = dataclasses.field(default_factory=dict)
    projects: Mapping[str, ProjectSpec] = dataclasses.field(default_factory=dict)
    releases: tuple[ReleaseSpec, ...] = ()
    ballots: tuple[BallotSpec, ...] = ()


def load(path: pathlib.Path, now: float) -> Scenario:
    """Read a scenario file; `now` is the clock's start unless the file sets `atr.now`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: scenario is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return from_mapping(data, now, source=str(path))


def from_mapping(data: Mapping[str, Any], now: float, source: str = "scenario") -> Scenario:
    """Build a scenario from parsed TOML (the whole file; only `[atr]` is read)."""
    if "atr" not in data:
        raise ScenarioError(f"{source}: no [atr] table")
    top = _Table(data["atr"], "atr", source)
    start = top.time("now", now, now)
    settings = ScenarioSettings(
        now=start if start is not None else now,
        pats=top.string_map("pats"),
        jwt_minutes=top.number("jwt_minutes", 30.0),
        jwt_leeway_seconds=top.number("jwt_leeway_seconds", 0.0),
        jwt_per_hour=top.integer("jwt_per_hour", 10),
        api_per_minute=top.integer("api_per_minute", 100),
        api_per_hour=top.integer("api_per_hour", 1000),
        cast_per_hour=top.integer("cast_per_hour", 60),
        resolve_per_hour=top.integer("resolve_per_hour", 10),
        second_round_email_to=top.string("second_round_email_to", DEFAULT_SECOND_ROUND_LIST),
    )
    clock = settings.now
    committees = {key: _committee(key, table) for key, table in top.tables("committees").items()}
    people = {uid: table.string("name", "") for uid, table in top.tables("people").items()}
    projects = {key: _project(key, table) for key, table in top.tables("projects").items()}
    releases = tuple(_release(table, clock) for table in top.array("releases"))
    ballots = tuple(_ballot(table, clock) for table in top.array("ballots"))
    for table in (top, *top.tables("committees").values(), *top.tables("people").values()):
        table.check_unknown()
    scenario = Scenario(settings, committees, people, projects, releases, ballots)
    _check_references(scenario, source)
    return scenario


def _committee(key: str, table: _Table) -> CommitteeSpec:
    return CommitteeSpec(
        key=key,
        name=table.optional_string("name"),
        is_podling=table.boolean("is_podling", False),
        committee_members=tuple(table.strings("committee_members", [])),
        committers=tuple(table.strings("committers", [])),
        release_managers=tuple(table.strings("release_managers", [])),
        parent_committee_key=table.optional_string("parent_committee_key"),
    )


def _project(key: str, table: _Table) -> ProjectSpec:
    policy_table = table.optional_table("policy")
    policy = None
    if policy_table is not None:
        recipients = policy_table.optional_table("vote_recipients")
        policy = PolicySpec(
            vote_mode=policy_table.choice("vote_mode", VOTE_MODES, "email"),
            min_hours=policy_table.optional_integer("min_hours"),
            start_vote_subject=policy_table.string("start_vote_subject", ""),
            start_vote_template=policy_table.string("start_vote_template", ""),
            vote_recipients_to=recipients.optional_string("to") if recipients else None,
            vote_recipients_cc=tuple(recipients.strings("cc", [])) if recipients else (),
        )
        if recipients is not None:
            recipients.check_unknown()
        policy_table.check_unknown()
    project = ProjectSpec(
        key=key,
        name=table.optional_string("name"),
        committee_key=table.optional_string("committee_key"),
        status=table.string("status", "active"),
        policy=policy,
    )
    table.check_unknown()
    return project


def _release(table: _Table, now: float) -> ReleaseSpec:
    release = ReleaseSpec(
        project_key=table.required_string("project_key"),
        version=table.required_string("version"),
        phase=table.choice("phase", PHASES, "release_candidate_draft"),
        vote_mode=table.optional_choice("vote_mode", VOTE_MODES),
        current_vote_seq=table.optional_integer("current_vote_seq"),
        vote_started=table.time("vote_started", now),
        vote_resolved=table.time("vote_resolved", now),
        podling_thread_id=table.optional_string("podling_thread_id"),
        latest_revision_number=table.string("latest_revision_number", "00001"),
        created=table.time("created", now),
        vote_duration=table.optional_integer("vote_duration"),
        vote_subject=table.optional_string("vote_subject"),
        vote_message_id=table.optional_string("vote_message_id"),
        email_to=table.optional_string("email_to"),
        expedited=table.boolean("expedited", False),
        vote_thread_url=table.optional_string("vote_thread_url"),
        initiator=table.optional_string("initiator"),
    )
    table.check_unknown()
    if release.phase == "release_candidate" and (release.current_vote_seq is None or release.vote_mode is None):
        raise table.error("a release in release_candidate needs current_vote_seq and vote_mode")
    return release


def _ballot(table: _Table, now: float) -> BallotSpec:
    ballot = BallotSpec(
        release_key=table.required_string("release_key"),
        voter_asf_uid=table.required_string("voter_asf_uid"),
        choice=table.choice("choice", CHOICES, None),
        vote_seq=table.optional_integer("vote_seq"),
        vote_round=table.optional_integer("vote_round"),
        comment=table.string("comment", ""),
        cast_at=table.time("cast_at", now),
        revision_number_at_cast=table.optional_string("revision_number_at_cast"),
        receipt_message_id=table.optional_string("receipt_message_id"),
    )
    table.check_unknown()
    return ballot


def _check_references(scenario: Scenario, source: str) -> None:
    for key, project in scenario.projects.items():
        if project.committee_key is not None and project.committee_key not in scenario.committees:
            raise ScenarioError(f"{source}: atr.projects.{key}.committee_key: no committee {project.committee_key!r}")
    keys = set()
    for index, release in enumerate(scenario.releases):
        if release.project_key not in scenario.projects:
            raise ScenarioError(f"{source}: atr.releases[{index}].project_key: no project {release.project_key!r}")
        if release.key in keys:
            raise ScenarioError(f"{source}: atr.releases[{index}]: release {release.key!r} appears twice")
        keys.add(release.key)
    for index, ballot in enumerate(scenario.ballots):
        if ballot.release_key not in keys:
            raise ScenarioError(f"{source}: atr.ballots[{index}].release_key: no release {ballot.release_key!r}")


class _Table:
    """A TOML table read with typed getters that name the TOML path in their errors."""

    def __init__(self, value: object, where: str, source: str) -> None:
        if not isinstance(value, Mapping):
            raise ScenarioError(f"{source}: {where} must be a table")
        self.data: Mapping[str, Any] = value
        self.where = where
        self.source = source
        self.used: set[str] = set()
        self._children: dict[str, dict[str, _Table]] = {}

    def error(self, text: str, key: str | None = None) -> ScenarioError:
        where = f"{self.where}.{key}" if key else self.where
        return ScenarioError(f"{self.source}: {where}: {text}")

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error("unknown key", unknown[0])

    def _get(self, key: str) -> object:
        self.used.add(key)
        return self.data.get(key)

    def string(self, key: str, default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error("must be a string", key)
        return value

    def optional_string(self, key: str) -> str | None:
        value = self._get(key)
        if value is not None and not isinstance(value, str):
            raise self.error("must be a string", key)
        return value

    def required_string(self, key: str) -> str:
        value = self.optional_string(key)
        if not value:
            raise self.error("is required", key)
        return value

    def choice(self, key: str, allowed: frozenset[str], default: str | None) -> str:
        value = self.optional_choice(key, allowed)
        if value is None:
            if default is None:
                raise self.error(f"is required (one of {', '.join(sorted(allowed))})", key)
            return default
        return value

    def optional_choice(self, key: str, allowed: frozenset[str]) -> str | None:
        value = self.optional_string(key)
        if value is not None and value not in allowed:
            raise self.error(f"{value!r} is not one of {', '.join(sorted(allowed))}", key)
        return value

    def strings(self, key: str, default: list[str]) -> list[str]:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error("must be a list of strings", key)
        return list(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self._get(key) or {}
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise self.error("must be a table of strings", key)
        return dict(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error("must be true or false", key)
        return value

    def optional_integer(self, key: str) -> int | None:
        value = self._get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.error("must be an integer", key)
        return value

    def integer(self, key: str, default: int) -> int:
        value = self.optional_integer(key)
        return default if value is None else value

    def number(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error("must be a number", key)
        return float(value)

    def time(self, key: str, now: float, default: float | None = None) -> float | None:
        value = self._get(key)
        if value is None:
            return default
        try:
            return parse_time(value, now)
        except ValueError as exc:
            raise self.error(str(exc), key) from None

    def optional_table(self, key: str) -> _Table | None:
        value = self._get(key)
        return None if value is None else _Table(value, f"{self.where}.{key}", self.source)

    def tables(self, key: str) -> dict[str, _Table]:
        if key not in self._children:
            value = self._get(key) or {}
            if not isinstance(value, Mapping):
                raise self.error("must be a table", key)
            where = f"{self.where}.{key}"
            self._children[key] = {name: _Table(v, f"{where}.{name}", self.source) for name, v in value.items()}
        return self._children[key]

    def array(self, key: str) -> list[_Table]:
        value = self._get(key) or []
        if not isinstance(value, list):
            raise self.error("must be an array of tables ([[...]])", key)
        return [_Table(item, f"{self.where}.{key}[{index}]", self.source) for index, item in enumerate(value)]


def parse_time(value: object, now: float) -> float:
    """A TOML datetime, an ISO string, "now", or an offset from now ("-2h", "+30m", "-3d") → Unix seconds."""
    if isinstance(value, datetime.datetime):
        return _aware(value).timestamp()
    if not isinstance(value, str):
        raise ValueError("must be a datetime or a string such as '-2h'")
    text = value.strip().lower()
    if text == "now":
        return now
    match = _OFFSET.match(text)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        return now + sign * float(match.group(2)) * _UNIT_SECONDS[match.group(3)]
    try:
        return _aware(datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))).timestamp()
    except ValueError:
        raise ValueError(f"{value!r} is not a time (an ISO datetime, 'now', or an offset such as '-2h')") from None


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def synthetic(votes: int, *, uid: str, pat: str, vote_mode: str = "trusted", started: str = "-2h") -> dict[str, Any]:
    """A scenario with `votes` running votes, one project and committee each (benchmarks, load tests).

    `uid` is a member of every committee, so it may tabulate, cast and resolve.
    """
    committees: dict[str, Any] = {"incubator": {"name": "Incubator", "committee_members": [uid]}}
    projects: dict[str, Any] = {}
    releases: list[dict[str, Any]] = []
    for index in range(votes):
        key = f"project{index:03d}"
        committees[key] = {
            "name": f"Project {index}",
            "committee_members": [uid, f"{key}-pmc1", f"{key}-pmc2", f"{key}-pmc3"],
            "committers": [f"{key}-committer"],
            "release_managers": [uid],
        }
        projects[key] = {
            "name": f"Apache Project {index}",
            "committee_key": key,
            "policy": {"vote_mode": vote_mode, "min_hours": 72},
        }
        releases.append(
            {
                "project_key": key,
                "version": "1.0.0",
                "phase": "release_candidate",
                "vote_mode": vote_mode,
                "current_vote_seq": index + 1,
                "vote_started": started,
            }
        )
    return {"atr": {"pats": {uid: pat}, "committees": committees, "projects": projects, "releases": releases}}
