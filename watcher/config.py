"""The TOML configuration: its model, and `load(path)`, which reports every problem with its TOML path.

Loading reads the file, applies `VOTE_WATCHER_<SECTION>__<KEY>` environment overrides, validates each
section (types, unknown keys), reads the secrets from their files or environment variables, and runs the
checks that span keys and sections. Every problem found along the way is reported at once, as
`file: path: message` lines, so that one run of `check-config` shows everything to fix.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import email.utils
import os
import pathlib
import re
import socket
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Final, Literal

import pydantic
import sqlalchemy.engine

import watcher.core.durations as durations
import watcher.core.loopback as loopback
import watcher.core.roster as roster
import watcher.services.secrets as secrets
import watcher.store.engine as engine

ENV_PREFIX: Final = "VOTE_WATCHER_"
DEFAULT_STATE_DIR: Final = pathlib.Path("/var/lib/vote-watcher")
DATABASE_FILE: Final = "vote-watcher.db"
SOURCE_KINDS: Final = ("imap", "ponymail", "mbox", "maildir")
IDLE_TIMEOUT_MAX: Final = datetime.timedelta(minutes=29)
# Keys whose values are never echoed in an error message.
_SECRET_KEYS: Final = frozenset({"pat", "password", "token", "database_url"})
_UID_RE: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


class ConfigError(Exception):
    """A configuration that cannot be used; `lines` holds one `file: path: message` line per problem."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = tuple(lines)


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, at a TOML path such as `reminders.delay` or `sources[1].port` ("" for the file)."""

    path: str
    message: str


# Field types --------------------------------------------------------------------------------------------------


def _duration(value: object) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        return value
    return durations.parse(value)


def _positive(value: datetime.timedelta) -> datetime.timedelta:
    if value <= datetime.timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _config_relative(value: pathlib.Path, info: pydantic.ValidationInfo) -> pathlib.Path:
    # Relative paths in a file are relative to that file's folder, not to wherever the daemon was started.
    value = value.expanduser()
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if value.is_absolute() or not isinstance(base, pathlib.Path):
        return value
    return base / value


def _existing_file(value: pathlib.Path) -> pathlib.Path:
    if not value.is_file():
        raise ValueError(f"{value} is not a file" if value.exists() else f"{value} does not exist")
    return value


def _existing_dir(value: pathlib.Path) -> pathlib.Path:
    if not value.is_dir():
        raise ValueError(f"{value} is not a folder" if value.exists() else f"{value} does not exist")
    return value


Duration = Annotated[datetime.timedelta, pydantic.BeforeValidator(_duration)]
"""A duration of zero or more, written "30s", "10m", "72h", "2d" or "1h30m"."""
Interval = Annotated[datetime.timedelta, pydantic.BeforeValidator(_duration), pydantic.AfterValidator(_positive)]
"""A duration longer than zero."""
ConfigPath = Annotated[pathlib.Path, pydantic.AfterValidator(_config_relative)]
ExistingFile = Annotated[
    pathlib.Path, pydantic.AfterValidator(_config_relative), pydantic.AfterValidator(_existing_file)
]
ExistingDir = Annotated[pathlib.Path, pydantic.AfterValidator(_config_relative), pydantic.AfterValidator(_existing_dir)]
Port = Annotated[int, pydantic.Field(ge=1, le=65535)]


def _check_host(value: str) -> str:
    host = value.strip()
    if not host:
        raise ValueError("must not be empty")
    if any(char.isspace() for char in host) or "/" in host:
        raise ValueError(f"{value!r} is not a host name or address")
    return host


def _check_url(value: str) -> str:
    """An http(s) base URL; plain http only to a loopback host. Returned without a trailing slash."""
    parsed = urllib.parse.urlsplit(value.strip())
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    if parsed.scheme == "http" and not loopback.is_loopback(parsed.hostname):
        raise ValueError(f"{value!r}: plain http is allowed only to a loopback host; use https")
    return value.strip().rstrip("/")


def _check_address(value: str) -> str:
    """An email address, optionally with a display name; no line breaks (they would inject headers)."""
    if not value:
        return value
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain line breaks")
    _, address = email.utils.parseaddr(value)
    if "@" not in address:
        raise ValueError(f"{value!r} is not an email address")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _check_folder(value: str) -> str:
    # Non-ASCII names need modified UTF-7 (RFC 3501 5.1.3), which the IMAP source does not speak.
    if not value or not value.isascii() or not value.isprintable():
        raise ValueError(f"{value!r} is not a folder name of printable ASCII (non-ASCII names are not supported)")
    return value


def _check_idle_timeout(value: datetime.timedelta) -> datetime.timedelta:
    # RFC 2177: a server may log off a client idle for 30 minutes; the IDLE must be renewed before.
    if value > IDLE_TIMEOUT_MAX:
        raise ValueError(f"must be at most {durations.render(IDLE_TIMEOUT_MAX)} (servers drop IDLE after 30m)")
    return value


Host = Annotated[str, pydantic.AfterValidator(_check_host)]
NonEmpty = Annotated[str, pydantic.AfterValidator(_non_empty)]
Folder = Annotated[str, pydantic.AfterValidator(_check_folder)]
IdleTimeout = Annotated[Interval, pydantic.AfterValidator(_check_idle_timeout)]
Url = Annotated[str, pydantic.AfterValidator(_check_url)]
Address = Annotated[str, pydantic.AfterValidator(_check_address)]


# Sections ---------------------------------------------------------------------------------------------------------


class Section(pydantic.BaseModel):
    """A table of the file: unknown keys are errors. `check()` finds what types alone cannot."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False)
    SECRETS: ClassVar[tuple[str, ...]] = ()

    def check(self) -> list[Problem]:
        """Problems that need more than one key to see, paths relative to this section."""
        return []


