"""Recognising ATR's ballot receipts by their shape (pure).

ATR posts a copy of every ballot cast in ATR to the vote thread. They are left out of the
email tally by Message-ID (`receipt_message_id` from `vote/tabulate`); this shape check is
only the fallback that tells the daemon to ask ATR again when a new one appears.

`vote/tabulate` names only the effective ballots' receipts (reference/atr.md §6.5): the receipt of
a ballot its voter later changed is never named. A receipt-shaped mail from a uid that has a
ballot in this vote is such a receipt (`superseded_ids`): never an emailed vote, and no reason to ask
ATR again.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Final

import watcher.core.identity as identity
import watcher.core.message as message

_FIRST_LINE_RE: Final = re.compile(
    r"^(?:\+1|0|-1) (?:\((?:binding|non-binding|formal|informal)\) )?\(([a-z0-9_.-]+)\) \S"
)
_FOOTER: Final = "on the Apache Trusted Releases platform"


def looks_like_receipt(msg: message.Message) -> bool:
    """True for a mail shaped like ATR's copy of a ballot: `+1 (binding) (uid) Name` from uid@apache.org."""
    uid = identity.uid_from_address(msg.from_address)
    if uid is None or _FOOTER not in msg.text:
        return False
    first = next((line.strip() for line in msg.text.splitlines() if line.strip()), "")
    found = _FIRST_LINE_RE.match(first)
    return found is not None and found.group(1) == uid


def senders(messages: Iterable[message.Message]) -> dict[str, str]:
    """Message-ID -> sender uid of each receipt-shaped mail."""
    found: dict[str, str] = {}
    for msg in messages:
        uid = identity.uid_from_address(msg.from_address)
        if uid is not None and msg.message_id and looks_like_receipt(msg):
            found[msg.message_id] = uid
    return found


def superseded_ids(receipt_senders: Mapping[str, str], ballot_uids: Collection[str]) -> frozenset[str]:
    """The receipts (by `senders`) of uids that have a ballot in this vote."""
    return frozenset(message_id for message_id, uid in receipt_senders.items() if uid in ballot_uids)
