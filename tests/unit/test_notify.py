"""The sd_notify sender speaks systemd's protocol to a socket bound by the test, as systemd would."""

from __future__ import annotations

import itertools
import os
import pathlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import structlog

import watcher.services.notify as notify

WATCHDOG_USEC = 600_000  # a 0.6 s watchdog: pings every 0.3 s
PINGS = 3

# What a daemon does over its life, in the order systemd expects it.
DAEMON_SCRIPT = f"""
import time
import watcher.services.notify as notify

interval = notify.watchdog_interval()
assert interval is not None
assert notify.ready("tracking 2 votes")
for _ in range({PINGS}):
    time.sleep(interval)
    assert notify.watchdog()
assert notify.status("last poll 12:00:00Z")
assert notify.stopping()
"""


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket and the NOTIFY_SOCKET value that names it (a file, or `@` abstract)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    else:
        name = f"vote-watcher-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.settimeout(5)
    with sock:
        yield sock, address


def _receive(sock: socket.socket, count: int) -> list[tuple[float, bytes]]:
    """Datagrams with the time each arrived."""
    received = []
    for _ in range(count):
        data = sock.recv(4096)
        received.append((time.monotonic(), data))
    return received


def test_a_daemon_process_speaks_the_protocol(notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-c", DAEMON_SCRIPT], env=env, stderr=subprocess.PIPE)
    try:
        received = _receive(sock, PINGS + 3)
    finally:
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr.decode()

    messages = [data for _, data in received]
    assert messages == [
        b"READY=1\nSTATUS=tracking 2 votes",
        *[b"WATCHDOG=1"] * PINGS,
        b"STATUS=last poll 12:00:00Z",
        b"STOPPING=1",
    ]
    # Each ping comes after about half the watchdog time, and always well before the watchdog fires.
    times = [when for when, _ in received[: PINGS + 1]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    half = WATCHDOG_USEC / 2_000_000
    assert all(half * 0.9 <= gap < 2 * half for gap in gaps), gaps


def test_status_text_cannot_inject_assignments(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert notify.status("vote on [VOTE] x\nREADY=1\r\nMAINPID=1")
    assert sock.recv(4096) == b"STATUS=vote on [VOTE] x READY=1 MAINPID=1"


def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert notify.ready("x") is False
    assert notify.status("x") is False
    assert notify.watchdog() is False
    assert notify.stopping() is False
    assert notify.watchdog_interval() is None


def test_a_failed_send_is_reported_and_logged_at_debug(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "gone.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", missing)
    with structlog.testing.capture_logs() as logs:
        assert notify.watchdog() is False
    assert len(logs) == 1
    assert logs[0]["log_level"] == "debug"
    assert logs[0]["event"] == "sd_notify failed"
    assert logs[0]["notify_socket"] == missing
    assert "No such file" in logs[0]["error"]


def test_an_unsupported_socket_address_is_logged_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify.sock")
    with structlog.testing.capture_logs() as logs:
        assert notify.ready() is False
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [("sd_notify socket not supported", "debug")]


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("2000000", "self", 1.0),
        ("2000000", "1", None),  # the watchdog belongs to another process
        ("0", None, None),
        ("soon", None, None),
        ("-5", None, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    usec: str, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert notify.watchdog_interval() == expected
