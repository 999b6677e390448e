"""`vote-watcher tally`: print the tally of one vote thread."""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
from collections.abc import Iterable, Sequence
from typing import Final

import watcher.commands.tally_atr as tally_atr
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.core.threads as threads
import watcher.flow.report as report
import watcher.services.progress as progress
import watcher.services.wallclock as wallclock
import watcher.sources.archive as archive
import watcher.whimsy as whimsy

EXIT_INPUT: Final = 2
DEFAULT_ARCHIVE_URL: Final = "https://lists.apache.org"
_CALLS_SHOWN: Final = 20
EXAMPLES: Final = """examples:
  vote-watcher tally --roster-url --thread '[VOTE] Release Apache Foo 1.2.0' dev-foo-2026-11.mbox
      one vote out of a month of mail; the PMC and committers from the ASF's public roster
  vote-watcher tally --roster roster.toml --committee foo thread.mbox
      a roster written by hand (committees, members, address aliases)
  vote-watcher tally --format json https://lists.apache.org/thread/abc123
      a thread URL; with no roster there is no verdict, and the output says why
  vote-watcher tally --round 2 --previous-round round1.mbox --roster-url round2.mbox
      a podling's IPMC vote, carrying IPMC members' round-1 votes
"""


class InputError(Exception):
    """Input that cannot be read; the message says which and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `tally`."""
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="mbox, Maildir, .eml file(s) or a thread URL (with --atr: the release's vote_thread_url by default)",
    )
    parser.add_argument(
        "--atr",
        nargs=3,
        metavar=("BASE_URL", "PROJECT", "VERSION"),
        help="the release in ATR: its committee (binding voters), ballots and receipts; ATR_UID and ATR_PAT "
        "(or --atr-uid, --atr-pat-file) to read the ballots",
    )
    parser.add_argument("--atr-uid", metavar="UID", help="the ATR account whose token reads vote/tabulate")
    parser.add_argument("--atr-pat-file", type=pathlib.Path, metavar="FILE", help="a file holding that account's PAT")
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
    parser.add_argument(
        "--roster-url",
        nargs="?",
        const=whimsy.DEFAULT_URL,
        metavar="URL",
        help=f"the ASF's public roster files ({whimsy.PROJECTS_FILE}, {whimsy.PEOPLE_FILE}) under URL "
        f"(default {whimsy.DEFAULT_URL}); cached for a day",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--archive-url", default=DEFAULT_ARCHIVE_URL, help="lists.apache.org base URL for thread URLs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES


def run(args: argparse.Namespace) -> int:
    """Tally and print; exit 2 with a clear message on unreadable or contradictory input."""
    try:
        _check_round(args)
        from_atr = _from_atr(args)
        people, notes = _roster(args)
        if from_atr is not None:
            people = people.merged(from_atr.people)
            notes.append(f"ATR {args.atr[0]} committee/get {from_atr.committee}")
        _check_committee(args, people)
        sources = _sources(args, from_atr)
        messages = read_thread(sources, args.thread, args.archive_url, quiet=args.quiet)
        previous = (
            read_thread([args.previous_round], None, args.archive_url, quiet=args.quiet) if args.previous_round else []
        )
    except (
        InputError,
        roster.RosterError,
        archive.ArchiveError,
        threads.ThreadNotFound,
        tally_atr.AtrReadError,
    ) as exc:
        print(f"vote-watcher tally: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if not messages:
        print("vote-watcher tally: no messages in the given sources", file=sys.stderr)
        return EXIT_INPUT
    vote_round = args.vote_round or (2 if previous else None) or (from_atr.vote_round if from_atr else None)
    committee = args.committee or (from_atr.committee if from_atr else None)
    receipts = from_atr.receipts if from_atr else frozenset()
    options = tally.Options(
        committee=committee or committee_from_list(messages[0].list_id),
        vote_round=vote_round,
        excluded_message_ids=frozenset(args.exclude_message_id) | receipts,
        previous_round=previous,
        leave_out_receipts=True,
    )
    result = tally.tally(messages, people, options)
    if args.format == "json":
        data = report.to_json(result)
        data["roster"] = notes
        if from_atr is not None:
            data["atr"] = tally_atr.to_json(from_atr)
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.to_text(result))
        if notes:
            sys.stdout.write("\n" + "".join(f"Roster: {note}\n" for note in notes))
        if from_atr is not None:
            sys.stdout.write(tally_atr.to_text(from_atr))
    return 0


def _from_atr(args: argparse.Namespace) -> tally_atr.FromAtr | None:
    if not args.atr:
        return None
    import watcher.services.log as log

    # The ATR client logs each request; on the command line only warnings, and on stderr, never in the output.
    log.configure(level="warning")
    base_url, project, version = args.atr
    return tally_atr.read(base_url, project, version, uid=args.atr_uid, pat_file=args.atr_pat_file)


def _sources(args: argparse.Namespace, from_atr: tally_atr.FromAtr | None) -> list[str]:
    """The sources given, else the release's thread from ATR."""
    if args.sources:
        return list(args.sources)
    if from_atr is None:
        raise InputError("no SOURCE given (an mbox, a Maildir, .eml files or a thread URL; or --atr)")
    if not from_atr.thread_url:
        raise InputError(
            f"ATR gives no vote_thread_url for {from_atr.project} {from_atr.version}: give the thread as SOURCE"
        )
    return [from_atr.thread_url]


def _check_round(args: argparse.Namespace) -> None:
    """`--previous-round` is a round-2 option: with `--round 1` the two contradict each other."""
    if args.previous_round and args.vote_round == 1:
        raise InputError("--previous-round carries round-1 votes into round 2; it contradicts --round 1")


def _roster(args: argparse.Namespace) -> tuple[roster.Roster, list[str]]:
    """The roster from --roster and/or --roster-url, and a line saying which (and of what date) for each."""
    people = roster.Roster()
    notes: list[str] = []
    if args.roster_url:
        public, source = whimsy.load(args.roster_url, now=wallclock.utcnow())
        people = people.merged(public)
        notes.append(source.describe())
        if source.warning:
            print(f"vote-watcher tally: {source.warning}", file=sys.stderr)
    if args.roster:
        people = people.merged(roster.load(args.roster))
        notes.append(str(args.roster))
    return people, notes


def _check_committee(args: argparse.Namespace, people: roster.Roster) -> None:
    """A committee the roster does not have is a typo or the wrong roster, not "nobody is binding"."""
    if not people.committees:
        return
    if args.vote_round == 2 and roster.IPMC_KEY not in people.committees:
        raise InputError(
            f"--round 2 counts IPMC members as binding, but the roster has no {roster.IPMC_KEY!r} committee"
        )
    if args.committee and args.committee not in people.committees:
        known = sorted(people.committees)
        shown = ", ".join(known[:_CALLS_SHOWN]) + (f", ... ({len(known)} in all)" if len(known) > _CALLS_SHOWN else "")
        raise InputError(f"the roster has no committee {args.committee!r}; it has: {shown}")


def committee_from_list(list_id: str) -> str | None:
    """`dev.maven.apache.org` → `maven`; the committee a list belongs to, as ATR guesses it."""
    parts = list_id.split(".")
    if len(parts) >= 4 and parts[-2:] == ["apache", "org"]:
        return parts[-3]
    return None


def read_thread(
    sources: Sequence[str], selector: str | None, archive_url: str, *, quiet: bool = False
) -> list[message.Message]:
    """Parse the messages of the selected vote thread; without a selector, of the one vote thread there is.

    Raises InputError when there is no [VOTE] message, or several vote threads and no selector.
    """
    urls = [s for s in sources if _is_url(s)]
    paths = [pathlib.Path(s) for s in sources if not _is_url(s)]
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
    raws = _fetch_urls(urls, archive_url) if urls else []
    total = None if quiet else _archive_total(paths)
    return _select(raws, paths, selector, total, quiet=quiet)


def _only_vote(envelopes: Sequence[message.Envelope]) -> str:
    """The Message-ID of the one vote call in the sources; InputError when there are none or several."""
    calls = list({env.message_id: env for env in envelopes if env.message_id and threads.is_vote_call(env)}.values())
    if not calls:
        raise InputError("no [VOTE] message in the given sources: a tally starts from the vote's call")
    if len(calls) == 1:
        return calls[0].message_id
    shown = "\n".join(f"  <{env.message_id}>  {env.subject}" for env in calls[:_CALLS_SHOWN])
    more = f"\n  ... and {len(calls) - _CALLS_SHOWN} more" if len(calls) > _CALLS_SHOWN else ""
    raise InputError(
        f"{len(calls)} vote threads in the given sources; pick one with --thread SUBJECT|MESSAGE-ID:\n{shown}{more}"
    )


def _select(
    raws: list[bytes], paths: list[pathlib.Path], selector: str | None, total: int | None, *, quiet: bool
) -> list[message.Message]:
    """Route on headers first (cheap), then parse only the messages of the chosen thread."""
    envelopes = [message.peek(raw) for raw in raws]
    scan = _tracked(archive.iter_sources(paths), "scanning", total, quiet=quiet)
    envelopes += [message.peek(raw) for raw in scan]
    chosen_root = selector if selector is not None else _only_vote(envelopes)
    wanted = {env.key for env in threads.select_thread(envelopes, chosen_root)}
    chosen = [raw for raw in raws if message.peek(raw).key in wanted]
    pick = _tracked(archive.iter_sources(paths), "reading", total, quiet=quiet)
    chosen += [raw for raw in pick if message.peek(raw).key in wanted]
    order = {env.key: index for index, env in enumerate(envelopes)}
    parsed = [message.parse(raw) for raw in chosen]
    return sorted(parsed, key=lambda m: order.get(m.key, 0))


def _tracked(raws: Iterable[bytes], label: str, total: int | None, *, quiet: bool) -> Iterable[bytes]:
    return raws if quiet else progress.track(raws, label, total)


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
