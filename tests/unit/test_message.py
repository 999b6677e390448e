"""Raw bytes to Message: headers, bodies, keys, and the malformed shapes real lists carry."""

from __future__ import annotations

import datetime
import hashlib
import pathlib
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

import pytest

import watcher.core.message as message
import watcher.sources.archive as archive

REPLACEMENT = "\ufffd"
T = TypeVar("T")


def utc(*fields: int) -> datetime.datetime:
    return datetime.datetime(*fields, tzinfo=datetime.UTC)


def raw(*headers: bytes, body: bytes = b"body\n") -> bytes:
    return b"\n".join(headers) + b"\n\n" + body


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Subject: plain ascii", "plain ascii"),
        (b"Subject: =?UTF-8?Q?Herv=C3=A9_BOUTEMY?=", "Hervé BOUTEMY"),
        (b"Subject: =?utf-8?b?SGVydsOpIEJPVVRFTVk=?=", "Hervé BOUTEMY"),
        (b"Subject: =?ISO-8859-1?Q?Herv=E9?= BOUTEMY", "Hervé BOUTEMY"),
        (b"Subject: =?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        (
            b"Subject: Re: [VOTE]\n Release Apache Maven\n\tIndexer 6.0.0",
            "Re: [VOTE] Release Apache Maven Indexer 6.0.0",
        ),
        ("Subject: Größe: raw UTF-8".encode(), "Größe: raw UTF-8"),
        (b"Subject: caf\xe9 au lait", f"caf{REPLACEMENT} au lait"),
        (b"Subject: \xff\xfe both invalid", f"{REPLACEMENT}{REPLACEMENT} both invalid"),
        (b"Subject: =?x-klingon?q?unknown_charset?=", "unknown charset"),
        (b"Subject: =?utf-8?b?not base64!?=", "=?utf-8?b?not base64!?="),
        (b"Subject: Herv=E9 not an encoded word", "Herv=E9 not an encoded word"),
        (b"Subject: =?utf-8?q?=E2=80?= broken UTF-8", f"{REPLACEMENT} broken UTF-8"),
    ],
)
def test_subject_decoding_never_loses_text(header: bytes, expected: str) -> None:
    assert message.parse(raw(header)).subject == expected
    assert message.peek(raw(header)).subject == expected


@pytest.mark.parametrize(
    ("header", "name", "address"),
    [
        (b"From: Jane Doe <Jane@Example.ORG>", "Jane Doe", "jane@example.org"),
        (b'From: "Robert Scholte" <rfscholte@apache.org>', "Robert Scholte", "rfscholte@apache.org"),
        (b"From: =?ISO-8859-1?Q?Herv=E9?= BOUTEMY <herve.boutemy@free.fr>", "Hervé BOUTEMY", "herve.boutemy@free.fr"),
        ("From: Hervé BOUTEMY <h@free.fr>".encode(), "Hervé BOUTEMY", "h@free.fr"),
        (b"From: Herv\xe9 BOUTEMY <h@free.fr>", f"Herv{REPLACEMENT} BOUTEMY", "h@free.fr"),
        (b"From: Herv=E9 BOUTEMY <h@free.fr>", "Herv=E9 BOUTEMY", "h@free.fr"),
        (b"From: jane@example.org", "", "jane@example.org"),
        (b"From: Jane via dev <dev@maven.apache.org>", "Jane via dev", "dev@maven.apache.org"),
        (b"From: not an address", "", ""),
        (b"From:", "", ""),
    ],
)
def test_from_name_and_address(header: bytes, name: str, address: str) -> None:
    parsed = message.parse(raw(header))
    assert (parsed.from_name, parsed.from_address) == (name, address)


