"""Who sent a message: address to ASF uid (pure).

ATR's chain is the floor: the address in angle brackets; the `@apache.org` local part is the
uid; a trailing `.invalid` is stripped; for DMARC-rewritten senders ("Jane via dev
<dev@foo.apache.org>") the Received-SPF envelope-from, else the last Cc. Then the alias map.
A display-name match is only a hint: it never makes a vote binding.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import unicodedata
from typing import Final, Literal

import watcher.core.message as message
import watcher.core.roster as roster

Confidence = Literal["high", "low"]

APACHE_DOMAIN: Final = "@apache.org"
_UID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_VIA_RE: Final = re.compile(r"\s+via\s+", re.IGNORECASE)
_ENVELOPE_FROM_RE: Final = re.compile(
    r"""(?:^|[;\s])envelope-from\s*=\s*(?:"([^"]*)"|<([^>]*)>|([^\s;]+))""", re.IGNORECASE
)
_BOUNCE_RE: Final = re.compile(r"-return-|^bounces?[+-]|^mailer-daemon@|^postmaster@", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, slots=True)
class Sender:
    """The identified sender of a message."""

    uid: str | None
    address: str
    name: str
    confidence: Confidence
    reasons: tuple[str, ...] = ()
    hint_uid: str | None = None
    """A uid whose roster name matches the display name: a hint for the release manager only."""
    warnings: tuple[str, ...] = ()
    """What the release manager should know about how the uid was found (a roster that disagrees)."""

    @property
    def key(self) -> str:
        """The voter key: the uid, or the lower-cased address when there is none."""
        return self.uid or self.address


def identify(msg: message.Message, people: roster.Roster) -> Sender | None:
    """Identify the sender of a message, or None when no address can be found at all."""
    address = _strip_invalid(msg.from_address)
    name = _VIA_RE.split(msg.from_name, maxsplit=1)[0].strip()
    if not address:
        return None
    reasons: list[str] = []
    if _is_list_rewrite(msg, address):
        original = _envelope_from(msg) or _last_cc(msg)
        if not original:
            return Sender(None, address, name, "low", ("DMARC-rewritten From with no original sender",))
        address = original
        reasons.append("sender taken from the list's DMARC rewrite")
    uid, warning = _uid_for(address, people)
    if uid:
        warnings = (warning,) if warning else ()
        return Sender(uid, address, name or people.name_of(uid), "high", tuple(reasons), warnings=warnings)
    hint = _name_hint(name, people)
    if hint:
        reasons.append(f"display name matches {hint}; address not in the roster")
        return Sender(None, address, name, "low", tuple(reasons), hint)
    return Sender(None, address, name, "high" if not reasons else "low", tuple(reasons))


def uid_from_address(address: str) -> str | None:
    """The uid of an `@apache.org` address, else None."""
    address = _strip_invalid(address.strip().lower())
    if not address.endswith(APACHE_DOMAIN):
        return None
    local = address[: -len(APACHE_DOMAIN)]
    return local if _UID_RE.match(local) else None


def envelope_from(spf_header: str) -> str | None:
    """The envelope-from address named in one Received-SPF header, if it is a usable address."""
    found = _ENVELOPE_FROM_RE.search(spf_header)
    if not found:
        return None
    value = next(group for group in found.groups() if group is not None).strip().strip("<>").lower()
    if not value or "@" not in value or any(ch.isspace() for ch in value):
        return None
    return value


def _uid_for(address: str, people: roster.Roster) -> tuple[str | None, str | None]:
    """The uid of an address, and a warning when the roster and the `@apache.org` rule disagree.

    An explicit roster mapping wins: it is what someone wrote down for this address.
    """
    mapped = people.uid_for_address(address)
    local = uid_from_address(address)
    if mapped and local and mapped != local:
        return mapped, f"the roster maps {address} to {mapped}, not to {local}"
    return mapped or local, None


def _strip_invalid(address: str) -> str:
    return address[: -len(".invalid")] if address.endswith(".invalid") else address


def _is_list_rewrite(msg: message.Message, address: str) -> bool:
    """True when From is the list itself, rewritten for DMARC ("Jane Doe via dev <dev@foo.apache.org>")."""
    if not _VIA_RE.search(msg.from_raw):
        return False
    if msg.list_id and address.replace("@", ".") in msg.list_id:
        return True
    return address.endswith(".apache.org") and not address.endswith(APACHE_DOMAIN)


def _envelope_from(msg: message.Message) -> str | None:
    """The first Received-SPF envelope-from that is neither the list's bounce address nor on its domain."""
    list_domain = msg.from_address.partition("@")[2]
    for header in msg.received_spf:
        found = envelope_from(header)
        if not found or _BOUNCE_RE.search(found):
            continue
        if list_domain and found.endswith("@" + list_domain):
            continue
        return found
    return None


def _last_cc(msg: message.Message) -> str | None:
    if not msg.cc:
        return None
    _, address = email.utils.parseaddr(msg.cc[-1])
    address = _strip_invalid(address.strip().lower())
    return address if "@" in address else None


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())


def _name_hint(name: str, people: roster.Roster) -> str | None:
    folded = _fold(name)
    if len(folded) < 4 or " " not in folded:
        return None
    matches = [uid for uid, person in people.people.items() if person.name and _fold(person.name) == folded]
    return matches[0] if len(matches) == 1 else None
