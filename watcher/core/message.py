"""Raw RFC 822 bytes to an immutable message value (pure: no I/O).

mail-parser does the full parse; it is guarded, so bad mail never raises and yields a
message with its defects recorded. Where mail-parser loses data (raw 8-bit header
bytes, bodies in unknown charsets) the stdlib `email` package is used instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import email
import email.header
import email.message
import email.parser
import email.policy
import email.utils
import hashlib
import html.parser
import itertools
import logging
import re
from collections.abc import Iterable
from typing import Final, Literal

import mailparser

TextSource = Literal["plain", "html", "none"]

# mail-parser logs a warning for every part it does not handle (signatures, attachments).
logging.getLogger("mailparser").setLevel(logging.ERROR)

_MID_RE: Final = re.compile(r"<([^<>\s]+)>")
# The last <addr-spec> of a header: the address, whatever the display name before it holds.
_ANGLE_ADDRESS: Final = re.compile(r"<\s*([^<>\s]+@[^<>\s]+?)\s*>\s*$")
_LIST_ID_RE: Final = re.compile(r"<([^<>]+)>")
_NOT_IN_ID_RE: Final = re.compile(r"[<>\s]")
_TRACE_HEADERS: Final = ("Received", "Delivered-To", "X-Original-To", "Return-Path")
_BAD_NAME_RE: Final = re.compile(rb"[^\x21-\x39\x3b-\x7e]")
_ROUTING_HEADERS: Final = frozenset({"message-id", "in-reply-to", "references", "list-id", "subject", "date"})
_HTML_BREAKS: Final = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "pre"})
_HTML_BLOCKS: Final = _HTML_BREAKS - {"br"}
_HTML_SKIPPED: Final = frozenset({"script", "style", "head"})
_QUOTE_LEVELS: Final = 8
_FALLBACK_CHARSET: Final = "utf-8"
_PGP_ARMOUR: Final = "-----BEGIN PGP MESSAGE-----"
_BOUNDARY_LINE: Final = re.compile(rb"(?m)^--([!#-~]{1,200})[ \t]*\r?$")
_ENRICHED_PARAM: Final = re.compile(r"(?<!<)<param>.*?</param>", re.IGNORECASE | re.DOTALL)
_ENRICHED_TOKEN: Final = re.compile(r"<<|</?[A-Za-z0-9-]{1,60}>")
_NEWLINE_RUN: Final = re.compile(r"\n+")
# The stdlib parser keeps a string per line, some 25 times the bytes; past this many bytes of
# body only the first are parsed. The classifier reads at most 1,000,000 characters anyway.
PARSE_BODY_BYTES: Final = 1 << 20
HEADER_BYTES: Final = 1 << 18
_DEFECT_REPORT_PARTS: Final = 200
_HEAD_PROBE: Final = 1 << 16
_HASH_PIECE: Final = 1 << 20
_CR: Final = ord("\r")


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """The routing headers of a message, read without parsing its body."""

    key: str
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    list_id: str
    subject: str
    date: datetime.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One email, decoded: the headers that matter for votes and the text to read."""

    key: str
    """Message-ID without angle brackets, else `sha256:<hex>` of the raw bytes."""
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    list_id: str
    from_raw: str
    from_name: str
    from_address: str
    cc: tuple[str, ...]
    received_spf: tuple[str, ...]
    date: datetime.datetime | None
    date_raw: str
    subject: str
    text: str
    text_source: TextSource
    defects: tuple[str, ...]
    size: int

    @property
    def parents(self) -> tuple[str, ...]:
        """Message-IDs this message replies to, nearest first."""
        ordered = [self.in_reply_to, *reversed(self.references)]
        return tuple(dict.fromkeys(mid for mid in ordered if mid))


def normalise_message_id(value: str | None) -> str:
    """Return a Message-ID without whitespace and angle brackets ("" when absent)."""
    if not value:
        return ""
    found = _MID_RE.search(value)
    if found:
        return found.group(1)
    # No <...> pair: keep what is there, minus whitespace and stray brackets.
    return _NOT_IN_ID_RE.sub("", value)


def message_ids(value: str | None) -> tuple[str, ...]:
    """Every Message-ID in a References or In-Reply-To header, in order."""
    if not value:
        return ()
    found = _MID_RE.findall(value)
    if found:
        return tuple(dict.fromkeys(found))
    single = normalise_message_id(value)
    return (single,) if single else ()


