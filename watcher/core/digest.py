"""One message read once: what a tally combines, kept beside the raw bytes (pure).

Reading a message (MIME decoding, finding the voter's own text, the casting rules) is the
costly part of a tally; combining readings is not. So each message is read once, when it is
taken, and a re-tally combines the stored digests in thread order. What depends on the roster
(who the sender is, binding or not) is left to the tally, because the roster changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import watcher.core.castings as castings
import watcher.core.identity as identity
import watcher.core.message as message
import watcher.core.receipts as receipts


@dataclasses.dataclass(frozen=True, slots=True)
class Digest:
    """A message's headers (its text left out), what its text says, and its shape."""

    headers: message.Message
    """The parsed message with `text` emptied: identity and thread order read only headers."""
    reading: castings.Reading
    receipt: bool
    """Shaped like one of ATR's ballot receipts (`receipts.looks_like_receipt`)."""
    blank: bool
    """No readable text part at all (an empty text from no text part)."""


def read(msg: message.Message) -> Digest:
    """Read one parsed message once."""
    return Digest(
        headers=dataclasses.replace(msg, text=""),
        reading=castings.read(msg.text),
        receipt=receipts.looks_like_receipt(msg),
        blank=not msg.text.strip() and msg.text_source == "none",
    )


def parse(raw: bytes) -> Digest:
    """Parse and read one raw message."""
    return read(message.parse(raw))


def receipt_senders(digests: Iterable[Digest]) -> dict[str, str]:
    """Message-ID -> sender uid of each receipt-shaped mail (as `receipts.senders`)."""
    found: dict[str, str] = {}
    for read in digests:
        uid = identity.uid_from_address(read.headers.from_address)
        if uid is not None and read.headers.message_id and read.receipt:
            found[read.headers.message_id] = uid
    return found
