"""`vote-watcher demo [--scenario PATH] [--report PATH]`: the daemon against local stand-ins."""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import pathlib
import sys
from typing import Final

EXIT_SCENARIO: Final = 2
# The stand-ins' servers come with the `demo` extra; the daemon itself does not need them.
DEMO_PACKAGES: Final = frozenset({"aiohttp", "aiosmtpd"})
INSTALL_HINT: Final = "the demo needs the 'demo' extra: pip install 'vote-watcher[demo]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `demo`."""
    parser.add_argument("--scenario", type=pathlib.Path, help="scenario TOML (default: the bundled one)")
    parser.add_argument("--report", type=pathlib.Path, help="write a JSON report of what happened here")
    parser.add_argument("--verbose", action="store_true", help="also print the daemon's info-level log on stderr")
    parser.add_argument(
        "--state", type=pathlib.Path, metavar="DIR", help="keep the config and database here (for status, explain)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the bundled (or given) scenario and print its timeline."""
    try:
        import watcher.sandbox.stage as stage
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in DEMO_PACKAGES:
            raise
        print(f"vote-watcher demo: {INSTALL_HINT} ({exc.name} is missing)", file=sys.stderr)
        return EXIT_SCENARIO
    bundled = importlib.resources.files("watcher") / "examples" / "demo-scenario.toml"
    with importlib.resources.as_file(bundled) as default:
        scenario = args.scenario or default
        try:
            return asyncio.run(stage.run(scenario, args.report, verbose=args.verbose, state=args.state))
        except stage.DemoError as exc:
            print(f"vote-watcher demo: {exc}", file=sys.stderr)
            return EXIT_SCENARIO
