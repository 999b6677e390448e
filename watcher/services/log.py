"""Logging: one structlog pipeline for our events and for the libraries' stdlib loggers.

JSON lines (for the journal) when not on a terminal or when asked, a readable console view on a
terminal. Every event passes through redaction last, after exceptions have been formatted, so a
registered secret, an Authorization header, a password in a URL or a `token=` value never reaches
the output, wherever it hides in the event.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

import watcher.services.events as events

Format = Literal["auto", "json", "console"]
FORMATS: Final = ("auto", "json", "console")
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
REDACTED: Final = "[redacted]"
# Keys whose values are secrets wherever they appear (event fields, nested dicts, header pairs).
SECRET_KEYS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "pat", "password", "passwd", "jwt", "token"}
)
_SECRET_KEY_SUFFIXES: Final = ("_password", "_passwd", "_token", "_jwt", "_pat", "_secret")
# The same facts inside free text: "Authorization: Bearer x", "Bearer x", "scheme://user:pw@host", "token=x".
_TEXT_PATTERNS: Final = (
    (re.compile(r"(?i)((?:proxy-)?authorization['\"]?\s*[:=,]\s*(?-i:b)?['\"]?)[^'\"\r\n]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/:@\s]*:)[^@/\s]+@"), r"\1" + REDACTED + "@"),
    (
        re.compile(
            r"(?i)(\b[a-z0-9_-]*(?:password|passwd|token|jwt|secret)|\bpat)(['\"]?\s*[:=]\s*(?-i:b)?['\"]?)[^'\"\s,&;)}]+"
        ),
        r"\1\2" + REDACTED,
    ),
)
_MAX_DEPTH: Final = 8
_LEADING_KEYS: Final = ("timestamp", "level", "logger", "event")
# mail-parser warns about mail content ("Email content 'pgp-signature' not handled" for every signed
# message): facts about a message, not about the service, so all of it is debug for us.
_DEMOTED_TO_DEBUG: Final = ("mailparser",)
# Per-request and per-job chatter, shown only when debugging; httpcore's wire trace never.
_QUIET_UNLESS_DEBUG: Final = (
    "httpx",
    "apscheduler.executors",
    "apscheduler.scheduler",
    "alembic.runtime.migration",
    "mail.log",
)
_ALWAYS_QUIET: Final = ("httpcore", "hpack")
# aioimaplib's debug trace of what the server sends carries whole messages, bodies and all.
_MAIL_ON_THE_WIRE: Final = (("aioimaplib", "Received"),)


class _Secrets:
    """The registered secret values, and one regex that finds any of them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self.pattern: re.Pattern[str] | None = None

    def add(self, forms: Iterable[str]) -> None:
        with self._lock:
            self._values.update(forms)
            # Longest first, so that a secret containing another is replaced whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self.pattern = re.compile("|".join(re.escape(value) for value in ordered))


class _Handler(logging.StreamHandler[TextIO]):
    """The handler configure() installs on the root logger; a later call replaces it."""


_SECRETS: Final = _Secrets()


