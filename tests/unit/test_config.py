"""The configuration: durations, secrets, validation with TOML paths, environment overrides, the example file."""

from __future__ import annotations

import datetime
import pathlib
import re
import subprocess
import sys
import textwrap
import tomllib
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pydantic
import pytest

import watcher.cli as cli
import watcher.config as config
import watcher.core.durations as durations
import watcher.services.secrets as secrets
import watcher.wiring as wiring

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
PAT = "pat-0123456789-very-secret"
# Keys the example fills in with a sample value, because their default ("" or none) would not run.
FILLED_IN = frozenset({"uid", "from", "host", "user", "pat_env", "password_env", "lists", "name"})
MINIMAL = """
[atr]
uid = "alice"
pat_file = "pat"

[[sources]]
kind = "ponymail"
lists = ["dev@maven.apache.org"]

[reminders]
from = "Vote Watcher <vote-watcher@apache.org>"

[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
"""


def write(folder: pathlib.Path, text: str, *, mode: int = 0o600, name: str = "config.toml") -> pathlib.Path:
    """A config file (and the PAT file it points to), owner-only unless told."""
    (folder / "pat").write_text(PAT + "\n")
    (folder / "pat").chmod(0o600)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)
    return path


def problems(path: pathlib.Path, environ: dict[str, str] | None = None) -> list[str]:
    """The error lines of loading a file that must fail."""
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ or {})
    return list(caught.value.lines)


def has_line(lines: list[str], path: str, fragment: str) -> bool:
    """True when a line names this TOML path and says this."""
    return any(f": {path}: " in line and fragment in line for line in lines)


# Durations ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", datetime.timedelta(seconds=30)),
        ("10m", datetime.timedelta(minutes=10)),
        ("72h", datetime.timedelta(hours=72)),
        ("2d", datetime.timedelta(days=2)),
        ("1h30m", datetime.timedelta(hours=1, minutes=30)),
        ("1w2d", datetime.timedelta(days=9)),
        (" 1h 30m ", datetime.timedelta(hours=1, minutes=30)),
        ("0s", datetime.timedelta(0)),
        ("2H", datetime.timedelta(hours=2)),
    ],
)
def test_durations_parse(text: str, expected: datetime.timedelta) -> None:
    assert durations.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("soon", "invalid duration 'soon'"),
        ("30", "has no unit"),
        ("", "empty duration"),
        ("30m1h", "largest first"),
        ("1h1h", "largest first"),
        ("5y", "unknown unit 'y'"),
        ("-5m", "invalid duration"),
        ("1.5h", "invalid duration"),
        (30, "must be a string"),
    ],
)
def test_durations_refuse(text: object, fragment: str) -> None:
    with pytest.raises(durations.DurationError, match=re.escape(fragment)):
        durations.parse(text)


@hypothesis.given(st.integers(min_value=0, max_value=10**8))
def test_durations_render_round_trip(seconds: int) -> None:
    delta = datetime.timedelta(seconds=seconds)
    assert durations.parse(durations.render(delta)) == delta


# Secrets --------------------------------------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    secret = secrets.Secret(PAT)
    assert PAT not in repr(secret)
    assert PAT not in str(secret)
    assert PAT not in f"{secret}"
    assert secret.reveal() == PAT
    assert secret == secrets.Secret(PAT)
    assert secret != secrets.Secret("other")


def test_secret_hidden_in_models_and_dumps(tmp_path: pathlib.Path) -> None:
    loaded = config.load(write(tmp_path, MINIMAL), {})
    assert loaded.atr.pat is not None
    assert loaded.atr.pat.reveal() == PAT
    assert PAT not in repr(loaded)
    assert PAT not in loaded.model_dump_json()
    assert PAT not in str(loaded.model_dump())


def test_secret_file_problems_name_the_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(secrets.SecretError, match="no such file"):
        secrets.from_file(tmp_path / "missing")
    with pytest.raises(secrets.SecretError, match="is empty"):
        secrets.from_file(tmp_path / "empty")
    with pytest.raises(secrets.SecretError, match="FOO_PAT is not set"):
        secrets.from_env("FOO_PAT", {})


