"""Recognising ATR's ballot receipts by their shape (pure).

ATR posts a copy of every ballot cast in ATR to the vote thread. They are left out of the
email tally by Message-ID (`receipt_message_id` from `vote/tabulate`); this shape check is
only the fallback that tells the daemon to ask ATR again when a new one appears.
"""

from __future__ import annotations

import re
from typing import Final

import watcher.identity as identity
import watcher.message as message

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
