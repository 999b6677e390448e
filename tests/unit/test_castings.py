"""Table-driven tests of the casting classifier: ATR's line rules as the floor, and its known weaknesses fixed."""

from __future__ import annotations

import dataclasses

import pytest

import watcher.core.castings as castings

QUOTED_VOTE_CALL = "\n".join(
    [
        "> Hi,",
        ">",
        "> We solved 19 issues:",
        "> https://issues.apache.org/jira/secure/ReleaseNote.jspa?projectId=12317230&version=12334847",
        ">",
        "> Staging repo:",
        "> https://repository.apache.org/content/repositories/maven-1383/",
        ">",
        "> Source release checksum(s):",
        "> doxia-1.8-source-release.zip sha1: 97bf435da03dd4a8d5cfc1b0f07265090863cff0",
        ">",
        "> Vote open for at least 72 hours.",
        ">",
        "> [ ] +1",
        "> [ ] +0",
        "> [ ] -1",
        ">",
        "> ---------------------------------------------------------------------",
        "> To unsubscribe, e-mail: dev-unsubscribe@maven.apache.org",
        "> For additional commands, e-mail: dev-help@maven.apache.org",
        "> +1",
        "> -1 (binding)",
        "> 0",
        "> +1 from me",
        ">",
    ]
)
FOOTER = (
    "---------------------------------------------------------------------\n"
    "To unsubscribe, e-mail: dev-unsubscribe@maven.apache.org\n"
    "For additional commands, e-mail: dev-help@maven.apache.org\n"
)
VOTE_CALL_TEMPLATE = (
    "Hi,\n\nWe solved 27 issues:\nhttps://issues.apache.org/jira/secure/ReleaseNote.jspa?projectId=12317529\n\n"
    "Staging repo:\nhttps://repository.apache.org/content/repositories/maven-1380/\n\n"
    "Vote open for at least 72 hours.\n\n[ ] +1\n[ ] +0\n[ ] -1\n\n" + FOOTER
)
UNBRACKETED_TEMPLATE = (
    "Please vote on releasing this package as Apache Foo 1.0.\n\n"
    "The vote is open for at least 72 hours and passes if a majority of at least three +1 PMC votes are cast.\n\n"
    "+1 Release this package as Apache Foo 1.0\n"
    "0 I don't feel strongly about it\n"
    "-1 Do not release this package because...\n"
)


def case(
    case_id: str,
    body: str,
    vote: str | None,
    confidence: str | None = None,
    *,
    fraction: str | None = None,
    label: str | None = None,
) -> object:
    return pytest.param(body, vote, confidence, fraction, label, id=case_id)


def check(
    body: str, vote: str | None, confidence: str | None, fraction: str | None, label: str | None
) -> castings.Reading:
    reading = castings.read(body)
    assert reading.vote == vote, reading
    if confidence is not None:
        assert reading.confidence == confidence, reading
    assert reading.fraction == fraction, reading
    assert reading.self_label == label, reading
    return reading


# --- What ATR counts, counted the same way (the floor) ------------------------------------