# Loading a good file ----------------------------------------------------------------------------------------------


def test_minimal_config_and_derived_defaults(tmp_path: pathlib.Path) -> None:
    loaded = config.load(write(tmp_path, MINIMAL), {})
    assert loaded.watcher.state_dir == pathlib.Path("/var/lib/vote-watcher")
    assert loaded.watcher.database_url == "sqlite+aiosqlite:////var/lib/vote-watcher/vote-watcher.db"
    assert loaded.watcher.instance_name
    assert loaded.atr.base_url == "https://release-test.apache.org"
    assert loaded.atr.host == "release-test.apache.org"
    assert loaded.atr.poll_interval == datetime.timedelta(minutes=10)
    assert loaded.atr.request_budget == 300
    source = loaded.sources[0]
    assert isinstance(source, config.PonymailSection)
    assert source.name == "ponymail:lists.apache.org"
    assert source.base_url == "https://lists.apache.org"
    assert source.poll_interval == datetime.timedelta(minutes=5)
    assert (source.concurrency, source.timeout) == (4, datetime.timedelta(seconds=30))
    assert loaded.reminders.delay == datetime.timedelta(hours=2)
    assert loaded.reminders.from_ == "Vote Watcher <vote-watcher@apache.org>"
    assert loaded.reminders.dry_run_dir == pathlib.Path("/var/lib/vote-watcher/dry-run")
    assert loaded.resolve.grace == datetime.timedelta(hours=1)
    assert loaded.resolve.failed is False
    assert loaded.metrics.address is None
    assert (loaded.leases.ttl, loaded.leases.heartbeat) == (
        datetime.timedelta(seconds=30),
        datetime.timedelta(seconds=10),
    )


def test_relative_paths_are_relative_to_the_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "archive.mbox").write_bytes(b"")
    text = MINIMAL + '\n[[sources]]\nkind = "mbox"\npath = "archive.mbox"\n'
    text = text.replace("[atr]", '[watcher]\nstate_dir = "state"\n\n[atr]')
    loaded = config.load(write(tmp_path, text), {})
    assert loaded.watcher.state_dir == tmp_path / "state"
    assert loaded.watcher.database_url == f"sqlite+aiosqlite:///{tmp_path}/state/vote-watcher.db"
    mbox = loaded.sources[1]
    assert isinstance(mbox, config.MboxSection)
    assert mbox.path == tmp_path / "archive.mbox"
    assert mbox.name == f"mbox:{tmp_path}/archive.mbox"


def test_imap_source_and_loopback_plain_text(tmp_path: pathlib.Path) -> None:
    text = MINIMAL + textwrap.dedent("""
        [[sources]]
        kind = "imap"
        host = "127.0.0.1"
        port = 10143
        tls = "none"
        user = "alice"
        password_env = "IMAP_PASSWORD"
        folders = ["INBOX", "Lists/dev"]
        """)
    loaded = config.load(write(tmp_path, text), {"IMAP_PASSWORD": "imap-secret"})
    imap = loaded.sources[1]
    assert isinstance(imap, config.ImapSection)
    assert imap.password is not None
    assert imap.password.reveal() == "imap-secret"
    assert imap.folders == ["INBOX", "Lists/dev"]
    assert (imap.idle_timeout, imap.sweep_interval) == (datetime.timedelta(minutes=25), datetime.timedelta(minutes=10))
    assert imap.name == "imap:alice@127.0.0.1"


IMAP_ENTRY: dict[str, str] = {"kind": '"imap"', "host": '"imap.example.org"', "user": '"alice"'}


def _imap(**keys: str | None) -> str:
    """MINIMAL with an IMAP entry (sources[1]): its keys as TOML values, with a password from the environment."""
    entry = {**IMAP_ENTRY, "password_env": '"IMAP_PASSWORD"', **keys}
    return MINIMAL + "\n[[sources]]\n" + "".join(f"{key} = {value}\n" for key, value in entry.items() if value)


