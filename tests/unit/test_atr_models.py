"""ATR answer models: tolerant of fields they do not know, strict about the ones they need."""

from __future__ import annotations

import datetime

import pydantic
import pytest

import watcher.atr.models as models


def test_a_release_with_unknown_fields_parses_and_times_are_utc() -> None:
    release = models.Release.model_validate(
        {
            "key": "example-0.3+cli",
            "project_key": "example",
            "version": "0.3+cli",
            "phase": "release_candidate",
            "vote_mode": "trusted",
            "current_vote_seq": 4,
            "vote_started": "2026-06-01T10:00:00",
            "created": "2026-05-30T08:00:00Z",
            "some_future_field": {"nested": True},
            "sboms": [],
        }
    )
    assert release.vote_started == datetime.datetime(2026, 6, 1, 10, tzinfo=datetime.UTC)
    assert release.created is not None
    assert release.created.tzinfo == datetime.UTC
    assert release.podling_thread_id is None


def test_a_release_without_its_key_fields_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        models.Release.model_validate({"key": "x-1", "phase": "release_candidate"})


def test_policy_vote_recipients_to_is_one_address_or_null() -> None:
    # reference/atr.md §10.5.5: `to` is a string or null, never a list.
    base = {"project_key": "p", "policy_vote_mode": "trusted", "policy_min_hours": 72}
    one = models.Policy.model_validate(
        base | {"policy_vote_recipients": {"to": "dev@p.apache.org", "cc": ["x@p.apache.org"], "bcc": []}}
    )
    assert one.policy_vote_recipients is not None
    assert one.policy_vote_recipients.to == "dev@p.apache.org"
    unset = models.Policy.model_validate(base | {"policy_vote_recipients": {"to": None, "cc": [], "bcc": []}})
    assert unset.policy_vote_recipients is not None
    assert unset.policy_vote_recipients.to is None


def test_tabulate_results_give_receipt_ids_without_brackets() -> None:
    results = models.VoteTabulateResults.model_validate(
        {
            "vote_mode": "trusted",
            "vote_seq": 3,
            "trusted_ballots": [
                {"voter_asf_uid": "a", "choice": "+1", "is_binding": True, "receipt_message_id": "<x1@apache.org>"},
                {"voter_asf_uid": "b", "choice": "-1", "is_binding": False, "receipt_message_id": "x2@apache.org"},
            ],
            "trusted_summary": {"binding_votes_yes": 1, "non_binding_votes_no": 1},
            "trusted_passed": False,
            "details": None,
        }
    )
    assert results.receipt_message_ids() == {"x1@apache.org", "x2@apache.org"}
    assert results.trusted_summary is not None
    assert results.trusted_summary.binding_votes_yes == 1


def test_email_mode_tabulation_details_parse() -> None:
    results = models.VoteTabulateResults.model_validate(
        {
            "vote_mode": "email",
            "vote_seq": 2,
            "details": {
                "start_unixtime": 1780000000,
                "votes": {
                    "alice": {"asf_uid_or_email": "alice", "status": "Binding", "vote": "Yes", "quotation": "+1"},
                },
                "summary": {"binding_votes": 1, "binding_votes_yes": 1},
                "passed": False,
                "outcome": "The vote would fail if closed now.",
            },
        }
    )
    assert results.details is not None
    assert results.details.votes["alice"].status == "Binding"
    assert results.trusted_ballots is None


def test_the_jwt_never_shows_in_a_repr() -> None:
    created = models.JwtCreateResults.model_validate(
        {"asfuid": "u", "jwt": "eyJ.secret.token", "endpoint": "/jwt/create"}
    )
    assert "secret" not in repr(created)
    assert "secret" not in str(created)
    assert created.jwt.get_secret_value() == "eyJ.secret.token"