@pytest.mark.parametrize(
    ("body", "vote", "confidence", "fraction", "label"),
    [
        case("plus-one", "+1\n", "+1", "high"),
        case("minus-one", "-1\n", "-1", "high"),
        case("plus-one-with-comment", "+1\n\nChecked signatures and checksums.\n", "+1", "high"),
        case("minus-one-with-reason", "-1 the source release does not build\n", "-1", "high"),
        case("zero", "0\n", "0", "high"),
        case("plus-zero", "+0\n", "0", "high"),
        case("minus-zero", "-0\n", "0", "high"),
        case("zero-i-dont-care", "0 I don't care\n", "0", "high"),
        case("plus-zero-non-binding", "+0 (non-binding)\n", "0", "high", label="non-binding"),
        case("zero-from-me", "0 from me\n", "0", "high"),
        case("zero-dash-reason", "0 - no time to test\n", "0", "high"),
        case("indented", "   +1\n", "+1", "high"),
        case("crlf-plus-one", "+1\r\n", "+1", "high"),
        case("crlf-plus-zero-atr-misses", "+0\r\n\r\nthanks\r\n", "0", "high"),
        case("rm-vote-in-vote-call", VOTE_CALL_TEMPLATE.replace("[ ] -1\n", "[ ] -1\n\n+1 from me\n"), "+1"),
        case("plus-one-from-me", "+1 from me.\n", "+1", "high"),
        case("plus-one-release", "+1 Release this package as Apache Foo 1.0\n", "+1", "high"),
        case("filled-box", "[X] +1 Release\n[ ] +0 No opinion\n[ ] -1 Do not release\n", "+1", "high"),
        case("filled-box-lower", "[x] -1 Do not release this package because the build fails\n", "-1", "high"),
        case("bullet", "- +1\n", "+1", "high"),
        case("bold", "**+1**\n", "+1", "high"),
        case("paren-at-start", "(+1)\n", "+1", "high"),
        case("vote-colon", "Vote: +1\n", "+1", "high"),
        case("my-vote-colon", "My vote: -1\n", "-1", "high"),
        case("binding-prefix", "Binding +1\n", "+1", "high", label="binding"),
        case("unicode-minus", "\u22121\n", "-1", "high"),
    ],
)
def test_atr_floor(
    body: str, vote: str | None, confidence: str | None, fraction: str | None, label: str | None
) -> None:
    check(body, vote, confidence, fraction, label)


# --- Votes ATR misses (false negatives, atr.md §5.8) --------------------------------------


@pytest.mark.parametrize(
    ("body", "vote", "confidence", "fraction", "label"),
    [
        case("paren-glued", "Works for me (+1)\n", "+1", "low"),
        case("vote-colon-glued", "I vote:+1\n", "+1", "low"),
        case("bang", "+1!\n", "+1", "high"),
        case("full-stop", "+1.\n", "+1", "high"),
        case("comma", "+1, thanks for the release\n", "+1", "high"),
        case("awesome", "Awesome! +1 \n", "+1", "low"),
        case("here-is-my", "here is my +1\n\nRegards,\n\nHervé\n", "+1", "low"),
        case("so-from-me", "[INFO] BUILD SUCCESS\n" * 40 + "\nSo +1 from me.\n", "+1", "low"),
        case("great-work-comma", "Great work, +1\n", "+1", "low"),
        case("lgtm-plus-one", "LGTM +1\n", "+1", "low"),
        case("i-vote", "I vote +1 for this release\n", "+1", "low"),
        case("my-vote-is", "My vote is -1 until MJAVADOC-479 is fixed.\n", "-1", "low"),
        case("im-plus-one", "I'm +1 on releasing this.\n", "+1", "low"),
        case("thanks-from-me", "Thanks Robert, +1 from me\n", "+1", "low"),
        case("thats-a-plus-one-from-me", "That's a +1 from me\n", "+1", "low"),
        case("count-me-as", "Count me as +1\n", "+1", "low"),
        case("change-my-vote-to", "After the fix I change my vote to +1.\n", "+1", "low"),
        case("changing-vote-to", "Changing my vote to -1, the NOTICE file is missing.\n", "-1", "low"),
        case("i-give-it-a", "I give it a +1\n", "+1", "low"),
        case("im-a", "I'm a +1 on this release\n", "+1", "low"),
        case("non-binding-prefix-mid", "Tested on Linux. Non-binding +1\n", "+1", "low", label="non-binding"),
        case("thumbs-up-code", "Nice work :+1:\n", "+1", "low"),
        case("two-agreeing", "+1 (binding)\n\n+1 for the signatures too\n", "+1", "high", label="binding"),
        case("three-agreeing", "+1\n\nchecked: +1\nbuilt: +1\n", "+1", "high"),
        case(
            "below-german-attribution",
            "Am 2017-12-21 um 23:31 schrieb Hervé BOUTEMY:\n" + QUOTED_VOTE_CALL + "\n\nAwesome Hervé, +1!\n",
            "+1",
            "low",
        ),
        case(
            "below-english-attribution",
            "On Sun, 03 Dec 2017 22:50:42 +0100, Robert Scholte <rfscholte@apache.org> wrote:\n"
            + QUOTED_VOTE_CALL
            + "\n\n+1\n",
            "+1",
            "high",
        ),
        case(
            "inline-below-wrapped-attribution",
            'On 2017-12-03T22:50:42 +0100\n"Robert Scholte" <rfscholte@apache.org> wrote:\n>\n> We solved 27 issues:\n'
            "> https://issues.apache.org/jira/secure/ReleaseNote.jspa\n> \n\n+1 (non-binding)\n\n"
            "Pretty heavily tested on multiple projects.\n\n-- \nMark Raynsford | http://www.io7m.com\n",
            "+1",
            "high",
            label="non-binding",
        ),
        case(
            "interleaved-reply",
            "Bob wrote:\n> Should we release?\nYes.\n> Any objection?\n+1\n",
            "+1",
            "high",
        ),
        case("next-line-label", "+1\n(non-binding)\n", "+1", "high", label="non-binding"),
        case(
            "opener-word-not-attribution",
            "On the other hand, -1 because the NOTICE is wrong.\nBob wrote:\n> I disagree\n",
            "-1",
            "low",
        ),
        case("casting-before-as-wrote", "+1, as Bob wrote:\n> looks good\n", "+1", "high"),
        case("plus-one-binding-word", "+1 binding\n", "+1", "high", label="binding"),
        case("plus-one-nonbinding-words", "+1 non binding\n", "+1", "high", label="non-binding"),
        case(
            "minus-one-non-binding",
            "-1 (non-binding)\n\nThe staged version still fails.\n",
            "-1",
            "high",
            label="non-binding",
        ),
    ],
)
def test_votes_atr_misses(
    body: str, vote: str | None, confidence: str | None, fraction: str | None, label: str | None
) -> None:
    check(body, vote, confidence, fraction, label)