def content_key(raw: bytes, message_id: str) -> str:
    """The key a message is stored under: its Message-ID, else a hash of its bytes."""
    if message_id:
        return message_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def normalise_newlines(raw: bytes) -> bytes:
    """CRLF and lone CR to LF, so that line rules see the same text from IMAP and mbox."""
    if b"\r" not in raw:
        return raw
    unified = raw.replace(b"\r\n", b"\n")
    # A second copy only for lone CRs (rare), so that a 50 MB mail usually costs one copy, not two.
    return unified.replace(b"\r", b"\n") if b"\r" in unified else unified


def peek(raw: bytes) -> Envelope:
    """Read only the routing headers; fast (only the header block is scanned), and never raises."""
    try:
        scanned = _scan_headers(_header_block(raw))
        # Decoded exactly as parse() decodes them, so that both give the same key and links.
        headers = {name: _decode_header(value) for name, value in scanned.items()}
        message_id = normalise_message_id(headers.get("message-id"))
        return Envelope(
            key=message_id or _hashed_key(raw),
            message_id=message_id,
            in_reply_to=normalise_message_id(headers.get("in-reply-to")),
            references=message_ids(headers.get("references")),
            list_id=_list_id(headers.get("list-id", "")),
            subject=headers.get("subject", ""),
            date=_parse_date(headers.get("date", "")),
        )
    except Exception:
        return Envelope(_hashed_key(raw), "", "", (), "", "", None)


def _header_block(raw: bytes) -> bytes:
    """The header block, line endings normalised, without copying the body (a mail may be 50 MB)."""
    probe = raw[:_HEAD_PROBE]
    if len(raw) > _HEAD_PROBE and probe.endswith(b"\r"):
        probe = probe[:-1]  # half of a CRLF: the blank line is not found by cutting it in two
    head = normalise_newlines(probe)
    end = head.find(b"\n\n")
    if end >= 0:
        return head[:end]
    if len(raw) <= _HEAD_PROBE:
        return head
    # No mail has a header block this long: past HEADER_BYTES the rest is not headers worth reading.
    probe = raw[: 2 * HEADER_BYTES]
    if len(raw) > len(probe) and probe.endswith(b"\r"):
        probe = probe[:-1]
    longer = normalise_newlines(probe)
    end = longer.find(b"\n\n", 0, HEADER_BYTES)
    if end >= 0:
        return longer[:end]
    if len(longer) <= HEADER_BYTES:
        return longer
    return longer[: longer.rfind(b"\n", 0, HEADER_BYTES) + 1 or HEADER_BYTES]


def _hashed_key(raw: bytes) -> str:
    """`content_key` of the normalised bytes, hashed piece by piece rather than from a normalised copy."""
    digest = hashlib.sha256()
    start = 0
    while start < len(raw):
        stop = min(len(raw), start + _HASH_PIECE)
        if stop < len(raw) and raw[stop - 1] == _CR:
            stop += 1  # keep a CRLF in one piece
        digest.update(normalise_newlines(raw[start:stop]))
        start = stop
    return "sha256:" + digest.hexdigest()


def _scan_headers(head: bytes) -> dict[str, str]:
    """The first occurrence of each routing header, unfolded; the rest of the header block is skipped.

    A full header parse of list mail (dozens of Received and DKIM lines) costs more than
    everything else the router does, and routing needs only these few headers. Lines are
    looked at as bytes; only the wanted values are decoded.
    """
    found: dict[str, bytes] = {}
    current: str | None = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                found[current] += b" " + line.strip()
            continue
        if line.startswith(b"From "):
            continue  # an mbox separator or a misplaced envelope line, skipped as the stdlib does
        colon = line.find(b":")
        if colon < 0 or _BAD_NAME_RE.search(line, 0, colon):
            break  # like the stdlib parser: a line that is not a header ends the header block
        name = line[:colon].lower().decode("ascii")
        current = name if name in _ROUTING_HEADERS and name not in found else None
        if current is not None:
            found[current] = line[colon + 1 :].strip()
    return {name: value.decode("ascii", "surrogateescape") for name, value in found.items()}


def parse(raw: bytes) -> Message:
    """Parse raw message bytes; never raises, recording what was wrong in `defects`."""
    defects: list[str] = []
    size = len(raw) - raw.count(b"\r\n")  # the normalised size, without making the normalised copy
    stdlib = _stdlib_parse(_bounded(raw, size, defects), defects)
    defects.extend(_mailparser_defects(stdlib))
    return _from_stdlib(size, peek(raw), stdlib, defects)


