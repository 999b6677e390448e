"""The ASF's public roster files that Whimsy publishes, as a `Roster`; fetched over HTTPS and cached.

`public_ldap_projects.json` holds every LDAP project group: `owners` are the PMC (or a podling's
PPMC; the `incubator` project's owners are the IPMC), `members` the committers; `lastTimestamp` is
the file's date. `public_ldap_people.json` holds each uid's public name. Neither file names any
address but `uid@apache.org`, so the roster has no alias map. Shapes as read by ATR itself
(apache/tooling-trusted-releases atr/datasources/apache.py: LDAPProjectsData, LDAPProject) and by
projects.apache.org's parsecommitters.py (`people`, `lastCreateTimestamp`).

The files are cached in the user's cache folder (`$XDG_CACHE_HOME/vote-watcher/rosters/`) and
fetched again when a day old; an unreachable server falls back to the cached copy, with a warning.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any, Final

import watcher.core.roster as roster

DEFAULT_URL: Final = "https://whimsy.apache.org/public"
PROJECTS_FILE: Final = "public_ldap_projects.json"
PEOPLE_FILE: Final = "public_ldap_people.json"
MAX_AGE: Final = datetime.timedelta(days=1)
TIMEOUT_SECONDS: Final = 30.0
_STAMP_FORMATS: Final = ("%Y%m%d%H%M%SZ", "%Y%m%d%H%M%S%z")


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Which roster a tally used, and of what date."""

    url: str
    dated: datetime.datetime | None
    """The projects file's own `lastTimestamp`."""
    fetched: datetime.datetime
    from_cache: bool
    warning: str | None = None

    def describe(self) -> str:
        """One line for the tally: the roster's URL and date."""
        dated = self.dated.strftime("%Y-%m-%d %H:%M UTC") if self.dated else "undated"
        how = "cached copy" if self.from_cache else "fetched"
        return f"{self.url}/{PROJECTS_FILE} of {dated} ({how} {self.fetched.strftime('%Y-%m-%d %H:%M UTC')})"


def from_public_ldap(projects: object, people: object, source: str = PROJECTS_FILE) -> roster.Roster:
    """Build a roster from the two parsed files (pure); RosterError when a shape is wrong."""
    groups = _mapping(_mapping(projects, source).get("projects"), f"{source}: projects")
    committees: dict[str, roster.Committee] = {}
    for name, group in groups.items():
        entry = _mapping(group, f"{source}: projects.{name}")
        committees[name] = roster.Committee(
            key=name,
            members=frozenset(_uids(entry.get("owners", []), f"{source}: projects.{name}.owners")),
            committers=frozenset(_uids(entry.get("members", []), f"{source}: projects.{name}.members")),
            is_podling=entry.get("podling") == "current",
        )
    names = _mapping(_mapping(people, PEOPLE_FILE).get("people", {}), f"{PEOPLE_FILE}: people")
    persons = {
        uid: roster.Person(uid, str(_mapping(info, f"{PEOPLE_FILE}: people.{uid}").get("name") or ""))
        for uid, info in names.items()
    }
    return roster.Roster(committees, persons)


def file_date(projects: object) -> datetime.datetime | None:
    """The projects file's `lastTimestamp` ("20240101120000Z"), or None when absent or unreadable."""
    if not isinstance(projects, Mapping):
        return None
    stamp = projects.get("lastTimestamp")
    if not isinstance(stamp, str):
        return None
    for form in _STAMP_FORMATS:
        try:
            parsed = datetime.datetime.strptime(stamp, form)
        except ValueError:
            continue
        return parsed.replace(tzinfo=datetime.UTC) if parsed.tzinfo is None else parsed.astimezone(datetime.UTC)
    return None


def cache_folder() -> pathlib.Path:
    """The user's cache folder for roster files."""
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "vote-watcher" / "rosters"


def load(
    base_url: str,
    *,
    now: datetime.datetime,
    folder: pathlib.Path | None = None,
    verify: str | bool = True,
) -> tuple[roster.Roster, Source]:
    """The roster at `base_url` (a folder holding the two files), from the cache when fresh enough."""
    import httpx  # here, not at the top: `tally` without --roster-url should not load it

    base = base_url.rstrip("/")
    where = (folder or cache_folder()) / hashlib.sha256(base.encode()).hexdigest()[:16]
    cached = _read_cache(where)
    if cached is not None and now - cached[2] < MAX_AGE:
        return _built(base, cached[0], cached[1], cached[2], from_cache=True)
    try:
        projects, people = _fetch(base, verify)
    except (httpx.HTTPError, ValueError) as exc:
        if cached is None:
            raise roster.RosterError(f"{base}: cannot read the public roster: {_why(exc)}") from exc
        warning = f"{base}: cannot read the public roster ({_why(exc)}); using the cached copy"
        return _built(base, cached[0], cached[1], cached[2], from_cache=True, warning=warning)
    built = _built(base, projects, people, now, from_cache=False)
    _write_cache(where, projects, people, now)
    return built


def _built(
    base: str,
    projects: object,
    people: object,
    fetched: datetime.datetime,
    *,
    from_cache: bool,
    warning: str | None = None,
) -> tuple[roster.Roster, Source]:
    people_roster = from_public_ldap(projects, people, f"{base}/{PROJECTS_FILE}")
    return people_roster, Source(base, file_date(projects), fetched, from_cache, warning)


def _fetch(base: str, verify: str | bool) -> tuple[object, object]:
    import httpx

    with httpx.Client(timeout=TIMEOUT_SECONDS, verify=verify, follow_redirects=True) as client:
        found = []
        for name in (PROJECTS_FILE, PEOPLE_FILE):
            response = client.get(f"{base}/{name}")
            response.raise_for_status()
            found.append(response.json())
    return found[0], found[1]


def _read_cache(where: pathlib.Path) -> tuple[object, object, datetime.datetime] | None:
    try:
        meta = json.loads((where / "fetched.json").read_text(encoding="utf-8"))
        projects = json.loads((where / PROJECTS_FILE).read_text(encoding="utf-8"))
        people = json.loads((where / PEOPLE_FILE).read_text(encoding="utf-8"))
        fetched = datetime.datetime.fromisoformat(meta["fetched"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or a broken one: fetched again
    return projects, people, fetched


def _write_cache(where: pathlib.Path, projects: object, people: object, fetched: datetime.datetime) -> None:
    try:
        where.mkdir(parents=True, exist_ok=True)
        for name, data in ((PROJECTS_FILE, projects), (PEOPLE_FILE, people)):
            temporary = where / f"{name}.tmp"
            temporary.write_text(json.dumps(data), encoding="utf-8")
            temporary.replace(where / name)
        (where / "fetched.json").write_text(json.dumps({"fetched": fetched.isoformat()}), encoding="utf-8")
    except OSError:
        return  # a cache that cannot be written costs a fetch next time, nothing more


def _why(exc: Exception) -> str:
    response = getattr(exc, "response", None)  # httpx.HTTPStatusError
    if response is not None:
        return f"HTTP {response.status_code}"
    return str(exc) or type(exc).__name__


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise roster.RosterError(f"{where} must be a JSON object")
    return value


def _uids(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise roster.RosterError(f"{where} must be a list of uids")
    return list(value)