def _secret_required(section: Section, name: str, what: str) -> list[Problem]:
    # A file or variable that could not be read was reported already, under its own key.
    inline: secrets.Secret | None = getattr(section, name)
    if inline is not None and not inline:
        return [Problem(name, "must not be empty")]
    if any(getattr(section, key) is not None for key in (name, f"{name}_file", f"{name}_env")):
        return []
    return [Problem(f"{name}_file", f"required: set {name}_file (a file holding {what}) or {name}_env")]


def _plain_only_to_loopback(host: str, tls: str) -> list[Problem]:
    if tls != "none" or loopback.is_loopback(host):
        return []
    return [Problem("tls", f'"none" (plain text) is allowed only to a loopback host, not {host}')]


class WatcherSection(Section):
    """[watcher]: where state lives, and how the daemon logs."""

    state_dir: ConfigPath = DEFAULT_STATE_DIR
    database_url: str = pydantic.Field(default="", repr=False)
    dry_run: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    instance_name: str = ""
    check_interval: Interval = datetime.timedelta(minutes=1)
    # After a database failure (disk full, server stopped), how soon the failed job runs again.
    store_retry: Interval = datetime.timedelta(seconds=30)
    # Hostile mail: a vote-related message over this size is stored unread and flagged; one whose reading passes
    # read_timeout in the worker process is flagged unreadable (watcher/flow/intake.py says why these values).
    max_message_bytes: int = pydantic.Field(default=2_000_000, ge=10_000)
    read_timeout: Interval = datetime.timedelta(seconds=10)

    @pydantic.field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value) if value.strip() else ""

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> WatcherSection:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.state_dir / DATABASE_FILE}"
        if not self.instance_name:
            self.instance_name = socket.gethostname()
        return self


