"""`vote-watcher demo`: show what vote-watcher does, with no setup and no network."""

from __future__ import annotations

import argparse
import importlib.resources
import pathlib

import watcher.commands.tally as tally_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `demo`."""
    parser.add_argument("--scenario", type=pathlib.Path, help="scenario TOML (default: the bundled one)")
    parser.add_argument("--report", type=pathlib.Path, help="write a JSON report here")


def run(args: argparse.Namespace) -> int:
    """Tally the bundled example thread and print it as text."""
    examples = importlib.resources.files("watcher") / "examples"
    with importlib.resources.as_file(examples) as folder:
        thread = folder / "example-vote.mbox"
        roster_file = folder / "example-roster.toml"
        print(f"Tallying the bundled example thread {thread.name} with roster {roster_file.name}:\n")
        tally_args = argparse.Namespace(
            sources=[str(thread)],
            roster=roster_file,
            committee=None,
            vote_round=None,
            previous_round=None,
            exclude_message_id=[],
            thread=None,
            format="text",
            archive_url=tally_command.DEFAULT_ARCHIVE_URL,
        )
        return tally_command.run(tally_args)
