"""`vote-watcher tally`: print the tally of one vote thread."""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Final

import watcher.message as message
import watcher.progress as progress
import watcher.report as report
import watcher.roster as roster
import watcher.sources.archive as archive
import watcher.tally as tally
import watcher.threads as threads

EXIT_INPUT: Final = 2
DEFAULT_ARCHIVE_URL: Final = "https://lists.apache.org"


class InputError(Exception):
    """Input that cannot be read; the message says which and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `tally`."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="mbox, Maildir, .eml file(s) or a thread URL")
    parser.add_argument("--roster", type=pathlib.Path, help="roster TOML: committees and address aliases")
    parser.add_argument("--committee", help="committee whose members are binding (default: from the List-Id)")
    parser.add_argument("--round", type=int, choices=(1, 2), dest="vote_round", help="podling vote round")
    parser.add_argument("--previous-round", metavar="SOURCE", help="the round-1 thread, to carry IPMC votes")
    parser.add_argument(
        "--exclude-message-id",
        action="append",
        default=[],
        metavar="ID",
        help="leave out this message (ATR ballot receipts); repeatable",
    )
    parser.add_argument("--thread", metavar="SUBJECT|MESSAGE-ID", help="pick one vote thread out of a larger archive")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--archive-url", default=DEFAULT_ARCHIVE_URL, help="lists.apache.org base URL for thread URLs")


def run(args: argparse.Namespace) -> int:
    """Tally and print; exit 2 with a clear message on unreadable input."""
    try:
        people = roster.load(args.roster) if args.roster else roster.Roster()
        messages = read_thread(args.sources, args.thread, args.archive_url)
        previous = read_thread([args.previous_round], None, args.archive_url) if args.previous_round else []
    except (InputError, roster.RosterError, archive.ArchiveError, threads.ThreadNotFound) as exc:
        print(f"vote-watcher tally: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if not messages:
        print("vote-watcher tally: no messages in the given sources", file=sys.stderr)
        return EXIT_INPUT
    vote_round = args.vote_round or (2 if previous else None)
    options = tally.Options(
        committee=args.committee or committee_from_list(messages[0].list_id),
        vote_round=vote_round,
        excluded_message_ids=frozenset(args.exclude_message_id),
        previous_round=previous,
    )
    result = tally.tally(messages, people, options)
    if args.format == "json":
        print(json.dumps(report.to_json(result), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.to_text(result))
    return 0


def committee_from_list(list_id: str) -> str | None:
    """`dev.maven.apache.org` → `maven`; the committee a list belongs to, as ATR guesses it."""
    parts = list_id.split(".")
    if len(parts) >= 4 and parts[-2:] == ["apache", "org"]:
        return parts[-3]
    return None


def read_thread(sources: Sequence[str], selector: str | None, archive_url: str) -> list[message.Message]:
    """Parse the messages of the sources, or only those of the selected vote thread."""
    urls = [s for s in sources if _is_url(s)]
    paths = [pathlib.Path(s) for s in sources if not _is_url(s)]
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
    raws = _fetch_urls(urls, archive_url) if urls else []
    total = _archive_total(paths)
    if selector is None:
        read = progress.track(archive.iter_sources(paths), "reading", total)
        return [message.parse(raw) for raw in (*raws, *read)]
    return _select(raws, paths, selector, total)


def _select(raws: list[bytes], paths: list[pathlib.Path], selector: str, total: int | None) -> list[message.Message]:
    """Route on headers first (cheap), then parse only the messages of the chosen thread."""
    envelopes = [message.peek(raw) for raw in raws]
    scan = progress.track(archive.iter_sources(paths), "scanning", total)
    envelopes += [message.peek(raw) for raw in scan]
    wanted = {env.key for env in threads.select_thread(envelopes, selector)}
    chosen = [raw for raw in raws if message.peek(raw).key in wanted]
    pick = progress.track(archive.iter_sources(paths), "reading", total)
    chosen += [raw for raw in pick if message.peek(raw).key in wanted]
    order = {env.key: index for index, env in enumerate(envelopes)}
    parsed = [message.parse(raw) for raw in chosen]
    return sorted(parsed, key=lambda m: order.get(m.key, 0))


def _archive_total(paths: Sequence[pathlib.Path]) -> int | None:
    """How many messages the archives hold, counted only when a progress bar will show it."""
    if not paths or not progress.shown():
        return None
    return sum(archive.count_messages(path) for path in paths)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _fetch_urls(urls: Sequence[str], archive_url: str) -> list[bytes]:
    import watcher.sources.ponymail as ponymail

    async def fetch_all() -> list[bytes]:
        raws: list[bytes] = []
        for url in urls:
            raws.extend(await ponymail.fetch_thread_raw(url, archive_url=archive_url))
        return raws

    try:
        return asyncio.run(fetch_all())
    except ponymail.ArchiveFetchError as exc:
        raise InputError(str(exc)) from exc