def _bounded(raw: bytes, size: int, defects: list[str]) -> bytes:
    """The header block and at most PARSE_BODY_BYTES of body, normalised: a 50 MB mail must not cost 1 GB."""
    if size <= PARSE_BODY_BYTES:
        return normalise_newlines(raw)
    head = _header_block(raw)
    # The raw header block is at most twice the normalised one (every LF may have been a CRLF).
    prefix = raw[: 2 * len(head) + 2 + 2 * PARSE_BODY_BYTES]
    if len(prefix) < len(raw) and prefix.endswith(b"\r"):
        prefix = prefix[:-1]
    normalised = normalise_newlines(prefix)
    if not normalised.startswith(head + b"\n\n"):
        # The header block was cut (HEADER_BYTES): parse only it, with no body.
        defects.append(f"header block longer than {HEADER_BYTES} bytes: the rest of the message not parsed")
        return head + b"\n"
    cut = len(head) + 2 + PARSE_BODY_BYTES
    if len(normalised) <= cut:
        return normalised
    defects.append(f"message of {size} bytes: only the first {PARSE_BODY_BYTES} bytes of its body parsed")
    return normalised[:cut]


def _stdlib_parse(raw: bytes, defects: list[str]) -> email.message.Message:
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as exc:
        defects.append(f"stdlib parse failed: {type(exc).__name__}")
        return email.message.Message()


def _from_stdlib(size: int, env: Envelope, msg: email.message.Message, defects: list[str]) -> Message:
    """The routing headers come from the envelope, so that peek() and parse() always agree on them."""
    message_id = env.message_id
    from_raw = _decode_header(msg.get("From"))
    from_name, from_address = parse_from(_raw_header(msg, "From"))
    text, source = _body_text(msg, defects)
    date_raw = _safe_header(msg, "Date", defects)
    date = env.date
    if date is None:
        defects.append("no usable Date header")
    if not message_id:
        defects.append("no Message-ID header")
    return Message(
        key=env.key,
        message_id=message_id,
        in_reply_to=env.in_reply_to,
        references=env.references,
        list_id=env.list_id,
        from_raw=from_raw,
        from_name=from_name,
        from_address=from_address,
        cc=_addresses(_all_headers(msg, "Cc")),
        received_spf=tuple(_all_headers(msg, "Received-SPF")),
        date=date,
        date_raw=date_raw,
        subject=env.subject,
        text=text,
        text_source=source,
        defects=tuple(dict.fromkeys(defects)),
        size=size,
    )


def _mailparser_defects(msg: email.message.Message) -> list[str]:
    """mail-parser's defect report for a parsed message; its failures are recorded, never raised.

    Delivery-trace headers are dropped first: nothing here reads them, and parsing them is
    most of mail-parser's cost.
    """
    for name in _TRACE_HEADERS:
        del msg[name]
    try:
        parts = sum(1 for _ in itertools.islice(msg.walk(), _DEFECT_REPORT_PARTS + 1))
        if parts > _DEFECT_REPORT_PARTS:
            # mail-parser re-reads every part; on thousands of them that is most of the cost, for a report only.
            return [f"more than {_DEFECT_REPORT_PARTS} MIME parts: mail-parser's defect report skipped"]
        parsed = mailparser.MailParser(msg)
        return [str(category) for category in parsed.defects_categories]
    except Exception as exc:
        return [f"mail-parser failed: {type(exc).__name__}"]


def _safe_header(msg: email.message.Message, name: str, defects: list[str]) -> str:
    try:
        return _decode_header(msg.get(name))
    except Exception as exc:
        defects.append(f"unreadable {name} header: {type(exc).__name__}")
        return ""


def _all_headers(msg: email.message.Message, name: str) -> list[str]:
    try:
        return [_decode_header(value) for value in msg.get_all(name) or []]
    except Exception:
        return []


def _decode_header(value: object) -> str:
    """Decode RFC 2047 words; raw 8-bit bytes become UTF-8 or replacement characters."""
    if value is None:
        return ""
    text: str | email.header.Header = value if isinstance(value, email.header.Header) else str(value)
    if isinstance(text, str):
        # compat32 smuggles raw 8-bit header bytes as surrogates; recover them as UTF-8.
        with contextlib.suppress(UnicodeError):
            text = text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    try:
        parts = email.header.decode_header(text)
    except Exception:
        return _unfold(str(text))
    decoded: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            decoded.append(chunk)
            continue
        decoded.append(_decode_bytes(chunk, charset))
    return _unfold("".join(decoded))