# The settings the IMAP source used to refuse by itself after check-config had passed them, and one it refused
# in its own words: each is now the configuration's, named by its TOML path.
@pytest.mark.parametrize(
    ("keys", "path", "fragment"),
    [
        ({"folders": '["INBOX", "dev", "INBOX"]'}, "sources[1].folders", "'INBOX' listed more than once"),
        ({"folders": '["INBOX", "Entwürfe"]'}, "sources[1].folders[1]", "printable ASCII"),
        ({"folders": '["INBOX", ""]'}, "sources[1].folders[1]", "printable ASCII"),
        ({"folders": '["Lists\\tdev"]'}, "sources[1].folders[0]", "printable ASCII"),
        ({"folders": "[]"}, "sources[1].folders", "must not be empty"),
        ({"idle_timeout": '"30m"'}, "sources[1].idle_timeout", "at most 29m"),
        ({"user": '""'}, "sources[1].user", "must not be empty"),
        ({"password": '""', "password_env": None}, "sources[1].password", "must not be empty"),
        ({"tls": '"none"', "port": "143"}, "sources[1].tls", "allowed only to a loopback host, not imap.example.org"),
        ({"tls": '"none"', "host": '"192.0.2.7"'}, "sources[1].tls", "allowed only to a loopback host"),
        ({"port": "0"}, "sources[1].port", "greater than or equal to 1"),
        ({"ca_file": '"missing-ca.pem"'}, "sources[1].ca_file", "does not exist"),
    ],
)
def test_imap_settings_are_checked_with_their_path(
    tmp_path: pathlib.Path, keys: dict[str, str | None], path: str, fragment: str
) -> None:
    found = problems(write(tmp_path, _imap(**keys)), {"IMAP_PASSWORD": "imap-secret"})
    assert has_line(found, path, fragment), found
    assert len(found) == 1, found


def test_imap_settings_at_their_limits_reach_the_source(tmp_path: pathlib.Path) -> None:
    text = _imap(idle_timeout='"29m"', folders='["INBOX", "Lists/dev.apache"]', tls='"none"', host='"::1"')
    loaded = config.load(write(tmp_path, text), {"IMAP_PASSWORD": "imap-secret"})
    entry = loaded.sources[1]
    assert isinstance(entry, config.ImapSection)
    settings = wiring.imap_settings(entry)
    assert (settings.idle_renew_s, settings.folders, settings.tls) == (29 * 60.0, ("INBOX", "Lists/dev.apache"), False)
    assert settings.password.reveal() == "imap-secret"
    assert settings.ssl_context() is None


