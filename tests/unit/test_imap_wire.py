"""The IMAP source's pure parts: response parsing, UID sets, cursor start, backoff, settings."""

from __future__ import annotations

import dataclasses
import random

import pytest

import watcher.config as config
import watcher.services.secrets as secrets
import watcher.sources.imap as imap
import watcher.sources.imap_wire as imap_wire
import watcher.store.records as records
import watcher.wiring as wiring

# As aioimaplib hands them back from Dovecot 2.3 (untagged `* ` stripped, tagged text last).
SELECT_LINES = [
    b"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
    b"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.",
    b"2 EXISTS",
    b"0 RECENT",
    b"OK [UIDVALIDITY 1795690172] UIDs valid",
    b"OK [UIDNEXT 3] Predicted next UID",
    b"[READ-WRITE] Select completed (0.001 + 0.000 secs).",
]


def test_selected_reads_uidvalidity_and_uidnext() -> None:
    assert imap_wire.selected(SELECT_LINES) == imap_wire.Selected(uidvalidity=1795690172, uidnext=3)


def test_selected_without_uidvalidity_is_a_protocol_error() -> None:
    with pytest.raises(imap_wire.ImapProtocolError, match="UIDVALIDITY"):
        imap_wire.selected([b"2 EXISTS", b"Select completed."])


def test_search_uids_sorted_and_tagged_text_skipped() -> None:
    assert imap_wire.search_uids([b"10 2 3", b"Search completed (0.001 secs)."]) == [2, 3, 10]
    assert imap_wire.search_uids([b"", b"Search completed."]) == []
    assert imap_wire.search_uids([b"Search completed."]) == []


def test_fetched_bodies_pairs_uids_with_literals() -> None:
    first = bytearray(b"Message-ID: <a@x>\r\n\r\nbody 1 FETCH (UID 99 BODY[] {5}\r\n")
    second = bytearray(b"Message-ID: <b@x>\r\n\r\nbody\r\n")
    lines = [
        b"1 FETCH (UID 1 BODY[] {%d}" % len(first),
        first,
        b")",
        b"3 FETCH (FLAGS (\\Seen))",
        b"2 FETCH (BODY[] {%d}" % len(second),
        second,
        b" UID 7)",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    assert imap_wire.fetched_bodies(lines) == [(1, bytes(first)), (7, bytes(second))]


def test_fetched_bodies_reads_a_partial_fetch() -> None:
    # `UID FETCH n (UID BODY.PEEK[]<0.N>)`: the server answers `BODY[]<0> {m}` with at most N bytes.
    prefix = bytearray(b"Message-ID: <big@x>\r\n\r\n" + b"x" * 40)
    lines = [b"1 FETCH (UID 5 BODY[]<0> {%d}" % len(prefix), prefix, b")", b"Fetch completed."]
    assert imap_wire.fetched_bodies(lines) == [(5, bytes(prefix))]


def test_fetched_bodies_skips_records_without_a_body() -> None:
    assert imap_wire.fetched_bodies([b"4 FETCH (UID 4 FLAGS ())", b"Fetch completed."]) == []


def test_push_lines() -> None:
    assert imap_wire.has_exists([b"3 EXISTS", b"1 RECENT"])
    assert not imap_wire.has_exists([b"OK Still here", b"2 EXPUNGE", bytearray(b"3 EXISTS")])
    assert imap_wire.has_bye([b"BYE Server shutting down."])
    assert not imap_wire.has_bye([b"OK Still here"])


def test_uid_set_compacts_ranges() -> None:
    assert imap_wire.uid_set([9, 1, 2, 3, 7, 10, 3]) == "1:3,7,9:10"
    assert imap_wire.uid_set([5]) == "5"
    with pytest.raises(ValueError, match="at least one"):
        imap_wire.uid_set([])


def test_batches() -> None:
    assert imap_wire.batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert imap_wire.batches([], 3) == []


def test_mailbox_argument_quotes_only_when_needed() -> None:
    assert imap_wire.mailbox_argument("INBOX") == "INBOX"
    assert imap_wire.mailbox_argument("lists/dev.maven") == "lists/dev.maven"
    assert imap_wire.mailbox_argument("dev list") == '"dev list"'
    assert imap_wire.mailbox_argument('a"b\\c') == '"a\\"b\\\\c"'


def test_backoff_grows_is_capped_and_jittered() -> None:
    rand = random.Random(7)
    delays = [imap.backoff_delay(attempt, 1.0, 60.0, rand) for attempt in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 60.0
    assert imap.backoff_delay(10_000, 1.0, 60.0, rand) <= 60.0
    assert len({round(imap.backoff_delay(9, 1.0, 60.0, rand), 6) for _ in range(20)}) > 1


def test_start_position() -> None:
    server = imap_wire.Selected(uidvalidity=5, uidnext=41)
    assert imap.start_position(None, server, start_at_end=False) == (records.Cursor(5, 0), False)
    assert imap.start_position(None, server, start_at_end=True) == (records.Cursor(5, 40), False)
    assert imap.start_position(records.Cursor(5, 12), server, start_at_end=True) == (records.Cursor(5, 12), False)
    assert imap.start_position(records.Cursor(4, 12), server, start_at_end=False) == (records.Cursor(5, 0), True)


def settings(**overrides: object) -> imap.ImapSettings:
    base = imap.ImapSettings(host="imap.example.org", user="watcher", password=secrets.Secret("hunter2-secret"))
    return dataclasses.replace(base, **overrides)


def test_settings_defaults_are_implicit_tls_on_993() -> None:
    imap_config = settings()
    assert (imap_config.port, imap_config.tls, imap_config.folders) == (993, True, ("INBOX",))
    assert imap_config.source_name == "imap:watcher@imap.example.org"
    assert imap_config.ssl_context() is not None
    assert "hunter2" not in repr(imap_config)


def test_plain_text_settings_have_no_tls_context() -> None:
    # Whether plain text may go to this host is the configuration's to say (tests/unit/test_config.py).
    assert settings(host="127.0.0.1", tls=False, port=143).ssl_context() is None


def test_imap_settings_maps_the_config_section() -> None:
    section = config.ImapSection(
        kind="imap",
        host="imap.example.org",
        user="watcher",
        password=secrets.Secret("hunter2-secret"),
        folders=["INBOX", "dev"],
        idle_timeout="20m",
        sweep_interval="5m",
    )
    settings = wiring.imap_settings(section)
    assert (settings.host, settings.port, settings.tls, settings.folders) == (
        "imap.example.org",
        993,
        True,
        ("INBOX", "dev"),
    )
    assert (settings.idle_renew_s, settings.sweep_interval_s) == (1200.0, 300.0)
    assert settings.password.reveal() == "hunter2-secret"
    assert settings.source_name == "imap:watcher@imap.example.org"
