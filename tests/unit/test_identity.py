"""Sender identity: ATR's chain, the alias map, and display-name hints."""

from __future__ import annotations

import base64

import pytest

import watcher.core.identity as identity
import watcher.core.message as message
import watcher.core.roster as roster
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


# --- From headers: the address is read before anything is decoded (issue 13) --------------------


def _b64(text: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="


@pytest.mark.parametrize(
    ("header", "name", "address"),
    [
        pytest.param("=?utf-8?Q?Doe,_John?= <john@apache.org>", "Doe, John", "john@apache.org", id="q-comma"),
        pytest.param(
            _b64("Ruiz, Dolores") + " <dolores@apache.org>", "Ruiz, Dolores", "dolores@apache.org", id="b-comma"
        ),
        pytest.param("=?utf-8?Q?Doe;_John?= <john@apache.org>", "Doe; John", "john@apache.org", id="q-semicolon"),
        pytest.param('"Doe, John" <john@apache.org>', "Doe, John", "john@apache.org", id="quoted-comma"),
        pytest.param('"J \\"JJ\\" Doe" <jj@apache.org>', 'J "JJ" Doe', "jj@apache.org", id="escaped-quotes"),
        pytest.param("=?utf-8?Q?=22Doe=22?= <doe@apache.org>", "Doe", "doe@apache.org", id="encoded-quotes"),
        pytest.param("=?utf-8?Q?Jos=C3=A9?=\n <jose@apache.org>", "José", "jose@apache.org", id="folded-newline"),
        pytest.param(
            "=?utf-8?Q?Ren=C3=A9e_M=C3=BCller?= <renee@apache.org>", "Renée Müller", "renee@apache.org", id="q-accents"
        ),
        pytest.param(_b64("Zoë Ñúñez") + " <zoe@apache.org>", "Zoë Ñúñez", "zoe@apache.org", id="b-accents"),
        pytest.param(
            "=?iso-8859-1?Q?Jos=E9_Garc=EDa?= <jose@apache.org>", "José García", "jose@apache.org", id="latin-1"
        ),
        pytest.param(
            "=?utf-8?Q?chen@apache.org?= <attacker@evil.example>",
            "chen@apache.org",
            "attacker@evil.example",
            id="q-address-in-name",
        ),
        pytest.param(
            _b64("Chen <chen@apache.org>") + " <attacker@evil.example>",
            "Chen <chen@apache.org>",
            "attacker@evil.example",
            id="b-address-in-name",
        ),
        pytest.param("jane@apache.org (Jane Doe)", "Jane Doe", "jane@apache.org", id="comment-name"),
    ],
)
def test_from_header_address_comes_from_the_raw_header(header: str, name: str, address: str) -> None:
    msg = message.parse(mail("+1\n", sender=header))
    assert (msg.from_name, msg.from_address) == (name, address)
    found = identity.identify(msg, PEOPLE)
    assert found is not None
    expected_uid = identity.uid_from_address(address)
    assert found.uid == expected_uid


def test_an_encoded_apache_address_in_the_name_is_not_that_persons_vote() -> None:
    msg = message.parse(mail("+1\n", sender="=?utf-8?Q?chen@apache.org?= <attacker@evil.example>"))
    found = identity.identify(msg, PEOPLE)
    assert found is not None
    assert (found.uid, found.key) == (None, "attacker@evil.example")


def test_a_roster_mapping_wins_over_the_apache_local_part_with_a_warning() -> None:
    people = roster.Roster(people={"jdoe": roster.Person("jdoe", "John Doe", ("john@apache.org",))})
    found = identity.identify(message.parse(mail("+1\n", sender="John <john@apache.org>")), people)
    assert found is not None
    assert found.uid == "jdoe"
    assert found.warnings == ("the roster maps john@apache.org to jdoe, not to john",)


def test_a_roster_mapping_that_agrees_gives_no_warning() -> None:
    people = roster.Roster(people={"john": roster.Person("john", "John Doe", ("john@apache.org",))})
    found = identity.identify(message.parse(mail("+1\n", sender="John <john@apache.org>")), people)
    assert found is not None
    assert (found.uid, found.warnings) == ("john", ())
