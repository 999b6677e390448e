"""Rendering mails from templates: content, headers, injection attempts, strictness, overrides."""

from __future__ import annotations

import dataclasses
import datetime
import email
import email.message
import email.policy
import pathlib
import re

import pytest

import watcher.core.decide as decide
import watcher.core.tally as tally
import watcher.core.tracking as tracking
import watcher.mail.render as render

T0 = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
END = T0 + datetime.timedelta(hours=72)
HEADERS = render.Headers(
    sender="Vote Watcher <vote-watcher@apache.org>",
    to_uid="alice",
    to_name="Alice Doe",
    message_id="<r-1@vote-watcher.apache.org>",
    date=T0,
    reply_to="tooling@apache.org",
)
CONTEXT = render.ReminderContext(
    voter_uid="alice",
    voter_name="Alice Doe",
    project="foo",
    project_name="Apache Foo",
    version="1.2.0",
    release_key="foo-1.2.0",
    vote_seq=4,
    vote_value="+1",
    atr_host="release-test.apache.org",
    quotation="+1 (binding) checked sigs",
    vote_subject="[VOTE] Release Apache Foo 1.2.0",
    vote_date=T0,
    vote_end=END,
    opt_out="write to tooling@apache.org",
)


def parse(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    """The mail as a receiver sees it: serialised, then parsed again."""
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def text_of(msg: email.message.EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def html_of(msg: email.message.EmailMessage) -> str:
    body = msg.get_body(("html",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def test_reminder_says_what_why_where_and_when() -> None:
    msg = parse(render.Templates().reminder(CONTEXT, HEADERS))
    assert msg["From"].addresses[0].addr_spec == "vote-watcher@apache.org"
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@apache.org"]
    assert msg["Reply-To"] == "tooling@apache.org"
    assert msg["Message-ID"] == "<r-1@vote-watcher.apache.org>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"].datetime == T0
    assert msg["Subject"] == "Your vote on Apache Foo 1.2.0 needs to be cast in ATR to count"
    text = text_of(msg)
    assert "Hello Alice Doe," in text
    assert '    "+1 (binding) checked sigs"\n' in text
    assert "Trusted Vote" in text
    assert "https://release-test.apache.org/vote/foo/1.2.0" in text
    assert "before the vote ends at 2026-11-23 12:00 UTC" in text
    assert "To stop these reminders, write to tooling@apache.org." in text
    assert "https://release-test.apache.org/vote/foo/1.2.0" in html_of(msg)
    assert msg.get_content_type() == "multipart/alternative"


def test_reminder_without_html_is_plain_text() -> None:
    msg = parse(render.Templates(html=False).reminder(CONTEXT, HEADERS))
    assert msg.get_content_type() == "text/plain"
    assert "Trusted Vote" in text_of(msg)


def test_unknown_values_are_left_out() -> None:
    bare = render.ReminderContext(
        voter_uid="alice",
        project="foo",
        version="1.2.0",
        release_key="foo-1.2.0",
        vote_seq=1,
        vote_value="-1",
        atr_host="h",
    )
    text = text_of(parse(render.Templates().reminder(bare, HEADERS)))
    assert "Hello alice," in text
    assert "before the vote ends" not in text
    assert "You wrote" not in text
    assert "To have your -1 counted" in text


def test_carried_vote_is_explained() -> None:
    carried = dataclasses.replace(CONTEXT, vote_round=2, carried=True)
    assert "carried into this second round" in text_of(parse(render.Templates().reminder(carried, HEADERS)))


def test_header_injection_in_subject_and_name_stays_data(tmp_path: pathlib.Path) -> None:
    (tmp_path / "reminder.subject.j2").write_text("Vote {{ vote_subject }}\n")
    evil = "[VOTE] Foo\r\nBcc: x@evil.example\r\n\r\nbody"
    context = dataclasses.replace(CONTEXT, vote_subject=evil, voter_name="Eve\r\nBcc: y@evil")
    headers = dataclasses.replace(HEADERS, to_name="Eve\r\nBcc: y@evil.example")
    raw = render.Templates(tmp_path).reminder(context, headers).as_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None
    assert b"\r\nBcc:" not in raw
    assert msg["Subject"] == "Vote [VOTE] Foo Bcc: [address removed] body"
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@apache.org"]
    # A name holding an address is no name: the greeting falls back to the uid.
    assert msg["To"].addresses[0].display_name == ""


def test_template_code_in_mail_values_stays_literal() -> None:
    context = dataclasses.replace(CONTEXT, quotation="+1 {{ 7*7 }} {% raw %}", voter_name="{{ voter_uid }}")
    text = text_of(parse(render.Templates().reminder(context, HEADERS)))
    assert "+1 {{ 7*7 }} {% raw %}" in text
    assert "49" not in text
    assert "Hello {{ voter_uid }}," in text


def test_html_part_escapes_mail_values() -> None:
    context = dataclasses.replace(CONTEXT, quotation='+1 <script>alert("x")</script>')
    html = html_of(parse(render.Templates().reminder(context, HEADERS)))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    # The text part is not escaped.
    assert '<script>alert("x")</script>' in text_of(parse(render.Templates().reminder(context, HEADERS)))


def test_strict_undefined_raises_for_a_missing_variable(tmp_path: pathlib.Path) -> None:
    (tmp_path / "reminder.txt.j2").write_text("Hello {{ voter_nmae }}\n")
    with pytest.raises(render.RenderError, match="voter_nmae"):
        render.Templates(tmp_path).reminder(CONTEXT, HEADERS)


def test_override_dir_wins_and_the_rest_stays_shipped(tmp_path: pathlib.Path) -> None:
    (tmp_path / "reminder.txt.j2").write_text("Custom for {{ voter_uid }}: {{ vote_url }}")
    msg = parse(render.Templates(tmp_path).reminder(CONTEXT, HEADERS))
    assert text_of(msg) == "Custom for alice: https://release-test.apache.org/vote/foo/1.2.0\n"
    assert msg["Subject"] == "Your vote on Apache Foo 1.2.0 needs to be cast in ATR to count"


def test_missing_templates_dir_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(render.RenderError, match="not a directory"):
        render.Templates(tmp_path / "nope")


def test_sandbox_refuses_unsafe_template_code(tmp_path: pathlib.Path) -> None:
    (tmp_path / "reminder.txt.j2").write_text("{{ voter_uid.__class__.__mro__ }}")
    with pytest.raises(render.RenderError, match=r"sandbox|unsafe"):
        render.Templates(tmp_path).reminder(CONTEXT, HEADERS)


def test_syntax_error_names_the_template(tmp_path: pathlib.Path) -> None:
    (tmp_path / "reminder.subject.j2").write_text("{% if %}")
    with pytest.raises(render.RenderError, match=r"reminder\.subject\.j2"):
        render.Templates(tmp_path).reminder(CONTEXT, HEADERS)


def test_empty_subject_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "reminder.subject.j2").write_text("\r\n \t\n")
    with pytest.raises(render.RenderError, match="empty subject"):
        render.Templates(tmp_path).reminder(CONTEXT, HEADERS)


@pytest.mark.parametrize("uid", ["Alice", "a@b", "alice\r\n", "", "a b", "../x", ".alice", "al..ice"])
def test_recipient_uid_is_checked(uid: str) -> None:
    with pytest.raises(render.RenderError, match="not an ASF uid"):
        render.Templates().reminder(CONTEXT, dataclasses.replace(HEADERS, to_uid=uid))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sender", "vw@apache.org\r\nBcc: x@evil"),
        ("sender", "not an address"),
        ("reply_to", "a@b, c@d"),
        ("message_id", "<no-at>"),
        ("message_id", "<a@b>\r\nBcc: x@evil"),
    ],
)
def test_configured_headers_are_checked(field: str, value: str) -> None:
    with pytest.raises(render.RenderError):
        render.Templates().reminder(CONTEXT, dataclasses.replace(HEADERS, **{field: value}))


