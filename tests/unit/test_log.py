"""Logging: the JSON shape, stdlib loggers routed through structlog, secrets never written, noise kept down."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import mailparser
import pytest
import structlog

import watcher.services.events as events
import watcher.services.log as log

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SIGNED_MAIL = b"""\
From: Release Manager <rm@apache.org>
To: dev@maven.apache.org
Subject: [VOTE] Release Apache Maven 3.9.0
Message-ID: <signed-1@apache.org>
Date: Thu, 21 Dec 2017 22:31:14 +0000
MIME-Version: 1.0
Content-Type: multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256; boundary="sig"

--sig
Content-Type: text/plain; charset=utf-8

+1
--sig
Content-Type: application/pgp-signature
Content-Description: OpenPGP digital signature

-----BEGIN PGP SIGNATURE-----
iQEzBAEBCAAdFiEE
-----END PGP SIGNATURE-----
--sig--
"""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Holder:
    """An object whose repr carries a secret, as a client object's might."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"_Holder(value={self.value!r})"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put structlog and the stdlib loggers back as they were, for the other tests in this process."""
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    names = ["httpx", "httpcore", "hpack", "apscheduler.executors", "mailparser"]
    saved_levels = {name: logging.getLogger(name).level for name in names}
    yield
    structlog.configure(**saved_config)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def _json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def _secret() -> str:
    return "pat-" + secrets.token_urlsafe(24)


def test_json_lines_carry_time_level_logger_event_and_context() -> None:
    buffer = io.StringIO()
    log.configure("json", "info", buffer)
    logger = log.get_logger("watcher.daemon")
    with log.context(release="maven-3.9.0", vote_seq=2, voter="hboutemy"):
        logger.info("reminder sent", recipient="hboutemy@apache.org")
    logger.info("poll done", source="imap")

    first, second = _json_lines(buffer)
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert first["level"] == "info"
    assert first["logger"] == "watcher.daemon"
    assert first["event"] == "reminder sent"
    assert first["recipient"] == "hboutemy@apache.org"
    assert (first["release"], first["vote_seq"], first["voter"]) == ("maven-3.9.0", 2, "hboutemy")
    stamp = datetime.datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.UTC) - stamp) < datetime.timedelta(minutes=1)
    # The context ends with its block.
    assert "release" not in second
    assert second["source"] == "imap"


def test_auto_is_json_off_a_terminal_and_console_on_one() -> None:
    piped = io.StringIO()
    log.configure("auto", "info", piped)
    log.get_logger("watcher.test").info("started", votes=3)
    assert _json_lines(piped)[0]["event"] == "started"

    terminal = _Terminal()
    log.configure("auto", "info", terminal)
    log.get_logger("watcher.test").info("started", votes=3)
    text = ANSI.sub("", terminal.getvalue())
    assert "[info" in text
    assert "started" in text
    assert "votes=3" in text
    assert not text.lstrip().startswith("{")


def test_stdlib_loggers_are_routed_through_structlog() -> None:
    buffer = io.StringIO()
    log.configure("json", "info", buffer)
    with log.context(release="maven-3.9.0"):
        logging.getLogger("aioimaplib.aioimaplib").warning("IDLE timed out after %d s", 29)
    logging.getLogger("sqlalchemy.engine.Engine").error("connection lost")

    idle, lost = _json_lines(buffer)
    assert idle["event"] == "IDLE timed out after 29 s"
    assert idle["logger"] == "aioimaplib.aioimaplib"
    assert idle["level"] == "warning"
    assert idle["release"] == "maven-3.9.0"
    assert "timestamp" in idle
    assert (lost["logger"], lost["level"]) == ("sqlalchemy.engine.Engine", "error")


def test_level_filters_structlog_and_stdlib_alike() -> None:
    buffer = io.StringIO()
    log.configure("json", "warning", buffer)
    log.get_logger("watcher.test").info("not shown")
    logging.getLogger("apscheduler.scheduler").info("not shown either")
    log.get_logger("watcher.test").warning("shown")
    assert [line["event"] for line in _json_lines(buffer)] == ["shown"]


def test_configuring_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    log.configure("json", "info", first)
    log.configure("json", "info", second)
    log.get_logger("watcher.test").info("once")
    assert first.getvalue() == ""
    assert len(_json_lines(second)) == 1


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_registered_secret_never_appears(fmt: log.Format) -> None:
    secret = _secret() + "/+="  # characters that URL-encoding changes
    buffer = io.StringIO()
    log.configure(fmt, "debug", buffer)
    log.register_secret(secret + "\n")  # as read from a file, with its newline
    logger = log.get_logger("watcher.atr")

    logger.info(f"renewing JWT with {secret}", config={"atr": {"pat_value": [secret], "note": f"x{secret}y"}})
    logger.info("client", client=_Holder(secret), raw=secret.encode(), encoded=urllib.parse.quote(secret, safe=""))
    try:
        raise RuntimeError(f"ATR refused {secret}")
    except RuntimeError:
        logger.exception("resolve failed")
    try:
        raise ValueError({"headers": {"X-Key": secret}})
    except ValueError:
        logging.getLogger("httpx").exception("request failed: %s", secret)
    logging.getLogger("aioimaplib.aioimaplib").debug("Sending : b'A0001 LOGIN vw %s'", secret)

    output = buffer.getvalue()
    assert "resolve failed" in output
    assert "Traceback" in output
    assert "ATR refused [redacted]" in output
    assert "Sending : b'A0001 LOGIN vw [redacted]'" in output
    assert secret not in output
    assert urllib.parse.quote(secret, safe="") not in output
    assert urllib.parse.quote_plus(secret) not in output


