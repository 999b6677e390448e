"""The sandbox ATR's rules without HTTP: scenarios, effective ballots with the IPMC carry, receipts."""

from __future__ import annotations

import datetime
import email
import email.policy
import pathlib

import pytest

import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.atr_state as atr_state
from tests.fixtures import atr as fixtures

NOW = fixtures.START.timestamp()
HOUR = 3600.0


def state(**changes: object) -> atr_state.SandboxState:
    return atr_state.SandboxState(atr_scenario.from_mapping(fixtures.scenario_data(**changes), NOW))


def test_the_standard_scenario_loads_with_atrs_defaults() -> None:
    atr = state()
    example = atr.releases["example-1.2.0"]
    assert example.vote_started == NOW - 2 * HOUR
    assert example.vote_duration == 72
    assert example.email_to == "dev@example.apache.org"
    assert example.vote_subject == "[VOTE] Release Example 1.2.0"
    assert atr.releases["mailer-3.0.1"].email_to == "dev@mail.apache.org"
    assert atr.releases["mailer-3.0.1"].vote_duration == 96
    assert atr.releases["fooling-0.3.0"].vote_subject == "[VOTE] Release Fooling (Incubating) 0.3.0"
    assert atr.vote_round(atr.releases["fooling-0.3.0"]) == 1
    assert atr.vote_round(example) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"releases": [{"project_key": "nope", "version": "1"}]}, "atr.releases[0].project_key: no project 'nope'"),
        ({"releases": [{"project_key": "example", "version": "1", "phase": "voting"}]}, "atr.releases[0].phase"),
        ({"releases": [{"project_key": "example", "version": "1", "phase": "release_candidate"}]}, "current_vote_seq"),
        ({"ballots": [{"release_key": "x-1", "voter_asf_uid": "a", "choice": "+1"}]}, "no release 'x-1'"),
        (
            {"ballots": [{"release_key": "example-1.2.0", "voter_asf_uid": "a", "choice": "+2"}]},
            "atr.ballots[0].choice",
        ),
        ({"jwt_minutes": "thirty"}, "atr.jwt_minutes: must be a number"),
        ({"colour": "blue"}, "atr.colour: unknown key"),
        ({"releases": [{"project_key": "example", "version": "1", "vote_started": "yesterday"}]}, "vote_started"),
    ],
)
def test_bad_scenarios_name_the_toml_path(changes: dict[str, object], message: str) -> None:
    with pytest.raises(atr_scenario.ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        atr_scenario.from_mapping(fixtures.scenario_data(**changes), NOW)


def test_a_scenario_file_without_an_atr_table_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text('[archive]\nmbox = "x"\n')
    with pytest.raises(atr_scenario.ScenarioError, match="no \\[atr\\] table"):
        atr_scenario.load(path, NOW)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("now", NOW),
        ("-2h", NOW - 2 * HOUR),
        ("+30m", NOW + 1800),
        ("now-3d", NOW - 3 * 86400),
        ("2026-06-01T13:00:00Z", NOW + HOUR),
        (datetime.datetime(2026, 6, 1, 11, 0), NOW - HOUR),
    ],
)
def test_times_are_absolute_or_offsets_from_now(value: object, seconds: float) -> None:
    assert atr_scenario.parse_time(value, NOW) == seconds


def ballot(release_key: str, uid: str, choice: str, vote_seq: int, vote_round: int | None = None) -> dict[str, object]:
    found: dict[str, object] = {
        "release_key": release_key,
        "voter_asf_uid": uid,
        "choice": choice,
        "vote_seq": vote_seq,
    }
    if vote_round is not None:
        found["vote_round"] = vote_round
    return found


def test_the_latest_ballot_per_voter_counts_and_binding_is_rechecked() -> None:
    atr = state(
        ballots=[
            ballot("example-1.2.0", "alice", "-1", 7),
            ballot("example-1.2.0", "bob", "+1", 7),
            ballot("example-1.2.0", "alice", "+1", 7),
            ballot("example-1.2.0", "dave", "+1", 7),
            ballot("example-1.2.0", "carol", "+1", 6),  # an earlier vote_seq: not this vote
        ]
    )
    release = atr.releases["example-1.2.0"]
    effective = {e.ballot.voter_asf_uid: e for e in atr.effective_ballots(release)}
    assert set(effective) == {"alice", "bob", "dave"}
    assert effective["alice"].ballot.choice == "+1"
    assert effective["dave"].is_binding is False
    summary, passed = atr.trusted_tally(release)
    assert summary["binding_votes_yes"] == 2
    assert summary["non_binding_votes_yes"] == 1
    assert passed is False


