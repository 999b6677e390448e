"""Every source hands its raw messages here: stored once, matched to a tracked vote, linked.

Routing reads only the headers (`message.peek`); the bytes are kept only for messages that
look vote-related, so the store does not fill with the list's other traffic.

Hostile mail is bounded here. A vote-related message over `max_bytes` is stored without its bytes
and flagged `too_large`; a message joining a vote's thread is first read once in the worker process
(`watcher.flow.worker`), and one whose reading passes the time limit (or kills the worker) is flagged
`unreadable` with the reason. A flagged message is never parsed again, not even after a restart
(the flag is in the store); it is listed for the release manager, and it holds nothing up.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final

import structlog

import watcher.core.message as message
import watcher.core.threads as threads
import watcher.core.tracking as tracking
import watcher.flow.worker as worker
import watcher.services.metrics as metrics
import watcher.services.wallclock as wallclock
import watcher.store as store

log = structlog.get_logger("watcher.flow.intake")

OnVoteChanged = Callable[[int], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None], str], None]
_VOTE_WORDS_RE: Final = re.compile(r"\[\s*(vote|result|cancel|cancell?ed)\s*\]", re.IGNORECASE)
# Vote replies are a few KB, 200 KB with a long quoted thread; past this it is an attachment or an attack.
MAX_MESSAGE_BYTES: Final = 2_000_000
TOO_LARGE: Final = "too_large"
UNREADABLE: Final = "unreadable"
_HEADER_BLOCK_MAX: Final = 64 * 1024


async def _not_connected(vote_id: int) -> None:
    raise RuntimeError(f"vote {vote_id} changed before the intake was connected to its consumer")


@dataclasses.dataclass(frozen=True, slots=True)
class _Taken:
    """A message routed on its headers, before or after it is stored."""

    raw: bytes
    env: message.Envelope
    root: str | None
    keep: bool
    too_large: bool


class Intake:
    """Stores messages once and links those of tracked vote threads; never raises on bad mail."""

    def __init__(
        self,
        db: store.Store,
        on_vote_changed: OnVoteChanged | None = None,
        *,
        stats: metrics.Metrics | None = None,
        clock: wallclock.Clock,
        pool: worker.Worker | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
        spawn: Spawn | None = None,
    ) -> None:
        self.store = db
        self._spawn = spawn
        self.worker = pool
        self.max_bytes = max_bytes
        self.matcher = threads.ThreadMatcher()
        self._votes_by_root: dict[str, int] = {}
        self._retired: set[str] = set()
        self._known: set[str] = set()
        self._on_vote_changed = on_vote_changed or _not_connected
        self._metrics = stats
        self._clock = clock

    def connect(self, on_vote_changed: OnVoteChanged, spawn: Spawn) -> None:
        """Hand changes of a vote's thread to `on_vote_changed`, and background work to `spawn` (the daemon's)."""
        self._on_vote_changed = on_vote_changed
        self._spawn = spawn

    def is_tracked(self, root_message_id: str) -> bool:
        """True when this [VOTE] root is followed."""
        return message.normalise_message_id(root_message_id) in self._votes_by_root

    def seen(self, key: str) -> bool:
        """Whether a message was taken already (by Message-ID or key); sources ask before fetching."""
        return message.normalise_message_id(key) in self._known

    async def track(self, vote: tracking.TrackedVote) -> None:
        """Follow a vote's thread, linking what was stored before the vote was known."""
        root = message.normalise_message_id(vote.root_message_id)
        if not root or self._votes_by_root.get(root) == vote.id:
            return
        self._votes_by_root[root] = vote.id
        self._retired.discard(root)
        self.matcher.track(root, vote.subject)
        for key in await self.store.thread_keys(vote.id):
            self.matcher.remember(key, root)
            self._known.add(key)
        since = (vote.vote_started or self._clock()) - datetime.timedelta(days=1)
        linked: list[tuple[str, bytes]] = []
        for key, raw in await self.store.kept_since(since):
            env = message.peek(raw)
            if self._route(env) == root and await self.store.link_message_to_vote(vote.id, key):
                linked.append((key, raw))
        if linked:
            log.info("intake.backlinked", release=vote.release_key, messages=len(linked))
        work = self._screen_then_tally(vote.id, linked)
        if self._spawn is None or not linked:
            await work
            return
        # Read in the background, so that a hostile message here does not hold up tracking the other votes.
        self._spawn(work, f"screen:{vote.id}")

    async def _screen_then_tally(self, vote_id: int, linked: list[tuple[str, bytes]]) -> None:
        for key, raw in linked:
            await self.screen(key, raw)
        await self._on_vote_changed(vote_id)

    def untrack(self, vote: tracking.TrackedVote) -> None:
        """Stop following a vote's thread; late replies to it are not taken for another vote's."""
        root = message.normalise_message_id(vote.root_message_id)
        if self._votes_by_root.get(root) == vote.id:
            del self._votes_by_root[root]
            self.matcher.forget(root)
        self.retire(root)

    def retire(self, root_message_id: str) -> None:
        """A [VOTE] root whose vote ended or was restarted (at start: those the store knows as such).

        A restarted vote usually keeps its subject, so the matcher's subject fallback would adopt a
        late reply on the old thread (or ATR's [RESULT] of the old vote) into the new one.
        """
        root = message.normalise_message_id(root_message_id)
        if root and root not in self._votes_by_root:
            self._retired.add(root)

    def _route(self, env: message.Envelope) -> str | None:
        """The tracked root a message belongs to; None for a reply into a retired thread."""
        if self._retired and not self._retired.isdisjoint(threads.parents(env)):
            return None
        return self.matcher.match(env)

    async def take(self, raw: bytes, source: str) -> bool:
        """Store one message; True when it was new. A bad message is logged, never raised.

        A `StoreError` (disk full, database gone) is raised: the message was not stored, so the
        source must not move its cursor past it, and it is not remembered as seen.
        """
        try:
            return await self._take(raw, source)
        except store.StoreError:
            raise
        except Exception:
            log.exception("intake.message_failed", source=source, size=len(raw))
            return False

    async def take_many(self, raws: Sequence[bytes], source: str) -> int:
        """Store a batch (an IMAP fetch) in one transaction, then link each as `take` does; how many were new.

        A `StoreError` is raised as by `take` (none of the batch counts as taken); a bad message is logged.
        """
        prepared = [found for found in map(self._prepare_logged, raws) if found is not None]
        items = [(item.raw, item.env, item.keep and not item.too_large) for item in prepared]
        new = await self.store.add_message_batch(items, source, now=self._clock())
        count = 0
        for item in prepared:
            # A key twice in one batch is new only the first time.
            fresh = item.env.key in new
            new.discard(item.env.key)
            try:
                count += await self._settle(item, source, new=fresh)
            except store.StoreError:
                raise
            except Exception:
                log.exception("intake.message_failed", source=source, size=len(item.raw))
        return count

    def _prepare_logged(self, raw: bytes) -> _Taken | None:
        try:
            return self._prepare(raw)
        except Exception:
            log.exception("intake.message_failed", size=len(raw))
            return None

    def _prepare(self, raw: bytes) -> _Taken:
        """Route a message on its headers: which vote (if any), whether its bytes are kept."""
        env = message.peek(raw)
        root = self._route(env)
        keep = root is not None or bool(_VOTE_WORDS_RE.search(env.subject))
        return _Taken(raw, env, root, keep, too_large=keep and len(raw) > self.max_bytes)

    async def _take(self, raw: bytes, source: str) -> bool:
        item = self._prepare(raw)
        new = await self.store.add_message(
            raw, source, envelope=item.env, keep_raw=item.keep and not item.too_large, now=self._clock()
        )
        return await self._settle(item, source, new=new)

    async def _settle(self, item: _Taken, source: str, *, new: bool) -> bool:
        """After storing: flag, keep late bytes, link to its vote, read it once, tell the daemon."""
        raw, env, root, keep, too_large = item.raw, item.env, item.root, item.keep, item.too_large
        if too_large:
            await self._flag(env.key, TOO_LARGE, f"larger than the limit of {self.max_bytes:,} bytes", raw)
        elif not new and keep:
            await self.store.attach_raw(env.key, raw)
        if self._metrics is not None and new:
            self._metrics.ingested(source)
        vote_id = self._votes_by_root.get(root) if root is not None else None
        changed = False
        if vote_id is not None and await self.store.link_message_to_vote(vote_id, env.key, now=self._clock()):
            log.info("intake.vote_message", source=source, message_id=env.message_id, vote_id=vote_id)
            # A flagged message is listed for the release manager; the tally stays as it was.
            changed = not (too_large or await self.screen(env.key, raw))
        if keep:
            # Only once stored and linked: a message the store refused is fetched again by the next poll.
            self._known.add(env.key)
        if changed and vote_id is not None:
            await self._on_vote_changed(vote_id)
        return new

    async def screen(self, key: str, raw: bytes) -> bool:
        """Read a message once in the worker and keep its reading; True when it is flagged (now, or before)."""
        if await self.store.message_flag(key):
            return True
        if len(raw) > self.max_bytes:
            return await self._flag(key, TOO_LARGE, f"larger than the limit of {self.max_bytes:,} bytes", raw)
        if self.worker is None:
            return False
        if await self.store.reading(key) is not None:
            return False
        found = await self.worker.read(raw)
        if not isinstance(found, str):
            # Stored beside the bytes: a re-tally combines readings and parses nothing again.
            await self.store.set_reading(key, found)
            return False
        return await self._flag(key, UNREADABLE, found, raw)

    async def _flag(self, key: str, flag: str, detail: str, raw: bytes) -> bool:
        sender = sender_address(raw)
        if await self.store.flag_message(key, flag, detail, sender):
            log.warning("intake.message_flagged", key=key, flag=flag, detail=detail, size=len(raw))
        return True


def sender_address(raw: bytes) -> str:
    """The From address, read from the header block alone (cheap whatever the body); "" when there is none."""
    head = message.normalise_newlines(raw[:_HEADER_BLOCK_MAX])
    end = head.find(b"\n\n")
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            head[: end if end >= 0 else None]
        )
        _, address = email.utils.parseaddr(str(headers.get("From", "")))
    except Exception:
        return ""
    return "".join(char for char in address if char.isprintable() and not char.isspace())[:200].lower()