def test_one_line() -> None:
    assert render.one_line(" a\r\nb\tc\x00d\x1b[31m\u202e e \u2028f ") == "a b cd[31m e f"


def test_vote_url_quotes_segments() -> None:
    assert render.vote_url("h", "foo", "1.0 rc/1") == "https://h/vote/foo/1.0%20rc%2F1"


# Release-manager notice

VOTES = [
    tally.EmailedVote(
        "dave", "-1", "binding", date=T0, name="Dave", quotation="-1 license headers missing", message_id="<d@x>"
    ),
    tally.EmailedVote("erin", "-1", "binding", date=T0),
    tally.EmailedVote("fred", "-1", "binding", date=T0),
]
HELD = decide.resolution_due(
    tracking.TrackedVote("foo-1.2.0", "foo", "1.2.0", 4, "trusted", vote_end=END),
    decide.AtrState(
        vote_seq=4,
        fetched_at=END,
        ballots={uid: decide.Ballot(uid, "+1", True) for uid in ("a", "b", "c")},
        trusted_passed=True,
    ),
    VOTES,
    config=decide.ResolveConfig(grace=datetime.timedelta(0)),
    now=END,
)


def notice(
    decision: decide.ResolutionDecision,
    reminders: list[render.ReminderSent],
    flagged: tuple[render.Flagged, ...] = (),
) -> email.message.EmailMessage:
    context = render.NoticeContext(
        rm_uid="rmgr",
        rm_name="Rita Manager",
        project="foo",
        project_name="Apache Foo",
        version="1.2.0",
        release_key="foo-1.2.0",
        vote_seq=4,
        atr_host="release-test.apache.org",
        decision=decision,
        vote_end=END,
        reminders=reminders,
        names={"dave": "Dave Roster"},
        flagged=flagged,
        contact="Tooling <tooling@apache.org>",
    )
    headers = render.Headers(sender="vote-watcher@apache.org", to_uid="rmgr", message_id="<n-1@w>", date=END)
    return parse(render.Templates().held_notice(context, headers))