class AtrSection(Section):
    """[atr]: the ATR instance, the account the daemon acts as, and how hard it may be asked."""

    SECRETS: ClassVar[tuple[str, ...]] = ("pat",)
    base_url: Url = "https://release-test.apache.org"
    host: str = ""
    uid: str = ""
    pat: secrets.Secret | None = None
    pat_file: ConfigPath | None = None
    pat_env: str | None = None
    poll_interval: Interval = datetime.timedelta(minutes=10)
    request_budget: int = pydantic.Field(default=300, ge=1, le=1_000_000)
    ca_file: ExistingFile | None = None

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> AtrSection:
        if not self.host:
            self.host = urllib.parse.urlsplit(self.base_url).netloc
        return self

    def check(self) -> list[Problem]:
        """The uid and its PAT are needed for every API call that matters."""
        problems = [] if self.uid.strip() else [Problem("uid", "required: the ASF uid the daemon acts as in ATR")]
        return problems + _secret_required(self, "pat", "the ATR personal access token")


class ImapSection(Section):
    """A mailbox subscribed to the lists, watched with IDLE and swept periodically.

    The one place IMAP settings are checked: `wiring.imap_settings` turns a checked entry into the
    source's `ImapSettings`, which the source takes as given.
    """

    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    kind: Literal["imap"]
    name: str = ""
    host: Host
    port: Port = 993
    tls: Literal["implicit", "none"] = "implicit"
    user: NonEmpty
    password: secrets.Secret | None = None
    password_file: ConfigPath | None = None
    password_env: str | None = None
    folders: list[Folder] = pydantic.Field(default_factory=lambda: ["INBOX"], min_length=1)
    idle_timeout: IdleTimeout = datetime.timedelta(minutes=25)
    sweep_interval: Interval = datetime.timedelta(minutes=10)
    ca_file: ExistingFile | None = None

    @pydantic.field_validator("folders")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repr(name) for name in repeated)} listed more than once")
        return value

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> ImapSection:
        if not self.name:
            self.name = f"imap:{self.user}@{self.host}"
        return self

    def check(self) -> list[Problem]:
        """Plain text only to loopback; a password is needed to log in."""
        problems = _plain_only_to_loopback(self.host, self.tls)
        return problems + _secret_required(self, "password", "the IMAP password")


class PonymailSection(Section):
    """lists.apache.org (Pony Mail), polled per list; read anonymously (Foal has no API tokens)."""

    kind: Literal["ponymail"]
    name: str = ""
    base_url: Url = "https://lists.apache.org"
    lists: list[Address] = pydantic.Field(min_length=1)
    poll_interval: Interval = datetime.timedelta(minutes=5)
    # The archive's dates are the senders' Date headers: probes overlap by `lookback`, and each
    # tracked thread is read again every `reread_every` polls (reference/ponymail-api.md §6.1).
    lookback: Interval = datetime.timedelta(hours=1)
    reread_every: int = pydantic.Field(default=6, ge=1, le=1000)
    concurrency: int = pydantic.Field(default=4, ge=1, le=64)
    timeout: Interval = datetime.timedelta(seconds=30)
    ca_file: ExistingFile | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _no_tokens(cls, data: Any) -> Any:
        removed = sorted(key for key in ("token", "token_file", "token_env") if isinstance(data, dict) and key in data)
        if removed:
            raise ValueError(
                f"{', '.join(removed)}: lists.apache.org accepts no API tokens (only browser sessions); "
                'remove it, and read private lists through an IMAP subscription ([[sources]] kind = "imap")'
            )
        return data

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> PonymailSection:
        if not self.name:
            self.name = f"ponymail:{urllib.parse.urlsplit(self.base_url).netloc}"
        return self


class MboxSection(Section):
    """A local mbox file, read for backfill and replay."""

    kind: Literal["mbox"]
    name: str = ""
    path: ExistingFile
    poll_interval: Interval = datetime.timedelta(minutes=10)

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> MboxSection:
        if not self.name:
            self.name = f"mbox:{self.path}"
        return self


class MaildirSection(Section):
    """A local Maildir, read for backfill and replay."""

    kind: Literal["maildir"]
    name: str = ""
    path: ExistingDir
    poll_interval: Interval = datetime.timedelta(minutes=10)

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> MaildirSection:
        if not self.name:
            self.name = f"maildir:{self.path}"
        return self


