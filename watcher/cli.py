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
    "tally": ("tally_thread", "tally a vote thread from an mbox, a Maildir, .eml files or a thread URL"),
    "check-config": ("check_config", "validate a configuration file"),
    "db": ("db", "manage the state database"),
    "status": ("status", "what the daemon sees: sources, ATR, open votes, the outbox (from its database)"),
    "explain": ("explain", "why each email voter of a vote was reminded, or not"),
    "outbox": ("mailq", "list, show, retry or cancel the mails the daemon sends"),
    "demo": ("demo", "run the daemon against local stand-ins of ATR, lists.apache.org and SMTP"),
}
EXIT_USAGE: Final = 2


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that command's module is imported (the others load slowly)."""
    parser = argparse.ArgumentParser(
        prog="vote-watcher",
        description="Watches ASF release-vote threads, reminds binding email voters to vote in ATR, "
        "and signals hybrid auto-resolution.",
    )
    parser.add_argument("--version", action="version", version=f"vote-watcher {watcher.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"watcher.commands.{module_name}")
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named on the command line, if any (options come before it only as --help/--version)."""
    for arg in argv:
        if arg in COMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(arguments) or "")
    args = parser.parse_args(arguments)
    try:
        status: int = args._module.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as command-line tools do.
        sys.stderr.close()
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