def test_held_notice_lists_unrecorded_votes_and_reminders() -> None:
    assert HELD.action == "hold"
    sent = render.ReminderSent("dave", "<r-d@w>", "sent", T0 + datetime.timedelta(hours=1))
    msg = notice(HELD, [sent, render.ReminderSent("erin", "<r-e@w>", "pending")])
    assert [a.addr_spec for a in msg["To"].addresses] == ["rmgr@apache.org"]
    assert "held" in msg["Subject"]
    text = text_of(msg)
    assert "Hello Rita Manager," in text
    assert "-1 dave (Dave Roster), no ballot in ATR" in text
    assert '"-1 license headers missing"' in text
    assert "-1 erin, no ballot in ATR" in text
    assert "-1 fred, no ballot in ATR" in text
    assert "+1: 3, 0: 0, -1: 0 (passes)" in text
    assert "+1: 3, 0: 0, -1: 3 (fails)" in text
    assert "dave@apache.org: sent at 2026-11-20 13:00 UTC" in text
    assert "erin@apache.org: pending" in text
    assert "https://release-test.apache.org/vote/foo/1.2.0" in text


def test_manual_notice_for_a_failing_tally() -> None:
    failing = decide.ResolutionDecision(
        "manual", decide.Reason.FAILED_MANUAL, "fails", trusted=tally.Counts(yes=2), with_email=tally.Counts(yes=2)
    )
    msg = notice(failing, [])
    assert "failed" in msg["Subject"]
    text = text_of(msg)
    assert "No binding email votes are missing from ATR." in text
    assert "vote-watcher sent no reminders for this vote." in text


def test_held_notice_lists_the_messages_not_read_without_links() -> None:
    flagged = (
        render.Flagged("<big@x.example>", "eve@evil.example", "too_large", "52,428,800 bytes, over the limit", T0),
        render.Flagged("https://evil.example/x@y", "dolores@apache.org", "unreadable", "took longer", T0, "dolores"),
    )
    text = text_of(notice(HELD, [], flagged))
    assert "from eve[@]evil[.]example, 2026-11-20 12:00 UTC: too large to read" in text
    assert "<big@x.example>" in text
    assert "from dolores, 2026-11-20 12:00 UTC: could not be read" in text
    assert "https://evil" not in text
    assert "(a Message-ID of an unusual shape, not shown)" in text
    assert "Questions: Tooling <tooling@apache.org>" in text


# Hostile senders (issue 11): nothing a sender wrote speaks with the daemon's authority

PHISHING = "+1 (binding) -- NOTE: ATR moved, cast your vote at https://atr-login.evil.example/vote " + "pad " * 50_000
URL_RE = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)[^\s\"<>]+", re.IGNORECASE)


