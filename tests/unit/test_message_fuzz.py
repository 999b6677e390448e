"""Property tests: no bytes, header soup or mangled real message makes parsing or threading raise."""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import watcher.core.message as message
import watcher.core.threads as threads
import watcher.sources.archive as archive

FUZZ: Any = settings(max_examples=150, deadline=None)

HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "Received-SPF",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "MIME-Version",
]
CONTENT_TYPES = [
    "text/plain",
    "text/html",
    "text/enriched",
    "text/plain; charset=utf-8",
    "text/plain; charset=x-unknown-charset",
    'text/plain; charset="iso-8859-1"',
    "multipart/mixed",
    'multipart/mixed; boundary="b"',
    'multipart/alternative; boundary="b"',
    'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"',
    "message/rfc822",
    "application/pgp-encrypted",
    "application/octet-stream",
]
TOKENS = [
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"--b\n",
    b"--b--\n",
    b"=?utf-8?q?",
    b"=?utf-8?b?",
    b"=?x-unknown?q?",
    b"?=",
    b"=E9",
    b"=\n",
    b"<",
    b">",
    b"@",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"[VOTE] ",
    b"[RESULT] ",
    b"Re: ",
    b"Content-Type: multipart/mixed; boundary=b\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"<blockquote>",
    b"</blockquote>",
]


def check_parse(raw: bytes) -> None:
    """Parse and peek never raise, agree on the routing headers, and feed threading safely."""
    parsed = message.parse(raw)
    env = message.peek(raw)
    assert parsed.key
    assert parsed.key == env.key
    assert (parsed.message_id, parsed.in_reply_to, parsed.references) == (
        env.message_id,
        env.in_reply_to,
        env.references,
    )
    assert "\r" not in parsed.text
    for value in (parsed.message_id, parsed.in_reply_to, *parsed.references):
        assert not set(value) & set("<> \t\n")
    check_threads([parsed, env])


def check_threads(items: list[Any]) -> None:
    matcher = threads.ThreadMatcher()
    for item in items:
        threads.normalise_subject(item.subject)
        threads.kind_of(item.subject)
        if threads.is_vote_call(item):
            matcher.track(item.message_id, item.subject)
        matcher.match(item)
        threads.same_release(item.subject, item.subject)
    for selector in {items[0].subject, items[0].message_id, "x"}:
        with contextlib.suppress(threads.ThreadNotFound):
            threads.select_thread(items, selector)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(raw: bytes) -> None:
    check_parse(raw)


@st.composite
def header_value(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["text", "bytes", "encoded", "ids", "content-type", "address"]))
    if kind == "text":
        return draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    if kind == "encoded":
        charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", "", "utf-16"]))
        encoding = draw(st.sampled_from(["q", "b", "Q", "x"]))
        payload = draw(st.binary(max_size=30)).replace(b"?=", b"")
        return b"=?" + charset.encode() + b"?" + encoding.encode() + b"?" + payload + b"?="
    if kind == "ids":
        parts = draw(st.lists(st.sampled_from([b"<a@x>", b"<b@x>", b"<", b">", b"a@x", b" ", b"\n "]), max_size=6))
        return b"".join(parts)
    if kind == "content-type":
        return draw(st.sampled_from(CONTENT_TYPES)).encode()
    name = draw(st.text(max_size=20)).encode("utf-8", "surrogatepass")
    return b'"' + name + b'" <' + draw(st.sampled_from([b"a@b.org", b"", b"@", b"x"])) + b">"


@st.composite
def header_soup(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(HEADER_NAMES) | st.from_regex(r"[A-Za-z-]{1,12}", fullmatch=True))
        lines.append(name.encode() + b": " + draw(header_value()))
    separator = draw(st.sampled_from([b"\n", b"\r\n", b"\n "]))
    body = draw(st.lists(st.sampled_from(TOKENS) | st.binary(max_size=40), max_size=12))
    return separator.join(lines) + b"\n\n" + b"".join(body)


@FUZZ
@given(header_soup())
def test_header_soup(raw: bytes) -> None:
    check_parse(raw)


