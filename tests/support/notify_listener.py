"""Where systemd would listen for the notify protocol: a datagram socket, and what arrived on it when."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket where systemd would listen (a short path: AF_UNIX allows 108 bytes)."""
    folder = tempfile.mkdtemp(prefix="vw-notify-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        sock.setblocking(False)
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


async def receive(sock: socket.socket, into: list[tuple[float, str]]) -> None:
    """Append each datagram, with its monotonic arrival time, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.sock_recv(sock, 65536)
        into.append((time.monotonic(), data.decode()))


def sent(messages: list[tuple[float, str]], assignment: str) -> list[float]:
    """When each datagram that carried `assignment` (e.g. "READY=1") arrived."""
    return [at for at, text in messages if assignment in text.split("\n")]
