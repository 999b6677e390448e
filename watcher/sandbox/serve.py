"""All the stand-ins in one place: the sandbox ATR, the sandbox lists.apache.org and an SMTP sink.

The daemon, run as a process of its own, talks to these over loopback; they must outlive it when a
test kills it. In a test they run on the test's event loop:

    async with StandIns(scenario) as stand_ins:
        stand_ins.atr.url, stand_ins.archive.url, stand_ins.smtp_port
        stand_ins.mails                      # every mail the sink accepted, in order

ATR's own mails ([VOTE], ballot receipts, [RESULT]) go to the archive, as on the real lists.
From a shell, `python -m watcher.sandbox.serve --scenario PATH [--speed X] [--mail-dir DIR]`
runs all three, prints one JSON line (`{"atr": URL, "archive": URL, "smtp": {"host", "port"}}`)
and serves until SIGINT or SIGTERM; with `--mail-dir`, each accepted mail is written there as
`<n>.eml`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import email.parser
import email.policy
import json
import pathlib
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import aiosmtpd.smtp

import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.clocks as clocks
import watcher.sandbox.lists_http as lists_http

LOOPBACK: Final = ("127.0.0.1", "::1", "localhost")
_HEADERS: Final = email.parser.BytesHeaderParser(policy=email.policy.compat32)


@dataclasses.dataclass(frozen=True, slots=True)
class SinkMail:
    """One mail the sink accepted: when, the envelope, its Message-ID and its bytes."""

    at: float
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str
    raw: bytes


class SinkHandler:
    """aiosmtpd's handler: keeps every mail; `rcpt_delay` makes a slow relay (before any commitment)."""

    def __init__(self, *, rcpt_delay: float = 0.0, mail_dir: pathlib.Path | None = None) -> None:
        self.mails: list[SinkMail] = []
        self.rcpt_delay = rcpt_delay
        self.mail_dir = mail_dir

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        """Accept every recipient, after the configured delay."""
        if self.rcpt_delay > 0:
            await asyncio.sleep(self.rcpt_delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Record the mail; from here on it counts as delivered."""
        raw = bytes(envelope.original_content or envelope.content)
        message_id = str(_HEADERS.parsebytes(raw).get("Message-ID", "")).strip()
        mail = SinkMail(time.time(), str(envelope.mail_from), tuple(envelope.rcpt_tos), message_id, raw)
        self.mails.append(mail)
        if self.mail_dir is not None:
            (self.mail_dir / f"{len(self.mails):05d}.eml").write_bytes(raw)
        return "250 Message accepted"


class StandIns:
    """The sandbox ATR (from `scenario`), the sandbox archive and the SMTP sink, on loopback ports."""

    def __init__(
        self,
        scenario: atr_scenario.Scenario,
        *,
        clock: Callable[[], float] = time.time,
        rcpt_delay: float = 0.0,
        mail_dir: pathlib.Path | None = None,
        announce: bool = True,
        archive: lists_http.PonyMailSandbox | None = None,
    ) -> None:
        """`clock` is the sandbox ATR's; `announce` posts the [VOTE] of every running vote to the archive.

        `archive` is a sandbox archive prepared beforehand (loaded with older threads, on the same clock).
        """
        self.archive = archive or lists_http.PonyMailSandbox()
        self.atr = atr_http.AtrSandbox(scenario, clock=clock, on_receipt=self.archive.add)
        self.sink = SinkHandler(rcpt_delay=rcpt_delay, mail_dir=mail_dir)
        self.smtp_host = "127.0.0.1"
        self.smtp_port = 0
        self._announce = announce
        self._smtp: asyncio.Server | None = None

    def __repr__(self) -> str:
        return f"StandIns(atr={self.atr.url!r}, archive={self.archive.url!r}, smtp_port={self.smtp_port})"

    @property
    def mails(self) -> list[SinkMail]:
        """Every mail the sink accepted so far."""
        return list(self.sink.mails)

    def urls(self) -> dict[str, Any]:
        """Where each stand-in listens (the JSON line of the command)."""
        return {
            "atr": self.atr.url,
            "archive": self.archive.url,
            "smtp": {"host": self.smtp_host, "port": self.smtp_port},
        }

    async def start(self) -> StandIns:
        """Start all three; returns self."""
        await self.archive.start()
        await self.atr.start()
        loop = asyncio.get_running_loop()
        handler = self.sink
        self._smtp = await loop.create_server(
            lambda: aiosmtpd.smtp.SMTP(handler, hostname="sink.localhost"), self.smtp_host, 0
        )
        self.smtp_port = int(self._smtp.sockets[0].getsockname()[1])
        if self._announce:
            await self.atr.announce_votes()
        return self

    async def stop(self) -> None:
        """Stop all three."""
        if self._smtp is not None:
            self._smtp.close()
            await self._smtp.wait_closed()
            self._smtp = None
        await self.atr.stop()
        await self.archive.stop()

    async def __aenter__(self) -> StandIns:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m watcher.sandbox.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=pathlib.Path, required=True, help="scenario TOML (the [atr] table)")
    parser.add_argument("--speed", type=float, default=1.0, help="how much faster than real time ATR's clock runs")
    parser.add_argument("--mail-dir", type=pathlib.Path, help="write each mail the SMTP sink accepts here")
    parser.add_argument("--rcpt-delay", type=float, default=0.0, help="seconds the sink waits at each RCPT")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    scenario = atr_scenario.load(args.scenario, time.time())
    clock = clocks.ScaledClock(scenario.settings.now, args.speed)
    if args.mail_dir is not None:
        args.mail_dir.mkdir(parents=True, exist_ok=True)
    stand_ins = StandIns(scenario, clock=clock, rcpt_delay=args.rcpt_delay, mail_dir=args.mail_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with stand_ins:
        print(json.dumps(stand_ins.urls()), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the stand-ins until SIGINT or SIGTERM; prints where they listen as one JSON line."""
    args = _parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except atr_scenario.ScenarioError as exc:
        print(f"stand-ins: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