def _decode_bytes(data: bytes, charset: str | None) -> str:
    name = (charset or _FALLBACK_CHARSET).strip().strip('"').lower()
    if name in ("unknown-8bit", "x-unknown", "", "us-ascii", "ascii"):
        name = _FALLBACK_CHARSET
    try:
        return data.decode(name, "replace")
    except LookupError:
        return data.decode(_FALLBACK_CHARSET, "replace")


def _unfold(text: str) -> str:
    return " ".join(text.split())


def _list_id(value: str) -> str:
    if not value:
        return ""
    found = _LIST_ID_RE.search(value)
    inner = found.group(1) if found else value
    return inner.strip().strip("<>").lower()


def _raw_header(msg: email.message.Message, name: str) -> str | None:
    """The first header of that name as it was sent (encoded words and 8-bit bytes intact)."""
    wanted = name.lower()
    try:
        return next((str(value) for key, value in msg.raw_items() if key.lower() == wanted), None)
    except Exception:
        return None


def parse_from(value: object) -> tuple[str, str]:
    """(display name, address) of a raw From header: the address is read before anything is decoded.

    Decoding first would let an encoded display name speak for the address: `=?utf-8?Q?Doe,_John?=`
    would become two addresses, and `=?utf-8?Q?chen@apache.org?= <attacker@evil.example>` would be
    chen's. Only the display name is decoded (RFC 2047 allows encoded words only there).
    """
    if value is None:
        return "", ""
    raw = " ".join(str(value).split())
    angle = _ANGLE_ADDRESS.search(raw)
    if angle is not None:
        name, address = raw[: angle.start()], angle.group(1)
    else:
        try:
            name, address = email.utils.parseaddr(raw)
        except Exception:
            return "", ""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = email.utils.unquote(name)
    address = _recover_8bit(address).strip().lower()
    return _decode_header(name).strip().strip('"'), address if "@" in address else ""


def _recover_8bit(text: str) -> str:
    # compat32 smuggles raw 8-bit header bytes as surrogates; recover them as UTF-8.
    with contextlib.suppress(UnicodeError):
        return text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return text


def _addresses(values: Iterable[str]) -> tuple[str, ...]:
    entries: list[str] = []
    try:
        pairs = email.utils.getaddresses(list(values))
    except Exception:
        return ()
    for name, address in pairs:
        if "@" not in address:
            continue
        entries.append(f"{name} <{address}>" if name else f"<{address}>")
    return tuple(entries)


def _parse_date(value: str) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except Exception:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


@dataclasses.dataclass(slots=True)
class _Texts:
    """Text found in a message's parts, by kind, in part order."""

    plain: list[str] = dataclasses.field(default_factory=list)
    html: list[str] = dataclasses.field(default_factory=list)
    other: list[str] = dataclasses.field(default_factory=list)


def _body_text(msg: email.message.Message, defects: list[str]) -> tuple[str, TextSource]:
    texts = _Texts()
    try:
        for part in msg.walk():
            _collect_part(part, texts, defects)
    except Exception as exc:
        defects.append(f"unreadable MIME structure: {type(exc).__name__}")
    if texts.plain:
        return _clean_text("\n".join(texts.plain)), "plain"
    if texts.html:
        return _clean_text("\n".join(_html_to_text(h) for h in texts.html)), "html"
    if texts.other:
        # text/enriched and other inline text parts, when there is nothing better to read.
        return _clean_text("\n".join(texts.other)), "plain"
    return "", "none"


def _collect_part(part: email.message.Message, texts: _Texts, defects: list[str]) -> None:
    if part.is_multipart() or part.get_content_disposition() == "attachment":
        return
    content_type = part.get_content_type()
    if content_type.startswith("multipart/"):
        _collect_partless(part, texts, defects)
        return
    if content_type == "application/pgp-encrypted" or content_type.endswith("encrypted"):
        defects.append("encrypted body")
        return
    if part.get_content_maintype() != "text":
        return
    text = _part_text(part, defects)
    if text is None:
        return
    if content_type == "text/plain":
        if _PGP_ARMOUR in text:
            defects.append("encrypted body")
        texts.plain.append(text)
    elif content_type == "text/html":
        texts.html.append(text)
    elif content_type == "text/enriched":
        texts.other.append(_enriched_to_text(text))
    else:
        texts.other.append(text)


