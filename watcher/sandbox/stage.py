"""The demo: the real daemon against the sandbox ATR, the sandbox lists.apache.org and an SMTP sink.

Everything runs on loopback with SQLite in a temporary folder; no setup, no network. The
scenario's clock runs `speed` times faster than real time, so a 72-hour vote ends in seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import email.message
import email.utils
import json
import os
import pathlib
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

import watcher.atr.client as client
import watcher.config as config
import watcher.core.durations as durations
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.clocks as clocks
import watcher.sandbox.lists_http as lists_http
import watcher.sandbox.serve as serve
import watcher.services.events as events
import watcher.services.log as log
import watcher.services.wallclock as wallclock
import watcher.store as store
import watcher.wiring as wiring

ROUND_TWO_LIST: Final = "general@incubator.apache.org"
ATR_HOST: Final = "release-test.apache.org"


class DemoError(Exception):
    """A scenario that cannot be run; the message says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One thing that happens in the story."""

    at: datetime.timedelta
    do: str
    release: str
    say: str
    uid: str = ""
    choice: str = ""
    sender: str = ""
    body: str = ""


@dataclasses.dataclass
class Timeline:
    """Prints events as they happen, relative to the scenario's start, and keeps them for the report."""

    start: datetime.datetime
    out: TextIO
    seen: list[events.Event] = dataclasses.field(default_factory=list)

    def line(self, at: datetime.datetime, who: str, text: str) -> None:
        """One timeline line."""
        hours = (at - self.start).total_seconds() / 3600
        self.out.write(f"  +{hours:5.1f}h  {who:<22} {text}\n")
        self.out.flush()

    def __call__(self, event: events.Event) -> None:
        self.seen.append(event)
        if event.kind == "message":
            return
        label = f"{event.release}#{event.vote_seq}" if event.release else "watcher"
        self.line(event.at, label, f"{event.kind}: {event.text}")


def load_steps(data: Mapping[str, Any]) -> list[Step]:
    """The scenario's steps, in time order."""
    steps: list[Step] = []
    for index, item in enumerate(data.get("steps", [])):
        where = f"demo.steps[{index}]"
        if item.get("do") not in ("cast", "mail"):
            raise DemoError(f"{where}.do must be 'cast' or 'mail'")
        try:
            at = durations.parse(str(item.get("at", "0s")))
        except ValueError as exc:
            raise DemoError(f"{where}.at: {exc}") from exc
        steps.append(
            Step(
                at=at,
                do=item["do"],
                release=str(item.get("release", "")),
                say=str(item.get("say", "")),
                uid=str(item.get("uid", "")),
                choice=str(item.get("choice", "+1")),
                sender=str(item.get("from", "")),
                body=str(item.get("body", "")),
            )
        )
    return sorted(steps, key=lambda s: s.at)


def reply(vote_subject: str, vote_message_id: str, *, to: str, sender: str, body: str, when: float) -> bytes:
    """A reply on a vote thread, as a list member would send it."""
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"Re: {vote_subject}"
    msg["Date"] = email.utils.formatdate(when, usegmt=True)
    msg["Message-ID"] = f"<{uuid.uuid4()}@mail.example>"
    msg["In-Reply-To"] = msg["References"] = f"<{vote_message_id}>"
    msg["List-Id"] = f"<{to.replace('@', '.')}>"
    msg.set_content(body)
    return msg.as_bytes()


def write_config(
    folder: pathlib.Path, atr_url: str, archive_url: str, smtp_port: int, demo: Mapping[str, Any]
) -> pathlib.Path:
    """The daemon's configuration for the demo (secrets in a file only its owner can read)."""
    pat = folder / "atr-pat"
    pat.write_text("demo-pat-watcher\n")
    pat.chmod(0o600)
    lists = ["dev@lantern.apache.org", "dev@harbor.apache.org", "dev@fooling.apache.org", ROUND_TWO_LIST]
    text = f"""
[watcher]
state_dir = "{folder / "state"}"
log_format = "json"
log_level = "warning"
check_interval = "1s"

[atr]
base_url = "{atr_url}"
host = "{ATR_HOST}"
uid = "watcher"
pat_file = "{pat}"
poll_interval = "1s"
request_budget = 20000

[[sources]]
kind = "ponymail"
base_url = "{archive_url}"
lists = {json.dumps(lists)}
poll_interval = "1s"

[reminders]
delay = "{demo.get("reminder_delay", "2h")}"
from = "Vote Watcher <vote-watcher@apache.org>"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"

[resolve]
grace = "{demo.get("resolve_grace", "1h")}"
"""
    path = folder / "config.toml"
    path.write_text(text)
    return path


