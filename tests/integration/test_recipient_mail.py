"""Mail that reads well to its recipients (issue 14 item 7), end to end on the sandbox ATR and an SMTP sink.

One Trusted Vote that ends held: the release manager is greeted by name and told which messages were not
read; a voter whose later email differs from their ATR ballot gets one ballot note; an opted-out voter
(named by address in the config) gets nothing; every mail names the project by its ATR display name,
signs with `reminders.contact`, and carries Auto-Submitted and List-Unsubscribe.
"""

from __future__ import annotations

import tests.fixtures.e2e as e2e
import tests.fixtures.smtp as smtp_fixtures

RELEASE = "lantern-2.0.0"
ALIASES = "".join(f'[people.{uid}]\nname = "{name}"\n\n' for uid, name in e2e.LANTERN_NAMES.items())
CONTACT = "Tooling <dev@tooling.apache.org>"
SETTINGS = {
    "watcher": {"max_message_bytes": 100_000},
    "reminders": {"contact": CONTACT, "reply_to": "vote-watcher-owner@apache.org", "opt_out": ["hank@apache.org"]},
}


def _text(mail: smtp_fixtures.Received) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


async def test_notice_note_opt_out_and_headers(start_e2e: e2e.StartE2E) -> None:
    ballots = [e2e.ballot(RELEASE, uid, "+1", cast_at="-5m") for uid in ("amira", "bjorn", "chen")]
    scenario = e2e.lantern_scenario(hours=6, ballots=ballots)
    async with start_e2e(scenario, aliases=ALIASES, settings=SETTINGS) as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        await env.vote_by_email(RELEASE, "Chen Wei <chen@apache.org>", "-1, the LICENSE file is wrong\n")
        for uid in ("dolores", "gina", "hank"):
            await env.vote_by_email(RELEASE, f"{e2e.LANTERN_NAMES[uid]} <{uid}@apache.org>", "-1\n")
        await env.vote_by_email(RELEASE, "Iris Ito <iris@apache.org>", "-1\n\n" + "a long log line\n" * 8_000)
        await env.until(lambda: env.smtp.to("amira@apache.org"), "the notice to the release manager", timeout=40)
    mails = {mail.rcpt_tos[0]: mail for mail in env.smtp.received}
    assert sorted(mails) == ["amira@apache.org", "chen@apache.org", "dolores@apache.org", "gina@apache.org"]
    for mail in mails.values():
        assert "Apache Lantern 2.0.0" in str(mail.message["Subject"])
        assert mail.message["Auto-Submitted"] == "auto-generated"
        assert (
            str(mail.message["List-Unsubscribe"])
            .strip()
            .startswith("<mailto:vote-watcher-owner@apache.org?subject=opt%20out%20")
        )
        text = _text(mail)
        assert f"Questions: {CONTACT}" in text
    note = mails["chen@apache.org"].message
    assert str(note["Subject"]).strip() == "Your emailed vote on Apache Lantern 2.0.0 differs from your ballot in ATR"
    assert "says +1, but your later email\nsays -1" in _text(mails["chen@apache.org"])
    notice = _text(mails["amira@apache.org"])
    assert notice.startswith("Hello Amira Haddad,\n")
    assert "-1 dolores (Dolores Ruiz), no ballot in ATR" in notice
    assert "-1 chen (Chen Wei), newer than their +1 in ATR" in notice
    assert "from iris, " in notice and ": too large to read" in notice
    async with env.store() as db:
        rows = {(m.kind, m.voter): m.state for m in await db.mails(RELEASE, 1)}
        vote = await db.get_vote(RELEASE, 1)
        assert vote is not None
        assert [f.flag for f in await db.flagged_messages(vote.id)] == ["too_large"]
    assert rows[("reminder", "hank")] == "skipped"
    assert rows[("ballot_note", "chen")] == "sent"
    assert ("reminder", "chen") not in rows
