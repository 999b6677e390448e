"""Placeholder until this command is built."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this command."""
    parser.add_argument("--config", help="path to the TOML configuration")


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    print(f"vote-watcher: {args.command} is not available yet", file=sys.stderr)
    return 2