# --- Tokens that are not votes (false positives, atr.md §5.8) -----------------------------


@pytest.mark.parametrize(
    ("body", "vote", "confidence", "fraction", "label"),
    [
        case("plus-hundred", "+100\n", None),
        case("plus-hundred-mid", "Great idea, +100 to that\n", None),
        case("id-plus-one-verb", "I'd +1 Bob's point about the site.\n", None),
        case("would-plus-one", "I would +1 a move to Git.\n", None),
        case("rc-minus-one", "We could build rc -1\n", None),
        case("slot-minus-one", "the first slot -1\n", None),
        case("minus-one-day", "-1 day before the deadline\n", None),
        case("plus-one-more", "+1 more thing: the site is stale.\n", None),
        case("version-suffix", "Built 3.0.0-1 and 2.1-0 fine\n", None),
        case("version-decimal", "+1.2 is out\n", None),
        case("priority-decimal", "[DEBUG] Using transporter WagonTransporter with priority -1.0 for\n", None),
        case("diff-hunk", "    @@ -0,0 +1,56 @@\n", None),
        case("date", "Released on 2017-11-17 and 2017-1-5\n", None),
        case("phone-spaces", "Call me: +1 650 555 1234\n", None),
        case("phone-dashes", "+1-650-555-1234\n", None),
        case("phone-parens", "+1 (650) 555-1234\n", None),
        case("phone-dots", "+1.650.555.1234\n", None),
        case("signature-digits", "Thanks,\n\n-- \nJane Doe\n+1 650 555 1234\n-1\n", None),
        case("code-assignment", "    int i = -1;\n    return -1;\n", None),
        case("why-minus-one", "Why -1 on the Ant tasks?\n", None),
        case("give-a-minus-one", "or give a -1 and tell me what else you expect.\n", None),
        case("zero-issues", "0 issues left in JIRA\n", None),
        case("zero-list", "0, 1 and 2 are the levels\n", None),
        case("test-counts", "Tests run: 5, Failures: 0, Errors: 0, Skipped: 0\n", None),
        case("bare-one", "1\n", None),
        case("percent", "+1% faster\n", None),
        case("address", "+1@example.org\n", None),
        case("minus-one-votes", "No -1 votes so far.\n", None),
    ],
)
def test_not_votes(
    body: str, vote: str | None, confidence: str | None, fraction: str | None, label: str | None
) -> None:
    reading = check(body, vote, confidence, fraction, label)
    assert reading.castings == ()


