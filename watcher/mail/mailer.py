"""Sending one mail over SMTP (aiosmtplib), or writing it to a folder in dry-run mode.

TLS is verified against the system CAs or a configured CA file; plain text is refused unless
the relay is on loopback. Every outcome is a `SendResult`, never an exception:

- `sent`;
- `permanent` only for an answer about the recipient: 550, 551 or 553 at RCPT (RFC 5321 §4.2.3:
  mailbox unavailable, not local, name not allowed); another try cannot help;
- `uncertain`: the message was sent (DATA) but its answer never came (timeout, dropped
  connection); the relay may have taken it. It is retried, with the same Message-ID, only after
  the long end-of-DATA wait (`data_timeout`, RFC 5321 §4.5.3.2.6: 10 minutes);
- `transient` for everything else: 4xx, connection trouble, timeouts, TLS, and 5xx answers about
  the relay or our settings rather than the recipient (535 at AUTH, 5xx at MAIL FROM, 554 5.7.1
  relay policy at DATA): a misconfigured or troubled relay must not cost a reminder.
The mailer also refuses, as permanent, any mail that is not addressed to exactly one
`{uid}@apache.org`: the last guard before a forged address could receive a reminder.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.headerregistry
import email.message
import enum
import os
import pathlib
import re
import ssl
import tempfile
from typing import Any, Final, Literal, Protocol

import aiosmtplib

import watcher.core.loopback as loopback
import watcher.services.secrets as secrets

Security = Literal["starttls", "implicit", "none"]

RECIPIENT_RE: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*@apache\.org")
_FORBIDDEN_HEADERS: Final = ("Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
# RCPT answers that are about the recipient (RFC 5321 §4.2.3); 552 at RCPT is to be taken as 452 (§4.5.3.1.10).
RECIPIENT_CODES: Final = frozenset({550, 551, 553})
DATA_TIMEOUT: Final = datetime.timedelta(minutes=10)
_SAFE_FILE_RE: Final = re.compile(r"[^A-Za-z0-9._@+=-]")


class MailerError(ValueError):
    """Settings that cannot be used (for example plain text to a remote relay)."""


class Outcome(enum.StrEnum):
    """What became of one mail."""

    SENT = "sent"
    TRANSIENT = "transient"
    UNCERTAIN = "uncertain"
    PERMANENT = "permanent"


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome, the SMTP reply code when there was one, and a short description (never a secret)."""

    outcome: Outcome
    detail: str
    code: int | None = None

    @property
    def sent(self) -> bool:
        """True when the relay accepted the mail (or dry run wrote it)."""
        return self.outcome == Outcome.SENT


@dataclasses.dataclass(frozen=True, slots=True)
class SmtpSettings:
    """The relay: `tls` is `starttls` (port 587), `implicit` (465) or `none` (loopback only)."""

    host: str
    port: int = 587
    tls: Security = "starttls"
    user: str = ""
    password: secrets.Secret | None = dataclasses.field(default=None, repr=False)
    ca_file: pathlib.Path | None = None
    timeout: datetime.timedelta = datetime.timedelta(seconds=30)
    data_timeout: datetime.timedelta = DATA_TIMEOUT
    local_hostname: str | None = None


class Mailer(Protocol):
    """Anything that delivers a mail and says what became of it."""

    async def send(self, msg: email.message.EmailMessage) -> SendResult:
        """Deliver `msg`; never raises for delivery problems."""
        ...


class SmtpMailer:
    """Sends each mail in its own SMTP session, with verified TLS."""

    def __init__(self, settings: SmtpSettings) -> None:
        """Check the settings now, so that a bad configuration fails at start and not at the first send."""
        if not settings.host:
            raise MailerError("smtp host is empty")
        if settings.tls == "none" and not loopback.is_loopback(settings.host):
            raise MailerError(f"plain-text SMTP is allowed only to loopback, not to {settings.host}")
        if settings.password is not None and not settings.user:
            raise MailerError("an SMTP password needs a user")
        self._settings = settings
        self._tls_context = None if settings.tls == "none" else tls_context(settings.ca_file)

    def __repr__(self) -> str:
        settings = self._settings
        return f"SmtpMailer({settings.host}:{settings.port}, tls={settings.tls}, user={settings.user!r})"

    async def send(self, msg: email.message.EmailMessage) -> SendResult:
        """Deliver `msg` to its one `{uid}@apache.org` recipient."""
        checked = envelope(msg)
        if isinstance(checked, SendResult):
            return checked
        sender, recipient = checked
        settings = self._settings
        password = settings.password.reveal() if settings.password is not None else None
        session = _Session(
            settings.data_timeout.total_seconds(),
            hostname=settings.host,
            port=settings.port,
            username=settings.user or None,
            password=password,
            use_tls=settings.tls == "implicit",
            start_tls=settings.tls == "starttls",
            validate_certs=settings.tls != "none",
            tls_context=self._tls_context,
            timeout=settings.timeout.total_seconds(),
            local_hostname=settings.local_hostname,
        )
        try:
            await session.connect()
            await session.send_message(msg, sender=sender, recipients=[recipient])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return _refused(exc)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError, TimeoutError) as exc:
            if session.data_sent:
                return SendResult(Outcome.UNCERTAIN, f"answer to DATA lost: {type(exc).__name__}: {exc}")
            return SendResult(Outcome.TRANSIENT, f"{type(exc).__name__}: {exc}")
        except aiosmtplib.SMTPResponseException as exc:
            # Greeting, HELO, AUTH, MAIL FROM and DATA refusals are about the relay or our settings.
            return SendResult(Outcome.TRANSIENT, f"{type(exc).__name__}: {exc.code} {exc.message}", exc.code)
        except aiosmtplib.SMTPException as exc:
            return SendResult(Outcome.TRANSIENT, f"{type(exc).__name__}: {exc}")
        finally:
            await _quit(session)
        return SendResult(Outcome.SENT, f"accepted by {settings.host}:{settings.port}")


