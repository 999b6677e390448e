"""`vote-watcher demo` without the `demo` extra: one clear line on how to install it, exit 2."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter where aiohttp (a `demo` extra package) cannot be imported.
WITHOUT_AIOHTTP = "import sys; sys.modules['aiohttp'] = None; import watcher.cli as cli; sys.exit(cli.main(['demo']))"


def test_demo_without_its_extra_says_how_to_install_it() -> None:
    command = [sys.executable, "-c", WITHOUT_AIOHTTP]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'vote-watcher[demo]'" in lines[0]
    assert "aiohttp" in lines[0]
    assert done.stdout == ""


def test_the_daemon_runs_without_the_demo_extra() -> None:
    script = (
        "import sys; sys.modules['aiohttp'] = None; sys.modules['aiosmtpd'] = None;"
        "import watcher.commands.run, watcher.commands.check_config, watcher.commands.status, watcher.commands.demo"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
