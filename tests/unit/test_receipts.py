"""ATR's ballot receipts (watcher.core.receipts): recognised by shape, left out of the tally, superseded ones known."""

from __future__ import annotations

import watcher.core.message as message
import watcher.core.receipts as receipts
import watcher.core.roster as roster
import watcher.core.tally as tally
from tests.mailfactory import at, mail

FOOTER = "This email was sent by {uid}@apache.org on the Apache Trusted Releases platform\n"
PEOPLE = roster.Roster(
    committees={"example": roster.Committee("example", members=frozenset({"chen", "amira", "lena", "rm"}))}
)
VOTE_CALL = mail(
    "Please vote.\n",
    sender="RM <rm@apache.org>",
    subject="[VOTE] Release Example 1.0.0",
    message_id="vote@example.org",
    in_reply_to=None,
    date=at(0),
)


def receipt(uid: str, first_line: str, message_id: str, sender: str | None = None, hours: float = 1) -> message.Message:
    """A mail shaped as ATR posts a ballot's copy: the ballot line, then ATR's footer."""
    body = f"{first_line}\n\n{FOOTER.format(uid=uid)}"
    return message.parse(
        mail(body, sender=sender or f"{uid} <{uid}@apache.org>", message_id=message_id, date=at(hours))
    )


def emailed(uid: str, body: str, message_id: str, hours: float = 2) -> message.Message:
    return message.parse(mail(body, sender=f"{uid} <{uid}@apache.org>", message_id=message_id, date=at(hours)))


def test_atr_receipt_shapes_are_recognised() -> None:
    assert receipts.looks_like_receipt(receipt("chen", "+1 (binding) (chen) Chen Wei", "r1@atr"))
    assert receipts.looks_like_receipt(receipt("amira", "-1 (formal) (amira) Amira Haddad", "r2@atr"))
    assert receipts.looks_like_receipt(receipt("lena", "0 (lena) Lena Berg", "r3@atr"))


def test_a_receipt_naming_another_uid_or_without_the_footer_is_not_one() -> None:
    # Someone else's ballot line pasted into a mail is not that person's receipt.
    assert not receipts.looks_like_receipt(receipt("chen", "+1 (binding) (amira) Amira Haddad", "x1@mail"))
    # From outside apache.org: no uid, so no receipt.
    assert not receipts.looks_like_receipt(
        receipt("chen", "+1 (binding) (chen) Chen Wei", "x2@mail", sender="Chen <chen@home.example>")
    )
    no_footer = emailed("chen", "+1 (binding) (chen) Chen Wei\n", "x3@mail")
    assert not receipts.looks_like_receipt(no_footer)
    assert not receipts.looks_like_receipt(emailed("chen", f"+1 from me\n\n{FOOTER.format(uid='chen')}", "x4@mail"))


def test_senders_and_superseded_receipts() -> None:
    msgs = [
        receipt("chen", "+1 (binding) (chen) Chen Wei", "r1@atr"),
        receipt("amira", "+1 (binding) (amira) Amira Haddad", "r2@atr"),
        emailed("lena", "+1\n", "e1@mail"),
    ]
    found = receipts.senders(msgs)
    assert found == {"r1@atr": "chen", "r2@atr": "amira"}
    # Only the receipts of uids with a ballot in this vote are superseded ones.
    assert receipts.superseded_ids(found, {"chen", "lena"}) == frozenset({"r1@atr"})
    assert receipts.superseded_ids(found, set()) == frozenset()


def test_a_receipt_is_left_out_of_the_email_tally() -> None:
    thread = [
        message.parse(VOTE_CALL),
        receipt("chen", "+1 (binding) (chen) Chen Wei", "r1@atr", hours=1),
        receipt("amira", "-1 (binding) (amira) Amira Haddad", "r2@atr", hours=1.5),
        emailed("lena", "+1\n", "e1@mail"),
    ]
    # By Message-ID, as ATR names them in vote/tabulate.
    named = tally.tally(thread, PEOPLE, tally.Options(committee="example", excluded_message_ids=frozenset({"r1@atr"})))
    assert {v.voter: v.vote for v in named.votes} == {"amira": "-1", "lena": "+1"}
    # By shape, when asked to (and listed for the reader).
    shaped = tally.tally(thread, PEOPLE, tally.Options(committee="example", leave_out_receipts=True))
    assert {v.voter for v in shaped.votes} == {"lena"}
    assert shaped.receipts == ("r1@atr", "r2@atr")
    # Counted as emailed votes when neither applies: that is what the exclusion prevents.
    plain = tally.tally(thread, PEOPLE, tally.Options(committee="example"))
    assert {v.voter for v in plain.votes} == {"chen", "amira", "lena"}