class _Session(aiosmtplib.SMTP):
    """One SMTP session whose end-of-DATA answer gets its own, long timeout; it notes when DATA began."""

    def __init__(self, data_timeout: float, **options: Any) -> None:
        super().__init__(**options)
        self.data_timeout = data_timeout
        self.data_sent = False

    async def data(self, message: str | bytes, /, *, timeout: Any = None) -> aiosmtplib.SMTPResponse:
        """DATA with `data_timeout` for its answers, whatever timeout the transaction uses."""
        self.data_sent = True
        return await super().data(message, timeout=self.data_timeout)


async def _quit(session: aiosmtplib.SMTP) -> None:
    if not session.is_connected:
        return
    try:
        await session.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        session.close()


class DryRunMailer:
    """Writes each mail to `<folder>/<message-id>.eml` instead of sending it.

    The same Message-ID writes the same file, so a re-send after a crash replaces it.
    """

    def __init__(self, folder: pathlib.Path) -> None:
        """Mails go to `folder`, created when missing."""
        self._folder = folder

    async def send(self, msg: email.message.EmailMessage) -> SendResult:
        """Write `msg` (after the same address checks as a real send)."""
        checked = envelope(msg)
        if isinstance(checked, SendResult):
            return checked
        path = self._folder / eml_name(str(msg["Message-ID"]))
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, msg.as_bytes())
        except OSError as exc:
            return SendResult(Outcome.TRANSIENT, f"cannot write {path}: {exc.strerror}")
        return SendResult(Outcome.SENT, f"dry run: written to {path}")


def envelope(msg: email.message.EmailMessage) -> tuple[str, str] | SendResult:
    """The envelope sender and the one recipient, or a permanent refusal saying what is wrong."""
    for name in _FORBIDDEN_HEADERS:
        if msg[name] is not None:
            return _refuse(f"the mail has a {name} header")
    if not msg["Message-ID"]:
        return _refuse("the mail has no Message-ID")
    senders = _addresses(msg, "From")
    recipients = _addresses(msg, "To")
    if len(senders) != 1:
        return _refuse("the mail needs exactly one From address")
    if len(recipients) != 1 or not RECIPIENT_RE.fullmatch(recipients[0]):
        return _refuse(f"mail goes only to one uid@apache.org, not to {', '.join(recipients) or 'nobody'}")
    return senders[0], recipients[0]


def tls_context(ca_file: pathlib.Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the certificate and host name, against `ca_file` or the system CAs."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailerError(f"cannot load CA file {ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def eml_name(message_id: str) -> str:
    """`<abc@host>` → `abc@host.eml`, with anything unsafe in a file name replaced."""
    stem = _SAFE_FILE_RE.sub("_", message_id.strip().strip("<>")).lstrip(".") or "message"
    return f"{stem[:200]}.eml"


def _addresses(msg: email.message.EmailMessage, name: str) -> list[str]:
    header = msg[name]
    if header is None:
        return []
    # A header built by hand may be a plain string; parse it the same way.
    if not isinstance(header, email.headerregistry.AddressHeader):
        return [str(header)] if header else []
    return [address.addr_spec for address in header.addresses]


def _refused(exc: aiosmtplib.SMTPRecipientsRefused) -> SendResult:
    codes = [refusal.code for refusal in exc.recipients]
    detail = "; ".join(f"{refusal.recipient}: {refusal.code} {refusal.message}" for refusal in exc.recipients)
    code = max(codes, default=None)
    return _answered(exc, code, detail)


def _answered(exc: Exception, code: int | None, message: str) -> SendResult:
    outcome = Outcome.PERMANENT if code in RECIPIENT_CODES else Outcome.TRANSIENT
    return SendResult(outcome, f"{type(exc).__name__}: {code} {message}", code)


def _refuse(detail: str) -> SendResult:
    return SendResult(Outcome.PERMANENT, f"refused: {detail}")


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
