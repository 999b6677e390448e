"""The shipped systemd unit: systemd's own tools verify it silently and rate its exposure 2.0 or better."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
from collections import defaultdict

import pytest

import watcher.cli as cli

SYSTEMD_DIR = pathlib.Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "vote-watcher.service"
SYSUSERS = SYSTEMD_DIR / "sysusers.d" / "vote-watcher.conf"
INSTALLED_ENTRY_POINT = "/opt/vote-watcher/bin/vote-watcher"
EXEC_START = f"{INSTALLED_ENTRY_POINT} run --config /etc/vote-watcher/config.toml"
MAX_EXPOSURE = 2.0
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


def _tool(name: str) -> str:
    """A systemd tool's path; its absence fails the test, naming the fix."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package systemd (scripts/install-system-deps.sh)")
    return path


def _run(*argv: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _directives(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value it is given (systemd allows repeated keys such as SystemCallFilter)."""
    found: dict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found[f"{section}.{key}"].append(value)
    return found


def _entry_point() -> str:
    """The venv's `vote-watcher`, or the interpreter itself (`python -m watcher`) when not installed."""
    script = pathlib.Path(sys.prefix) / "bin" / "vote-watcher"
    return str(script) if script.is_file() else f"{sys.executable} -m watcher"


def _render(tmp_path: pathlib.Path, replace: tuple[str, str] | None = None) -> pathlib.Path:
    """The shipped unit with ExecStart pointing at an executable that exists here, in its own folder."""
    text = UNIT.read_text()
    assert text.count(f"ExecStart={EXEC_START}\n") == 1
    text = text.replace(INSTALLED_ENTRY_POINT, _entry_point())
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / "vote-watcher.service"
    path.write_text(text)
    return path


def test_unit_verifies_with_no_output(tmp_path: pathlib.Path) -> None:
    unit = _render(tmp_path)
    result = _run(_tool("systemd-analyze"), "verify", str(unit), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_verify_reports_a_broken_unit_on_stderr(tmp_path: pathlib.Path) -> None:
    # Warnings still exit 0: the check above is meaningful only because stderr is asserted empty.
    unit = _render(tmp_path, ("Type=notify\n", "Type=notiffy\n"))
    result = _run(_tool("systemd-analyze"), "verify", str(unit), cwd=tmp_path)
    assert result.returncode == 0
    assert "notiffy" in result.stderr


def test_unit_exposure_is_2_0_or_better(tmp_path: pathlib.Path) -> None:
    unit = _render(tmp_path)
    result = _run(_tool("systemd-analyze"), "security", "--offline=true", str(unit), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    match = EXPOSURE.search(result.stdout)
    assert match is not None, result.stdout
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout


def test_unit_runs_the_daemon_as_a_notify_service_with_a_watchdog() -> None:
    unit = _directives(UNIT.read_text())
    assert unit["Service.Type"] == ["notify"]
    assert unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.ExecStart"] == [EXEC_START]
    assert unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.TimeoutStopSec"] == ["15"]
    assert unit["Service.WatchdogSec"] and unit["Service.WatchdogSec"][0]
    # A configuration error (exit 2) is not retried in a loop.
    assert unit["Service.RestartPreventExitStatus"] == ["2 3"]
    assert unit["Service.CapabilityBoundingSet"] == [""]
    assert unit["Service.StateDirectory"] == ["vote-watcher"]
    assert unit["Service.ConfigurationDirectory"] == ["vote-watcher"]


def test_unit_command_line_is_accepted_by_the_cli() -> None:
    args = cli.build_parser().parse_args(EXEC_START.split()[1:])
    assert args.command == "run"
    assert args.config == "/etc/vote-watcher/config.toml"


def test_sysusers_creates_the_user_the_unit_runs_as(tmp_path: pathlib.Path) -> None:
    unit = _directives(UNIT.read_text())
    user = unit["Service.User"][0]
    assert unit["Service.Group"] == [user]
    (tmp_path / "etc").mkdir()
    result = _run(_tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc" / "passwd").read_text().splitlines()}
    assert user in passwd
    assert passwd[user][5:] == ["/var/lib/vote-watcher", "/usr/sbin/nologin"]
    assert user in (tmp_path / "etc" / "group").read_text().split(":")