async def run(
    scenario_path: pathlib.Path,
    report_path: pathlib.Path | None,
    out: TextIO = sys.stdout,
    *,
    verbose: bool = False,
    state: pathlib.Path | None = None,
) -> int:
    """Run the scenario; print the timeline; write the JSON report if asked.

    `verbose` logs the daemon's info-level journal on stderr (JSON lines unless stderr is a terminal);
    `state` keeps the daemon's configuration and database in that folder, for `status` and `explain` after.
    """
    try:
        data = tomllib.loads(scenario_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DemoError(f"{scenario_path}: {exc}") from exc
    demo = data.get("demo", {})
    steps = load_steps(demo)
    speed = float(demo.get("speed", 3600))
    length = durations.parse(str(demo.get("length", "80h")))
    with tempfile.TemporaryDirectory(prefix="vote-watcher-demo-") as tmp, open(os.devnull, "w") as quiet:
        # The demo prints its own timeline; the daemon's log lines would only bury it (unless asked for).
        log.configure("auto", "info", stream=sys.stderr) if verbose else log.configure("json", "error", stream=quiet)
        folder = pathlib.Path(tmp)
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
            folder = state
        return await _run(
            folder,
            data=data,
            demo=demo,
            steps=steps,
            speed=speed,
            length=length,
            report_path=report_path,
            out=out,
        )


async def _run(
    folder: pathlib.Path,
    *,
    data: dict[str, Any],
    demo: Mapping[str, Any],
    steps: list[Step],
    speed: float,
    length: datetime.timedelta,
    report_path: pathlib.Path | None,
    out: TextIO,
) -> int:
    clock = clocks.ScaledClock(wallclock.utcnow(), speed)
    start = clock.now()
    archive = lists_http.PonyMailSandbox(clock=clock)
    _round_one(data, demo, archive, clock())
    scenario = atr_scenario.from_mapping(data, clock(), "demo scenario")
    stand_ins = serve.StandIns(scenario, clock=clock, archive=archive)
    timeline = Timeline(start, out)
    async with stand_ins:
        atr_url, archive_url = stand_ins.atr.url, archive.url
        out.write(
            f"vote-watcher demo: sandbox ATR {atr_url}, sandbox lists.apache.org {archive_url}, "
            f"SMTP sink 127.0.0.1:{stand_ins.smtp_port}\n"
        )
        out.write(f"Scenario time runs {speed:.0f}x faster than real time; every vote lasts 72 hours.\n\n")
        cfg = config.load(write_config(folder, atr_url, archive_url, stand_ins.smtp_port, demo))
        db = await store.open(cfg.watcher.database_url)
        await db.upgrade()
        await db.close()
        stop = asyncio.Event()
        running = asyncio.ensure_future(wiring.run(cfg, stop=stop, sink=timeline, clock=clock.now))
        await _play(
            steps,
            clock=clock,
            start=start,
            atr=stand_ins.atr,
            atr_url=atr_url,
            archive=archive,
            timeline=timeline,
            length=length,
            running=running,
        )
        stop.set()
        status = await running
    sink = stand_ins.mails
    report = build_report(timeline.seen, sink)
    _summary(report, sink, out)
    if report_path is not None:
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        out.write(f"\nReport written to {report_path}\n")
    return status


def _round_one(data: dict[str, Any], demo: Mapping[str, Any], archive: lists_http.PonyMailSandbox, now: float) -> None:
    """Archive the finished round-1 thread of each podling release, and point round 2 at it."""
    by_release: dict[str, list[Mapping[str, Any]]] = {}
    for item in demo.get("round_one", []):
        by_release.setdefault(str(item["release"]), []).append(item)
    for release_key, replies in by_release.items():
        spec = next(r for r in data["atr"]["releases"] if f"{r['project_key']}-{r['version']}" == release_key)
        to = f"dev@{spec['project_key']}.apache.org"
        root = f"{release_key}-round-1@apache.org"
        subject = f"[VOTE] Release Apache {spec['project_key'].title()} (Incubating) {spec['version']}"
        opener = email.message.EmailMessage()
        opener["From"] = f"{spec['initiator']}@apache.org"
        opener["To"] = to
        opener["Subject"] = subject
        opener["Date"] = email.utils.formatdate(now - 4 * 86400, usegmt=True)
        opener["Message-ID"] = f"<{root}>"
        opener["List-Id"] = f"<{to.replace('@', '.')}>"
        opener.set_content("Round 1 of the vote (PPMC).\n\n[ ] +1 Release\n[ ] -1 Do not release\n")
        archive.add(opener.as_bytes(), to, epoch=int(now - 4 * 86400))
        for index, item in enumerate(replies):
            when = now - (3 - index * 0.1) * 86400
            raw = reply(subject, root, to=to, sender=str(item["from"]), body=str(item["body"]), when=when)
            archive.add(raw, to, epoch=int(when))
        spec["podling_thread_id"] = lists_http.archive_id(root, to.replace("@", "."))


async def _play(
    steps: list[Step],
    *,
    clock: clocks.ScaledClock,
    start: datetime.datetime,
    atr: atr_http.AtrSandbox,
    atr_url: str,
    archive: lists_http.PonyMailSandbox,
    timeline: Timeline,
    length: datetime.timedelta,
    running: asyncio.Future[int],
) -> None:
    """Carry out the steps at their scenario times, then wait for the end."""
    pats = atr.state.settings.pats
    for step in steps:
        await _until(clock, start + step.at, running)
        timeline.line(clock.now(), step.release, f"» {step.say}")
        if step.do == "cast":
            await _cast(atr_url, step, pats)
        else:
            release = atr.state.releases[step.release]
            raw = reply(
                release.vote_subject,
                release.vote_message_id,
                to=release.email_to,
                sender=step.sender,
                body=step.body,
                when=clock(),
            )
            archive.add(raw, release.email_to)
    await _until(clock, start + length, running)


async def _until(clock: clocks.ScaledClock, when: datetime.datetime, running: asyncio.Future[int]) -> None:
    while clock.now() < when:
        if running.done():
            raise DemoError(f"the daemon stopped early: {running.exception() or running.result()}")
        await asyncio.sleep(min(0.05, max(0.0, (when - clock.now()).total_seconds() / clock.speed)))


async def _cast(atr_url: str, step: Step, pats: Mapping[str, str]) -> None:
    project, _, version = step.release.partition("-")
    pat = pats.get(step.uid)
    if pat is None:
        raise DemoError(f"no PAT for {step.uid} in [atr.pats]")
    async with client.AtrClient(atr_url, step.uid, _Plain(pat), budget_per_hour=1000) as atr:
        if step.choice == "-1":
            await atr.vote_cast(project, version, "-1")
        elif step.choice == "0":
            await atr.vote_cast(project, version, "0")
        else:
            await atr.vote_cast(project, version, "+1")


@dataclasses.dataclass(frozen=True)
class _Plain:
    value: str = dataclasses.field(repr=False)

    def reveal(self) -> str:
        return self.value


def build_report(seen: list[events.Event], sink: Sequence[serve.SinkMail]) -> dict[str, Any]:
    """The `--report` JSON: reminders, resolutions, held votes and notices."""
    reminders = [
        {
            "to": e.data.get("to", ""),
            "voter": str(e.data.get("to", "")).partition("@")[0],
            "release": e.release,
            "vote_seq": e.vote_seq,
            "message_id": e.data.get("message_id", ""),
        }
        for e in seen
        if e.kind == "reminder_sent"
    ]
    return {
        "reminders": reminders,
        "resolutions": [
            {"release": e.release, "resolution": e.data.get("resolution", "")} for e in seen if e.kind == "resolved"
        ],
        "held": [{"release": e.release, "reason": e.text} for e in seen if e.kind == "held"],
        "notices": [
            {"to": e.data.get("to", ""), "release": e.release}
            for e in seen
            if e.kind == "notice_sent" and e.data.get("kind") != "ballot_note"
        ],
        # A binding voter whose emailed vote differs from their ATR ballot is told once.
        "ballot_notes": [
            {"to": e.data.get("to", ""), "release": e.release}
            for e in seen
            if e.kind == "notice_sent" and e.data.get("kind") == "ballot_note"
        ],
        "carried": [
            {"release": e.release, "votes": e.text} for e in seen if e.kind == "tally" and "(carried)" in e.text
        ][-1:],
        "smtp_sink": {"messages": len(sink), "recipients": sorted({to for mail in sink for to in mail.rcpt_tos})},
    }


def _summary(report: Mapping[str, Any], sink: Sequence[serve.SinkMail], out: TextIO) -> None:
    out.write("\nWhat happened:\n")
    for item in report["reminders"]:
        out.write(f"  reminder    {item['release']}#{item['vote_seq']} to {item['to']}\n")
    for item in report["resolutions"]:
        out.write(f"  resolved    {item['release']} as {item['resolution']} through ATR's API\n")
    for item in report["held"]:
        out.write(f"  held        {item['release']}: {item['reason']}\n")
    for item in report["notices"]:
        out.write(f"  notice      {item['release']} to the release manager {item['to']}\n")
    for item in report["ballot_notes"]:
        out.write(f"  note        {item['release']} to {item['to']}: the emailed vote differs from the ATR ballot\n")
    out.write(f"  SMTP sink   {len(sink)} mails received\n")
