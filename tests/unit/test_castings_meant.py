"""The vote as meant (issue 13, item 1): retractions, changes of vote, "±0", conditional votes,
votes on a point rather than the release, and lines listing other people's votes. Table-driven."""

from __future__ import annotations

import pytest

import watcher.core.castings as castings


def case(case_id: str, body: str, vote: str | None, confidence: str, **extra: object) -> object:
    return pytest.param(body, vote, confidence, extra, id=case_id)


@pytest.mark.parametrize(
    ("body", "vote", "confidence", "extra"),
    [
        # Retractions and withdrawals: no vote, or the new one when it is given.
        case(
            "retract-with-reason",
            "Sorry all, I retract my +1: the wheel bundles a font we cannot ship\n",
            None,
            "high",
            withdrawn=True,
        ),
        case("withdraw-my-vote", "I withdraw my vote until the LICENSE is fixed.\n", None, "high", withdrawn=True),
        case("retract-bare-token", "Retracting -1, the issue was on my side.\n", None, "high", withdrawn=True),
        case("withdraw-then-new-vote", "I withdraw my -1, the fix is in. +1\n", "+1", "low", withdrawn=True),
        case("disregard-my-plus-one", "Please disregard my +1, wrong thread.\n", None, "high", withdrawn=True),
        # Changes of vote: the new value counts.
        case("changing-x-to-y", "changing my -1 to a ±0\n", "0", "low"),
        case("change-my-vote-to", "I change my vote to +1\n", "+1", "low"),
        case("change-from-to", "I'd like to change my vote from -1 to +1.\n", "+1", "low"),
        case("switch-to", "Switch to +1 now that the NOTICE is fixed.\n", "+1", "low"),
        case("make-that-a", "Make that a -1, the signature does not verify.\n", "-1", "low"),
        # Zero, however written.
        case("plus-minus-zero", "±0\n", "0", "high"),
        case("plus-slash-minus-zero", "+/-0 (no time to test)\n", "0", "high"),
        case("im-zero-on-this", "I'm 0 on this\n", "0", "low"),
        case("zero-from-me", "0 from me\n", "0", "high"),
        # Conditional votes: recorded, low confidence, with the condition.
        case("if", "+1 if the CI run passes\n", "+1", "low", condition="if the CI run passes"),
        case(
            "as-long-as",
            "+1 as long as we fix the NOTICE year\n",
            "+1",
            "low",
            condition="as long as we fix the NOTICE year",
        ),
        case(
            "provided",
            "+1 (binding), provided the LICENSE is fixed\n",
            "+1",
            "low",
            condition="provided the LICENSE is fixed",
        ),
        case(
            "assuming",
            "+1 assuming the checksums are fixed\n",
            "+1",
            "low",
            condition="assuming the checksums are fixed",
        ),
        case("once", "+1 once the staging repo is closed\n", "+1", "low", condition="once the staging repo is closed"),
        case("once-again-is-no-condition", "+1, once again great work\n", "+1", "high"),
        # A +1 on someone's proposal or point is not a vote on the release.
        case("someones-suggestion", "+1 to Chris's suggestion\n", None, "high"),
        case("the-proposal", "+1 on the proposal to drop Java 8\n", None, "high"),
        case("what-was-said", "+1 to what Hervé said\n", None, "high"),
        case("to-release-still-counts", "+1 to release\n", "+1", "high"),
        case("for-this-release-still-counts", "+1 for this release\n", "+1", "high"),
        # Lines listing other people's votes are not the sender's vote.
        case("summary-line-one-name", "+1 (non-binding): Vaquar Khan\n", None, "high"),
        case("summary-block", "Votes so far:\n+1 (binding): Jane Doe, John Roe\n-1: Bob Stone\n", None, "high"),
        case("own-vote-with-label-and-comment", "+1 (binding): LGTM\n", "+1", "high"),
        case("own-vote-with-label-and-words", "+1 (binding): checked sigs and build\n", "+1", "high"),
    ],
)
def test_vote_as_meant(body: str, vote: str | None, confidence: str, extra: dict[str, object]) -> None:
    reading = castings.read(body)
    assert reading.vote == vote, reading
    assert reading.confidence == confidence, reading
    assert reading.withdrawn == extra.get("withdrawn", False), reading
    assert reading.condition == extra.get("condition"), reading
    if reading.condition is not None:
        assert f"conditional vote: {reading.condition}" in reading.reasons


def test_a_quoted_retraction_is_not_the_senders() -> None:
    reading = castings.read("> I retract my +1\n\n+1\n")
    assert (reading.vote, reading.withdrawn) == ("+1", False)


def test_a_change_of_vote_keeps_the_line_as_written() -> None:
    reading = castings.read("changing my -1 to a ±0\n")
    assert reading.quotation == "changing my -1 to a ±0"
    assert "vote changed to 0" in reading.reasons
