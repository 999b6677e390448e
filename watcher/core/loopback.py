"""The one rule for "plain text only to loopback": which host names and addresses are loopback.

No name is looked up: `localhost` and every name under `.localhost` are loopback by RFC 6761 §6.3, and an
IP literal is loopback when it lies in 127.0.0.0/8 or is ::1 (bracketed or not, IPv4-mapped or not). Any
other name, `localhost.localdomain` included, is whatever DNS or /etc/hosts makes it, so it is not.
"""

import ipaddress
from typing import Final

LOCALHOST: Final = "localhost"


def is_loopback(host: str) -> bool:
    """True for `localhost`, `*.localhost` and loopback IP literals (no name resolution)."""
    bare = host.strip().lower()
    if bare.startswith("[") and bare.endswith("]"):
        return _is_loopback_address(bare[1:-1])
    name = bare.removesuffix(".")  # the fully qualified form `localhost.` names the same host
    if name == LOCALHOST or name.endswith("." + LOCALHOST):
        return True
    return _is_loopback_address(bare)


def _is_loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1 reaches 127.0.0.1
    return address.is_loopback
