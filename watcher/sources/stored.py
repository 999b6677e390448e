"""The [VOTE] among the messages the sources stored: the thread finder of configurations without an archive."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Final

import watcher.core.message as message
import watcher.core.threads as threads
import watcher.core.tracking as tracking
import watcher.core.votesubject as votesubject
import watcher.store as store

# How long before a vote's start a mailbox may have stored its [VOTE] (clocks differ; mail is not early by more).
STORED_SLACK: Final = datetime.timedelta(days=1)

# Reads the [VOTE] found into a message; wiring gives the worker's (parsing off the event loop, bounded in time).
Parse = Callable[[bytes], Awaitable[message.Message]]


class StoredThreads:
    """A ThreadFinder for configurations without an archive: the [VOTE] among the messages the sources stored.

    The intake keeps every message with [VOTE] in its subject, so a mailbox's copy of the [VOTE] is there.
    """

    def __init__(self, db: store.Store, parse: Parse) -> None:
        self.store = db
        self.parse = parse

    async def find_vote_thread(
        self,
        list_address: str,
        subject: str,
        project: str,
        version: str,
        since: datetime.datetime,
        **hints: object,
    ) -> tracking.FoundThread | None:
        """The earliest [VOTE] opener on the list dated at or after `since` naming the release (by votesubject)."""
        wanted = votesubject.release(project, version, subject)
        list_id = list_address.lower().replace("@", ".")
        found: list[tuple[datetime.datetime, bytes]] = []
        for _, raw in await self.store.kept_since(since - STORED_SLACK):
            env = message.peek(raw)
            if env.date is None or env.date < since or threads.is_reply(env):
                continue
            if env.list_id and env.list_id.lower() != list_id:
                continue
            if votesubject.is_vote_call(env.subject, wanted):
                found.append((env.date, raw))
        if not found:
            return None
        first = await self.parse(min(found, key=lambda item: item[0])[1])
        return tracking.FoundThread(first.message_id, first.subject, first.text, first.date)