def test_credential_fields_and_patterns_are_redacted() -> None:
    buffer = io.StringIO()
    log.configure("json", "info", buffer)
    log.get_logger("watcher.test").info(
        "request",
        password="hunter2",
        imap_password="hunter3",
        token="tok",
        jwt="eyJhbGciOi.x.y",
        pat="pat-value",
        pat_file="/etc/vote-watcher/atr.pat",
        smtp_password=None,
        headers={"Authorization": "Bearer eyJ.secret", "Accept": "application/json"},
        raw_headers=[(b"authorization", b"Basic dXNlcjpwdw=="), (b"accept", b"*/*")],
        text="sent Authorization: Bearer abc.def.ghi to ATR",
        bearer="got bearer eyJabc.def back",
        url="postgresql+asyncpg://vw:dbpass@db.example.org/vw",
        query="https://example.org/cb?access_token=qqq&page=2",
    )
    (line,) = _json_lines(buffer)
    for key in ("password", "imap_password", "token", "jwt", "pat"):
        assert line[key] == "[redacted]", key
    assert line["pat_file"] == "/etc/vote-watcher/atr.pat"
    assert line["smtp_password"] is None
    assert line["headers"] == {"Authorization": "[redacted]", "Accept": "application/json"}
    assert line["raw_headers"][0][1] == "[redacted]"
    assert line["text"] == "sent Authorization: [redacted]"
    assert line["bearer"] == "got bearer [redacted] back"
    assert line["url"] == "postgresql+asyncpg://vw:[redacted]@db.example.org/vw"
    assert line["query"] == "https://example.org/cb?access_token=[redacted]&page=2"
    output = buffer.getvalue()
    for secret in ("hunter2", "hunter3", "eyJ.secret", "dXNlcjpwdw", "abc.def.ghi", "dbpass", "qqq", "pat-value"):
        assert secret not in output


def test_mailparser_warnings_are_debug_only() -> None:
    quiet = io.StringIO()
    log.configure("json", "info", quiet)
    mail = mailparser.parse_from_bytes(SIGNED_MAIL)
    assert mail.text_plain == ["+1"]
    assert "not handled" not in quiet.getvalue()

    verbose = io.StringIO()
    log.configure("json", "debug", verbose)
    mailparser.parse_from_bytes(SIGNED_MAIL)
    lines = [line for line in _json_lines(verbose) if "not handled" in line["event"]]
    assert lines
    assert {line["level"] for line in lines} == {"debug"}
    assert lines[0]["logger"].startswith("mailparser")


def test_library_chatter_only_when_debugging() -> None:
    quiet = io.StringIO()
    log.configure("json", "info", quiet)
    logging.getLogger("httpx").info("HTTP Request: GET https://release-test.apache.org/api")
    logging.getLogger("apscheduler.executors.default").info("Running job poll")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    logging.getLogger("apscheduler.executors.default").warning("Run time of job poll was missed")
    assert [line["event"] for line in _json_lines(quiet)] == ["Run time of job poll was missed"]

    verbose = io.StringIO()
    log.configure("json", "debug", verbose)
    logging.getLogger("httpx").info("HTTP Request: GET https://release-test.apache.org/api")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    assert [line["logger"] for line in _json_lines(verbose)] == ["httpx"]


def test_bad_settings_are_refused_clearly() -> None:
    unknown: Any = "xml"  # as a config file could hold, past the type checker
    with pytest.raises(ValueError, match="log format must be one of auto, json, console"):
        log.configure(unknown, "info", io.StringIO())
    with pytest.raises(ValueError, match=r"log level must be one of .*'loud'"):
        log.configure("json", "loud", io.StringIO())


def test_events_are_logged_at_info_with_their_fields() -> None:
    """The daemon's events become one info line each: the event's name, release, vote_seq and data fields."""
    seen: list[events.Event] = []
    sink = log.logging_sink(seen.append)
    event = events.Event(
        "reminder_sent",
        datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC),
        "lantern-2.0.0",
        1,
        "reminder sent to chen@apache.org",
        {"to": "chen@apache.org", "voter": "chen", "message_id": "<m@x>", "kind": "reminder", "error": ""},
    )
    with structlog.testing.capture_logs() as logged:
        sink(event)
        sink(events.Event("not_reminded", event.at, "lantern-2.0.0", 1, "dolores not reminded: ...", {"reason": "x"}))
    assert seen[0] is event
    assert logged[0] == {
        "event": "reminder.sent",
        "log_level": "info",
        "release": "lantern-2.0.0",
        "vote_seq": 1,
        "text": "reminder sent to chen@apache.org",
        "to": "chen@apache.org",
        "voter": "chen",
        "message_id": "<m@x>",
        "kind": "reminder",
    }
    assert logged[1]["event"] == "reminder.not_due" and logged[1]["reason"] == "x"
