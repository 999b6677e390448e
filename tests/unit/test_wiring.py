"""The composition root: what the daemon is told of the configuration, and which modules read `Config`."""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
import sys

import watcher.config as config
import watcher.flow.leases as leases
import watcher.services.secrets as secrets
import watcher.wiring as wiring

_MINUTE = datetime.timedelta(minutes=1)


def _cfg(tmp_path: pathlib.Path) -> config.Config:
    mbox = tmp_path / "list.mbox"
    mbox.write_bytes(b"")
    return config.Config(
        watcher=config.WatcherSection(instance_name="one", check_interval="2m", store_retry="15s"),
        atr=config.AtrSection(poll_interval="7m", request_budget=120),
        sources=[
            config.PonymailSection(kind="ponymail", lists=["dev@lantern.apache.org"], poll_interval="5m"),
            config.PonymailSection(kind="ponymail", name="b", lists=["dev@harbor.apache.org"], poll_interval="3m"),
            config.ImapSection(
                kind="imap", host="127.0.0.1", user="w", password=secrets.Secret("x"), sweep_interval="4m"
            ),
            config.MboxSection(kind="mbox", path=mbox, poll_interval="9m"),
        ],
    )


def test_the_daemon_settings_come_from_the_config(tmp_path: pathlib.Path) -> None:
    settings = wiring.settings(_cfg(tmp_path))
    assert (settings.instance_name, settings.check_interval) == ("one", 2 * _MINUTE)
    assert settings.store_retry == datetime.timedelta(seconds=15)
    assert (settings.atr_poll_interval, settings.request_budget, settings.sources) == (7 * _MINUTE, 120, 4)
    # Each source job runs at the shortest interval of its sources.
    assert settings.source_jobs == {"archives": 3 * _MINUTE, "mailboxes": 4 * _MINUTE, "files": 9 * _MINUTE}
    assert settings.polls["imap:w@127.0.0.1"] == (leases.mailbox("imap:w@127.0.0.1"), 4 * _MINUTE)
    assert settings.polls["b"] == (leases.archive("b"), 3 * _MINUTE)


def test_a_configuration_without_local_files_schedules_no_files_job(tmp_path: pathlib.Path) -> None:
    cfg = _cfg(tmp_path)
    cfg = cfg.model_copy(update={"sources": cfg.sources[:2]})
    assert set(wiring.settings(cfg).source_jobs) == {"archives"}


def test_only_the_wiring_and_the_commands_load_the_config_module() -> None:
    probe = (
        "import importlib, json, pkgutil, sys\n"
        "import watcher.daemon, watcher.flow.desk, watcher.flow.intake, watcher.flow.discovery\n"
        "import watcher.sources.imap, watcher.sources.files, watcher.sources.ponymail, watcher.sources.stored\n"
        "print(json.dumps('watcher.config' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) is False