Source = Annotated[ImapSection | PonymailSection | MboxSection | MaildirSection, pydantic.Field(discriminator="kind")]
SOURCE_MODELS: Final[Mapping[str, type[Section]]] = {
    "imap": ImapSection,
    "ponymail": PonymailSection,
    "mbox": MboxSection,
    "maildir": MaildirSection,
}


class RosterSection(Section):
    """[roster]: address aliases beside ATR's committee data, and how long that data is cached."""

    aliases_file: ExistingFile | None = None
    committee_ttl: Interval = datetime.timedelta(hours=6)


class RemindersSection(Section):
    """[reminders]: whether, when and how binding email voters are reminded to vote in ATR."""

    enabled: bool = True
    delay: Duration = datetime.timedelta(hours=2)
    from_: Address = pydantic.Field(default="", alias="from")
    reply_to: Address = ""
    daily_cap_per_recipient: int = pydantic.Field(default=3, ge=0, le=10_000)
    opt_out: list[str] = pydantic.Field(default_factory=list)
    opt_out_file: ExistingFile | None = None
    templates_dir: ExistingDir | None = None
    dry_run_dir: ConfigPath | None = None
    contact: Address = ""

    def opt_out_uids(self, people: roster.Roster | None = None) -> frozenset[str]:
        """`opt_out` and `opt_out_file` (one a line, `#` starts a comment) as uids, read now (edits apply).

        An entry is a uid, or an address: `uid@apache.org`, or one the roster's aliases map to a uid.
        Entries that are neither are left out here; `opt_out_problems` reports them.
        """
        found = (opt_out_uid(entry, people or roster.Roster()) for _, entry in self.opt_out_entries())
        return frozenset(uid for uid in found if uid)

    def opt_out_entries(self) -> list[tuple[str, str]]:
        """(TOML path or file:line, entry) of every opt-out entry."""
        entries = [(f"opt_out[{index}]", entry.strip()) for index, entry in enumerate(self.opt_out)]
        if self.opt_out_file is not None:
            for number, line in enumerate(self.opt_out_file.read_text(encoding="utf-8").splitlines(), 1):
                entries.append((f"opt_out_file ({self.opt_out_file}:{number})", line.partition("#")[0].strip()))
        return [(where, entry) for where, entry in entries if entry]

    def check(self) -> list[Problem]:
        """A From address is needed to send anything."""
        if self.enabled and not self.from_:
            return [Problem("from", "required when reminders are enabled (the From address of reminders)")]
        return []


class SmtpSection(Section):
    """[smtp]: the relay reminders and notices are sent through."""

    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    host: str = ""
    port: Port = 587
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    user: str = ""
    password: secrets.Secret | None = None
    password_file: ConfigPath | None = None
    password_env: str | None = None
    ca_file: ExistingFile | None = None
    timeout: Interval = datetime.timedelta(seconds=30)
    # The wait for the answer to the end of DATA: RFC 5321 §4.5.3.2.6 gives it 10 minutes, and a
    # shorter wait gets a slow relay's mail twice.
    data_timeout: Interval = datetime.timedelta(minutes=10)

    def check(self) -> list[Problem]:
        """Plain text only to loopback; a user and a password come together."""
        if not self.host:
            return []
        problems = _plain_only_to_loopback(self.host, self.tls)
        if self.user and self.password is None:
            problems += _secret_required(self, "password", "the SMTP password")
        if self.password is not None and not self.user:
            problems.append(Problem("user", "required when a password is set"))
        return problems


class ResolveSection(Section):
    """[resolve]: hybrid auto-resolution through ATR's API."""

    enabled: bool = True
    grace: Duration = datetime.timedelta(hours=1)
    failed: bool = False


