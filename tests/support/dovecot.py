"""A throwaway Dovecot IMAP server on loopback, for tests and benchmarks.

It installs nothing (scripts/install-system-deps.sh does), writes its own config in a fresh
directory (nothing from /etc/dovecot), and is stopped by its own PID. Two listeners: plain
IMAP and IMAPS with a self-signed certificate (made with openssl) for `localhost` and 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

HOST: Final = "127.0.0.1"
USER: Final = "alice"
PASSWORD: Final = "secret-for-tests"
START_TIMEOUT_S: Final = 10.0
STOP_GRACE_S: Final = 2.0

_APPENDUID_RE: Final = re.compile(rb"APPENDUID (\d+) ([0-9:,]+)")
APPEND_BATCH: Final = 200
_UIDVALIDITY_RE: Final = re.compile(rb"UIDVALIDITY (\d+)")

_CONFIG: Final = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = {host}
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
# Tests append thousands of messages; durability across a host crash does not matter here.
mail_fsync = never
# Wrong-password tests should not wait for the brute-force delay (2 s, doubling per failure).
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
# The source opens one connection per folder; tests run several sources at once.
mail_max_userip_connections = 100
{user_settings}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {plain_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
}}
"""


class DovecotError(RuntimeError):
    """Dovecot is missing, or did not start; the message carries its log."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def _signal_group(group: int, signum: int) -> bool:
    """Signal a process group; False when no process is left in it."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _tagged(sock: socket.socket, reader: BinaryIO, tag: bytes, command: bytes) -> bytes:
    """Send a command and return its tagged OK line (untagged lines are skipped)."""
    sock.sendall(command)
    while line := reader.readline():
        if not line.startswith(tag + b" "):
            continue
        if not line.startswith(tag + b" OK"):
            raise DovecotError(f"{command[:40]!r}... failed: {line!r}")
        return line
    raise DovecotError("Dovecot closed the connection")


def _expand_uid_set(text: str) -> list[int]:
    uids: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition(":")
        uids.extend(range(int(first), int(last or first) + 1))
    return uids


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclasses.dataclass
class DovecotServer:
    """One Dovecot instance: its directory, ports, process, and helpers to drive its mailbox."""

    root: pathlib.Path
    plain_port: int
    tls_port: int
    user: str = USER
    password: str = dataclasses.field(default=PASSWORD, repr=False)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """The loopback address both listeners bind to."""
        return HOST

    @property
    def config_file(self) -> pathlib.Path:
        """The generated dovecot.conf."""
        return self.root / "dovecot.conf"

    @property
    def cert_file(self) -> pathlib.Path:
        """The self-signed certificate of the IMAPS listener (use it as a CA file)."""
        return self.root / "cert.pem"

    @property
    def maildir(self) -> pathlib.Path:
        """The user's Maildir (INBOX at its root, other folders as `.name`)."""
        return self.root / "mail" / self.user / "Maildir"

    def log_text(self) -> str:
        """Dovecot's own log, for failure messages."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no dovecot.log)"

    def start(self) -> None:
        """Start `dovecot -F` and wait until both ports accept connections."""
        if self.process is not None:
            raise DovecotError("dovecot is already running")
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.access(binary, os.X_OK):
            raise DovecotError("dovecot is not installed: run ./scripts/install-system-deps.sh (Debian dovecot-imapd)")
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group, so that stop() can end the imap processes too, as systemd would.
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_port_open(self.plain_port) and _port_open(self.tls_port)):
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
                self.process = None
                raise DovecotError(f"dovecot exited at start:\n{output}\n--- dovecot.log ---\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise DovecotError(f"dovecot did not open its ports in {START_TIMEOUT_S} s:\n{self.log_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop this instance and what it started, by its own PID and process group.

        The master is asked first (TERM); it usually exits within about a second but can take
        several, so after a short grace the group is killed. Dovecot's imap processes outlive
        their master and keep serving open connections for seconds: they are sent TERM (they
        say BYE) so that a restart drops every client, as `systemctl restart` does.
        """
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        _signal_group(process.pid, signal.SIGTERM)
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> None:
        """Stop and start again on the same ports and mail directory."""
        self.stop()
        self.start()

    @contextlib.contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib IMAP client on the plain port (a second connection beside the source)."""
        client = imaplib.IMAP4(self.host, self.plain_port, timeout=10)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def create_folder(self, folder: str) -> None:
        """Create a folder (no error when it exists)."""
        with self.connect() as client:
            client.create(_quote(folder))

    def append(self, folder: str, messages: Iterable[bytes]) -> list[int]:
        """APPEND messages to a folder over a second connection; returns their UIDs.

        One MULTIAPPEND command per 200 messages, literals sent at once (LITERAL+): one by one,
        Dovecot takes milliseconds per APPEND, which would dominate the catch-up tests.
        """
        raws = list(messages)
        uids: list[int] = []
        with socket.create_connection((self.host, self.plain_port), timeout=30) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            login = f"a LOGIN {_quote(self.user)} {_quote(self.password)}\r\n".encode()
            _tagged(sock, reader, b"a", login)
            for start in range(0, len(raws), APPEND_BATCH):
                literals = b"".join(b" {%d+}\r\n%s" % (len(raw), raw) for raw in raws[start : start + APPEND_BATCH])
                line = _tagged(sock, reader, b"b", b"b APPEND " + _quote(folder).encode() + literals + b"\r\n")
                found = _APPENDUID_RE.search(line)
                if found is None:
                    raise DovecotError(f"APPEND to {folder} gave no APPENDUID: {line!r}")
                uids.extend(_expand_uid_set(found.group(2).decode()))
            _tagged(sock, reader, b"c", b"c LOGOUT\r\n")
        return uids

    def uidvalidity(self, folder: str) -> int:
        """The folder's current UIDVALIDITY."""
        with self.connect() as client:
            status, data = client.status(_quote(folder), "(UIDVALIDITY)")
            found = _UIDVALIDITY_RE.search(data[0] if data and isinstance(data[0], bytes) else b"")
            if status != "OK" or found is None:
                raise DovecotError(f"STATUS {folder} failed: {data!r}")
            return int(found.group(1))

    def force_uidvalidity_change(self, folder: str) -> None:
        """Give a folder a new UIDVALIDITY, keeping its messages (as an index rebuild does).

        Dovecot is stopped, the folder's UID list and indexes are removed, and Dovecot is started
        again: it renumbers the messages from UID 1 under a fresh UIDVALIDITY.
        """
        self.stop()
        folder_dir = self.maildir if folder.upper() == "INBOX" else self.maildir / f".{folder}"
        for path in folder_dir.glob("dovecot*"):
            path.unlink()
        for path in self.maildir.glob("dovecot.list.index*"):
            path.unlink()
        self.start()


