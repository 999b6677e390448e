"""`vote-watcher check-config --probe` against the sandbox ATR: token, running votes, schema drift."""

from __future__ import annotations

import argparse
import pathlib

import pytest

import watcher.commands.check_config as check_config
import watcher.sandbox.clocks as clocks
from tests.fixtures import atr as fixtures
from tests.fixtures.atr import StartAtr


def write_config(folder: pathlib.Path, atr_url: str, pat: str = fixtures.PAT) -> pathlib.Path:
    pat_file = folder / "pat"
    pat_file.write_text(pat)
    pat_file.chmod(0o600)
    path = folder / "config.toml"
    mbox = folder / "dev.mbox"
    mbox.write_text("")
    path.write_text(
        f"""
[watcher]
state_dir = "{folder / "state"}"
dry_run = true

[atr]
base_url = "{atr_url}"
uid = "{fixtures.UID}"
pat_file = "{pat_file}"

[reminders]
from = "vote-watcher <watcher@apache.org>"

[[sources]]
kind = "mbox"
path = "{mbox}"
"""
    )
    return path


def probe(path: pathlib.Path) -> int:
    return check_config.run(argparse.Namespace(config=str(path), probe=True, allow_readable_secrets=False))


async def test_the_probe_passes_against_an_atr_that_matches_the_schema(
    start_atr: StartAtr,
    atr_clock: clocks.ManualClock,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with start_atr() as atr:
        path = write_config(tmp_path, atr.url)
        status = await _in_thread(probe, path)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "ATR token: a new JWT from the PAT (jwt/create)" in out
    assert "ATR releases/list: 3 running votes" in out
    assert "ATR schema: no drift from atr-api-schema.json (1881ebb9)" in out


async def test_the_probe_names_each_drift_and_fails_when_a_needed_field_changed(
    start_atr: StartAtr,
    atr_clock: clocks.ManualClock,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with start_atr() as atr:
        schemas = atr.openapi_document["components"]["schemas"]
        del schemas["Release"]["properties"]["current_vote_seq"]
        schemas["RecipientDefaults"]["properties"]["to"] = {"type": "array", "items": {"type": "string"}}
        schemas["Release"]["properties"]["vote_ends"] = {"type": "string", "format": "date-time"}
        schemas["Project"]["properties"]["homepage"] = {"type": "integer"}
        path = write_config(tmp_path, atr.url)
        status = await _in_thread(probe, path)
    out = capsys.readouterr().out
    assert status == 1, out
    assert "ATR schema: problem: Release.current_vote_seq: missing in ATR's schema" in out
    assert "ATR schema: problem: RecipientDefaults.to: type changed: ours null | string, ATR's array" in out
    assert "ATR schema: note: Release.vote_ends: new field in ATR's schema" in out
    # A field the daemon does not read is worth knowing, not a failure.
    assert "ATR schema: note: Project.homepage: type changed" in out


async def test_a_refused_pat_fails_the_probe(
    start_atr: StartAtr,
    atr_clock: clocks.ManualClock,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with start_atr() as atr:
        status = await _in_thread(probe, write_config(tmp_path, atr.url, pat="wrong"))
    out = capsys.readouterr().out
    assert status == 1
    assert "ATR token: ATR /api/jwt/create: HTTP 401: ATR refused the PAT of watcher" in out


async def _in_thread(function: object, *args: object) -> int:
    # check-config runs its own event loop (asyncio.run), as the command does; the sandbox runs in this one.
    import asyncio

    assert callable(function)
    result = await asyncio.to_thread(function, *args)
    assert isinstance(result, int)
    return result