def test_the_forged_phishing_vote_is_quoted_short_and_without_its_link() -> None:
    context = dataclasses.replace(CONTEXT, voter_uid="dolores", voter_name="Dolores Ruiz", quotation=PHISHING)
    headers = dataclasses.replace(HEADERS, to_uid="dolores", to_name="Dolores Ruiz")
    mail = render.Templates().reminder(context, headers)
    raw = mail.as_bytes()
    assert len(raw) < 8_000
    msg = parse(mail)
    assert msg["To"].addresses[0].display_name == "Dolores Ruiz"
    text, html = text_of(msg), html_of(msg)
    assert "Hello Dolores Ruiz," in text
    assert '"+1 (binding) -- NOTE: ATR moved, cast…"' in text
    for part in (text, html):
        assert "evil" not in part
        assert set(URL_RE.findall(part)) == {"https://release-test.apache.org/vote/foo/1.2.0"}


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("+1 see https://evil.example/x", "+1 see [link removed]"),
        ("+1 at atr-login.evil.example now", "+1 at [link removed] now"),
        ("+1 //atr-login.evil.example", "+1 [link removed]"),
        ("+1 www.evil.example", "+1 [link removed]"),
        ("+1 mail dolores@evil.example", "+1 mail [address removed]"),
        ("+1 \uff48\uff54\uff54\uff50\uff53\uff1a\uff0f\uff0fevil.example", "+1 [link removed]"),
        ("+1 \u202eelpmaxe.live\u202c", "+1 [link removed]"),
        ("+1 \u0430tr-login.\u0435vil.example", "+1 [link removed]"),
        ("+1\r\nBcc: x", "+1 Bcc: x"),
        ("+1 (binding)", "+1 (binding)"),
    ],
)
def test_quoted_votes_are_one_short_line_with_nothing_clickable(line: str, shown: str) -> None:
    assert render.quoted(line) == shown
    assert len(render.quoted(line * 20)) <= render.QUOTE_CHARS


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("//atr-login.evil.example", ""),
        ("Dolores https://evil.example", ""),
        ("Dolores\r\nBcc: eve@evil.example", ""),
        ("Dolores\nRuiz", "Dolores Ruiz"),
        ("Dolores \u202eziuR\u202c", "Dolores ziuR"),
        ("D\u043elores Ruiz", "D\u043elores Ruiz"),
        ("\uff44\uff4f\uff4c.\uff45\uff56\uff49\uff4c.example", ""),
        ("Herv\u00e9 Boutemy", "Herv\u00e9 Boutemy"),
    ],
)
def test_person_names_never_carry_links_addresses_or_controls(name: str, shown: str) -> None:
    assert render.person_name(name) == shown


def test_display_names_of_a_forged_from_never_reach_to_or_the_greeting() -> None:
    # The desk passes the roster's name; whatever a From header said is not among the inputs at all.
    context = dataclasses.replace(CONTEXT, voter_name="")
    msg = parse(render.Templates().reminder(context, dataclasses.replace(HEADERS, to_name="")))
    assert msg["To"].addresses[0].display_name == ""
    assert "Hello alice," in text_of(msg)


def test_list_unsubscribe_and_contact() -> None:
    context = dataclasses.replace(CONTEXT, contact="Tooling <tooling@apache.org>")
    msg = parse(render.Templates().reminder(context, HEADERS))
    assert msg["List-Unsubscribe"] == "<mailto:tooling@apache.org?subject=opt%20out%20alice>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "Questions: Tooling <tooling@apache.org>" in text_of(msg)
    bare = parse(render.Templates().reminder(CONTEXT, dataclasses.replace(HEADERS, reply_to=None)))
    assert bare["List-Unsubscribe"] == "<mailto:vote-watcher@apache.org?subject=opt%20out%20alice>"


def test_ballot_note_says_both_votes_and_links_only_to_atr() -> None:
    context = dataclasses.replace(CONTEXT, vote_value="-1", quotation="-1 the LICENSE is wrong", ballot_choice="+1")
    msg = parse(render.Templates().ballot_note(context, HEADERS))
    assert msg["Subject"] == "Your emailed vote on Apache Foo 1.2.0 differs from your ballot in ATR"
    text = text_of(msg)
    assert "your ballot in Apache\nTrusted Releases (ATR) says +1, but your later email\nsays -1" in text
    assert '"-1 the LICENSE is wrong"' in text
    assert set(URL_RE.findall(text)) == {"https://release-test.apache.org/vote/foo/1.2.0"}
