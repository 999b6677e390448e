"""Parsing and classifying off the event loop: a worker process with a time limit per task.

The daemon's event loop carries IMAP IDLE, systemd's watchdog, the scheduler and the outbox,
so no mail may hold it: every `message.parse` and every tally of a vote thread runs here, in
a process of its own (a thread would not do: a regular expression holds the GIL for as long as
it runs). A task that passes its time limit has its process killed and replaced (pebble's
ProcessPool does exactly this), and the caller gets the reason as text, to record once.

The functions the worker runs are pure and module-level, so that they pickle; their inputs and
results are plain values (bytes, digests, rosters, tallies). A message is parsed here once, when
it is taken; its digest is stored, and a re-tally only combines digests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

import pebble

import watcher.core.digest as digest
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally

T = TypeVar("T")

# One message of vote-sized text is read in milliseconds; ten seconds is far beyond anything honest.
CHECK_TIMEOUT_S: Final = 10.0
# A whole thread is a few hundred messages, each of which passed its own check.
TALLY_TIMEOUT_S: Final = 60.0
JOIN_TIMEOUT_S: Final = 5.0


class WorkerError(Exception):
    """A task the worker could not finish; the message says why (passed its time limit, process died)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Analysis:
    """A thread's tally, with what the desk needs to know of its messages without parsing them itself."""

    result: tally.Tally
    messages: tuple[tuple[str, str], ...]
    """(key, Message-ID) of each message, in thread order."""
    receipts: frozenset[str]
    """Message-IDs of the messages shaped like ATR's ballot receipts."""
    receipt_senders: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Message-ID -> the uid that sent it, for each receipt-shaped message (superseded receipts, atr.md §6.5)."""
    previous: tuple[str, ...] = ()
    """Message-IDs of the round-1 thread's messages (a podling's round 2)."""


def read_all(raws: Sequence[bytes]) -> list[digest.Digest]:
    """Parse and read several messages (run in the worker: a round-1 thread fetched from the archive)."""
    return [digest.parse(raw) for raw in raws]


def analyse(
    digests: Sequence[digest.Digest],
    previous: Sequence[digest.Digest],
    people: roster.Roster,
    options: tally.Options,
) -> Analysis:
    """Tally a thread (and the round-1 thread, if any) from its messages' stored digests (run in the worker).

    Nothing is parsed here: each message was read once, when it was taken (`Worker.read`).
    """
    result = tally.combine(digests, people, options, previous)
    return Analysis(
        result=result,
        messages=tuple((d.headers.key, d.headers.message_id) for d in digests),
        receipts=frozenset(d.headers.message_id for d in digests if d.headers.message_id and d.receipt),
        receipt_senders=digest.receipt_senders(digests),
        previous=tuple(d.headers.message_id for d in previous),
    )


class Worker:
    """One worker process (started at first use), fed one task at a time, each with its time limit."""

    def __init__(self, *, check_timeout: float = CHECK_TIMEOUT_S, tally_timeout: float = TALLY_TIMEOUT_S) -> None:
        self.check_timeout = check_timeout
        self.tally_timeout = tally_timeout
        self._pool: pebble.ProcessPool | None = None

    async def read(self, raw: bytes) -> digest.Digest | str:
        """The message read once (its digest), or why it cannot be read within the check's time limit."""
        try:
            return await self.run(digest.parse, (raw,), self.check_timeout)
        except WorkerError as exc:
            return str(exc)

    async def check(self, raw: bytes) -> str | None:
        """None when the message reads within the check's time limit, else why it cannot be read."""
        found = await self.read(raw)
        return found if isinstance(found, str) else None

    async def read_all(self, raws: Sequence[bytes]) -> list[digest.Digest]:
        """Several messages read in the worker (one time limit for all); raises WorkerError."""
        return await self.run(read_all, (list(raws),), self.tally_timeout)

    async def parse(self, raw: bytes) -> message.Message:
        """`message.parse` in the worker; raises WorkerError."""
        return await self.run(message.parse, (raw,), self.check_timeout)

    async def analyse(
        self,
        digests: Sequence[digest.Digest],
        people: roster.Roster,
        options: tally.Options,
        previous: Sequence[digest.Digest] = (),
    ) -> Analysis:
        """The thread's tally combined from stored digests in the worker; raises WorkerError."""
        bare = dataclasses.replace(options, previous_round=())
        return await self.run(analyse, (list(digests), list(previous), people, bare), self.tally_timeout)

    async def run(self, function: Callable[..., T], args: tuple[object, ...], timeout: float) -> T:
        """`function(*args)` in the worker process, stopped after `timeout` seconds; raises WorkerError."""
        pool = self._ensure_pool()
        future = pool.schedule(function, args=args, timeout=timeout)
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.TimeoutError:
            raise WorkerError(f"reading it took longer than {timeout:g} s (the worker was stopped)") from None
        except pebble.ProcessExpired as exc:
            raise WorkerError(f"the worker process died while reading it (exit code {exc.exitcode})") from None
        except concurrent.futures.BrokenExecutor as exc:
            self._pool = None
            raise WorkerError(f"the worker process could not run: {exc}") from None
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _ensure_pool(self) -> pebble.ProcessPool:
        if self._pool is None or not self._pool.active:
            # spawn, not fork: the daemon has threads (aiosqlite, pebble's own) that a fork would copy half-held.
            self._pool = pebble.ProcessPool(max_workers=1, context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        """Stop the worker process (a task in flight is abandoned)."""
        if self._pool is None:
            return
        self._pool.stop()
        self._pool.join(timeout=JOIN_TIMEOUT_S)
        self._pool = None