def test_from_raw_keeps_the_decoded_header() -> None:
    parsed = message.parse(raw(b"From: =?utf-8?q?Ren=C3=A9?= <r@x.org>"))
    assert parsed.from_raw == "René <r@x.org>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b.org>", "a@b.org"),
        ("  <a@b.org>  ", "a@b.org"),
        ("a@b.org", "a@b.org"),
        ("<a@b.org> (added by the list)", "a@b.org"),
        ("<\n a@b.org>", "a@b.org"),
        ("a@b.org>", "a@b.org"),
        ("\x00<\x00", "\x00\x00"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalise_message_id(value: str | None, expected: str) -> None:
    assert message.normalise_message_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@x> <b@x>\n <c@x>", ("a@x", "b@x", "c@x")),
        ("<a@x><b@x>", ("a@x", "b@x")),
        ("<a@x> <b@x> <a@x>", ("a@x", "b@x")),
        ("a@x", ("a@x",)),
        ("", ()),
        (None, ()),
    ],
)
def test_message_ids_keep_order(value: str | None, expected: tuple[str, ...]) -> None:
    assert message.message_ids(value) == expected


def test_threading_headers_are_normalised_and_parents_nearest_first() -> None:
    parsed = message.parse(
        raw(
            b"Message-ID:  <Child@Example.org> ",
            b"In-Reply-To: <parent@x>",
            b"References: <root@x>\n <middle@x> <parent@x>",
        )
    )
    assert parsed.message_id == "Child@Example.org"
    assert parsed.key == "Child@Example.org"
    assert parsed.in_reply_to == "parent@x"
    assert parsed.references == ("root@x", "middle@x", "parent@x")
    assert parsed.parents == ("parent@x", "middle@x", "root@x")


def test_key_is_sha256_of_the_bytes_when_there_is_no_message_id() -> None:
    lf = raw(b"Subject: no id", b"From: a@b.org")
    crlf = lf.replace(b"\n", b"\r\n")
    parsed = message.parse(crlf)
    assert parsed.message_id == ""
    assert parsed.key == "sha256:" + hashlib.sha256(lf).hexdigest()
    # The same mail read over IMAP (CRLF) and from an mbox (LF) is stored once.
    assert message.peek(crlf).key == message.peek(lf).key == parsed.key
    assert "no Message-ID header" in parsed.defects
    assert message.parse(lf + b"x").key != parsed.key


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b'List-Id: "Maven Developers List" <dev.maven.apache.org>', "dev.maven.apache.org"),
        (b"List-Id: <DEV.Maven.Apache.ORG>", "dev.maven.apache.org"),
        (b"List-Id: dev.maven.apache.org", "dev.maven.apache.org"),
        (b"X-Other: nothing", ""),
    ],
)
def test_list_id(header: bytes, expected: str) -> None:
    assert message.parse(raw(header)).list_id == expected
    assert message.peek(raw(header)).list_id == expected


def test_every_received_spf_and_cc_entry_is_kept_in_order() -> None:
    parsed = message.parse(
        raw(
            b"Received-SPF: pass (helo=mx1) envelope-from=<jane@apache.org>",
            b"Received-SPF: softfail (domain of\n transitioning x@y.org) envelope-from=<x@y.org>",
            b"Cc: Jane Doe <jane@apache.org>, bob@example.org",
            b"Cc: =?utf-8?q?Ren=C3=A9?= <rene@example.org>, not-an-address",
        )
    )
    assert parsed.received_spf == (
        "pass (helo=mx1) envelope-from=<jane@apache.org>",
        "softfail (domain of transitioning x@y.org) envelope-from=<x@y.org>",
    )
    assert parsed.cc == ("Jane Doe <jane@apache.org>", "<bob@example.org>", "René <rene@example.org>")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Date: Tue, 28 Nov 2017 16:32:36 +0100", utc(2017, 11, 28, 15, 32, 36)),
        (
            b"Date: Tue, 28 Nov 2017 17:07:36 +0100 (CET)",
            utc(2017, 11, 28, 16, 7, 36),
        ),
        (b"Date: 28 Nov 2017 16:32:36 -0000", utc(2017, 11, 28, 16, 32, 36)),
        (b"Date: yesterday", None),
        (b"X-No-Date: 1", None),
    ],
)
def test_date_is_utc_or_none_with_a_defect(header: bytes, expected: datetime.datetime | None) -> None:
    parsed = message.parse(raw(header))
    assert parsed.date == expected
    assert message.peek(raw(header)).date == expected
    assert ("no usable Date header" in parsed.defects) is (expected is None)
    if header.startswith(b"Date:"):
        assert parsed.date_raw == header.decode()[len("Date: ") :]


