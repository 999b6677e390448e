"""Committee rosters and address aliases: who is binding, and which uid an address belongs to.

The facts come from a roster TOML file (DESIGN.md §8) or from ATR's `committee/get`;
both end up as a `Roster` value. Loading is the only I/O here.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

Status = Literal["binding", "committer", "contributor", "unknown"]
STATUSES: Final[tuple[Status, ...]] = ("binding", "committer", "contributor", "unknown")
IPMC_KEY: Final = "incubator"
_COMMITTEE_KEYS: Final = frozenset({"members", "committers", "release_managers", "is_podling", "name"})
_PERSON_KEYS: Final = frozenset({"name", "emails"})


class RosterError(Exception):
    """A roster file that cannot be used; the message names the file and the TOML path."""


@dataclasses.dataclass(frozen=True, slots=True)
class Committee:
    """A PMC or PPMC: its members are binding, its committers are not."""

    key: str
    members: frozenset[str] = frozenset()
    committers: frozenset[str] = frozenset()
    release_managers: frozenset[str] = frozenset()
    is_podling: bool = False
    name: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Person:
    """A uid with a display name and the addresses it writes from besides uid@apache.org."""

    uid: str
    name: str = ""
    emails: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Roster:
    """Committees and people, with an address index built once."""

    committees: Mapping[str, Committee] = dataclasses.field(default_factory=dict)
    people: Mapping[str, Person] = dataclasses.field(default_factory=dict)
    _by_address: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {email.lower(): uid for uid, person in self.people.items() for email in person.emails}
        object.__setattr__(self, "_by_address", index)

    def uid_for_address(self, address: str) -> str | None:
        """The uid an address belongs to, from the alias map (uid@apache.org is handled by identity)."""
        return self._by_address.get(address.lower())

    def name_of(self, uid: str) -> str:
        """The person's display name, or "" when unknown."""
        person = self.people.get(uid)
        return person.name if person else ""

    def known_uids(self) -> frozenset[str]:
        """Every uid this roster mentions."""
        uids: set[str] = set(self.people)
        for committee in self.committees.values():
            uids |= committee.members | committee.committers
        return frozenset(uids)

    def status(self, uid: str | None, committee_key: str | None) -> Status:
        """binding (member of the committee), committer, contributor (known uid) or unknown (no uid)."""
        if not uid:
            return "unknown"
        committee = self.committees.get(committee_key) if committee_key else None
        if committee is None:
            return "contributor"
        if uid in committee.members:
            return "binding"
        if uid in committee.committers:
            return "committer"
        return "contributor"

    def merged(self, other: Roster) -> Roster:
        """This roster with another's committees and people added (the other wins on conflicts)."""
        people = dict(self.people)
        for uid, person in other.people.items():
            mine = people.get(uid)
            emails = tuple(dict.fromkeys((*(mine.emails if mine else ()), *person.emails)))
            people[uid] = Person(uid, person.name or (mine.name if mine else ""), emails)
        return Roster({**self.committees, **other.committees}, people)


def load(path: pathlib.Path) -> Roster:
    """Read a roster TOML file; raises RosterError naming the file and the TOML path."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RosterError(f"{path}: cannot read roster: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RosterError(f"{path}: roster is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RosterError(f"{path}: not valid TOML: {exc}") from exc
    return from_mapping(data, source=str(path))


def from_mapping(data: Mapping[str, Any], source: str = "roster") -> Roster:
    """Build a roster from parsed TOML; raises RosterError naming the TOML path of a bad value."""
    unknown = sorted(set(data) - {"committees", "people"})
    if unknown:
        raise RosterError(f"{source}: unknown section [{unknown[0]}] (expected [committees.*] or [people.*])")
    committees = {key: _committee(key, value, source) for key, value in _table(data, "committees", source).items()}
    people = {uid: _person(uid, value, source) for uid, value in _table(data, "people", source).items()}
    return Roster(committees, people)


def _table(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise RosterError(f"{source}: {key} must be a table")
    return value


def _committee(key: str, value: object, source: str) -> Committee:
    where = f"committees.{key}"
    if not isinstance(value, Mapping):
        raise RosterError(f"{source}: {where} must be a table")
    unknown = sorted(set(value) - _COMMITTEE_KEYS)
    if unknown:
        raise RosterError(f"{source}: {where}.{unknown[0]}: unknown key")
    is_podling = value.get("is_podling", False)
    if not isinstance(is_podling, bool):
        raise RosterError(f"{source}: {where}.is_podling must be true or false")
    return Committee(
        key=key,
        members=frozenset(_uids(value.get("members", []), f"{where}.members", source)),
        committers=frozenset(_uids(value.get("committers", []), f"{where}.committers", source)),
        release_managers=frozenset(_uids(value.get("release_managers", []), f"{where}.release_managers", source)),
        is_podling=is_podling,
        name=_string(value.get("name", ""), f"{where}.name", source),
    )


def _person(uid: str, value: object, source: str) -> Person:
    where = f"people.{uid}"
    if not isinstance(value, Mapping):
        raise RosterError(f"{source}: {where} must be a table")
    unknown = sorted(set(value) - _PERSON_KEYS)
    if unknown:
        raise RosterError(f"{source}: {where}.{unknown[0]}: unknown key")
    emails = _strings(value.get("emails", []), f"{where}.emails", source)
    for index, address in enumerate(emails):
        if "@" not in address or any(ch.isspace() for ch in address):
            raise RosterError(f"{source}: {where}.emails[{index}]: {address!r} is not an email address")
    return Person(uid, _string(value.get("name", ""), f"{where}.name", source), tuple(e.lower() for e in emails))


def _uids(value: object, where: str, source: str) -> list[str]:
    uids = _strings(value, where, source)
    for index, uid in enumerate(uids):
        if not uid or "@" in uid or any(ch.isspace() for ch in uid):
            raise RosterError(f"{source}: {where}[{index}]: {uid!r} is not an ASF uid")
    return uids


def _strings(value: object, where: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RosterError(f"{source}: {where} must be a list of strings")
    return list(value)


def _string(value: object, where: str, source: str) -> str:
    if not isinstance(value, str):
        raise RosterError(f"{source}: {where} must be a string")
    return value


def committee_for_round(roster: Roster, committee_key: str | None, vote_round: int | None) -> str | None:
    """The committee whose members are binding: the IPMC in a podling's round 2, else the given one."""
    if vote_round == 2:
        return IPMC_KEY
    return committee_key


def uids_of(committees: Iterable[Committee]) -> frozenset[str]:
    """Every member uid of the given committees."""
    return frozenset(uid for committee in committees for uid in committee.members)
