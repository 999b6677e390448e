"""Issue 11's forged phishing reply, end to end: the real daemon, sandbox ATR and archive, an SMTP sink.

`From: "//atr-login.evil.example" <dolores@apache.org>` with a phishing line and 200 KB of padding once
made the daemon send a 413 KB reminder addressed and greeted with the forged name and quoting the link.
Now the reminder is a few KB, addressed and greeted with the roster's name, and its only link is the
ATR vote page. Display names with a URL, a line break, RTL overrides and look-alike letters are
likewise never used.
"""

from __future__ import annotations

import email.message
import re

import tests.fixtures.e2e as e2e

RELEASE = "lantern-2.0.0"
VOTE_PAGE = f"https://{e2e.ATR_HOST}/vote/lantern/2.0.0"
ALIASES = "".join(f'[people.{uid}]\nname = "{name}"\n\n' for uid, name in e2e.LANTERN_NAMES.items())
PHISHING = (
    "+1 (binding) -- NOTE: ATR moved, cast your vote at https://atr-login.evil.example/vote\n\n"
    + "padding padding padding padding padding padding padding padding\n" * 3_200
)
URL_RE = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)[^\s\"<>]+", re.IGNORECASE)
# uid -> a From line that claims another name for them.
FORGED = {
    "dolores": b'From: "//atr-login.evil.example" <dolores@apache.org>',
    "chen": b'From: "Chen Wei https://atr-login.evil.example/login" <chen@apache.org>',
    "gina": b"From: =?utf-8?q?Gina_Gomez=0D=0AReply-To=3A_Gina?= <gina@apache.org>",
    "hank": "From: \u202eknaH rebmeM\u202c <hank@apache.org>".encode(),
    "iris": "From: \u0406ris \u0406to <iris@apache.org>".encode(),
}


def _texts(mail: email.message.EmailMessage) -> list[str]:
    parts = [mail.get_body(("plain",)), mail.get_body(("html",))]
    return [str(part.get_content()) for part in parts if part is not None]


async def test_forged_names_and_the_phishing_line_never_reach_a_reminder(start_e2e: e2e.StartE2E) -> None:
    async with start_e2e(e2e.lantern_scenario(), aliases=ALIASES) as env, env.daemon():
        await env.until(lambda: env.of("vote_tracked", RELEASE), "the vote tracked")
        for uid, from_line in FORGED.items():
            body = PHISHING if uid == "dolores" else "+1\n"
            raw = env.reply(RELEASE, f"placeholder <{uid}@apache.org>", body)
            head, sep, rest = raw.partition(b"\n\n")
            lines = [from_line if line.startswith(b"From:") else line for line in head.split(b"\n")]
            await env.post(b"\n".join(lines) + sep + rest, env.vote_of(RELEASE).email_to)
        await env.until(lambda: len(env.smtp.received) >= len(FORGED), "a reminder to each voter", timeout=40)
    by_uid = {mail.rcpt_tos[0].partition("@")[0]: mail for mail in env.smtp.received}
    assert sorted(by_uid) == sorted(FORGED)
    phished = by_uid["dolores"]
    assert len(phished.content) < 8_000, len(phished.content)
    for uid, mail in by_uid.items():
        name = e2e.LANTERN_NAMES[uid]
        assert mail.rcpt_tos == (f"{uid}@apache.org",)
        assert mail.message["To"].addresses[0].display_name == name
        assert mail.message["To"].addresses[0].addr_spec == f"{uid}@apache.org"
        assert mail.message["Bcc"] is None
        texts = _texts(mail.message)
        assert f"Hello {name}," in texts[0]
        for text in texts:
            assert set(URL_RE.findall(text)) == {VOTE_PAGE}
            assert "evil" not in text
            assert "\u202e" not in text
        assert "evil" not in str(mail.message["To"])
        assert "Apache Lantern 2.0.0" in str(mail.message["Subject"])
    assert '"+1 (binding) -- NOTE: ATR moved, cast…"' in _texts(phished.message)[0]
    print(f"phishing reminder: {len(phished.content)} bytes")