# --- bodies -----------------------------------------------------------------------------------


def test_crlf_is_normalised_in_text_and_size() -> None:
    lf = raw(b"Subject: x", body=b"line one\nline two\n")
    parsed = message.parse(lf.replace(b"\n", b"\r\n"))
    assert parsed.text == "line one\nline two\n"
    assert parsed.size == len(lf)


def test_lone_cr_line_endings_are_normalised() -> None:
    parsed = message.parse(b"Subject: old mac\r\r+1\rsecond line\r")
    assert parsed.subject == "old mac"
    assert parsed.text == "+1\nsecond line\n"


def test_html_only_body_becomes_lines_with_quotes_marked() -> None:
    html = (
        b"<html><head><style>p {color: red}</style><title>t</title></head><body>"
        b"<p>+1&nbsp;(binding)</p><div>Checked &gt; signatures<br>and hashes</div>"
        b"<script>alert(1)</script>"
        b'<div class="gmail_quote">On Tue, Jane wrote:<blockquote>Please vote<br>[ ] +1'
        b"<blockquote>older</blockquote></blockquote></div><p>Thanks</p></body></html>"
    )
    parsed = message.parse(raw(b"Subject: x", b"Content-Type: text/html; charset=utf-8", body=html))
    assert parsed.text_source == "html"
    assert parsed.text.splitlines() == [
        "+1 (binding)",
        "Checked > signatures",
        "and hashes",
        "On Tue, Jane wrote:",
        "> Please vote",
        "> [ ] +1",
        "> > older",
        "Thanks",
    ]


def test_plain_part_wins_over_html_alternative() -> None:
    body = (
        b"--b\nContent-Type: text/plain; charset=utf-8\n\n+1 plain\n"
        b"--b\nContent-Type: text/html; charset=utf-8\n\n<p>+1 html</p>\n--b--\n"
    )
    parsed = message.parse(raw(b'Content-Type: multipart/alternative; boundary="b"', body=body))
    assert parsed.text_source == "plain"
    assert parsed.text.strip() == "+1 plain"


def test_attachments_are_not_read_as_text() -> None:
    body = (
        b"--b\nContent-Type: text/plain\n\n+1\n"
        b"--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=log.txt\n\n-1 in a log\n"
        b"--b\nContent-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\n--b--\n"
    )
    parsed = message.parse(raw(b'Content-Type: multipart/signed; boundary="b"', body=body))
    assert parsed.text.strip() == "+1"


