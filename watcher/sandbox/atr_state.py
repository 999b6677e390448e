"""The sandbox ATR's state and rules, free of HTTP: tokens, limits, ballots, tabulation, resolution.

It follows reference/atr.md: PAT → JWT (HS256, 30 minutes), sliding-window rate limits,
append-only ballots where the latest per voter wins, effective ballots with the IPMC carry in a
podling's round 2 (§6.4), `vote/tabulate` (§10.3), and the resolve rules (§8.5). Every method
takes `now` (Unix seconds) explicitly; messages ATR would post to a list come back as values.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import email.message
import email.policy
import email.utils
import hashlib
import hmac
import json
import math
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import watcher.sandbox.atr_scenario as atr_scenario

CANDIDATE: Final = "release_candidate"
DRAFT: Final = "release_candidate_draft"
PREVIEW: Final = "release_preview"
TRUSTED: Final = "trusted"
MANUAL: Final = "manual"
IPMC_KEY: Final = "incubator"
DEFAULT_MIN_HOURS: Final = 72
DEFAULT_SUBJECT: Final = "[VOTE] Release {{PROJECT_NAME}} {{VERSION}}"
APP_HOST: Final = "atr.sandbox.invalid"
# §10.4: `aud` is `https://{APP_HOST}/`.
JWT_AUDIENCE: Final = f"https://{APP_HOST}/"
JWT_ISSUER: Final = f"https://{APP_HOST}/"
# §8.1: `vote_end` = when the VOTE_INITIATE task runs + the duration, so a little after `vote_started`.
INITIATE_DELAY: Final = 1.0
THREAD_URL: Final = "https://lists.apache.org/thread/"
HOUR: Final = 3600.0
# werkzeug's NotFound() text: what release/get, project/get and policy/get answer (§10.2).
NOT_FOUND_TEXT: Final = (
    "The requested URL was not found on the server. If you entered the URL manually please check your spelling and "
    "try again."
)
RESOLUTIONS: Final = frozenset({"passed", "failed", "cancelled"})
_NAMESPACE: Final = uuid.UUID("6b1c1f55-4d7e-4d43-9a3e-2f0a4be6c1d1")
_PLACEHOLDER: Final = re.compile(r"\{\{([A-Z_]+)\}\}")
_BASE36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


RateHeaders = dict[str, str]


class RefusalError(Exception):
    """An API error: HTTP status and ATR's `error` text (and, for 429, `retry_after` and the limit headers)."""

    def __init__(
        self,
        status: int,
        error: str,
        retry_after: int | None = None,
        headers: RateHeaders | None = None,
        details: list[str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.retry_after = retry_after
        self.headers = headers or {}
        self.details = details or []


@dataclasses.dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ATR sends to a list (ballot receipt, [VOTE], [RESULT])."""

    raw: bytes
    list_address: str


@dataclasses.dataclass(slots=True)
class ReleaseRow:
    """A release and what ATR's VOTE_INITIATE task knows about its running vote."""

    project_key: str
    version: str
    phase: str
    vote_mode: str | None
    current_vote_seq: int | None
    vote_started: float | None
    vote_resolved: float | None
    podling_thread_id: str | None
    latest_revision_number: str | None
    created: float
    vote_duration: int
    vote_subject: str
    vote_message_id: str
    email_to: str
    initiator: str
    expedited: bool = False
    vote_thread_url: str | None = None

    @property
    def key(self) -> str:
        """`{project_key}-{version}`."""
        return f"{self.project_key}-{self.version}"

    def vote_end(self) -> float | None:
        """When the running vote may be resolved: when the start task ran, plus the duration (§8.1)."""
        if self.vote_started is None:
            return None
        return self.vote_started + INITIATE_DELAY + self.vote_duration * HOUR


@dataclasses.dataclass(frozen=True, slots=True)
class BallotPaper:
    """One row of ATR's BallotPaper table."""

    id: int
    release_key: str
    vote_seq: int
    vote_round: int | None
    voter_asf_uid: str
    voter_fullname: str
    choice: str
    comment: str
    is_binding_at_cast: bool
    revision_number_at_cast: str
    receipt_message_id: str
    created: float


@dataclasses.dataclass(frozen=True, slots=True)
class Effective:
    """A ballot that counts now: binding re-checked, carried from round 1 or not."""

    ballot: BallotPaper
    is_binding: bool
    is_carried: bool


class SandboxState:
    """What the sandbox ATR knows, and its rules."""

    def __init__(self, scenario: atr_scenario.Scenario) -> None:
        self.settings = scenario.settings
        self.committees = dict(scenario.committees)
        self.people = dict(scenario.people)
        self.projects = dict(scenario.projects)
        self.pats = dict(scenario.settings.pats)
        self._jwt_key = secrets.token_bytes(32)
        # Kept so that tests can check no token leaks into logs or errors.
        self.issued_jwts: list[str] = []
        self._tat: dict[str, float] = {}
        self.releases: dict[str, ReleaseRow] = {}
        self.ballots: list[BallotPaper] = []
        for release_spec in scenario.releases:
            self.releases[release_spec.key] = self._release(release_spec)
        for ballot_spec in scenario.ballots:
            self._scenario_ballot(ballot_spec)

    # Scenario → state.

    def _release(self, spec: atr_scenario.ReleaseSpec) -> ReleaseRow:
        now = self.settings.now
        policy = self.projects[spec.project_key].policy
        duration = spec.vote_duration or (policy.min_hours if policy and policy.min_hours else DEFAULT_MIN_HOURS)
        release = ReleaseRow(
            project_key=spec.project_key,
            version=spec.version,
            phase=spec.phase,
            vote_mode=spec.vote_mode,
            current_vote_seq=spec.current_vote_seq,
            vote_started=spec.vote_started,
            vote_resolved=spec.vote_resolved,
            podling_thread_id=spec.podling_thread_id,
            latest_revision_number=spec.latest_revision_number,
            created=spec.created if spec.created is not None else (spec.vote_started or now),
            vote_duration=duration,
            vote_subject="",
            vote_message_id=spec.vote_message_id or "",
            email_to=spec.email_to or "",
            initiator=spec.initiator or self._default_initiator(spec.project_key),
            expedited=spec.expedited,
            vote_thread_url=spec.vote_thread_url,
        )
        release.vote_subject = spec.vote_subject or self.render_subject(release)
        release.email_to = release.email_to or self._vote_list(release)
        release.vote_message_id = (release.vote_message_id or self._message_id(release)).strip("<>")
        return release

    def _scenario_ballot(self, spec: atr_scenario.BallotSpec) -> None:
        release = self.releases[spec.release_key]
        vote_seq = spec.vote_seq if spec.vote_seq is not None else release.current_vote_seq
        if vote_seq is None:
            raise atr_scenario.ScenarioError(f"ballot for {spec.release_key}: the release has no vote_seq")
        vote_round = spec.vote_round if spec.vote_round is not None else self.vote_round(release)
        self.ballots.append(
            BallotPaper(
                id=len(self.ballots) + 1,
                release_key=release.key,
                vote_seq=vote_seq,
                vote_round=vote_round,
                voter_asf_uid=spec.voter_asf_uid,
                voter_fullname=self.fullname(spec.voter_asf_uid),
                choice=spec.choice,
                comment=spec.comment,
                is_binding_at_cast=self.is_binding(spec.voter_asf_uid, release, vote_round),
                revision_number_at_cast=spec.revision_number_at_cast or release.latest_revision_number or "",
                receipt_message_id=(spec.receipt_message_id or f"{uuid.uuid4()}@apache.org").strip("<>"),
                created=spec.cast_at if spec.cast_at is not None else self.settings.now,
            )
        )

    def _default_initiator(self, project_key: str) -> str:
        committee = self.committee_of(project_key)
        if committee is None:
            return "release-manager"
        return next(iter(committee.release_managers or committee.committee_members), "release-manager")

    # Tokens.

    def issue_jwt(self, asfuid: str, pat: str, now: float) -> str:
        """Exchange a PAT for a JWT; 401 when the PAT is not this uid's."""
        expected = self.pats.get(asfuid)
        if not expected or not hmac.compare_digest(expected.encode(), pat.encode()):
            raise RefusalError(401, "Invalid PAT or user")
        claims = {
            "sub": asfuid,
            "iss": JWT_ISSUER,
            "aud": JWT_AUDIENCE,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.settings.jwt_minutes * 60),
            "jti": secrets.token_hex(8),
            "atr_th": hashlib.sha3_256(pat.encode()).hexdigest(),
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        jwt = f"{header}.{payload}.{signature}"
        self.issued_jwts.append(jwt)
        return jwt

    def verify_jwt(self, authorization: str, now: float) -> str:
        """The uid behind an `Authorization: Bearer` header; 401 otherwise."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RefusalError(
                401, "Authentication required. Please provide a valid Bearer token in the Authorization header"
            )
        parts = token.strip().split(".")
        # The texts are jwtoken.py's (§10.2).
        if len(parts) != 3:
            raise RefusalError(401, "Invalid Bearer JWT format")
        expected = _b64(hmac.new(self._jwt_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            raise RefusalError(401, "Token signature verification failed")
        claims = json.loads(_unb64(parts[1]))
        leeway = self.settings.jwt_leeway_seconds
        if claims.get("aud") != JWT_AUDIENCE or now < claims["nbf"] - leeway:
            raise RefusalError(401, "Token signature verification failed")
        if now >= claims["exp"] + leeway:
            raise RefusalError(401, "Token has expired")
        pat = self.pats.get(claims["sub"])
        if pat is None or hashlib.sha3_256(pat.encode()).hexdigest() != claims.get("atr_th"):
            raise RefusalError(401, "Personal Access Token invalid")
        return str(claims["sub"])

    def invalidate_tokens(self) -> None:
        """Make every JWT issued so far invalid (as if ATR's signing key changed)."""
        self._jwt_key = secrets.token_bytes(32)

    # Limits (reference/atr.md §10.3).

    def limit(self, route: str, now: float, own_per_hour: int | None = None) -> RateHeaders:
        """Count a request to `route` from the one client key (loopback: the IP) against its buckets.

        §10.3: the route's own limit (if any), then 100/min and 1000/h, each counted per route and
        client, by GCRA (a burst up to the count, then one request per period/count). Returns the
        `RateLimit-*` headers of the shortest-period bucket; a 429 carries them and `retry_after`.
        """
        settings = self.settings
        limits: list[tuple[int, float]] = [(own_per_hour, HOUR)] if own_per_hour is not None else []
        limits += [(settings.api_per_minute, 60.0), (settings.api_per_hour, HOUR)]
        shortest = min(limits, key=lambda item: item[1])
        for count, period in limits:
            retry_after = self._gcra(f"{route}-{count}-{period}", count, period, now)
            if retry_after is not None:
                raise RefusalError(429, "rate_limit_exceeded", retry_after, self._headers(route, shortest, now))
        return self._headers(route, shortest, now)

    def _gcra(self, key: str, count: int, period: float, now: float) -> int | None:
        # quart-rate-limiter's GCRA: a theoretical arrival time per bucket; None when admitted.
        inverse = period / count
        tat = max(self._tat.get(key, now), now)
        separation = tat - now
        max_interval = period - inverse
        if separation > max_interval:
            return max(1, int(separation - max_interval))
        self._tat[key] = tat + inverse
        return None

    def _headers(self, route: str, limit: tuple[int, float], now: float) -> RateHeaders:
        count, period = limit
        inverse = period / count
        tat = max(self._tat.get(f"{route}-{count}-{period}", now), now)
        remaining = max(0, int((period - (tat - now)) / inverse))
        reset = max(0, math.ceil(tat - now))
        return {"RateLimit-Limit": str(count), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset)}

    # Facts.

    def committee_of(self, project_key: str) -> atr_scenario.CommitteeSpec | None:
        """The committee a project belongs to."""
        project = self.projects.get(project_key)
        if project is None or project.committee_key is None:
            return None
        return self.committees.get(project.committee_key)

    def fullname(self, uid: str) -> str:
        """The LDAP cn stand-in."""
        return self.people.get(uid) or uid

    def vote_round(self, release: ReleaseRow) -> int | None:
        """None for non-podlings; 1 until round 1 passed (podling_thread_id set), then 2."""
        committee = self.committee_of(release.project_key)
        if committee is None or not committee.is_podling:
            return None
        return 1 if release.podling_thread_id is None else 2

    def is_binding(self, uid: str, release: ReleaseRow, vote_round: int | None) -> bool:
        """PMC (or PPMC in round 1) membership; IPMC membership in round 2."""
        if vote_round == 2:
            ipmc = self.committees.get(IPMC_KEY)
            return ipmc is not None and uid in ipmc.committee_members
        committee = self.committee_of(release.project_key)
        return committee is not None and uid in committee.committee_members

    def effective_vote_mode(self, release: ReleaseRow) -> str:
        """The frozen mode once a vote started, else the policy's."""
        if release.phase != DRAFT and release.vote_mode is not None:
            return release.vote_mode
        return self._policy(release.project_key).vote_mode

    def _policy(self, project_key: str) -> atr_scenario.PolicySpec:
        return self.projects[project_key].policy or atr_scenario.PolicySpec()

    def release(self, project_key: str, version: str, missing: str = NOT_FOUND_TEXT) -> ReleaseRow:
        """The release, or 404 with `missing` (each handler has its own text, §10.2)."""
        found = self.releases.get(f"{project_key}-{version}")
        if found is None or found.project_key != project_key:
            raise RefusalError(404, missing)
        return found

    def embargoed_for(self, uid: str, release: ReleaseRow) -> bool:
        """An expedited release before its release phase, for a caller outside its committee (§8.6)."""
        if not release.expedited or release.phase == "release":
            return False
        committee = self.committee_of(release.project_key)
        return committee is None or uid not in committee.committee_members

    # Reads rendered as ATR's JSON.

    def releases_page(self, phase: str | None, offset: int, limit: int) -> dict[str, Any]:
        """`releases/list`: newest first, paged."""
        if offset < 0 or limit < 1:
            raise RefusalError(400, "Input validation failed")
        # §8.6: embargoed (expedited, not yet released) releases are left out for every caller.
        listed = [r for r in self.releases.values() if not (r.expedited and r.phase != "release")]
        chosen = [r for r in listed if phase is None or r.phase == phase]
        chosen.sort(key=lambda r: (r.created, r.key), reverse=True)
        page = chosen[offset : offset + limit]
        return {"endpoint": "/releases/list", "data": [self.release_json(r) for r in page], "count": len(chosen)}

    def release_json(self, release: ReleaseRow) -> dict[str, Any]:
        """A Release as ATR serialises it: every field of §10.5.3, always present, null included."""
        return {
            "key": release.key,
            "phase": release.phase,
            "created": iso(release.created),
            "released": None,
            "archived": None,
            "is_archived": False,
            "archive_source": None,
            "activity_at": iso(max(filter(None, (release.created, release.vote_started, release.vote_resolved)))),
            "inactivity_notice_key": None,
            "archive_prior_release": False,
            "expedited": release.expedited,
            "check_cache_key": None,
            "download_path_suffix": None,
            "commit_hash": None,
            "project_key": release.project_key,
            "cycle_key": f"{release.project_key}-default",
            "package_managers": [],
            "version": release.version,
            "sboms": [],
            "release_policy_id": None,
            "vote_mode": release.vote_mode,
            # §3.1: set at vote start, cleared when the release returns to draft.
            "voted_revision_number": release.latest_revision_number if release.phase != DRAFT else None,
            "current_vote_seq": release.current_vote_seq,
            "vote_started": iso(release.vote_started),
            "vote_resolved": iso(release.vote_resolved),
            "podling_thread_id": release.podling_thread_id,
            "vote_thread_url": release.vote_thread_url,
            "latest_revision_number": release.latest_revision_number,
        }

    def project_json(self, project_key: str) -> dict[str, Any]:
        """`project/get`: every field of §10.5.4."""
        project = self.projects.get(project_key)
        if project is None:
            raise RefusalError(404, NOT_FOUND_TEXT)
        created = iso(self.settings.now - 365 * 24 * HOUR)
        data: dict[str, Any] = {
            "key": project.key,
            "name": project.name,
            "status": project.status,
            "super_project_key": None,
            "description": None,
            "categories": None,
            "programming_languages": None,
            "short_description": None,
            "homepage": None,
            "lifecycle_page": None,
            "download_page": None,
            "bug_database": None,
            "mailing_lists": None,
            "repositories": [],
            "standards": [],
            "security_contact": None,
            "threat_model_link": None,
            "threat_model_src_link": None,
            "version_method": "simple",
            "version_pattern": None,
            "cycle_match": None,
            "calver_format": None,
            "branch_template": None,
            "committee_key": project.committee_key,
            "release_policy_id": None,
            "created": created,
            "created_by": None,
            "updated": None,
            "updated_by": None,
            "update_type": "bootstrap",
        }
        return {"endpoint": "/project/get", "project": data}

    def policy_json(self, project_key: str) -> dict[str, Any]:
        """`policy/get` (§10.5.5; `policy_mailto_addresses` is gone since migration 0089)."""
        if project_key not in self.projects:
            raise RefusalError(404, NOT_FOUND_TEXT)
        policy = self._policy(project_key)
        return {
            "endpoint": "/policy/get",
            "project_key": project_key,
            # `to=vote_to or None`: one address, null when no default is stored (§10.5.5).
            "policy_vote_recipients": {
                "to": policy.vote_recipients_to or None,
                "cc": list(policy.vote_recipients_cc),
                "bcc": [],
            },
            "policy_announce_recipients": {"to": None, "cc": [], "bcc": []},
            "policy_vote_mode": policy.vote_mode,
            "policy_manual_vote": policy.vote_mode == MANUAL,
            "policy_min_hours": policy.min_hours if policy.min_hours is not None else DEFAULT_MIN_HOURS,
            "policy_start_vote_subject": policy.start_vote_subject or DEFAULT_SUBJECT,
            "policy_start_vote_template": policy.start_vote_template or _DEFAULT_BODY,
            "policy_finish_vote_template": _DEFAULT_FINISH,
            "policy_vote_comment_template": "",
            "policy_start_vote_template_url": "",
            "policy_finish_vote_template_url": "",
            "policy_vote_comment_template_url": "",
            "policy_announce_release_template_url": "",
            "policy_announce_release_subject": "[ANNOUNCE] {{PROJECT_NAME}} {{VERSION}} released",
            "policy_announce_release_template": "The Apache {{COMMITTEE}} team announces {{VERSION}}.",
            "policy_release_checklist": "",
            "policy_license_check_mode": "Both",
            "policy_binary_artifact_paths": [],
            "policy_source_artifact_paths": [],
            "policy_github_repository_name": "",
            "policy_github_repository_branch": "",
            "policy_github_compose_workflow_path": [],
            "policy_github_vote_workflow_path": [],
            "policy_github_finish_workflow_path": [],
        }

    def committee_json(self, key: str) -> dict[str, Any]:
        """`committee/get`: every field of §10.5.6; 404 "Committee 'x' was not found"."""
        committee = self.committees.get(key)
        if committee is None:
            raise RefusalError(404, f"Committee '{key}' was not found")
        data: dict[str, Any] = {
            "key": committee.key,
            "name": committee.name,
            "charter": None,
            "is_podling": committee.is_podling,
            "keys_mode": "automatic",
            "mail_addresses": [],
            "archived": None,
            "is_archived": False,
            "catalog_reviewed": False,
            "parent_committee_key": committee.parent_committee_key,
            "committee_members": list(committee.committee_members),
            "committers": list(committee.committers),
            "release_managers": list(committee.release_managers),
            "updated": None,
            "updated_by": None,
            "update_type": "bootstrap",
        }
        return {"endpoint": "/committee/get", "committee": data}

    def _vote_list(self, release: ReleaseRow) -> str:
        # The RM picks the list at start (§8.1); a scenario that names none gets the policy default, else dev@.
        if self.vote_round(release) == 2:
            return self.settings.second_round_email_to
        default = self._policy(release.project_key).vote_recipients_to
        committee = self.projects[release.project_key].committee_key or release.project_key
        return default or f"dev@{committee}.apache.org"

    # Trusted ballots (reference/atr.md §6.3, §6.4).

    def effective_ballots(self, release: ReleaseRow) -> list[Effective]:
        """Latest ballot per voter in this vote, plus round-1 ballots of IPMC members in round 2."""
        vote_seq = release.current_vote_seq
        if vote_seq is None:
            return []
        vote_round = self.vote_round(release)
        current = _latest_per_voter(b for b in self.ballots if b.release_key == release.key and b.vote_seq == vote_seq)
        entries = [Effective(b, self.is_binding(uid, release, vote_round), False) for uid, b in current.items()]
        if vote_round != 2:
            return entries
        round_one = [b for b in self.ballots if b.release_key == release.key and b.vote_round == 1]
        previous_seq = max((b.vote_seq for b in round_one if b.vote_seq < vote_seq), default=None)
        if previous_seq is None:
            return entries
        previous = _latest_per_voter(b for b in round_one if b.vote_seq == previous_seq)
        for uid, ballot in previous.items():
            if uid not in current and self.is_binding(uid, release, 2):
                entries.append(Effective(ballot, True, True))
        return entries

    def trusted_tally(self, release: ReleaseRow) -> tuple[dict[str, int], bool]:
        """The six counts and whether they pass (binding +1 ≥ 3 and > binding −1)."""
        counts = dict.fromkeys(_SUMMARY_KEYS.values(), 0)
        for entry in self.effective_ballots(release):
            counts[_SUMMARY_KEYS[(entry.is_binding, entry.ballot.choice)]] += 1
        yes, no = counts["binding_votes_yes"], counts["binding_votes_no"]
        return counts, yes >= 3 and yes > no

    def tabulate(self, uid: str, project_key: str, version: str) -> dict[str, Any]:
        """`vote/tabulate` without `details` (the server adds those through its tally hook); no phase check."""
        missing = f"Release {project_key}-{version} not found"
        release = self.release(project_key, version, missing)
        if self.embargoed_for(uid, release):
            raise RefusalError(404, missing)
        mode = self.effective_vote_mode(release)
        result: dict[str, Any] = {
            "endpoint": "/vote/tabulate",
            "details": None,
            "vote_mode": mode,
            "vote_seq": release.current_vote_seq,
            "trusted_ballots": None,
            "trusted_summary": None,
            "trusted_passed": None,
        }
        if mode == TRUSTED and release.current_vote_seq is not None:
            summary, passed = self.trusted_tally(release)
            result["trusted_ballots"] = [_ballot_json(e) for e in self.effective_ballots(release)]
            result["trusted_summary"] = summary
            result["trusted_passed"] = passed
            return result
        if release.current_vote_seq is None:
            raise RefusalError(404, "No vote task found")
        return result

    def receipt_ids(self, release: ReleaseRow) -> frozenset[str]:
        """Receipt Message-IDs of **every** ballot of the vote_seq: ATR's email tally leaves all out (§6.5),
        while `vote/tabulate` names only the effective ballots' receipts."""
        seq = release.current_vote_seq
        return frozenset(
            b.receipt_message_id for b in self.ballots if b.release_key == release.key and b.vote_seq == seq
        )

    # Writes.

    def cast(self, uid: str, project_key: str, version: str, *, choice: str, comment: str, now: float) -> Outgoing:
        """`vote/cast`: append a ballot and return its receipt (one per ballot, §6.5) for the vote's list.

        §10.5.9: 404 only for an embargoed release; every other refusal is a 409, an unknown release included.
        """
        if choice not in atr_scenario.CHOICES:
            raise RefusalError(400, "Input validation failed")
        found = self.releases.get(f"{project_key}-{version}")
        if found is not None and self.embargoed_for(uid, found):
            raise RefusalError(404, f"Release {project_key}-{version} not found")
        if found is None or found.phase != CANDIDATE:
            raise RefusalError(409, "Vote is no longer open.")
        release = found
        if release.phase != CANDIDATE:
            raise RefusalError(409, "Vote is no longer open.")
        if self.effective_vote_mode(release) != TRUSTED or release.current_vote_seq is None:
            raise RefusalError(409, "This release is not accepting trusted votes.")
        if not any(uid in c.committers or uid in c.committee_members for c in self.committees.values()):
            raise RefusalError(403, "Only committers may cast a vote in ATR.")
        vote_round = self.vote_round(release)
        ballot = BallotPaper(
            id=len(self.ballots) + 1,
            release_key=release.key,
            vote_seq=release.current_vote_seq,
            vote_round=vote_round,
            voter_asf_uid=uid,
            voter_fullname=self.fullname(uid),
            choice=choice,
            comment=comment.strip(),
            is_binding_at_cast=self.is_binding(uid, release, vote_round),
            revision_number_at_cast=release.latest_revision_number or "",
            receipt_message_id=f"{uuid.uuid4()}@apache.org",
            created=now,
        )
        self.ballots.append(ballot)
        return Outgoing(receipt_message(ballot, release), release.email_to)

    def resolve(self, uid: str, project_key: str, version: str, *, resolution: str, now: float) -> list[Outgoing]:
        """`vote/resolve` with ATR's rules (§8.5); returns the mails ATR sends ([RESULT], a round-2 [VOTE])."""
        if resolution not in RESOLUTIONS:
            raise RefusalError(400, "Input validation failed")
        found = self.releases.get(f"{project_key}-{version}")
        if found is not None and not self._may_resolve(uid, found):
            raise RefusalError(403, "You do not have permission to resolve this vote.")
        # The writer looks the release up with phase == release_candidate: anything else is a 404 (§8.5).
        if found is None or found.phase != CANDIDATE:
            raise RefusalError(404, "Release not found")
        release = found
        mode = self.effective_vote_mode(release)
        if mode == MANUAL:
            raise RefusalError(409, "Release is configured for manual voting")
        vote_end = release.vote_end()
        if resolution != "cancelled" and vote_end is not None and now < vote_end:
            raise RefusalError(
                409, "The vote cannot be resolved before the voting period has ended unless it is cancelled."
            )
        if resolution == "passed" and mode == TRUSTED and not self.trusted_tally(release)[1]:
            raise RefusalError(409, "The trusted ballot record does not have enough binding +1 votes to pass.")
        outgoing = [Outgoing(self._result_message(release, resolution, now), release.email_to)]
        if resolution == "passed" and self.vote_round(release) == 1:
            outgoing.append(self._start_round_two(release, now))
        elif resolution == "passed":
            release.phase, release.vote_resolved = PREVIEW, now
            # §3.1: the passed vote's thread (the sandbox archive always has it by now).
            release.vote_thread_url = THREAD_URL + thread_id(release.vote_message_id)
        else:
            # §3.1: back to draft; vote_seq survives.
            release.phase, release.vote_mode = DRAFT, None
            release.vote_resolved, release.podling_thread_id, release.vote_thread_url = None, None, None
        return outgoing

    def _may_resolve(self, uid: str, release: ReleaseRow) -> bool:
        committee = self.committee_of(release.project_key)
        if committee is None:
            return False
        return uid in committee.committee_members or (uid in committee.release_managers and uid in committee.committers)

    def _start_round_two(self, release: ReleaseRow, now: float) -> Outgoing:
        release.podling_thread_id = thread_id(release.vote_message_id)
        self._new_vote(release, now)
        release.email_to = self.settings.second_round_email_to
        return self.announcement(release)

    def restart_vote(self, release_key: str, now: float, vote_mode: str | None = None) -> Outgoing:
        """Start the release's vote again (as after a cancel and a new `vote/start`); returns its [VOTE]."""
        release = self.releases[release_key]
        release.phase = CANDIDATE
        release.vote_resolved = None
        release.vote_mode = vote_mode or release.vote_mode or self._policy(release.project_key).vote_mode
        self._new_vote(release, now)
        release.email_to = self._vote_list(release)
        return self.announcement(release)

    def _new_vote(self, release: ReleaseRow, now: float) -> None:
        # §3.1: the serial is per release (a VoteCounter row), new on every start, round 2 included.
        seqs = [release.current_vote_seq or 0] + [b.vote_seq for b in self.ballots if b.release_key == release.key]
        release.current_vote_seq = max(seqs) + 1
        release.vote_started = now
        release.vote_message_id = self._message_id(release)

    # Mail that ATR sends.

    def render_subject(self, release: ReleaseRow) -> str:
        """The [VOTE] subject from the policy's template (ATR's `vote_subject` placeholders)."""
        template = self._policy(release.project_key).start_vote_subject or DEFAULT_SUBJECT
        return substitute(template, self._values(release))

    def _values(self, release: ReleaseRow) -> dict[str, str]:
        project = self.projects[release.project_key]
        committee = self.committee_of(release.project_key)
        podling = committee is not None and committee.is_podling
        name = (project.name or project.key) + (" (Incubating)" if podling else "")
        short = name.removeprefix("Apache Software Foundation ") if name.startswith("Apache Software") else name
        committee_name = (committee.name or committee.key.title()) if committee else project.key
        return {
            "PROJECT_NAME": short.removeprefix("Apache "),
            "VERSION": release.version,
            "COMMITTEE": committee_name + (" (Incubating)" if podling else ""),
            "REVISION": release.latest_revision_number or "",
            "TAG": "",
            "DURATION": str(release.vote_duration),
        }

    def announcement(self, release: ReleaseRow) -> Outgoing:
        """The [VOTE] mail of the running vote."""
        values = self._values(release)
        template = self._policy(release.project_key).start_vote_template or _DEFAULT_BODY
        body = _with_footer(substitute(template, values | {"YOUR_ASF_ID": release.initiator}), release.initiator)
        started = release.vote_started if release.vote_started is not None else self.settings.now
        mail = _mail(release.initiator, release.email_to, release.vote_subject, release.vote_message_id, started)
        mail.set_content(body, cte="8bit")
        return Outgoing(mail.as_bytes(), release.email_to)

    def _result_message(self, release: ReleaseRow, resolution: str, now: float) -> bytes:
        # §5.7: the project's display name ("Apache Example", "(Incubating)" for podlings).
        project = self.projects[release.project_key]
        committee = self.committee_of(release.project_key)
        podling = committee is not None and committee.is_podling
        name = (project.name or project.key) + (" (Incubating)" if podling else "")
        subject = f"[RESULT] [VOTE] Release {name} {release.version} {resolution.upper()}"
        mail = _mail(release.initiator, release.email_to, subject, f"{uuid.uuid4()}@apache.org", now)
        mail["In-Reply-To"] = mail["References"] = f"<{release.vote_message_id}>"
        mail.set_content(_with_footer(f"The vote {resolution}.", release.initiator), cte="8bit")
        return mail.as_bytes()

    def _message_id(self, release: ReleaseRow) -> str:
        return f"{uuid.uuid5(_NAMESPACE, f'{release.key}/{release.current_vote_seq}')}@apache.org"


_SUMMARY_KEYS: Final = {
    (True, "+1"): "binding_votes_yes",
    (True, "-1"): "binding_votes_no",
    (True, "0"): "binding_votes_abstain",
    (False, "+1"): "non_binding_votes_yes",
    (False, "-1"): "non_binding_votes_no",
    (False, "0"): "non_binding_votes_abstain",
}

_DEFAULT_FINISH: Final = """Dear {{COMMITTEE}} participants,

The vote on {{PROJECT_NAME}} {{VERSION}} has {{OUTCOME}}.

{{ATR_TALLY}}

Thanks,
{{YOUR_FULL_NAME}} ({{YOUR_ASF_ID}})
"""

_DEFAULT_BODY: Final = """Hello {{COMMITTEE}},

Please vote on releasing {{PROJECT_NAME}} {{VERSION}} (revision {{REVISION}}).

[ ] +1 Release this package
[ ] +0 Abstain
[ ] -1 Do not release this package (please say why)

You can vote in ATR, or by replying to this email.

The vote is open for {{DURATION}} hours.

Thanks,
{{YOUR_ASF_ID}}
"""


def receipt_message(ballot: BallotPaper, release: ReleaseRow) -> bytes:
    """The copy of a ballot ATR posts to the thread (reference/atr.md §6.5)."""
    mail = _mail(
        ballot.voter_asf_uid, release.email_to, f"Re: {release.vote_subject}", ballot.receipt_message_id, ballot.created
    )
    mail["In-Reply-To"] = mail["References"] = f"<{release.vote_message_id}>"
    mail.set_content(_with_footer(receipt_body(ballot), ballot.voter_asf_uid), cte="8bit")
    return mail.as_bytes()


def receipt_body(ballot: BallotPaper) -> str:
    """`{vote} ({label}) ({uid}) {Full Name}`, then the comment and a signature when there is one."""
    label = _label(ballot)
    head = f"{ballot.choice} ({label}) " if label else f"{ballot.choice} "
    lines = [f"{head}({ballot.voter_asf_uid}) {ballot.voter_fullname}"]
    if ballot.comment:
        lines += ["", ballot.comment, "", "-- ", f"{ballot.voter_fullname} ({ballot.voter_asf_uid})"]
    return "\n".join(lines) + "\n"


def _label(ballot: BallotPaper) -> str:
    if ballot.vote_round == 1:
        return "formal" if ballot.is_binding_at_cast else "informal"
    return "binding" if ballot.is_binding_at_cast else ""


def _with_footer(body: str, uid: str) -> str:
    # ATR strips the body and appends its USER footer after a blank line.
    return f"{body.strip()}\n\nThis email was sent by {uid}@apache.org on the Apache Trusted Releases platform\n"


def _mail(uid: str, to: str, subject: str, message_id: str, when: float) -> email.message.EmailMessage:
    mail = email.message.EmailMessage(policy=email.policy.default)
    mail["From"] = f"{uid}@apache.org"
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = email.utils.format_datetime(datetime.datetime.fromtimestamp(when, datetime.UTC))
    mail["Message-ID"] = f"<{message_id.strip('<>')}>"
    # What the list adds on the way to the archive and to subscribers.
    mail["List-Id"] = f"<{to.replace('@', '.')}>"
    return mail


def _ballot_json(entry: Effective) -> dict[str, Any]:
    ballot = entry.ballot
    return {
        "voter_asf_uid": ballot.voter_asf_uid,
        "voter_fullname": ballot.voter_fullname,
        "choice": ballot.choice,
        "comment": ballot.comment,
        "is_binding": entry.is_binding,
        "is_carried": entry.is_carried,
        "vote_round": ballot.vote_round,
        "revision_number_at_cast": ballot.revision_number_at_cast,
        "receipt_message_id": ballot.receipt_message_id,
        "cast_at": iso(ballot.created),
    }


def _latest_per_voter(ballots: Iterable[BallotPaper]) -> dict[str, BallotPaper]:
    latest: dict[str, BallotPaper] = {}
    for ballot in sorted(ballots, key=lambda b: b.id):
        latest[ballot.voter_asf_uid] = ballot
    return latest


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace `{{NAME}}` placeholders that have a value; leave others as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def thread_id(message_id: str) -> str:
    """A stable 32-character archive-style thread id for a [VOTE] Message-ID."""
    number = int.from_bytes(hashlib.sha256(message_id.encode()).digest(), "big")
    chars = []
    for _ in range(32):
        number, index = divmod(number, 36)
        chars.append(_BASE36[index])
    return "".join(chars)


def iso(seconds: float | None) -> str | None:
    """Unix seconds as ATR's ISO 8601 UTC text."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat().replace("+00:00", "Z")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
