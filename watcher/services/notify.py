"""sd_notify: tell systemd (Type=notify) that the daemon is ready, what it is doing, that it is alive, and stopping.

Every call is a no-op returning False when NOTIFY_SOCKET is unset, that is when not started by systemd.
A failed send is logged at debug level and reported by the return value; it never raises, because
the daemon must not stop over its supervisor's socket.
"""

from __future__ import annotations

import os
import socket
from typing import Final

import structlog

_LOG: Final = structlog.stdlib.get_logger(__name__)


def send(*assignments: str) -> bool:
    """Send `KEY=value` assignments to systemd in one datagram; True when it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if not address.startswith(("/", "@")):
        _LOG.debug("sd_notify socket not supported", notify_socket=address)
        return False
    # A leading "@" names a socket in the abstract namespace, which the kernel spells with a NUL byte.
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never stall the event loop on a full socket queue: a lost ping is better than a hang.
            sock.setblocking(False)
            sock.sendto("\n".join(assignments).encode(), target)
    except OSError as exc:
        _LOG.debug("sd_notify failed", notify_socket=address, error=str(exc))
        return False
    return True


def ready(status: str = "") -> bool:
    """READY=1, with a STATUS= line when given: startup is over and the service is working."""
    return send("READY=1", *_status_lines(status))


def status(text: str) -> bool:
    """STATUS=: one line for `systemctl status`, such as the votes tracked and the last poll."""
    return send(*_status_lines(text, always=True))


def watchdog() -> bool:
    """WATCHDOG=1: the main loop is alive; send it every `watchdog_interval()` seconds."""
    return send("WATCHDOG=1")


def stopping(status: str = "") -> bool:
    """STOPPING=1, with a STATUS= line when given: shutdown has begun."""
    return send("STOPPING=1", *_status_lines(status))


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC, as systemd advises), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    # systemd sets WATCHDOG_PID when the watchdog belongs to one process; a child must not ping for it.
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    if not usec.isdigit() or int(usec) == 0:
        _LOG.debug("WATCHDOG_USEC not a positive integer", watchdog_usec=usec)
        return None
    return int(usec) / 2_000_000


def _status_lines(text: str, always: bool = False) -> list[str]:
    # A newline would start a new assignment (READY=1, MAINPID=...), so status text stays on one line.
    if not text and not always:
        return []
    return ["STATUS=" + " ".join(text.splitlines())]