@pytest.fixture(scope="module")
def corpus_messages(corpus_dir: pathlib.Path) -> list[bytes]:
    return list(archive.iter_sources(sorted((corpus_dir / "threads").glob("*.mbox"))))


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, 1 << 20)) % (len(data) + 1)
        size = draw(st.integers(1, 200))
        operation = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate", "crlf"]))
        if operation == "flip" and data:
            data[min(where, len(data) - 1)] = draw(st.integers(0, 255))
        elif operation == "delete":
            del data[where : where + size]
        elif operation == "insert":
            data[where:where] = draw(st.sampled_from(TOKENS) | st.binary(max_size=32))
        elif operation == "duplicate":
            data[where:where] = data[where : where + size]
        elif operation == "truncate":
            del data[where:]
        elif operation == "crlf":
            data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
    return bytes(data)


@FUZZ
@given(st.data())
def test_mutated_corpus_messages(corpus_messages: list[bytes], data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(corpus_messages))
    check_parse(data.draw(mutated(original)))


@st.composite
def thread_soup(draw: st.DrawFn) -> list[message.Envelope]:
    """Messages with random subjects and random (often dangling or cyclic) parent links."""
    count = draw(st.integers(1, 25))
    ids = [f"m{n}@x" for n in range(count)]
    pool = [*ids, "missing@x", ""]
    subjects = [
        "[VOTE] Release Foo 1.0",
        "Re: [VOTE] Release Foo 1.0",
        "[VOTE] Release Foo 1.0 (take 2)",
        "[RESULT] [VOTE] Release Apache Foo version 1.0",
        "[CANCEL] [VOTE] Release Foo 1.0",
        "Re: Re: [vote] release foo 1.0",
        "[DISCUSS] Foo",
        "unrelated",
    ]
    envelopes = []
    for mid in ids:
        subject = draw(st.sampled_from(subjects) | st.text(max_size=40))
        refs = tuple(draw(st.lists(st.sampled_from(pool), max_size=4)))
        in_reply_to = draw(st.sampled_from(pool))
        message_id = draw(st.sampled_from([mid, mid, mid, "", ids[0]]))
        key = message_id or f"sha256:{mid}"
        envelopes.append(message.Envelope(key, message_id, in_reply_to, refs, "", subject, None))
    return envelopes


@settings(max_examples=100, deadline=None)
@given(thread_soup(), st.data())
def test_thread_selection_on_random_graphs(envelopes: list[message.Envelope], data: st.DataObject) -> None:
    check_threads(envelopes)
    # A Message-ID is kept once, its first copy: only a vote call that is the first copy of its id is a root.
    first = {env.message_id: env for env in reversed(envelopes)}
    calls = [env for env in envelopes if env.message_id and threads.is_vote_call(env) and first[env.message_id] is env]
    if not calls:
        return
    root = data.draw(st.sampled_from(calls))
    selected = threads.select_thread(envelopes, f"<{root.message_id}>")
    # Duplicated Message-IDs are kept once (the first copy), so look the root up by id.
    assert root.message_id in {env.message_id for env in selected}
    positions = [envelopes.index(env) for env in selected]
    assert positions == sorted(positions)
    selected_ids = [env.message_id for env in selected if env.message_id]
    assert len(set(selected_ids)) == len(selected_ids)


@FUZZ
@given(
    st.lists(st.from_regex(r"[a-z][a-z0-9]{1,10}", fullmatch=True), min_size=1, max_size=4),
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){1,3}", fullmatch=True),
)
def test_a_result_naming_the_same_release_is_recognised(words: list[str], version: str) -> None:
    product = " ".join(words)
    vote = f"[VOTE] Release {product} {version}"
    assert threads.same_release(vote, f"[RESULT] [VOTE] Release Apache {product} version {version}")
    assert threads.same_release(vote, f"Re: [CANCELED] [vote] {product.upper()} {version}")
    assert not threads.same_release(vote, f"[RESULT] [VOTE] Release {product} {version}.1")


@FUZZ
@given(st.text(max_size=80))
def test_normalised_subject_is_a_fixed_point(subject: str) -> None:
    once = threads.normalise_subject(subject)
    assert threads.normalise_subject(once) == once
    assert threads.kind_of(subject) in ("vote", "result", "cancel", "other")