def test_database_urls_get_async_drivers(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace("[atr]", '[watcher]\ndatabase_url = "postgresql://watcher@127.0.0.1:5432/votes"\n\n[atr]')
    loaded = config.load(write(tmp_path, text), {})
    assert loaded.watcher.database_url == "postgresql+asyncpg://watcher@127.0.0.1:5432/votes"
    assert config.normalise_database_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"


# Errors -----------------------------------------------------------------------------------------------------------


def test_bad_duration_and_unknown_section_are_both_named(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace("[reminders]\n", '[reminders]\ndelay = "soon"\n') + "\n[reminderz]\nenabled = false\n"
    lines = problems(write(tmp_path, text))
    assert has_line(lines, "reminders.delay", "invalid duration 'soon'")
    assert has_line(lines, "reminderz", "unknown section (did you mean 'reminders'?)")
    assert all(line.startswith(f"{tmp_path / 'config.toml'}: ") for line in lines)
    assert len(lines) == 2


def test_check_config_command_exits_2_naming_every_problem(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MINIMAL.replace("[reminders]\n", '[reminders]\ndelay = "soon"\n') + "\n[reminderz]\nenabled = false\n"
    path = write(tmp_path, text)
    assert cli.main(["check-config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "reminders.delay: invalid duration 'soon'" in captured.err
    assert "reminderz: unknown section" in captured.err


def test_check_config_command_prints_a_summary(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL.replace("[atr]", "[watcher]\ndry_run = true\n\n[atr]"))
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out
    assert "ponymail ponymail:lists.apache.org: https://lists.apache.org" in out
    assert "dev@maven.apache.org" in out
    assert "https://release-test.apache.org as alice" in out
    assert "dry run on" in out
    assert "reminders: on, 2h after" in out
    assert "resolve:   on, 1h after" in out
    assert "sqlite+aiosqlite:////var/lib/vote-watcher/vote-watcher.db" in out
    assert PAT not in out


def test_every_error_is_reported_at_once(tmp_path: pathlib.Path) -> None:
    text = textwrap.dedent("""
        [watcher]
        log_format = "jsn"
        dry_run = "perhaps"

        [atr]
        uid = "alice"
        pat_file = "pat"
        poll_interval = "often"
        base_url = "http://atr.example.org"

        [[sources]]
        kind = "imap"
        host = "imap.example.org"
        port = 99999
        user = "u"
        password_env = "PW"
        folderz = ["INBOX"]

        [[sources]]
        kind = "pop3"

        [[sources]]
        lists = ["dev@x.apache.org"]

        [reminders]
        from = "x@apache.org"
        daily_cap_per_recipient = -1

        [smtp]
        host = "127.0.0.1"
        tls = "sometimes"

        [metrics]
        listen = "9464"

        [leases]
        ttl = "10s"
        heartbeat = "20s"

        [resolve]
        color = "blue"
        """)
    lines = problems(write(tmp_path, text))
    expected = [
        ("watcher.log_format", "must be 'auto', 'json' or 'console' (got 'jsn')"),
        ("watcher.dry_run", "must be true or false (got 'perhaps')"),
        ("atr.poll_interval", "invalid duration 'often'"),
        ("atr.base_url", "plain http is allowed only to a loopback host"),
        ("sources[0].port", "less than or equal to 65535"),
        ("sources[0].folderz", "unknown key (did you mean 'folders'?)"),
        ("sources[1].kind", "unknown source kind 'pop3'"),
        ("sources[2].kind", "required key is missing"),
        ("reminders.daily_cap_per_recipient", "greater than or equal to 0"),
        ("smtp.tls", "must be 'starttls', 'implicit' or 'none'"),
        ("metrics.listen", "is not host:port"),
        ("leases.heartbeat", "must be shorter than leases.ttl (10s)"),
        ("resolve.color", "unknown key"),
    ]
    for path, fragment in expected:
        assert has_line(lines, path, fragment), (path, fragment, lines)
    assert len(lines) == len(expected), lines


def test_unknown_top_level_key_and_wrong_shapes(tmp_path: pathlib.Path) -> None:
    text = 'verbose = true\nreminders = 5\nsources = "imap"\n\n[atr]\nuid = "alice"\npat_file = "pat"\n'
    lines = problems(write(tmp_path, text))
    assert has_line(lines, "verbose", "unknown key")
    assert has_line(lines, "reminders", "must be a table")
    assert has_line(lines, "sources", "must be an array of tables ([[sources]])")
    assert len(lines) == 3, lines


def test_toml_syntax_error_and_missing_file(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "[atr\nuid = 1\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}: not valid TOML: ")
    assert "line 1" in line
    (line,) = problems(tmp_path / "nowhere.toml")
    assert line == f"{tmp_path / 'nowhere.toml'}: cannot read: no such file"


def test_semantic_checks(tmp_path: pathlib.Path) -> None:
    text = textwrap.dedent("""
        [atr]

        [[sources]]
        kind = "imap"
        host = "imap.example.org"
        tls = "none"
        user = "u"

        [[sources]]
        kind = "ponymail"
        name = "imap:u@imap.example.org"
        lists = ["dev@maven.apache.org"]

        [reminders]

        [smtp]
        host = "smtp.example.org"
        tls = "none"
        user = "mailer"
        """)
    lines = problems(write(tmp_path, text))
    expected = [
        ("atr.uid", "required"),
        ("atr.pat_file", "required: set pat_file"),
        ("sources[0].tls", '"none" (plain text) is allowed only to a loopback host, not imap.example.org'),
        ("sources[0].password_file", "required"),
        ("sources[1].name", "is also the name of sources[0]"),
        ("reminders.from", "required when reminders are enabled"),
        ("smtp.tls", "only to a loopback host"),
        ("smtp.password_file", "required"),
    ]
    for path, fragment in expected:
        assert has_line(lines, path, fragment), (path, fragment, lines)
    assert len(lines) == len(expected), lines


def test_no_sources_and_no_smtp(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace('[[sources]]\nkind = "ponymail"\nlists = ["dev@maven.apache.org"]\n', "")
    text = text.replace('[smtp]\nhost = "127.0.0.1"', "[smtp]")
    lines = problems(write(tmp_path, text))
    assert has_line(lines, "sources", "none configured")
    assert has_line(lines, "smtp.host", "required when reminders are enabled")
    dry = text.replace("[atr]", "[watcher]\ndry_run = true\n\n[atr]")
    assert not has_line(problems(write(tmp_path, dry)), "smtp.host", "required")


def test_header_injection_in_addresses_is_refused(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace(
        'from = "Vote Watcher <vote-watcher@apache.org>"', 'from = "a@apache.org\\r\\nBcc: all@example.org"'
    )
    assert has_line(problems(write(tmp_path, text)), "reminders.from", "must not contain line breaks")


# Secrets in the file ------------------------------------------------------------------------------------------------


def test_inline_secret_refused_when_others_can_read(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace('pat_file = "pat"', f'pat = "{PAT}"')
    lines = problems(write(tmp_path, text, mode=0o640))
    assert has_line(lines, "atr.pat", "refused because config.toml can be read by others (mode 0640)")
    assert PAT not in "\n".join(lines)
    loaded = config.load(write(tmp_path, text, mode=0o600), {})
    assert loaded.atr.pat == secrets.Secret(PAT)


def test_inline_database_password_refused_when_others_can_read(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace("[atr]", '[watcher]\ndatabase_url = "postgresql://w:s3cr3t@db/votes"\n\n[atr]')
    lines = problems(write(tmp_path, text, mode=0o644))
    assert has_line(lines, "watcher.database_url", "PGPASSWORD")
    assert "s3cr3t" not in "\n".join(lines)
    assert config.load(write(tmp_path, text, mode=0o600), {}).watcher.database_url.endswith("@db/votes")


def test_secret_sources_conflict_and_fail_by_name(tmp_path: pathlib.Path) -> None:
    both = MINIMAL.replace('pat_file = "pat"', 'pat_file = "pat"\npat_env = "ATR_PAT"')
    assert has_line(problems(write(tmp_path, both)), "atr.pat_env", "set only one of pat_file, pat_env")
    missing = MINIMAL.replace('pat_file = "pat"', 'pat_file = "no-such-pat"')
    lines = problems(write(tmp_path, missing))
    assert has_line(lines, "atr.pat_file", f"cannot read {tmp_path / 'no-such-pat'}: no such file")
    assert len(lines) == 1
    unset = MINIMAL.replace('pat_file = "pat"', 'pat_env = "ATR_PAT"')
    assert has_line(problems(write(tmp_path, unset)), "atr.pat_env", "ATR_PAT is not set")
    loaded = config.load(write(tmp_path, unset), {"ATR_PAT": "from-env\n"})
    assert loaded.atr.pat == secrets.Secret("from-env")


# Environment overrides ----------------------------------------------------------------------------------------------


def test_environment_overrides_apply_before_validation(tmp_path: pathlib.Path) -> None:
    environ = {
        "VOTE_WATCHER_REMINDERS__DELAY": "30m",
        "VOTE_WATCHER_WATCHER__DRY_RUN": "true",
        "VOTE_WATCHER_SOURCES__0__LISTS": '["dev@a.apache.org", "dev@b.apache.org"]',
        "VOTE_WATCHER_SOURCES__0__CONCURRENCY": "2",
        "VOTE_WATCHER_ATR_PAT": "not an override: no double underscore",
    }
    loaded = config.load(write(tmp_path, MINIMAL), environ)
    assert loaded.reminders.delay == datetime.timedelta(minutes=30)
    assert loaded.watcher.dry_run is True
    source = loaded.sources[0]
    assert isinstance(source, config.PonymailSection)
    assert source.lists == ["dev@a.apache.org", "dev@b.apache.org"]
    assert source.concurrency == 2


def test_environment_override_errors_name_the_variable(tmp_path: pathlib.Path) -> None:
    environ = {
        "VOTE_WATCHER_REMINDERS__DELAY": "later",
        "VOTE_WATCHER_REMINDERZ__DELAY": "1h",
        "VOTE_WATCHER_SOURCES__4__HOST": "x",
    }
    lines = problems(write(tmp_path, MINIMAL), environ)
    assert has_line(lines, "reminders.delay", "invalid duration 'later'")
    assert any(line.endswith("(from VOTE_WATCHER_REMINDERS__DELAY)") for line in lines)
    assert has_line(lines, "reminderz", "(from VOTE_WATCHER_REMINDERZ__DELAY)")
    assert has_line(lines, "VOTE_WATCHER_SOURCES__4__HOST", "sources has no entry 4 (it has 1)")


def test_inline_secret_from_environment_is_not_refused(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace('pat_file = "pat"\n', "")
    loaded = config.load(write(tmp_path, text, mode=0o644), {"VOTE_WATCHER_ATR__PAT": "env-pat"})
    assert loaded.atr.pat == secrets.Secret("env-pat")


def test_apply_env_overrides_is_pure() -> None:
    data: dict[str, Any] = {"reminders": {"delay": "2h"}, "sources": [{"kind": "mbox"}]}
    result = config.apply_env_overrides(data, {"VOTE_WATCHER_SOURCES__0__PATH": "/x", "HOME": "/root"})
    assert result.data["sources"][0]["path"] == "/x"
    assert "path" not in data["sources"][0]
    assert result.origins == {"sources[0].path": "VOTE_WATCHER_SOURCES__0__PATH"}
    assert result.problems == []


# Small parts ------------------------------------------------------------------------------------------------------


def test_metrics_listen_address() -> None:
    assert config.MetricsSection(listen="127.0.0.1:9464").address == ("127.0.0.1", 9464)
    assert config.MetricsSection(listen="[::1]:9000").address == ("::1", 9000)
    with pytest.raises(pydantic.ValidationError):
        config.MetricsSection(listen="127.0.0.1")


def test_opt_out_file_is_read(tmp_path: pathlib.Path) -> None:
    (tmp_path / "opt-out.txt").write_text("# people who asked\nAlice\nbob  # by mail\n\n")
    text = MINIMAL.replace("[reminders]\n", '[reminders]\nopt_out = ["carol"]\nopt_out_file = "opt-out.txt"\n')
    loaded = config.load(write(tmp_path, text), {})
    assert loaded.reminders.opt_out_uids() == {"alice", "bob", "carol"}


# The example file -------------------------------------------------------------------------------------------------


def test_example_config_loads() -> None:
    environ = {"VOTE_WATCHER_ATR_PAT": "x", "VOTE_WATCHER_IMAP_PASSWORD": "y"}
    loaded = config.load(EXAMPLE, environ)
    assert [source.kind for source in loaded.sources] == ["imap", "ponymail"]


def test_example_config_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    models: dict[str, type[pydantic.BaseModel]] = {
        name: model for name, model in config.SOURCE_MODELS.items()
    }  # fmt: skip
    for name, field in config.Config.model_fields.items():
        assert re.search(rf"^#? ?\[\[?{name}\]\]?$", text, re.MULTILINE), f"section {name} missing"
        if isinstance(field.annotation, type) and issubclass(field.annotation, pydantic.BaseModel):
            models[name] = field.annotation
    for section, model in models.items():
        for key, field in model.model_fields.items():
            toml_key = field.alias or key
            assert re.search(rf"^(# )?{toml_key} = ", text, re.MULTILINE), f"{section}.{toml_key} not in the example"


def test_example_config_states_the_defaults() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    defaults = config.Config()
    for name in ("watcher", "atr", "roster", "reminders", "smtp", "resolve", "metrics", "leases"):
        section = getattr(defaults, name)
        for key, value in example[name].items():
            field_name = "from_" if key == "from" else key
            default = getattr(section, field_name)
            if key in FILLED_IN:
                continue
            if isinstance(default, datetime.timedelta):
                assert durations.parse(value) == default, f"{name}.{key}"
            elif isinstance(default, pathlib.Path):
                assert pathlib.Path(value) == default, f"{name}.{key}"
            elif key == "database_url" or (name == "watcher" and key == "instance_name"):
                assert value == ""
            else:
                assert value == default, f"{name}.{key}"
    for entry in example["sources"]:
        model = config.SOURCE_MODELS[entry["kind"]]
        for key, value in entry.items():
            field = model.model_fields[key]
            if field.is_required() or key in FILLED_IN:
                continue
            default = field.get_default(call_default_factory=True)
            expected = durations.parse(value) if isinstance(default, datetime.timedelta) else value
            assert expected == default, f"sources {entry['kind']}.{key}"


# Out-of-range values and readable secret files ------------------------------------------------------------------


def _set(text: str, section: str, line: str) -> str:
    """MINIMAL with `line` added at the top of `[section]` (the section is added when missing)."""
    if f"[{section}]\n" not in text:
        return f"{text}\n[{section}]\n{line}\n"
    return text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)


@pytest.mark.parametrize(
    ("section", "line", "path"),
    [
        ("reminders", 'delay = "9999999999d"', "reminders.delay"),
        ("watcher", 'check_interval = "99999999999999w"', "watcher.check_interval"),
        ("watcher", 'store_retry = "3651d"', "watcher.store_retry"),
        ("resolve", 'grace = "999999999999s"', "resolve.grace"),
        ("smtp", 'data_timeout = "0s"', "smtp.data_timeout"),
        ("smtp", 'timeout = "9999999999999d"', "smtp.timeout"),
        ("atr", "request_budget = 9223372036854775807", "atr.request_budget"),
        ("reminders", "daily_cap_per_recipient = 99999999999", "reminders.daily_cap_per_recipient"),
        ("metrics", 'listen = "127.0.0.1:70000"', "metrics.listen"),
        ("leases", 'ttl = "99999999999d"', "leases.ttl"),
    ],
)
def test_out_of_range_values_exit_2_naming_their_path(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], section: str, line: str, path: str
) -> None:
    config_path = write(tmp_path, _set(MINIMAL, section, line))
    assert cli.main(["run", "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert f"{config_path}: {path}: " in err
    assert "Traceback" not in err


def test_huge_delay_as_a_process_is_a_clean_exit_2(tmp_path: pathlib.Path) -> None:
    # The exact value that once crashed config loading with a traceback and exit 1 (a restart loop).
    config_path = write(tmp_path, _set(MINIMAL, "reminders", 'delay = "9999999999d"'))
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "reminders.delay: duration '9999999999d' is out of range" in done.stderr
    assert "Traceback" not in done.stderr


def test_secret_file_others_can_read_is_refused(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, MINIMAL)
    (tmp_path / "pat").chmod(0o644)
    lines = problems(path)
    assert has_line(lines, "atr.pat_file", "can be read by others (mode 0644)")
    assert has_line(lines, "atr.pat_file", "chmod 600")
    assert not any(PAT in line for line in lines)
    (tmp_path / "pat").chmod(0o640)
    assert has_line(problems(path), "atr.pat_file", "mode 0640")


def test_readable_secret_file_allowed_with_a_warning(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, MINIMAL)
    (tmp_path / "pat").chmod(0o644)
    warnings: list[str] = []
    cfg = config.load(path, {}, allow_readable_secrets=True, warnings=warnings)
    assert cfg.atr.pat is not None and cfg.atr.pat.reveal() == PAT
    assert len(warnings) == 1
    assert "atr.pat_file" in warnings[0] and "--allow-readable-secrets" in warnings[0]
    assert cli.main(["check-config", "--config", str(path), "--allow-readable-secrets"]) == 0
    assert "warning:" in capsys.readouterr().err
    assert cli.main(["check-config", "--config", str(path)]) == 2


def test_opt_out_entries_must_name_a_uid(tmp_path: pathlib.Path) -> None:
    (tmp_path / "aliases.toml").write_text('[people.hboutemy]\nname = "Hervé"\nemails = ["herve@free.example"]\n')
    (tmp_path / "opt-out.txt").write_text("bob\nnot a uid\n")
    entries = '["carol", "Dave@apache.org", "herve@free.example", "Eve Example", "eve@elsewhere.example"]'
    text = MINIMAL.replace(
        "[reminders]\n", f'[roster]\naliases_file = "aliases.toml"\n\n[reminders]\nopt_out = {entries}\n'
    )
    text = text.replace("[reminders]\n", '[reminders]\nopt_out_file = "opt-out.txt"\n')
    lines = problems(write(tmp_path, text))
    assert has_line(lines, "reminders.opt_out[3]", "'Eve Example' is not a uid; write the person's ASF uid")
    assert has_line(lines, "reminders.opt_out[4]", "an address roster.aliases_file does not map to a uid")
    assert has_line(lines, f"reminders.opt_out_file ({tmp_path / 'opt-out.txt'}:2)", "'not a uid' is not a uid")
    assert len([line for line in lines if "opt_out" in line]) == 3


def test_opt_out_addresses_become_uids(tmp_path: pathlib.Path) -> None:
    (tmp_path / "aliases.toml").write_text('[people.hboutemy]\nemails = ["herve@free.example"]\n')
    text = MINIMAL.replace(
        "[reminders]\n",
        '[roster]\naliases_file = "aliases.toml"\n\n[reminders]\nopt_out = ["Dave@apache.org", "HERVE@free.example"]\n',
    )
    loaded = config.load(write(tmp_path, text), {})
    import watcher.core.roster as roster

    people = roster.load(tmp_path / "aliases.toml")
    assert loaded.reminders.opt_out_uids(people) == {"dave", "hboutemy"}


def test_archive_tokens_are_refused_with_the_way_to_private_lists(tmp_path: pathlib.Path) -> None:
    # lists.apache.org has no API tokens (reference/ponymail-api.md §3): an old key is an error that says why.
    text = MINIMAL.replace('lists = ["dev@maven.apache.org"]\n', 'lists = ["dev@maven.apache.org"]\ntoken_file = "t"\n')
    with pytest.raises(config.ConfigError) as caught:
        config.load(write(tmp_path, text))
    assert any("token_file" in line and "IMAP subscription" in line for line in caught.value.lines)


def test_archive_lookback_and_rereads(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MINIMAL.replace(
        'lists = ["dev@maven.apache.org"]\n',
        'lists = ["dev@maven.apache.org", "private@maven.apache.org"]\nlookback = "2h"\nreread_every = 3\n',
    )
    loaded = config.load(write(tmp_path, text))
    source = loaded.sources[0]
    assert isinstance(source, config.PonymailSection)
    assert (source.lookback, source.reread_every) == (datetime.timedelta(hours=2), 3)
    assert cli.main(["check-config", "--config", str(write(tmp_path, text))]) == 0
    out = capsys.readouterr().out
    assert "re-read every 3 polls, lookback 2h" in out
    assert "private@maven.apache.org: a private list" in out and "IMAP subscription" in out
    with pytest.raises(config.ConfigError, match="reread_every"):
        config.load(write(tmp_path, text.replace("reread_every = 3", "reread_every = 0")))
