"""Every source hands its raw messages here: stored once, matched to a tracked vote, linked.

Routing reads only the headers (`message.peek`); the bytes are kept only for messages that
look vote-related, so the store does not fill with the list's other traffic.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Awaitable, Callable
from typing import Final

import structlog

import watcher.message as message
import watcher.metrics as metrics_api
import watcher.store as store_api
import watcher.store.records as records
import watcher.threads as threads

log = structlog.get_logger("watcher.intake")

OnVoteChanged = Callable[[int], Awaitable[None]]
Clock = Callable[[], datetime.datetime]
_VOTE_WORDS_RE: Final = re.compile(r"\[\s*(vote|result|cancel|cancell?ed)\s*\]", re.IGNORECASE)


class Intake:
    """Stores messages once and links those of tracked vote threads; never raises on bad mail."""

    def __init__(
        self,
        store: store_api.Store,
        on_vote_changed: OnVoteChanged,
        *,
        metrics: metrics_api.Metrics | None = None,
        clock: Clock,
    ) -> None:
        self.store = store
        self.matcher = threads.ThreadMatcher()
        self._votes_by_root: dict[str, int] = {}
        self._retired: set[str] = set()
        self._known: set[str] = set()
        self._on_vote_changed = on_vote_changed
        self._metrics = metrics
        self._clock = clock

    def is_tracked(self, root_message_id: str) -> bool:
        """True when this [VOTE] root is followed."""
        return message.normalise_message_id(root_message_id) in self._votes_by_root

    def seen(self, key: str) -> bool:
        """Whether a message was taken already (by Message-ID or key); sources ask before fetching."""
        return message.normalise_message_id(key) in self._known

    async def track(self, vote: records.TrackedVote) -> None:
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
        linked = 0
        for key, raw in await self.store.kept_since(since):
            env = message.peek(raw)
            if self._route(env) == root and await self.store.link_message_to_vote(vote.id, key):
                linked += 1
        if linked:
            log.info("intake.backlinked", release=vote.release_key, messages=linked)
        await self._on_vote_changed(vote.id)

    def untrack(self, vote: records.TrackedVote) -> None:
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
        except store_api.StoreError:
            raise
        except Exception:
            log.exception("intake.message_failed", source=source, size=len(raw))
            return False

    async def _take(self, raw: bytes, source: str) -> bool:
        env = message.peek(raw)
        root = self._route(env)
        keep = root is not None or bool(_VOTE_WORDS_RE.search(env.subject))
        new = await self.store.add_message(raw, source, envelope=env, keep_raw=keep, now=self._clock())
        if not new and keep:
            await self.store.attach_raw(env.key, raw)
        if self._metrics is not None and new:
            self._metrics.ingested(source)
        vote_id = self._votes_by_root.get(root) if root is not None else None
        if vote_id is not None and await self.store.link_message_to_vote(vote_id, env.key, now=self._clock()):
            log.info("intake.vote_message", source=source, message_id=env.message_id, vote_id=vote_id)
            await self._on_vote_changed(vote_id)
        if keep:
            # Only once stored and linked: a message the store refused is fetched again by the next poll.
            self._known.add(env.key)
        return new