def round_two_state() -> atr_state.SandboxState:
    """Fooling in round 2 (vote_seq 12) after round 1 (vote_seq 9, then a retry at 10)."""
    releases = fixtures.scenario_data()["atr"]["releases"]
    releases[2] |= {"current_vote_seq": 12, "podling_thread_id": "h" * 32}
    return state(
        releases=releases,
        ballots=[
            ballot("fooling-0.3.0", "ian", "+1", 9, 1),  # superseded by the round-1 retry
            ballot("fooling-0.3.0", "ian", "-1", 10, 1),
            ballot("fooling-0.3.0", "ivy", "+1", 10, 1),  # IPMC-only voter in round 1
            ballot("fooling-0.3.0", "pat", "+1", 10, 1),  # PPMC, not IPMC: never carried
            ballot("fooling-0.3.0", "iris", "+1", 10, 1),
            ballot("fooling-0.3.0", "iris", "0", 12, 2),  # votes again in round 2: replaces round 1
            ballot("fooling-0.3.0", "ingo", "+1", 12, 2),
        ],
    )


def test_round_two_carries_ipmc_round_one_ballots_from_the_latest_round_one() -> None:
    atr = round_two_state()
    release = atr.releases["fooling-0.3.0"]
    assert atr.vote_round(release) == 2
    effective = {e.ballot.voter_asf_uid: e for e in atr.effective_ballots(release)}
    assert set(effective) == {"ian", "ivy", "iris", "ingo"}
    assert effective["ian"].is_carried and effective["ian"].ballot.choice == "-1"
    assert effective["ivy"].is_carried and effective["ivy"].is_binding
    assert not effective["iris"].is_carried and effective["iris"].ballot.choice == "0"
    assert not effective["ingo"].is_carried
    summary, passed = atr.trusted_tally(release)
    assert (summary["binding_votes_yes"], summary["binding_votes_no"], summary["binding_votes_abstain"]) == (2, 1, 1)
    assert passed is False


def test_without_round_one_ballots_nothing_is_carried() -> None:
    releases = fixtures.scenario_data()["atr"]["releases"]
    releases[2] |= {"current_vote_seq": 12, "podling_thread_id": "h" * 32}
    atr = state(releases=releases, ballots=[ballot("fooling-0.3.0", "ingo", "+1", 12, 2)])
    assert [e.is_carried for e in atr.effective_ballots(atr.releases["fooling-0.3.0"])] == [False]


def make_ballot(choice: str, comment: str, vote_round: int | None, binding: bool) -> atr_state.BallotPaper:
    return atr_state.BallotPaper(
        1, "example-1.2.0", 7, vote_round, "bob", "Bob Builder", choice, comment, binding, "00001", "r@apache.org", NOW
    )


@pytest.mark.parametrize(
    ("choice", "comment", "vote_round", "binding", "body"),
    [
        ("+1", "", None, True, "+1 (binding) (bob) Bob Builder\n"),
        ("-1", "", None, False, "-1 (bob) Bob Builder\n"),
        ("0", "", 1, True, "0 (formal) (bob) Bob Builder\n"),
        ("+1", "", 1, False, "+1 (informal) (bob) Bob Builder\n"),
        ("+1", "", 2, True, "+1 (binding) (bob) Bob Builder\n"),
        (
            "+1",
            "Checked sigs.",
            None,
            True,
            "+1 (binding) (bob) Bob Builder\n\nChecked sigs.\n\n-- \nBob Builder (bob)\n",
        ),
    ],
)
def test_receipt_bodies_follow_atr(choice: str, comment: str, vote_round: int | None, binding: bool, body: str) -> None:
    assert atr_state.receipt_body(make_ballot(choice, comment, vote_round, binding)) == body


def test_a_receipt_replies_to_the_vote_from_the_voter() -> None:
    atr = state()
    release = atr.releases["example-1.2.0"]
    outgoing = atr.cast("bob", "example", "1.2.0", choice="+1", comment="", now=NOW)
    mail = email.message_from_bytes(outgoing.raw, policy=email.policy.default)
    assert outgoing.list_address == "dev@example.apache.org"
    assert mail["From"] == "bob@apache.org"
    assert mail["Subject"] == "Re: [VOTE] Release Example 1.2.0"
    assert mail["In-Reply-To"] == f"<{release.vote_message_id}>"
    assert mail["Message-ID"] == f"<{atr.ballots[-1].receipt_message_id}>"
    assert mail["Message-ID"].endswith("@apache.org>")
    assert mail.get_content().startswith("+1 (binding) (bob) Bob Builder\n")


def test_issued_tokens_expire_and_can_be_invalidated() -> None:
    atr = state()
    jwt = atr.issue_jwt(fixtures.UID, fixtures.PAT, NOW)
    assert atr.verify_jwt(f"Bearer {jwt}", NOW + 29 * 60) == fixtures.UID
    with pytest.raises(atr_state.RefusalError, match="Token has expired"):
        atr.verify_jwt(f"Bearer {jwt}", NOW + 30 * 60)
    atr.invalidate_tokens()
    with pytest.raises(atr_state.RefusalError, match="Token signature verification failed"):
        atr.verify_jwt(f"bearer {jwt}", NOW)
    with pytest.raises(atr_state.RefusalError, match="Invalid PAT"):
        atr.issue_jwt(fixtures.UID, "not-the-pat", NOW)