class MetricsSection(Section):
    """[metrics]: the Prometheus endpoint ("" = off)."""

    listen: str = ""

    @pydantic.field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value:
            parse_listen(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when metrics are off."""
        return parse_listen(self.listen) if self.listen else None


class LeasesSection(Section):
    """[leases]: how long singleton work is held by one instance, and how often the holder renews."""

    ttl: Interval = datetime.timedelta(seconds=30)
    heartbeat: Interval = datetime.timedelta(seconds=10)

    def check(self) -> list[Problem]:
        """A holder must renew well before its lease runs out."""
        if self.heartbeat < self.ttl:
            return []
        return [Problem("heartbeat", f"must be shorter than leases.ttl ({durations.render(self.ttl)})")]


class Config(pydantic.BaseModel):
    """The whole configuration; `load()` builds it from a file, or build one in code for tests and the demo."""

    model_config = pydantic.ConfigDict(extra="forbid")
    watcher: WatcherSection = pydantic.Field(default_factory=WatcherSection)
    atr: AtrSection = pydantic.Field(default_factory=AtrSection)
    sources: list[Source] = pydantic.Field(default_factory=list)
    roster: RosterSection = pydantic.Field(default_factory=RosterSection)
    reminders: RemindersSection = pydantic.Field(default_factory=RemindersSection)
    smtp: SmtpSection = pydantic.Field(default_factory=SmtpSection)
    resolve: ResolveSection = pydantic.Field(default_factory=ResolveSection)
    metrics: MetricsSection = pydantic.Field(default_factory=MetricsSection)
    leases: LeasesSection = pydantic.Field(default_factory=LeasesSection)

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> Config:
        if self.reminders.dry_run_dir is None:
            self.reminders.dry_run_dir = self.watcher.state_dir / "dry-run"
        return self

    def check(self) -> list[Problem]:
        """Every problem in the sections and across them (full paths)."""
        problems: list[Problem] = []
        for name in type(self).model_fields:
            problems += _section_problems(name, getattr(self, name))
        return problems + _cross_problems(self)


def _section_problems(name: str, value: object) -> list[Problem]:
    if isinstance(value, Section):
        return [Problem(_join(name, problem.path), problem.message) for problem in value.check()]
    if not isinstance(value, list):
        return []
    problems: list[Problem] = []
    for index, item in enumerate(value):
        problems += _section_problems(f"{name}[{index}]", item)
    return problems


def opt_out_uid(entry: str, people: roster.Roster) -> str | None:
    """The uid an opt-out entry names: a uid, `uid@apache.org`, or an address the roster maps; else None."""
    value = entry.strip().lower()
    if _UID_RE.fullmatch(value):
        return value
    local, at, domain = value.rpartition("@")
    if at and domain == "apache.org" and _UID_RE.fullmatch(local):
        return local
    return people.uid_for_address(value) if at else None


def opt_out_problems(config: Config) -> list[Problem]:
    """Opt-out entries that name no uid: a typo there would never match and the person would still get mail."""
    people = roster.Roster()
    if config.roster.aliases_file is not None:
        try:
            people = roster.load(config.roster.aliases_file)
        except roster.RosterError as exc:
            return [Problem("roster.aliases_file", str(exc))]
    problems: list[Problem] = []
    for where, entry in config.reminders.opt_out_entries():
        if opt_out_uid(entry, people) is None:
            detail = "an address roster.aliases_file does not map to a uid" if "@" in entry else "not a uid"
            problems.append(Problem(f"reminders.{where}", f"{entry!r} is {detail}; write the person's ASF uid"))
    return problems


def _cross_problems(config: Config) -> list[Problem]:
    problems: list[Problem] = opt_out_problems(config)
    if not config.sources:
        message = 'none configured: add a [[sources]] table of kind "imap", "ponymail", "mbox" or "maildir"'
        problems.append(Problem("sources", message))
    seen: dict[str, int] = {}
    for index, source in enumerate(config.sources):
        if source.name in seen:
            first = seen[source.name]
            problems.append(Problem(f"sources[{index}].name", f"{source.name!r} is also the name of sources[{first}]"))
        seen.setdefault(source.name, index)
    if config.reminders.enabled and not config.watcher.dry_run and not config.smtp.host:
        problems.append(Problem("smtp.host", "required when reminders are enabled (or set watcher.dry_run = true)"))
    return problems


# Small parsers ----------------------------------------------------------------------------------------------------


def normalise_database_url(url: str) -> str:
    """A SQLAlchemy URL with its async driver: sqlite → sqlite+aiosqlite, postgresql → postgresql+asyncpg."""
    try:
        return engine.async_url(url.strip()).render_as_string(hide_password=False)
    except engine.StoreError as exc:
        raise ValueError(str(exc)) from None


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) to (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port, such as 127.0.0.1:9464")
    return host.strip("[]"), int(port)


def _join(prefix: str, path: str) -> str:
    if not path:
        return prefix
    if not prefix:
        return path
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def _render_loc(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        path = _join(path, f"[{part}]" if isinstance(part, int) else part)
    return path


# Environment overrides --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Overrides:
    """The data after environment overrides, which variable set which TOML path, and variables that fit nowhere."""

    data: dict[str, Any]
    origins: dict[str, str]
    problems: list[Problem]


def apply_env_overrides(data: Mapping[str, Any], environ: Mapping[str, str]) -> Overrides:
    """Apply `VOTE_WATCHER_<SECTION>__<KEY>` (and `VOTE_WATCHER_SOURCES__<N>__<KEY>`) variables to a copy of the data.

    Values stay strings, converted by validation; a value that starts with `[` is read as a TOML array.
    A variable that names no place (a source index the file does not have) is a problem named after it.
    """
    result = Overrides(_deep_copy(data), {}, [])
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or "__" not in variable[len(ENV_PREFIX) :]:
            continue
        parts = [part.lower() for part in variable[len(ENV_PREFIX) :].split("__")]
        try:
            value = _env_value(environ[variable])
            path = _set_path(result.data, parts, value)
        except ValueError as exc:
            result.problems.append(Problem(variable, str(exc)))
            continue
        result.origins[path] = variable
    return result


def _env_value(text: str) -> Any:
    if not text.lstrip().startswith("["):
        return text
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        raise ValueError('a value starting with [ must be a TOML array, such as ["INBOX", "Lists"]') from None


def _set_path(data: dict[str, Any], parts: Sequence[str], value: Any) -> str:
    if any(not part for part in parts):
        raise ValueError("empty name between __ separators")
    node: Any = data
    loc: list[str | int] = []
    for part in parts[:-1]:
        node, step = _descend(node, part, _render_loc(loc))
        loc.append(step)
    if not isinstance(node, dict):
        raise ValueError(f"{_render_loc(loc)} is not a table")
    node[parts[-1]] = value
    loc.append(parts[-1])
    return _render_loc(loc)


def _descend(node: Any, part: str, where: str) -> tuple[Any, str | int]:
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise ValueError(f"{where} has no entry {part} (it has {len(node)})")
        return node[int(part)], int(part)
    if not isinstance(node, dict):
        raise ValueError(f"{where} is not a table")
    child = node.setdefault(part, {})
    return child, part


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


# Loading ----------------------------------------------------------------------------------------------------------


_SECTION_ADAPTERS: Final[Mapping[str, pydantic.TypeAdapter[Any]]] = {
    name: pydantic.TypeAdapter(field.annotation)
    for name, field in Config.model_fields.items()
    if field.annotation is not None
}


def load(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    allow_readable_secrets: bool = False,
    warnings: list[str] | None = None,
) -> Config:
    """Read, override from the environment, validate and check a config file; raise `ConfigError` listing all.

    A `*_file` secret that group or others can read is refused, unless `allow_readable_secrets` (tests,
    demos), when a line saying so is added to `warnings`.
    """
    file = pathlib.Path(path)
    env = os.environ if environ is None else environ
    data = _read(file)
    overridden = apply_env_overrides(data, env)
    problems = list(overridden.problems)
    sections, found = _validate_sections(overridden.data, file.parent)
    problems += found
    origin = _Origin(file, overridden.origins, env, allow_readable_secrets, warnings if warnings is not None else [])
    for name, value in sections.items():
        problems += _load_secrets(name, value, origin)
    config: Config | None = None
    if set(sections) == set(Config.model_fields):
        config = Config.model_validate(sections)
        problems += config.check()
    else:
        for name, value in sections.items():
            problems += _section_problems(name, value)
    if problems or config is None:
        raise ConfigError(_lines(file, problems, overridden.origins))
    return config


def _read(file: pathlib.Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{file}: cannot read: no such file"]) from None
    except PermissionError:
        raise ConfigError([f"{file}: cannot read: permission denied"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{file}: cannot read: it is a directory"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: not valid TOML: {exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{file}: not valid TOML: the file is not UTF-8"]) from None


def _validate_sections(data: Mapping[str, Any], base_dir: pathlib.Path) -> tuple[dict[str, Any], list[Problem]]:
    """Validate each known section on its own, so that one bad section hides nothing in another."""
    known = list(Config.model_fields)
    problems = [_unknown(name, data[name], known, section=True) for name in data if name not in known]
    sections: dict[str, Any] = {}
    for name, adapter in _SECTION_ADAPTERS.items():
        raw = data.get(name, [] if name == "sources" else {})
        try:
            sections[name] = adapter.validate_python(raw, context={"base_dir": base_dir})
        except pydantic.ValidationError as exc:
            problems += [_problem(name, error, raw) for error in exc.errors()]
    return sections, problems


def _unknown(path: str, value: object, known: Sequence[str], *, section: bool) -> Problem:
    is_table = isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, dict) for v in value))
    what = "unknown section" if section and is_table else "unknown key"
    close = difflib.get_close_matches(path.rpartition(".")[2], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return Problem(path, what + hint)


def _problem(section: str, error: Any, raw: object) -> Problem:
    loc = [section, *error["loc"]]
    # A source's errors carry its kind as a loc step (the discriminator's tag); the TOML path has none.
    if section == "sources" and len(loc) > 3 and isinstance(loc[1], int) and loc[2] in SOURCE_KINDS:
        del loc[2]
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown(_render_loc(loc), None, _known_keys(section, loc, raw), section=False)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        choices = ", ".join(f'"{name}"' for name in SOURCE_KINDS)
        tag = error.get("ctx", {}).get("tag")
        message = f"unknown source kind {tag!r}" if tag is not None else "required key is missing"
        return Problem(_render_loc([*loc, "kind"]), f"{message}; use one of {choices}")
    return Problem(_render_loc(loc), _message(kind, error, str(loc[-1])))


def _known_keys(section: str, loc: Sequence[str | int], raw: object) -> list[str]:
    model: type[pydantic.BaseModel] | None = _SECTION_MODELS.get(section)
    if section == "sources" and isinstance(raw, list) and isinstance(loc[1], int) and loc[1] < len(raw):
        entry = raw[loc[1]]
        model = SOURCE_MODELS.get(entry.get("kind", "")) if isinstance(entry, dict) else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _message(kind: str, error: Any, key: str) -> str:
    message = str(error["msg"])
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table"
    if kind == "list_type" and key == "sources":
        return "must be an array of tables ([[sources]])"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    message = _PLAIN_MESSAGES.get(kind, message)
    message = message.replace("Input should be", "must be").replace("List should have", "must have")
    value = error.get("input")
    if key not in _SECRET_KEYS and isinstance(value, str | int | float | bool):
        message += f" (got {value!r})"
    return message


_PLAIN_MESSAGES: Final = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "too_short": "must not be empty",
    "list_type": "must be an array",
}
_SECTION_MODELS: Final[Mapping[str, type[pydantic.BaseModel]]] = {
    name: field.annotation
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Section)
}


@dataclasses.dataclass(frozen=True)
class _Origin:
    """Where the data came from: the file (its mode decides about inline secrets) and the environment."""

    file: pathlib.Path
    overridden: Mapping[str, str]
    environ: Mapping[str, str]
    allow_readable_secrets: bool = False
    warnings: list[str] = dataclasses.field(default_factory=list)


def _load_secrets(name: str, value: object, origin: _Origin) -> list[Problem]:
    """Read each secret of a section from its file or variable; refuse inline ones in a file others can read."""
    if isinstance(value, list):
        problems: list[Problem] = []
        for index, item in enumerate(value):
            problems += _load_secrets(f"{name}[{index}]", item, origin)
        return problems
    if isinstance(value, WatcherSection):
        return _database_password(value, origin)
    if not isinstance(value, Section):
        return []
    problems = []
    for secret in value.SECRETS:
        problems += _load_secret(value, name, secret, origin)
    return problems


def _load_secret(section: Section, prefix: str, name: str, origin: _Origin) -> list[Problem]:
    inline: secrets.Secret | None = getattr(section, name)
    from_file: pathlib.Path | None = getattr(section, f"{name}_file")
    from_env: str | None = getattr(section, f"{name}_env")
    given = [key for key, set_ in ((name, inline), (f"{name}_file", from_file), (f"{name}_env", from_env)) if set_]
    if len(given) > 1:
        return [Problem(_join(prefix, given[1]), f"set only one of {', '.join(given)}")]
    try:
        if from_file is not None:
            setattr(section, name, secrets.from_file(from_file))
            problem = _shared_secret_file(from_file, _join(prefix, f"{name}_file"), origin)
            if problem is not None:
                return [problem]
        elif from_env is not None:
            setattr(section, name, secrets.from_env(from_env, origin.environ))
    except secrets.SecretError as exc:
        return [Problem(_join(prefix, given[0]), str(exc))]
    path = _join(prefix, name)
    if inline is None or path in origin.overridden or _owner_only(origin.file):
        return []
    return [Problem(path, _inline_refused(origin.file, f"{name}_file or {name}_env"))]


def _shared_secret_file(file: pathlib.Path, path: str, origin: _Origin) -> Problem | None:
    """A secret file others can read is refused, as an inline secret in such a config file is."""
    if _owner_only(file):
        return None
    mode = file.stat().st_mode & 0o777
    text = f"{file} can be read by others (mode {mode:04o}): run chmod 600 on it (and chown it to the service user)"
    if origin.allow_readable_secrets:
        origin.warnings.append(f"{origin.file}: {path}: {text} (allowed by --allow-readable-secrets)")
        return None
    return Problem(path, text)


def _database_password(section: WatcherSection, origin: _Origin) -> list[Problem]:
    if not sqlalchemy.engine.make_url(section.database_url).password:
        return []
    if "watcher.database_url" in origin.overridden or _owner_only(origin.file):
        return []
    alternative = "a URL without the password and PGPASSWORD or ~/.pgpass"
    return [Problem("watcher.database_url", _inline_refused(origin.file, alternative))]


def _owner_only(file: pathlib.Path) -> bool:
    try:
        return secrets.owner_only(file)
    except OSError:
        return False


def _inline_refused(file: pathlib.Path, alternative: str) -> str:
    mode = file.stat().st_mode & 0o777
    return (
        f"a secret written in the file is refused because {file.name} can be read by others (mode {mode:04o}): "
        f"run chmod 600 on it, or use {alternative}"
    )


def _lines(file: pathlib.Path, problems: Sequence[Problem], origins: Mapping[str, str]) -> list[str]:
    lines = []
    for problem in problems:
        variables = [var for path, var in origins.items() if _within(path, problem.path)]
        suffix = f" (from {', '.join(sorted(set(variables)))})" if variables and problem.path else ""
        where = f"{problem.path}: " if problem.path else ""
        lines.append(f"{file}: {where}{problem.message}{suffix}")
    return lines


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith((f"{ancestor}.", f"{ancestor}["))
