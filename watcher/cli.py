"""The command line: `vote-watcher <command>`; each command lives in `watcher/commands/`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Final

import watcher

# command name -> module in watcher.commands that has `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: Final = {
    "run": ("run", "run the daemon"),
    "tally": ("tally", "tally a vote thread from an mbox, a Maildir, .eml files or a thread URL"),
    "check-config": ("check_config", "validate a configuration file"),
    "db": ("db", "manage the state database"),
    "demo": ("demo", "run the daemon against local stand-ins of ATR, lists.apache.org and SMTP"),
}
EXIT_USAGE: Final = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command's options."""
    parser = argparse.ArgumentParser(
        prog="vote-watcher",
        description="Watches ASF release-vote threads, reminds binding email voters to vote in ATR, "
        "and signals hybrid auto-resolution.",
    )
    parser.add_argument("--version", action="version", version=f"vote-watcher {watcher.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"watcher.commands.{module_name}")
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args._module.run(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