# --- Talk about votes, tallies and templates ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "vote", "confidence", "fraction", "label"),
    [
        case("translate-to-a", "I assume I can translate this to a +1...\n\nthanks,\nRobert\n", None),
        case("count-this-as", "I will count this as +1.\n", None),
        case("thats-a", "that's a +1\n", None),
        case("a-from-someone", "We have a +1 from Olivier already.\n", None),
        case("your", "Thanks for your +1!\n", None),
        case("his", "His +1 came in late.\n", None),
        case("from-someone-at-start", "+1 from Robert\n+1 from Hervé\n", None),
        case("votes-plural", "Three +1 votes are needed.\n", None),
        case("minus-one-votes-line", "more +1 votes than -1 votes\n", None),
        case(
            "plural-apostrophe",
            "Vote passed with +1's from: Olivier, Herve, Robert, Manfred, Eric and\nAndreas\n",
            None,
        ),
        case("at-least-three", "The vote passes with at least 3 +1 from the PMC.\n", None),
        case("needs-three", "It needs 3 +1 to pass.\n", None),
        case("three-binding", "We now have three binding +1.\n", None),
        case(
            "result-names",
            "+1 : Martijn Verburg, Robert Scholte, Hervé BOUTEMY, Arnaud Héritier,  \nOlivier Lamy\n",
            None,
        ),
        case("result-names-and", "+1 : Olivier, Herve, Robert, Manfred, Eric and Andreas\n", None),
        case("result-count", "+1: 5\n0: 0\n-1: 0\n", None),
        case("result-binding-count", "+1 (binding): 3\n", None),
        case(
            "result-context",
            "The vote has passed with the following result:\n\n+1 (binding): Robert Scholte\n-1: Mark\n",
            None,
        ),
        case("interim-tally", "Votes so far: +1 Robert, +1 Hervé, -1 Mark\n", None),
        case("template-bracketed", VOTE_CALL_TEMPLATE, None),
        case("template-paren-box", "( ) +1\n( ) +0\n( ) -1\n", None),
        case("template-minus-zero", "[ ] +1\n[ ] -0\n[ ] -1\n", None),
        case("template-unbracketed", UNBRACKETED_TEMPLATE, None),
        case("template-unbracketed-with-rm-vote", UNBRACKETED_TEMPLATE + "+1 from me\n", "+1", "high"),
        case("template-plus-minus", "+1 approve\n+0 no opinion\n-1 disapprove (and reason why)\n", None),
        case("quoted-template", QUOTED_VOTE_CALL, None),
        case(
            "outlook-copy-of-template",
            "Thanks.\n\n-----Original Message-----\nFrom: Robert\nSent: Sunday\n\n+1 Release\n0 Abstain\n-1 Do not\n",
            None,
        ),
    ],
)
def test_talk_tallies_templates(
    body: str, vote: str | None, confidence: str | None, fraction: str | None, label: str | None
) -> None:
    check(body, vote, confidence, fraction, label)


# --- Where the voter's own text ends ------------------------------------------------------

OWN_THEN_COPY = "+1\n\n{separator}\n-1 (copied text that must not be read)\n"