@pytest.mark.parametrize(
    ("headers", "body", "text", "source", "defect"),
    [
        pytest.param((b"Subject: empty",), b"", "", "plain", "no usable Date header", id="empty body"),
        pytest.param((), b"", "", "plain", "no Message-ID header", id="no headers at all"),
        pytest.param(
            (b"Content-Type: text/plain; charset=utf-8",),
            "+1 (binding) — Hervé\n".encode(),
            "+1 (binding) — Hervé\n",
            "plain",
            None,
            id="utf-8 body",
        ),
        pytest.param(
            (b"Content-Type: text/plain; charset=iso-8859-1", b"Content-Transfer-Encoding: quoted-printable"),
            b"Herv=E9 +1=\n continued\n",
            "Hervé +1 continued\n",
            "plain",
            None,
            id="quoted-printable latin-1",
        ),
        pytest.param(
            (b"Content-Type: text/plain",),
            b"caf\xe9 +1\n",
            f"caf{REPLACEMENT} +1\n",
            "plain",
            None,
            id="undeclared 8-bit",
        ),
        pytest.param(
            (b"Content-Type: text/plain; charset=x-klingon",),
            "+1 from Qo'noS é\n".encode(),
            "+1 from Qo'noS é\n",
            "plain",
            "unknown charset 'x-klingon'",
            id="unknown charset",
        ),
        pytest.param(
            (b'Content-Type: multipart/alternative; boundary="declared"',),
            b"--actual\nContent-Type: text/plain\n\n+1 behind a wrong boundary\n--actual--\n",
            "+1 behind a wrong boundary",
            "plain",
            "MIME boundary differs from the declared one: parts recovered",
            id="broken boundary",
        ),
        pytest.param(
            (b"Content-Type: multipart/mixed",),
            b"+1 with no boundary parameter\n",
            "+1 with no boundary parameter\n",
            "plain",
            "multipart body without parts: kept as text",
            id="no boundary parameter",
        ),
        pytest.param(
            (b'Content-Type: multipart/mixed; boundary="b"',),
            b"--b\nContent-Type: text/plain\n\n+1 never closed\n",
            "+1 never closed",
            "plain",
            "CloseBoundaryNotFoundDefect",
            id="unclosed multipart",
        ),
        pytest.param(
            (b"Content-Type: text/enriched",),
            b"<bold>+1</bold> from\nme\n\n<<not a command>\n",
            "+1 from me\n<not a command> ",
            "plain",
            None,
            id="text/enriched",
        ),
        pytest.param(
            (b"Content-Type: text/html",),
            b"<p>+1</p>",
            "+1",
            "html",
            None,
            id="html only",
        ),
        pytest.param(
            (b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e"',),
            b"--e\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n"
            b"--e\nContent-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\nhQEMA\n"
            b"-----END PGP MESSAGE-----\n--e--\n",
            "",
            "none",
            "encrypted body",
            id="PGP/MIME encrypted",
        ),
        pytest.param(
            (b"Content-Type: text/plain",),
            b"-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----\n",
            "-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----\n",
            "plain",
            "encrypted body",
            id="inline PGP",
        ),
        pytest.param(
            (b"Content-Type: application/octet-stream",),
            b"\x00\x01\x02",
            "",
            "none",
            None,
            id="binary only",
        ),
        pytest.param(
            (b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64"),
            b"KzEgYmluZGluZw=!=\n",
            None,
            "plain",
            None,
            id="broken base64",
        ),
    ],
)
def test_malformed_shapes(
    headers: tuple[bytes, ...], body: bytes, text: str | None, source: str, defect: str | None
) -> None:
    parsed = message.parse(raw(*headers, body=body) if headers else body)
    if text is not None:
        assert parsed.text == text
    assert parsed.text_source == source
    if defect is not None:
        assert defect in parsed.defects
    assert parsed.key


def _huge(megabytes: int) -> bytes:
    line = b"x" * 76 + b"\n"
    body = b"--b\nContent-Type: text/plain\n\n+1\n" + line * (megabytes * 1024 * 1024 // len(line))
    return raw(b"Subject: huge", b'Content-Type: multipart/mixed; boundary="b"', body=body)


def _peak_bytes(call: Callable[[], T]) -> tuple[T, int]:
    """What `call` returns, and the most memory Python held for it at once (a count, the same on any machine)."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_ten_megabyte_message_parses_in_bounded_work_and_records_defects() -> None:
    big, bigger = _huge(10), _huge(40)
    parsed, peak = _peak_bytes(lambda: message.parse(big))
    assert parsed.size == len(big) > 10_000_000
    assert parsed.text.startswith("+1\n")
    # Only the first MiB of the body is parsed: the text is bounded, and the cut is recorded.
    assert 1_000_000 < len(parsed.text) <= message.PARSE_BODY_BYTES
    assert f"message of {len(big)} bytes: only the first {message.PARSE_BODY_BYTES} bytes of its body parsed" in (
        parsed.defects
    )
    assert "CloseBoundaryNotFoundDefect" in parsed.defects
    # Four times the mail, the same work: the parser sees the same first MiB and holds no more memory for it.
    # (Its seconds are a figure in bench/classify_shapes.py: message_parse_10MB, message_peek_10MB.)
    parsed_bigger, peak_bigger = _peak_bytes(lambda: message.parse(bigger))
    assert parsed_bigger.text == parsed.text
    assert peak_bigger < peak * 1.05 + 65536, (peak, peak_bigger)
    assert peak_bigger < len(bigger) / 4
    # peek reads only the header block: what it holds does not grow with the body either.
    envelope, peek_peak = _peak_bytes(lambda: message.peek(big))
    envelope_bigger, peek_peak_bigger = _peak_bytes(lambda: message.peek(bigger))
    assert envelope.subject == envelope_bigger.subject == "huge"
    assert peek_peak_bigger < peek_peak * 1.05 + 65536, (peek_peak, peek_peak_bigger)
    assert peek_peak_bigger < len(bigger) / 16


# --- peek agrees with parse -------------------------------------------------------------------


def test_peek_and_parse_agree_on_every_corpus_message(corpus_dir: pathlib.Path) -> None:
    paths = [corpus_dir / "stream" / "maven-dev-2017-11-listsao.mbox", *sorted((corpus_dir / "threads").glob("*"))]
    count = 0
    for raw_message in archive.iter_sources(paths):
        env = message.peek(raw_message)
        parsed = message.parse(raw_message)
        assert (env.key, env.message_id, env.in_reply_to, env.references, env.list_id, env.subject, env.date) == (
            parsed.key,
            parsed.message_id,
            parsed.in_reply_to,
            parsed.references,
            parsed.list_id,
            parsed.subject,
            parsed.date,
        )
        assert parsed.list_id == "dev.maven.apache.org"
        assert "\r" not in parsed.text
        count += 1
    assert count == 370


def test_corpus_encoded_sender_is_decoded(corpus_dir: pathlib.Path) -> None:
    thread = corpus_dir / "threads" / "01-maven-jdeprscan-plugin-3.0.0-alpha-1.mbox"
    senders = {message.parse(r).from_address: message.parse(r).from_name for r in archive.iter_raw(thread)}
    assert senders["herve.boutemy@free.fr"] == "Hervé BOUTEMY"
    assert senders["rfscholte@apache.org"] == "Robert Scholte"


# --- Bounded work on large mail ------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_large_message_key_size_and_headers_agree_with_the_normalised_bytes(ending: bytes) -> None:
    # No Message-ID: the key is the hash of the normalised bytes, computed piece by piece.
    line = b"+1 checked the build" + ending
    body = line * (3 * message.PARSE_BODY_BYTES // len(line))
    big = ending.join([b"From: Jane <jane@apache.org>", b"Subject: Re: [VOTE] x", b"", b""]) + body
    normalised = message.normalise_newlines(big)
    parsed = message.parse(big)
    assert parsed.key == message.content_key(normalised, "") == message.peek(big).key
    assert parsed.size == len(normalised)
    assert (parsed.subject, parsed.from_address) == ("Re: [VOTE] x", "jane@apache.org")
    assert parsed.text.startswith("+1 checked the build\n")
    assert len(parsed.text) <= message.PARSE_BODY_BYTES


def test_hash_pieces_keep_a_crlf_that_falls_on_their_boundary() -> None:
    piece = message._HASH_PIECE
    big = b"Subject: x\r\n\r\n" + b"a" * (piece - 15) + b"\r\n" + b"b\r" * 10
    assert big[piece - 1 : piece + 1] == b"\r\n"
    assert message.peek(big).key == message.content_key(message.normalise_newlines(big), "")


def test_html_with_a_head_never_closed_still_reads_the_body() -> None:
    html = b"<html><head><title>t</title><body><p>+1 (binding)</p></body></html>"
    parsed = message.parse(raw(b"Subject: x", b"Content-Type: text/html; charset=utf-8", body=html))
    assert parsed.text.splitlines() == ["+1 (binding)"]


def test_a_header_block_past_the_bound_is_cut_and_recorded() -> None:
    big = b"From: Jane <jane@apache.org>\nSubject: x\nMessage-ID: <h@x>\n" + b"X-Padding: b\n" * 200_000
    parsed = message.parse(big)
    assert (parsed.key, parsed.subject, parsed.from_address) == ("h@x", "x", "jane@apache.org")
    assert f"header block longer than {message.HEADER_BYTES} bytes: the rest of the message not parsed" in (
        parsed.defects
    )
    assert message.peek(big).key == "h@x"
