"""The core imports no I/O library and no `watcher` module outside `watcher.core` (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Final

FORBIDDEN: Final = (
    "asyncio",
    "sqlalchemy",
    "httpx",
    "aioimaplib",
    "aiosmtplib",
    "structlog",
    "apscheduler",
    "jinja2",
    "aiohttp",
    "pydantic",
)

_PROBE: Final = """
import importlib, json, pkgutil, sys
import watcher.core as core
for info in pkgutil.iter_modules(core.__path__, "watcher.core."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_by_core() -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_the_core_loads_no_io_library() -> None:
    loaded = _loaded_by_core()
    offending = [name for name in loaded if name.split(".")[0] in FORBIDDEN]
    assert offending == []


def test_the_core_loads_no_watcher_module_outside_it() -> None:
    loaded = _loaded_by_core()
    outside = [name for name in loaded if name.startswith("watcher.") and not name.startswith("watcher.core")]
    assert outside == []


def test_the_probe_sees_every_core_module() -> None:
    # Guards the two tests above: an empty or broken probe would pass them.
    loaded = _loaded_by_core()
    assert {"watcher.core.castings", "watcher.core.tally", "watcher.core.decide", "watcher.core.message"} <= set(loaded)