@pytest.mark.parametrize(
    "separator",
    [
        pytest.param("-- ", id="signature"),
        pytest.param("--", id="signature-no-space"),
        pytest.param("-- \r", id="signature-cr"),
        pytest.param("-----Original Message-----", id="outlook-original"),
        pytest.param("-----Message d'origine-----", id="outlook-french"),
        pytest.param("-----Ursprüngliche Nachricht-----", id="outlook-german"),
        pytest.param("---------- Forwarded message ---------", id="forwarded"),
        pytest.param("________________________________", id="underscores"),
        pytest.param("____", id="four-underscores"),
        pytest.param("From: Robert Scholte\nSent: Sunday, December 3, 2017 22:50\nTo: dev@maven", id="from-sent"),
        pytest.param("From: Robert Scholte [mailto:rfscholte@apache.org]\nDate: 3 Dec 2017", id="from-date"),
        pytest.param("De : Andreas Sewe\nEnvoyé : mardi 28 novembre 2017 16:25\nÀ : dev", id="de-envoye"),
        pytest.param("Von: Hervé\nGesendet: Donnerstag, 21. Dezember 2017", id="von-gesendet"),
        pytest.param("Gesendet: Donnerstag, 21. Dezember 2017\nVon: Hervé", id="gesendet-von"),
        pytest.param("On Sun, 12 Nov 2017 16:15:07 +0100, Robert Scholte <rfscholte@apache.org> wrote:", id="on-wrote"),
        pytest.param("On Sun, 12 Nov 2017 16:15:07 +0100, Robert Scholte <rfscholte@apache.org>\nwrote:", id="wrapped"),
        pytest.param("On Fri, Dec 1, 2017 at 9:22 AM Andreas Sewe <\nsewe@example.org> wrote:", id="wrapped-address"),
        pytest.param("Am 2017-12-21 um 23:31 schrieb Hervé BOUTEMY:", id="german"),
        pytest.param("Le dimanche 12 novembre 2017, 16:15:07 CET Robert Scholte a écrit :", id="french"),
        pytest.param("El 12 nov 2017, a las 16:15, Robert <r@example.org> escribió:", id="spanish"),
        pytest.param("Il giorno 12 nov 2017, alle ore 16:15, Robert <r@example.org> ha scritto:", id="italian"),
        pytest.param("Op 12 nov. 2017 om 16:15 schreef Robert <r@example.org>:", id="dutch"),
        pytest.param("W dniu 12.11.2017 o 16:15, Robert pisze:", id="polish"),
        pytest.param("在 2017年11月12日 16:15，Robert <r@example.org> 写道：", id="chinese"),
        pytest.param("Em dom., 12 de nov. de 2017 às 16:15, Robert <r@example.org> escreveu:", id="portuguese"),
        pytest.param("Robert Scholte <rfscholte@apache.org> wrote:", id="name-address-wrote"),
        pytest.param("2017-12-21 10:30 GMT+02:00 Hervé BOUTEMY <herve.boutemy@free.fr>:", id="gmail-locale"),
    ],
)
def test_own_text_ends(separator: str) -> None:
    reading = castings.read(OWN_THEN_COPY.format(separator=separator))
    assert reading.vote == "+1", reading
    assert [c.value for c in reading.castings] == ["+1"]


@pytest.mark.parametrize(
    "attribution",
    [
        pytest.param("On Sun, 12 Nov 2017 16:15:07 +0100, Robert Scholte <rfscholte@apache.org> wrote:", id="english"),
        pytest.param("On Sun, 12 Nov 2017 16:15:07 +0100, Robert Scholte <rfscholte@apache.org>\nwrote:", id="wrapped"),
        pytest.param("Am 2017-12-21 um 23:31 schrieb Hervé BOUTEMY:", id="german"),
        pytest.param("Le dimanche 12 novembre 2017, 16:15:07 CET Robert Scholte a écrit :", id="french"),
        pytest.param("El 12 nov 2017, Robert <r@example.org> escribió:", id="spanish"),
        pytest.param("Il giorno 12 nov 2017, Robert <r@example.org> ha scritto:", id="italian"),
        pytest.param("Op 12 nov. 2017 om 16:15 schreef Robert <r@example.org>:", id="dutch"),
        pytest.param("W dniu 12.11.2017 o 16:15, Robert pisze:", id="polish"),
        pytest.param("Robert 写道：", id="chinese"),
        pytest.param("Em 12 de nov. de 2017, Robert <r@example.org> escreveu:", id="portuguese"),
        pytest.param("Tamás Cservenák wrote:", id="name-wrote"),
        pytest.param("Tamás Cservenák wrote on 2017-11-28 02:20:", id="wrote-on"),
    ],
)
def test_bottom_posted_vote_below_quote_counts(attribution: str) -> None:
    body = f"{attribution}\n{QUOTED_VOTE_CALL}\n\n-1\n\nThe checksum does not match.\n"
    reading = castings.read(body)
    assert reading.vote == "-1", reading
    assert "vote below quoted text" in reading.reasons