def _write_certificate(root: pathlib.Path) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"), "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _mail_owner() -> tuple[str, str, str]:
    """uid, gid and extra settings: `nobody` as root (Dovecot refuses uid 0), else the current user."""
    if os.geteuid() == 0:
        return "nobody", "nogroup", ""
    import grp
    import pwd

    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return user, group, f"default_login_user = {user}\ndefault_internal_user = {user}\n"


def prepare(root: pathlib.Path | None = None, extra_config: str = "") -> DovecotServer:
    """Write a config, users file and certificate into a fresh directory; does not start Dovecot.

    `extra_config` is appended to the config (e.g. an `imap_capability` without IDLE).
    """
    if root is None:
        root = pathlib.Path(tempfile.mkdtemp(prefix="vote-watcher-dovecot-"))
    # mkdtemp makes the directory 0700; the mail user must traverse it to reach its home.
    root.chmod(0o755)
    for name in ("run", "state", "mail"):
        (root / name).mkdir(exist_ok=True)
    uid, gid, user_settings = _mail_owner()
    shutil.chown(root / "mail", uid, gid)
    server = DovecotServer(root=root, plain_port=free_port(), tls_port=free_port())
    (root / "users").write_text(f"{server.user}:{{PLAIN}}{server.password}\n")
    _write_certificate(root)
    server.config_file.write_text(
        _CONFIG.format(
            root=root,
            host=HOST,
            uid=uid,
            gid=gid,
            user_settings=user_settings,
            plain_port=server.plain_port,
            tls_port=server.tls_port,
        )
        + extra_config
    )
    return server


def start(root: pathlib.Path | None = None, extra_config: str = "") -> DovecotServer:
    """Prepare and start a Dovecot; the caller stops it with `server.stop()`."""
    server = prepare(root, extra_config)
    server.start()
    return server


def cleanup(server: DovecotServer) -> None:
    """Stop the server and remove its directory."""
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


def tls_context(server: DovecotServer) -> ssl.SSLContext:
    """A client context that trusts exactly this server's certificate."""
    return ssl.create_default_context(cafile=str(server.cert_file))