def configure(format: Format = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to `stream` (stderr by default) at `level`; safe to call again."""
    if format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {format!r}")
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    out = stream if stream is not None else sys.stderr
    threshold = logging.getLevelNamesMapping()[level.upper()]
    console = format == "console" or (format == "auto" and _is_tty(out))

    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_shared_processors(), _wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so that a later configure() (or structlog.testing.capture_logs) takes effect everywhere.
        cache_logger_on_first_use=False,
    )
    handler = _Handler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact_event,
                _renderer(console, out),
            ],
        )
    )
    handler.addFilter(_DemoteFilter(threshold))
    handler.addFilter(_drop_mail_on_the_wire)

    root = logging.getLogger()
    for old in [existing for existing in root.handlers if isinstance(existing, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in _DEMOTED_TO_DEBUG:
        # The demotion filter decides for these; a level set elsewhere would hide them when debugging too.
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name in _QUIET_UNLESS_DEBUG:
        logging.getLogger(name).setLevel(logging.NOTSET if threshold <= logging.DEBUG else logging.WARNING)
    for name in _ALWAYS_QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named after the module, e.g. `log.get_logger(__name__)`."""
    return structlog.stdlib.get_logger(name)


def context(**values: object) -> contextlib.AbstractContextManager[None]:
    """Bind fields (release, vote_seq, voter, ...) to every event logged inside the block, by any logger."""
    return structlog.contextvars.bound_contextvars(**values)


# Event data logged as fields of their own (the rest stays in the event's text).
_EVENT_FIELDS: Final = ("voter", "to", "message_id", "reason", "resolution", "kind", "phase", "error")


_EVENT_NAMES: Final = {
    "not_reminded": "reminder.not_due",
    "tally": "vote.tallied",
    "held": "resolution.held",
    "resolved": "resolution.signalled",
    "resolved_elsewhere": "resolution.elsewhere",
    "resolve_failed": "resolution.failed",
}


def event_name(kind: str) -> str:
    """The log event of an event kind: `reminder_sent` -> `reminder.sent`, `held` -> `resolution.held`."""
    if kind in _EVENT_NAMES:
        return _EVENT_NAMES[kind]
    head, _, tail = kind.partition("_")
    return f"{head}.{tail}" if tail else kind


def logging_sink(then: Callable[[events.Event], None]) -> Callable[[events.Event], None]:
    """A sink that logs each event at info, one JSON line with release, vote_seq and its data, then calls `then`."""
    logger = get_logger("watcher.services.events")

    def sink(event: events.Event) -> None:
        if event.kind != "message":
            fields = {key: event.data[key] for key in _EVENT_FIELDS if event.data.get(key) not in (None, "")}
            logger.info(
                event_name(event.kind),
                release=event.release or None,
                vote_seq=event.vote_seq,
                text=event.text,
                **fields,
            )
        then(event)

    return sink


def register_secret(value: str) -> None:
    """Never log `value` (nor its URL-encoded form): call it for each secret as soon as it is read."""
    value = value.strip()
    if not value:
        return
    _SECRETS.add({value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)})


def redact(text: str) -> str:
    """`text` with registered secrets and credential-looking values replaced by "[redacted]"."""
    pattern = _SECRETS.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _TEXT_PATTERNS:
        text = regex.sub(replacement, text)
    return text


def is_secret_key(key: object) -> bool:
    """Whether a field or header name holds a secret (`password`, `Authorization`, `imap_password`, ...)."""
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    name = key.lower()
    return name in SECRET_KEYS or name.endswith(_SECRET_KEY_SUFFIXES)


class _DemoteFilter(logging.Filter):
    """Lower chatty libraries' records to debug, then keep only what the configured level lets through."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(_DEMOTED_TO_DEBUG):
            return True
        record.levelno = logging.DEBUG
        record.levelname = "DEBUG"
        return self.threshold <= logging.DEBUG


def _drop_mail_on_the_wire(record: logging.LogRecord) -> bool:
    """False for a library's trace of mail it received: message bodies are never logged."""
    return not any(
        record.name.startswith(name) and str(record.msg).startswith(prefix) for name, prefix in _MAIL_ON_THE_WIRE
    )


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.UnicodeDecoder(),
    ]


def _wrap_for_formatter(logger: WrappedLogger, method: str, event_dict: EventDict) -> Any:
    return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, method, event_dict)


def _renderer(console: bool, stream: TextIO) -> Processor:
    if console:
        # Exceptions arrive already formatted (and redacted) as the "exception" field.
        return structlog.dev.ConsoleRenderer(colors=_is_tty(stream))
    return structlog.processors.JSONRenderer(ensure_ascii=False)


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _redact_event(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    redacted = _redact_mapping(event_dict, 0)
    # The fixed fields first, so that a line reads the same way in the journal every time.
    head = {key: redacted.pop(key) for key in _LEADING_KEYS if key in redacted}
    return head | redacted


def _redact_mapping(mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
    return {
        key: REDACTED if is_secret_key(key) and value else _redact_value(value, depth) for key, value in mapping.items()
    }


def _redact_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        return _redact_mapping(value, depth + 1)
    if depth < _MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        if isinstance(value, tuple) and len(value) == 2 and is_secret_key(value[0]):
            return (value[0], REDACTED)
        return [_redact_value(item, depth + 1) for item in value]
    # Anything else (bytes, exceptions, objects) is rendered by repr: keep it unless that text needs redacting.
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned
