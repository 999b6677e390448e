"""Sender identity: ATR's chain, the alias map, and display-name hints."""

from __future__ import annotations

import pytest

import watcher.identity as identity
import watcher.message as message
import watcher.roster as roster
from tests.mailfactory import mail

PEOPLE = roster.Roster(
    committees={"example": roster.Committee("example", members=frozenset({"jane", "bob"}))},
    people={
        "bob": roster.Person("bob", "Bob Builder", ("bob@home.example",)),
        "carol": roster.Person("carol", "Carol Danvers", ()),
    },
)
DMARC_FROM = "Jane Doe via dev <dev@example.apache.org>"
LIST_SPF = (
    "pass (mail.example: domain of dev-return-1-x=y@example.apache.org) envelope-from=<dev-return-1@example.apache.org>"
)


@pytest.mark.parametrize(
    ("sender", "cc", "spf", "uid", "address", "confidence"),
    [
        pytest.param("Jane Doe <jane@apache.org>", (), (), "jane", "jane@apache.org", "high", id="apache-address"),
        pytest.param("jane@apache.org", (), (), "jane", "jane@apache.org", "high", id="bare-apache-address"),
        pytest.param("Jane <JANE@Apache.Org>", (), (), "jane", "jane@apache.org", "high", id="case-folded"),
        pytest.param("Jane <jane@apache.org.invalid>", (), (), "jane", "jane@apache.org", "high", id="dot-invalid"),
        pytest.param("Bob <bob@home.example>", (), (), "bob", "bob@home.example", "high", id="alias"),
        pytest.param("bob@home.example", (), (), "bob", "bob@home.example", "high", id="bare-alias-atr-skips"),
        pytest.param("Someone <someone@example.com>", (), (), None, "someone@example.com", "high", id="unknown"),
        pytest.param(
            DMARC_FROM,
            (),
            ("pass (x) client-ip=1.2.3.4; envelope-from=jane@apache.org; helo=x",),
            "jane",
            "jane@apache.org",
            "high",
            id="dmarc-spf",
        ),
        pytest.param(
            DMARC_FROM,
            (),
            (LIST_SPF, 'pass envelope-from="bob@home.example"'),
            "bob",
            "bob@home.example",
            "high",
            id="dmarc-spf-skips-list-bounce",
        ),
        pytest.param(
            DMARC_FROM,
            ("Other <other@example.org>", "Jane Doe <jane@apache.org>"),
            (),
            "jane",
            "jane@apache.org",
            "high",
            id="dmarc-last-cc",
        ),
        pytest.param(DMARC_FROM, (), (), None, "dev@example.apache.org", "low", id="dmarc-nothing-else"),
        pytest.param(
            "Carol Danvers <carol@elsewhere.example>",
            (),
            (),
            None,
            "carol@elsewhere.example",
            "low",
            id="display-name-is-only-a-hint",
        ),
    ],
)
def test_identify(
    sender: str, cc: tuple[str, ...], spf: tuple[str, ...], uid: str | None, address: str, confidence: str
) -> None:
    msg = message.parse(mail("+1\n", sender=sender, cc=cc, received_spf=spf))
    found = identity.identify(msg, PEOPLE)
    assert found is not None
    assert (found.uid, found.address, found.confidence) == (uid, address, confidence)


def test_display_name_hint_never_gives_a_uid() -> None:
    msg = message.parse(mail("+1\n", sender="Carol Danvers <carol@elsewhere.example>"))
    found = identity.identify(msg, PEOPLE)
    assert found is not None
    assert found.uid is None
    assert found.hint_uid == "carol"
    assert found.key == "carol@elsewhere.example"


def test_no_from_gives_none() -> None:
    msg = message.parse(b"Subject: x\n\n+1\n")
    assert identity.identify(msg, PEOPLE) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("pass (x) envelope-from=jane@apache.org; helo=y", "jane@apache.org"),
        ('pass envelope-from = "Jane@Apache.org"', "jane@apache.org"),
        ("pass;envelope-from=<jane@apache.org>", "jane@apache.org"),
        ("pass envelope-from=<>", None),
        ("pass envelope-from=nobody", None),
        ("pass client-ip=1.2.3.4", None),
    ],
)
def test_envelope_from(header: str, expected: str | None) -> None:
    assert identity.envelope_from(header) == expected