@pytest.mark.parametrize(
    ("body", "vote"),
    [
        pytest.param("> +1\n", None, id="quoted"),
        pytest.param("  > +1\n", None, id="quoted-indented"),
        pytest.param(">> -1\n", None, id="quoted-twice"),
        pytest.param("| +1\n", None, id="pipe-quoted"),
        pytest.param("+1\n> -1\n", "+1", id="own-vote-over-quoted"),
        pytest.param("> -1\n\n+1\n", "+1", id="own-vote-under-quoted"),
        pytest.param(
            "Thanks!\n\nOn Mon, 1 Jan 2018 at 10:00, Bob <bob@example.org> wrote:\n+1\n", None, id="html-quote"
        ),
        pytest.param("", None, id="empty"),
        pytest.param("\n \n\t\n", None, id="blank"),
    ],
)
def test_quotes(body: str, vote: str | None) -> None:
    assert castings.read(body).vote == vote


# --- Agreement, fractions, self-labels ----------------------------------------------------


def test_agreeing_castings_are_one_vote_with_a_reason() -> None:
    reading = castings.read("+1 (binding)\n\nChecked the signatures.\n+1 for the signatures\n")
    assert reading.vote == "+1"
    assert reading.confidence == "high"
    assert "two agreeing castings" in reading.reasons
    assert reading.quotation == "+1 (binding) // +1 for the signatures"
    assert len(reading.castings) == 2


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("+1\n-1\n", id="two-lines"),
        pytest.param("In summary, +1 to merge demos, -1 to merge ant-tasks\n", id="one-line"),
        pytest.param("+1 for the jar\n\n0 for the site\n", id="plus-and-zero"),
    ],
)
def test_disagreeing_castings_are_unknown(body: str) -> None:
    reading = castings.read(body)
    assert reading.vote == "?"
    assert reading.confidence == "low"
    assert any(reason.startswith("castings disagree") for reason in reading.reasons)


@pytest.mark.parametrize(
    ("body", "vote", "fraction"),
    [
        pytest.param("+0.5\n", None, "+0.5", id="plus-half"),
        pytest.param("-0.9\n", None, "-0.9", id="minus-point-nine"),
        pytest.param("+0,5\n", None, "+0,5", id="comma-fraction"),
        pytest.param("-0.5 (binding) because of the missing NOTICE\n", None, "-0.5", id="fraction-with-label"),
        pytest.param("I'm +0.5 on this one.\n", None, "+0.5", id="mid-line-fraction"),
        pytest.param("+1\n\n+0.5 for the docs\n", "+1", "+0.5", id="fraction-beside-vote"),
    ],
)
def test_fractions_are_recorded_not_counted(body: str, vote: str | None, fraction: str) -> None:
    reading = castings.read(body)
    assert reading.vote == vote
    assert reading.fraction == fraction
    assert any(c.fractional and c.value == fraction for c in reading.castings)


@pytest.mark.parametrize(
    ("body", "label"),
    [
        pytest.param("+1 (binding)\n", "binding", id="paren-binding"),
        pytest.param("+1 binding\n", "binding", id="word-binding"),
        pytest.param("+1 (non-binding)\n", "non-binding", id="paren-non-binding"),
        pytest.param("+1 (nonbinding)\n", "non-binding", id="nonbinding"),
        pytest.param("+1 (not binding)\n", "non-binding", id="not-binding"),
        pytest.param("+1\n", None, id="none"),
        pytest.param("+1\n\nThe binding rules are odd.\n", None, id="label-elsewhere"),
    ],
)
def test_self_label(body: str, label: str | None) -> None:
    reading = castings.read(body)
    assert reading.vote == "+1"
    assert reading.self_label == label
    assert (f"self-labelled {label}" in reading.reasons) == (label is not None)