def _part_text(part: email.message.Message, defects: list[str]) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = part.get_content_charset()
    if charset and not _charset_known(charset):
        defects.append(f"unknown charset {charset!r}")
    return _decode_bytes(payload, charset)


def _collect_partless(part: email.message.Message, texts: _Texts, defects: list[str]) -> None:
    """A multipart whose boundary never appears: recover its parts, else keep the body as text."""
    payload = part.get_payload()
    if not isinstance(payload, str) or not payload.strip():
        return
    try:
        raw = payload.encode("utf-8", "surrogateescape")
    except UnicodeError:
        raw = payload.encode("utf-8", "replace")
    recovered = _reparse_with_found_boundary(raw)
    if recovered is None:
        defects.append("multipart body without parts: kept as text")
        texts.plain.append(_decode_bytes(raw, part.get_content_charset()))
        return
    defects.append("MIME boundary differs from the declared one: parts recovered")
    for sub in recovered.walk():
        # Leaves only: a second broken multipart inside is not chased again.
        if not sub.get_content_type().startswith("multipart/"):
            _collect_part(sub, texts, defects)


def _reparse_with_found_boundary(raw: bytes) -> email.message.Message | None:
    found = _BOUNDARY_LINE.search(raw)
    if found is None:
        return None
    boundary = found.group(1).removesuffix(b"--")
    if not boundary:
        return None
    wrapped = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\n\n' + raw
    recovered = email.message_from_bytes(wrapped, policy=email.policy.compat32)
    return recovered if recovered.is_multipart() else None


def _enriched_to_text(text: str) -> str:
    """text/enriched (RFC 1896) to plain text: commands dropped, `<<` is `<`, newlines unfolded."""
    text = _ENRICHED_PARAM.sub("", text.replace("\r\n", "\n"))
    text = _ENRICHED_TOKEN.sub(lambda m: "<" if m.group(0) == "<<" else "", text)
    # In text/enriched a lone newline is a space and n newlines are n-1 line breaks.
    return _NEWLINE_RUN.sub(lambda m: " " if len(m.group(0)) == 1 else "\n" * (len(m.group(0)) - 1), text)


def _charset_known(charset: str) -> bool:
    import codecs

    try:
        codecs.lookup(charset.strip().strip('"'))
    except LookupError:
        return charset.strip().lower() in ("unknown-8bit", "x-unknown")
    return True


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\u00a0", " ")


def _html_to_text(markup: str) -> str:
    """Turn an HTML body into lines, keeping blockquotes as `>`-quoted lines; linear in the markup."""
    reader = _HtmlText()
    try:
        reader.feed(markup)
        reader.close()
    except Exception:
        return ""
    return "\n".join(reader.finish())


class _HtmlText(html.parser.HTMLParser):
    """HTML to text lines in one pass (stdlib parser): a tree that is edited per element costs n².

    Text inside a <blockquote> is prefixed "> " per level (at most _QUOTE_LEVELS: deeper is no more
    quoted, and a 10,000-deep nesting must not cost 10,000 prefixes a line); block elements and <br>
    break lines; script, style and head are dropped; inside a quote each text run is its own line.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._current: list[str] = []
        self._depth = 0
        self._skipped = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skipped = 0  # a <head> never closed ends where the body starts
        elif tag in _HTML_SKIPPED:
            self._skipped += 1
        elif tag == "blockquote":
            self._break()
            self._depth += 1
        elif tag in _HTML_BREAKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIPPED:
            self._skipped = max(0, self._skipped - 1)
        elif tag == "blockquote":
            self._break()
            self._depth = max(0, self._depth - 1)
        elif tag in _HTML_BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._skipped:
            return
        self._current.append(data)
        if self._depth:
            self._break()  # as get_text("\n") did: each text run of a quote on its own line

    def finish(self) -> list[str]:
        """The lines, stripped, blank ones dropped."""
        self._break()
        return self._lines

    def _break(self) -> None:
        if not self._current:
            return
        prefix = "> " * min(self._depth, _QUOTE_LEVELS)
        for line in "".join(self._current).splitlines():
            stripped = line.strip()
            if stripped:
                self._lines.append(prefix + stripped)
        self._current = []
