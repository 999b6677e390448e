"""Discovery's pure core: ATR facts → tracked votes, the stated vote duration, and changes."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

import watcher.atr.models as models
import watcher.core.roster as roster
import watcher.core.tracking as tracking

STARTED = datetime.datetime(2026, 6, 1, 10, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("body", "hours"),
    [
        ("The vote will be open for at least 72 hours.", 72),
        ("The vote is open for 72 hours.", 72),
        ("This vote will be open for 72 hours (until Thursday).", 72),
        ("Voting will remain open for at least 96 hours", 96),
        ("The vote will be open for at least 3 days.", 72),
        ("Please vote. It runs for at least 5 days, given the holidays.", 120),
        ("The vote will be open for at least\n72 hours and passes with 3 binding +1.", 72),
        ("The vote will stay open for a minimum of 120 hours.", 120),
        ("The vote will be open for the next 72h.", 72),
        ("The vote will be open for seventy-two hours.", 72),
        ("The vote is open for at least 72-hour period", 72),
        ("We need at least 3 days for the vote.", 72),
        ("VOTE WILL BE OPEN FOR AT LEAST 144 HOURS", 144),
    ],
)
def test_stated_durations_in_several_wordings(body: str, hours: int) -> None:
    assert tracking.stated_duration_hours(body) == hours


@pytest.mark.parametrize(
    "body",
    [
        "Please vote on the release.\n\nThe vote passes with at least 3 +1 votes.",
        "[ ] +1 Release this package\n[ ] -1 Do not release",
        "> The vote will be open for at least 72 hours.\n+1",
        "Open for 0 hours",
        "The vote will be open for 9999 hours",
        "",
    ],
)
def test_no_duration_is_read_where_none_is_stated(body: str) -> None:
    assert tracking.stated_duration_hours(body) is None


def test_vote_end_prefers_the_body_then_the_policy() -> None:
    assert tracking.vote_end(STARTED, 72, "The vote is open for 96 hours.") == (
        STARTED + datetime.timedelta(hours=96),
        "body",
    )
    assert tracking.vote_end(STARTED, 72, "Please vote.") == (STARTED + datetime.timedelta(hours=72), "policy")
    assert tracking.vote_end(STARTED, 120, None) == (STARTED + datetime.timedelta(hours=120), "policy")


def release(**fields: object) -> models.Release:
    data: dict[str, object] = {
        "key": "example-1.0.0",
        "project_key": "example",
        "version": "1.0.0",
        "phase": "release_candidate",
        "vote_mode": "trusted",
        "current_vote_seq": 3,
        "vote_started": STARTED,
        "latest_revision_number": "00004",
    }
    return models.Release.model_validate(data | fields)


PROJECT = models.Project(key="example", name="Apache Example", committee_key="example")
PMC = roster.Committee("example", frozenset({"alice"}), name="Example")
PODLING = roster.Committee("fooling", frozenset({"pat"}), is_podling=True, name="Fooling")


def policy(**fields: object) -> models.Policy:
    data: dict[str, object] = {"project_key": "example", "policy_vote_mode": "trusted", "policy_min_hours": 72}
    return models.Policy.model_validate(data | fields)


def test_a_trusted_vote_of_a_top_level_project() -> None:
    recipients = {"to": "dev@example.apache.org", "cc": [], "bcc": []}
    vote = tracking.track(release(), PROJECT, policy(policy_vote_recipients=recipients), PMC)
    assert vote is not None
    assert (vote.release_key, vote.project, vote.version, vote.vote_seq) == ("example-1.0.0", "example", "1.0.0", 3)
    assert vote.mode == "trusted"
    assert vote.vote_round is None
    assert vote.binding_committee_key == "example"
    assert vote.list_address == "dev@example.apache.org"
    assert vote.subject == "[VOTE] Release Example 1.0.0"
    assert vote.vote_end == STARTED + datetime.timedelta(hours=72)
    assert vote.end_source == "policy"
    assert vote.root_message_id == ""


def test_the_frozen_mode_wins_over_the_policy_and_manual_votes_are_not_tracked() -> None:
    email = tracking.track(release(vote_mode="email"), PROJECT, policy(), PMC)
    assert email is not None
    assert email.mode == "email"
    assert tracking.track(release(vote_mode=None), PROJECT, policy(policy_vote_mode="manual"), PMC) is None
    assert tracking.track(release(vote_mode="manual"), PROJECT, policy(), PMC) is None


def test_only_running_votes_with_a_serial_and_a_start_are_tracked() -> None:
    assert tracking.track(release(phase="release_preview"), PROJECT, policy(), PMC) is None
    assert tracking.track(release(current_vote_seq=None), PROJECT, policy(), PMC) is None
    assert tracking.track(release(vote_started=None), PROJECT, policy(), PMC) is None


def test_podling_rounds_use_the_ppmc_then_the_ipmc_and_general() -> None:
    project = models.Project(key="fooling", name="Apache Fooling", committee_key="fooling")
    round_one = tracking.track(
        release(key="fooling-0.3", project_key="fooling", version="0.3"), project, policy(), PODLING
    )
    assert round_one is not None
    assert round_one.vote_round == 1
    assert round_one.binding_committee_key == "fooling"
    assert round_one.list_address == "dev@fooling.apache.org"
    assert round_one.subject == "[VOTE] Release Fooling (Incubating) 0.3"
    round_two = tracking.track(
        release(
            key="fooling-0.3", project_key="fooling", version="0.3", podling_thread_id="x" * 32, current_vote_seq=4
        ),
        project,
        policy(),
        PODLING,
    )
    assert round_two is not None
    assert round_two.vote_round == 2
    assert round_two.binding_committee_key == "incubator"
    assert round_two.list_address == "general@incubator.apache.org"
    assert tracking.change_kind(round_one, round_two) == "next_round"


def test_list_address_is_the_policy_default_else_dev() -> None:
    private = policy(policy_vote_recipients={"to": "private@example.apache.org", "cc": [], "bcc": []})
    assert tracking.list_address(private, "example", None, tracking.SECOND_ROUND_LIST) == "private@example.apache.org"
    unset = policy(policy_vote_recipients={"to": None, "cc": [], "bcc": []})
    assert tracking.list_address(unset, "example", None, tracking.SECOND_ROUND_LIST) == "dev@example.apache.org"
    assert tracking.list_address(policy(), "example", None, tracking.SECOND_ROUND_LIST) == "dev@example.apache.org"


def test_subject_templates_render_atrs_placeholders_and_keep_unknown_ones() -> None:
    template = (
        "[VOTE] {{COMMITTEE}}: release {{PROJECT_NAME}} {{VERSION}} rev {{REVISION}} ends {{VOTE_ENDS_UTC}} {{X}}"
    )
    vote = tracking.track(release(), PROJECT, policy(policy_start_vote_subject=template), PMC)
    assert vote is not None
    assert vote.subject == "[VOTE] Example: release Example 1.0.0 rev 00004 ends 4 Jun 10:00 UTC {{X}}"


def test_project_names_as_atr_shortens_them() -> None:
    def named(name: str | None) -> models.Project:
        return models.Project(key="kafka", name=name)

    assert tracking.project_name(named("Apache Kafka"), False) == "Kafka"
    assert tracking.project_name(named("Apache Software Foundation Infrastructure"), False) == "Infrastructure"
    assert tracking.project_name(named(None), False) == "kafka"
    assert tracking.project_name(named("Apache Fooling"), True) == "Fooling (Incubating)"


def test_the_thread_sets_the_end_from_its_body() -> None:
    vote = tracking.track(release(), PROJECT, policy(), PMC)
    assert vote is not None
    thread = tracking.FoundThread("abc@apache.org", "[VOTE] Example 1.0.0 RC1", "Open for at least 96 hours.", STARTED)
    found = tracking.with_thread(vote, thread)
    assert (found.root_message_id, found.subject) == ("abc@apache.org", "[VOTE] Example 1.0.0 RC1")
    assert found.vote_end == STARTED + datetime.timedelta(hours=96)
    assert found.end_source == "body"
    since = tracking.thread_since(vote)
    assert since is not None and since < STARTED
    assert tracking.thread_since(dataclasses.replace(vote, vote_started=None)) is None


def test_a_new_vote_seq_is_a_restart() -> None:
    vote = tracking.track(release(), PROJECT, policy(), PMC)
    assert vote is not None
    assert tracking.change_kind(None, vote) == "started"
    assert tracking.change_kind(vote, dataclasses.replace(vote, vote_seq=4)) == "restarted"