# --- Possible votes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        pytest.param(
            "Non binding but it works well for me on Latest 3.5.2 and Java 9.0.1\n\nCheers,\nMartijn\n",
            "Non binding but it works well for me on Latest 3.5.2 and Java 9.0.1",
            id="works-well",
        ),
        pytest.param(
            "Tested this in two applications: a Maven plugin and a Spring\n"
            "application. In both cases, I experienced no trouble.\n\nBest wishes,\n\nAndreas\n",
            "Tested this in two applications: a Maven plugin and a Spring application. "
            "In both cases, I experienced no trouble.",
            id="tested-no-trouble",
        ),
        pytest.param("LGTM\n", "LGTM", id="lgtm"),
        pytest.param("Looks good to me.\n", "Looks good to me.", id="looks-good"),
        pytest.param("Ship it!\n", "Ship it!", id="ship-it"),
        pytest.param("I approve.\n", "I approve.", id="approve"),
        pytest.param(
            "Built from source without any problems.\n", "Built from source without any problems.", id="without"
        ),
    ],
)
def test_possible_votes(body: str, excerpt: str) -> None:
    reading = castings.read(body)
    assert reading.vote is None
    assert reading.possible == excerpt
    assert reading.confidence == "low"


def test_possible_vote_carries_its_label() -> None:
    assert castings.read("Non binding but it works well for me\n").self_label == "non-binding"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("It doesn't work well with Java 9.\n", id="doesnt"),
        pytest.param("Looks good but fails on Windows.\n", id="fails"),
        pytest.param("Does it work well with Java 9?\n", id="question"),
        pytest.param("If it works well I'll vote.\n", id="conditional"),
        pytest.param("This does not look good.\n", id="not"),
        pytest.param("If I could apply a workaround, I'd vote to release.\n", id="would-vote"),
        pytest.param("> Looks good to me.\n\nHmm.\n", id="quoted"),
        pytest.param("+1\n\nLooks good to me.\n", id="has-casting"),
        pytest.param("Thanks for testing.\n", id="neutral"),
        pytest.param(VOTE_CALL_TEMPLATE.replace("[ ] +1", "[ ] +1 Approve the release"), id="template-approve"),
        pytest.param(UNBRACKETED_TEMPLATE, id="unbracketed-template"),
        pytest.param("+1 approve\n0 no opinion\n-1 disapprove\n", id="template-approve-words"),
        pytest.param("I assume I can translate this to a +1, looks good to me.\n", id="token-line"),
    ],
)
def test_not_possible_votes(body: str) -> None:
    assert castings.read(body).possible is None


# --- Shape of the result -------------------------------------------------------------------


def test_reading_is_frozen_and_quotes_stripped_lines() -> None:
    reading = castings.read("   +1   \n")
    assert reading.quotation == "+1"
    assert reading.castings == (castings.Casting("+1", "+1", False),)
    assert reading.reasons == ()
    name = "vote"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(reading, name, "-1")


def test_ignored_tokens_are_explained() -> None:
    reading = castings.read("I assume I can translate this to a +1...\n")
    assert reading.vote is None
    assert reading.reasons == ("+1 talked about, not cast",)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("\x00+1\x00", id="nul"),
        pytest.param("+" * 10_000, id="pluses"),
        pytest.param("-\n" * 5_000, id="dashes"),
        pytest.param("On\n" * 3_000, id="openers"),
        pytest.param("From: a\n" * 3_000, id="headers"),
        pytest.param("\ufeff+1\u2028-1", id="odd-separators"),
        pytest.param("+1 " * 100_000, id="one-line-of-tokens"),
        pytest.param("+1 :" + " " * 100_000 + "x", id="spaces-after-colon"),
        pytest.param("-1" + " " * 100_000 + "(", id="spaces-after-token"),
        pytest.param("+1\n" + "> quoted\n" * 100_000, id="long-quote"),
        pytest.param("x" * 1_000_000 + " +1", id="long-line"),
    ],
)
def test_odd_input_never_raises(body: str) -> None:
    castings.read(body)
