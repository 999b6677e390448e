"""The state store (SQLAlchemy, async): SQLite by default, PostgreSQL for several instances.

Use it as `import watcher.store as store`, then `db = await store.open(url)`.
"""

from __future__ import annotations

import datetime

from watcher.store.database import DEFAULT_CLAIM_TTL, Store
from watcher.store.engine import StoreError, StoreLockedError, StoreUnavailableError
from watcher.store.migrate import SchemaNotCurrentError
from watcher.store.records import (
    Decision,
    Lease,
    MailRecord,
    Observation,
    Resolution,
    StoredMessage,
)

__all__ = [
    "DEFAULT_CLAIM_TTL",
    "Decision",
    "Lease",
    "MailRecord",
    "Observation",
    "Resolution",
    "SchemaNotCurrentError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "StoredMessage",
    "open",
]


async def open(url: str, *, claim_ttl: datetime.timedelta = DEFAULT_CLAIM_TTL, lock: bool = True) -> Store:
    """Open the state database at `url` (see `Store.open`); `lock=False` for commands beside a running daemon."""
    return await Store.open(url, claim_ttl=claim_ttl, lock=lock)
