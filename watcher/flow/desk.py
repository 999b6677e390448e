"""The vote desk: for each tracked vote, keep the tally current and act on the decisions.

Everything here is driven by the daemon (jobs and pushes); the rules themselves are in
`tally` and `decide`, which are pure. ATR is read only when a decision needs it fresh.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.message
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Final

import structlog

import watcher.atr.client as client
import watcher.atr.errors as errors
import watcher.atr.models as models
import watcher.core.decide as decide
import watcher.core.digest as digest
import watcher.core.identity as identity
import watcher.core.lifecycle as lifecycle
import watcher.core.receipts as receipts
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.core.tracking as tracking
import watcher.flow.intake as intake
import watcher.flow.worker as worker
import watcher.mail.mailer as mailer
import watcher.mail.outbox as outbox
import watcher.mail.render as render
import watcher.services.events as events
import watcher.services.metrics as metrics
import watcher.services.wallclock as wallclock
import watcher.store as store
import watcher.store.records as records

log = structlog.get_logger("watcher.flow.desk")

RosterFor = Callable[[tracking.TrackedVote], Awaitable[roster.Roster]]
PreviousRound = Callable[[tracking.TrackedVote], Awaitable[Sequence[bytes]]]
Screen = Callable[[str, bytes], Awaitable[bool]]
Reread = Callable[[tracking.TrackedVote], Awaitable[int]]
"""Reads a vote's thread at its source again; returns how many messages were new."""
STALE_PENDING: Final = datetime.timedelta(minutes=2)
RECHECK_HELD: Final = datetime.timedelta(minutes=10)
RETRY_RESOLVE: Final = datetime.timedelta(seconds=20)
# Reminder refusals that may change by themselves; any other refusal stands until the voter writes again.
TEMPORARY: Final = frozenset({decide.Reason.TOO_SOON, decide.Reason.STALE_ATR_STATE})
MAIL_DOMAIN: Final = "vote-watcher.apache.org"
BALLOT_NOTE: Final = "ballot_note"
# Refusals about the vote as a whole: they do not replace what was decided about a voter before (explain).
VOTE_LEVEL: Final = frozenset(
    {
        decide.Reason.NOT_TRUSTED,
        decide.Reason.RESOLVED,
        decide.Reason.NOT_CANDIDATE,
        decide.Reason.VOTE_SEQ_CHANGED,
        decide.Reason.VOTE_ENDED,
        decide.Reason.ALREADY_REMINDED,
    }
)
# Decided again by the fresh look at ATR that a possibly due reminder gets.
FRESH_ONLY: Final = frozenset({decide.Reason.DUE, decide.Reason.STALE_ATR_STATE})
DRY_RUN_STATE: Final = records.OutboxState.DRY_RUN.value


@dataclasses.dataclass(frozen=True, slots=True)
class DeskSettings:
    """What the desk needs from the configuration."""

    atr_host: str
    sender: str
    reply_to: str | None
    reminders_enabled: bool
    reminder: decide.ReminderConfig
    resolve_enabled: bool
    resolve: decide.ResolveConfig
    dry_run: bool
    opt_out: frozenset[str] = frozenset()
    contact: str = ""
    opt_out_text: str = render.DEFAULT_OPT_OUT


@dataclasses.dataclass
class _Known:
    """What the desk remembers of one vote between checks."""

    result: tally.Tally | None = None
    seen_at: dict[str, datetime.datetime] = dataclasses.field(default_factory=dict)
    excluded: frozenset[str] = frozenset()
    atr: decide.AtrState | None = None
    next_resolve_check: datetime.datetime | None = None
    previous: list[digest.Digest] | None = None
    """A podling's round-1 thread: finished, so fetched once."""
    failed_thread: tuple[str, ...] | None = None
    """The thread (keys) whose tally the worker could not finish: not tried again until the thread changes."""
    superseded: frozenset[str] = frozenset()
    """Receipts of ballots their voters changed: never named by ATR, left out of the tally (atr.md §6.5)."""
    declined: dict[str, str] = dataclasses.field(default_factory=dict)
    """voter -> Message-ID of an emailed vote ruled out for a reminder for good (not worth asking ATR again)."""
    recorded: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """voter -> the decision last written to the store (written again only when it changes)."""
    told: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    """(voter, Message-ID) whose "not reminded, and why" was logged."""
    loaded: bool = False
    """`recorded` and `told` were read from the store (a restart neither overwrites nor repeats them)."""


class Desk:
    """Keeps every tracked vote's tally and sends its reminders, notices and resolution."""

    def __init__(
        self,
        db: store.Store,
        atr: client.AtrClient,
        templates: render.Templates,
        settings: DeskSettings,
        *,
        roster_for: RosterFor,
        previous_round: PreviousRound,
        sink: events.Sink = events.ignore,
        clock: wallclock.Clock,
        pool: worker.Worker | None = None,
        screen: Screen | None = None,
        shadow: mailer.Mailer | None = None,
        stats: metrics.Metrics | None = None,
        reread: Reread | None = None,
    ) -> None:
        """`shadow` writes a dry run's mails (.eml files); `stats` counts classifications and outcomes."""
        self.store = db
        self.worker = pool or worker.Worker()
        self._screen = screen
        self.atr = atr
        self.templates = templates
        self.settings = settings
        self._roster_for = roster_for
        self._previous_round = previous_round
        self._sink = sink
        self._clock = clock
        self._reread = reread
        self._known: dict[int, _Known] = {}
        self._shadow = shadow
        self._metrics = stats

    def forget(self, vote_id: int) -> None:
        """Drop what is remembered of a vote that ended."""
        self._known.pop(vote_id, None)

    def emit(self, kind: events.Kind, vote: tracking.TrackedVote | None, text: str, **data: object) -> None:
        """Hand an event to the sink (the demo's timeline; tests)."""
        release = vote.release_key if vote else ""
        seq = vote.vote_seq if vote else None
        self._sink(events.Event(kind, self._clock(), release, seq, text, dict(data)))

    async def retally(self, vote: tracking.TrackedVote) -> tally.Tally | None:
        """Tally the vote's stored thread again (in the worker) and record every voter's latest vote.

        In a Trusted Vote, ATR's ballot receipts are left out by Message-ID; a receipt-shaped
        message that ATR has not named yet makes the desk ask ATR again, and tally again.
        None when the worker could not tally this thread (it is not tried again until the thread changes).
        """
        known = self._known.setdefault(vote.id, _Known())
        if vote.mode == "trusted" and known.atr is None:
            await self._load_atr(vote)
        digests = await self._thread_digests(vote)
        people = await self._roster_for(vote)
        previous = await self._round_one(vote, known)
        analysis = await self._analyse(vote, known, digests, people, previous)
        if analysis is None:
            return known.result
        # A superseded ballot's receipt is never named by ATR (atr.md §6.5): known by its sender's ballot,
        # it is left out of the tally and is no reason to ask ATR again.
        unnamed = analysis.receipts - known.excluded - self._superseded(vote, known, analysis)
        if vote.mode == "trusted" and unnamed and await self._load_atr(vote):
            analysis = await self._analyse(vote, known, digests, people, previous) or analysis
        if self._superseded(vote, known, analysis) - known.superseded:
            known.superseded = self._superseded(vote, known, analysis)
            analysis = await self._analyse(vote, known, digests, people, previous) or analysis
        # Seen when first stored, so that a restart does not start every pending reminder's delay again.
        stored_at = await self.store.thread_stored_at(vote.id)
        for key, message_id in analysis.messages:
            known.seen_at.setdefault(message_id, stored_at.get(key) or self._clock())
        for message_id in analysis.previous:
            known.seen_at.setdefault(message_id, self._clock())
        result = analysis.result
        self._count_classified(known.result, result)
        await self.store.replace_voter_votes(vote.id, result.votes, self._clock())
        if known.result is None or known.result.votes != result.votes:
            listed = ", ".join(f"{v.voter} {v.vote}{' (carried)' if v.carried else ''}" for v in result.votes)
            self.emit("tally", vote, f"emailed votes: {listed or 'none'}", votes=[v.voter for v in result.votes])
        known.result = result
        return result

    @staticmethod
    def _superseded(vote: tracking.TrackedVote, known: _Known, analysis: worker.Analysis) -> frozenset[str]:
        """Receipt-shaped messages from uids that have a ballot in this vote_seq (receipts, named or not)."""
        if known.atr is None or known.atr.vote_seq != vote.vote_seq:
            return frozenset()
        return receipts.superseded_ids(analysis.receipt_senders, frozenset(known.atr.ballots))

    async def _thread_digests(self, vote: tracking.TrackedVote) -> list[digest.Digest]:
        """The stored readings of the thread, in order; a message stored before readings were kept is read once."""
        found: list[digest.Digest] = []
        for key, stored in await self.store.thread_readings(vote.id):
            read = stored or await self._read_once(key)
            if read is not None:
                found.append(read)
        return found

    async def _read_once(self, key: str) -> digest.Digest | None:
        """Read an old row in the worker and store its reading (None when it is flagged, now or before)."""
        raw = await self.store.get_raw(key)
        if raw is None:
            return None
        if self._screen is not None and await self._screen(key, raw):
            return None
        stored = await self.store.reading(key)
        if stored is not None:
            return stored
        found = await self.worker.read(raw)
        if isinstance(found, str):
            log.warning("desk.read_failed", key=key, error=found)
            return None
        await self.store.set_reading(key, found)
        return found

    async def _analyse(
        self,
        vote: tracking.TrackedVote,
        known: _Known,
        digests: Sequence[digest.Digest],
        people: roster.Roster,
        previous: Sequence[digest.Digest],
    ) -> worker.Analysis | None:
        """The worker's tally of the stored readings (None when it failed; not tried again until the thread changes)."""
        thread = tuple(read.headers.key for read in digests)
        if known.failed_thread == thread:
            return None
        options = tally.Options(
            committee=vote.committee_key or None,
            vote_round=vote.vote_round,
            excluded_message_ids=known.excluded | known.superseded,
        )
        try:
            return await self.worker.analyse(digests, people, options, previous)
        except worker.WorkerError as exc:
            log.warning("desk.tally_failed", release=vote.release_key, messages=len(digests), error=str(exc))
        known.failed_thread = thread
        return None

    def _count_classified(self, before: tally.Tally | None, after: tally.Tally) -> None:
        """Each emailed vote (and possible vote) counted once, when its message is first classified."""
        if self._metrics is None:
            return
        seen = {v.message_id for v in before.votes} if before else set()
        seen_possible = {p.message_id for p in before.possible_votes} if before else set()
        for voted in after.votes:
            if voted.message_id not in seen:
                self._metrics.classified(voted.vote)
        for possible in after.possible_votes:
            if possible.message_id not in seen_possible:
                self._metrics.classified("possible")

    async def _round_one(self, vote: tracking.TrackedVote, known: _Known) -> list[digest.Digest]:
        """The round-1 thread whose IPMC votes are carried into a podling's round 2 (empty otherwise), read once."""
        if vote.vote_round != 2:
            return []
        if known.previous is None:
            raws = list(await self._previous_round(vote))
            try:
                known.previous = await self.worker.read_all(raws) if raws else []
            except worker.WorkerError as exc:
                log.warning("desk.round_one_failed", release=vote.release_key, messages=len(raws), error=str(exc))
                return []
        return known.previous

    async def check(self, vote: tracking.TrackedVote) -> None:
        """Reminders and resolution for one vote; ATR is read only when something may be due."""
        if vote.mode != "trusted":
            # Tallied for the record only; new mail re-tallies it (`Daemon.on_vote_changed`).
            if vote.id not in self._known:
                await self.retally(vote)
            return
        known = self._known.setdefault(vote.id, _Known())
        if known.atr is None:
            # ATR's receipts are left out of the tally from the first look on.
            await self._fresh_atr(vote)
        if known.result is None:
            await self.retally(vote)
        if self.settings.reminders_enabled:
            await self._note_decisions(vote)
        if self.settings.reminders_enabled and await self._reminder_candidates(vote):
            await self._remind(vote)
        if self.settings.resolve_enabled and self._resolution_time(vote):
            await self._resolve(vote)

    # Reminders ----------------------------------------------------------------------------------------------

    async def _reminded(self, vote: tracking.TrackedVote, kind: str = "reminder") -> set[decide.ReminderKey]:
        mails = await self.store.mails(vote.release_key, vote.vote_seq)
        return {
            decide.ReminderKey(m.release_key, m.vote_seq, m.voter)
            for m in mails
            if m.kind == kind and (self.settings.dry_run or m.state != DRY_RUN_STATE)
        }

    async def _note_decisions(self, vote: tracking.TrackedVote) -> None:
        """Why each voter is not reminded, from what is known (no ATR call): stored, and logged once."""
        known = self._known.get(vote.id)
        if known is None or known.result is None or known.atr is None:
            return
        reminded = await self._reminded(vote)
        decisions = decide.reminders_due(
            vote,
            known.result.votes,
            known.atr,
            config=self.settings.reminder,
            reminded=reminded,
            now=self._clock(),
            seen_at=known.seen_at,
        )
        settled = [(emailed, decision) for emailed, decision in decisions if decision.reason not in FRESH_ONLY]
        await self._record_decisions(vote, known, settled, known.atr, reminded)

    async def _record_decisions(
        self,
        vote: tracking.TrackedVote,
        known: _Known,
        decisions: Sequence[tuple[tally.EmailedVote, decide.ReminderDecision]],
        atr: decide.AtrState,
        reminded: Collection[decide.ReminderKey],
    ) -> None:
        now = self._clock()
        if not known.loaded:
            for stored in await self.store.decisions(vote.release_key, vote.vote_seq):
                known.recorded[stored.voter] = _summary(stored)
                if stored.decision == "not_due" and stored.reason not in TEMPORARY:
                    known.told.add((stored.voter, stored.email_message_id))
            known.loaded = True
        for emailed, decision in decisions:
            if decision.reason in VOTE_LEVEL and emailed.voter in known.recorded:
                continue
            ballot = atr.ballots.get(emailed.voter)
            row = records.Decision(
                release_key=vote.release_key,
                vote_seq=vote.vote_seq,
                voter=emailed.voter,
                decision="due" if decision.due else "not_due",
                reason=str(decision.reason),
                detail=decision.detail,
                decided_at=now,
                email_vote=emailed.vote,
                email_status=emailed.status,
                email_message_id=emailed.message_id,
                email_date=emailed.date,
                ballot=ballot.choice if ballot is not None else "",
                atr_read_at=atr.fetched_at,
            )
            summary = _summary(row)
            if known.recorded.get(emailed.voter) == summary:
                continue
            known.recorded[emailed.voter] = summary
            await self.store.record_decision(row)
            key = decide.ReminderKey(vote.release_key, vote.vote_seq, emailed.voter)
            if decision.due or decision.reason in TEMPORARY or key in reminded:
                continue
            told = (emailed.voter, emailed.message_id)
            if told in known.told:
                continue
            known.told.add(told)
            self.emit(
                "not_reminded",
                vote,
                f"{emailed.voter} not reminded: {decision.detail}",
                voter=emailed.voter,
                reason=str(decision.reason),
            )

    async def _reminder_candidates(self, vote: tracking.TrackedVote) -> bool:
        """Cheap pre-check with what is known: is any reminder possibly due, so that ATR is worth asking?"""
        known = self._known[vote.id]
        if known.result is None:
            return False
        now = self._clock()
        reminded = await self._reminded(vote)
        noted = await self._reminded(vote, BALLOT_NOTE)
        for voted in known.result.votes:
            if known.declined.get(voted.voter) == voted.message_id:
                continue  # decided with a fresh tabulate already, and not for a passing reason
            # A message not seen yet is taken as seen now: its delay has not run.
            seen = known.seen_at.get(voted.message_id, now)
            possible = decide.reminder_possible(
                vote,
                voted,
                known.atr,
                config=self.settings.reminder,
                reminded=reminded,
                noted=noted,
                now=now,
                seen_at=seen,
            )
            if possible:
                return True
        return False

    async def _load_atr(self, vote: tracking.TrackedVote) -> bool:
        """Read `vote/tabulate`; True when ATR's set of receipts changed."""
        try:
            result = await self.atr.vote_tabulate(vote.project, vote.version)
        except errors.AtrError as exc:
            log.warning("desk.tabulate_failed", release=vote.release_key, error=str(exc))
            return False
        known = self._known.setdefault(vote.id, _Known())
        previous = known.atr
        known.atr = atr_state(result, self._clock())
        if previous is None or previous.ballots != known.atr.ballots:
            await self._note_ballots(vote, known.atr)
        receipts = result.receipt_message_ids()
        changed = receipts != known.excluded
        known.excluded = receipts
        return changed

    async def _note_ballots(self, vote: tracking.TrackedVote, atr: decide.AtrState) -> None:
        """ATR's ballots as last seen, for `vote-watcher explain`."""
        ballots = {
            uid: {"choice": one.choice, "binding": one.is_binding, "carried": one.is_carried}
            for uid, one in atr.ballots.items()
        }
        value = {"vote_seq": atr.vote_seq, "read_at": atr.fetched_at.isoformat(), "ballots": ballots}
        await self.store.observe(f"ballots:{vote.release_key}#{vote.vote_seq}", "", value, self._clock())

    async def _fresh_atr(self, vote: tracking.TrackedVote) -> decide.AtrState | None:
        """A fresh `vote/tabulate`; the tally is redone when ATR's receipts changed."""
        known = self._known.setdefault(vote.id, _Known())
        before = known.atr
        if await self._load_atr(vote):
            await self.retally(vote)
        return known.atr if known.atr is not before else None

    async def _read_thread_again(self, vote: tracking.TrackedVote) -> None:
        """Before a decision: the archive's dates are senders' (a reply held in moderation is back-dated)."""
        if self._reread is not None and await self._reread(vote):
            await self.retally(vote)

    async def _remind(self, vote: tracking.TrackedVote) -> None:
        await self._read_thread_again(vote)
        atr = await self._fresh_atr(vote)
        known = self._known[vote.id]
        if atr is None or known.result is None:
            return
        reminded = await self._reminded(vote)
        decisions = decide.reminders_due(
            vote,
            known.result.votes,
            atr,
            config=self.settings.reminder,
            reminded=reminded,
            now=self._clock(),
            seen_at=known.seen_at,
        )
        await self._record_decisions(vote, known, decisions, atr, reminded)
        noted = await self._reminded(vote, BALLOT_NOTE)
        now = self._clock()
        for emailed, reminder in decisions:
            decision = reminder
            if reminder.reason == decide.Reason.HAS_BALLOT:
                # Has a ballot: is it the one the email says? If not, they are told once.
                seen = known.seen_at.get(emailed.message_id)
                decision = decide.ballot_note_due(
                    vote,
                    emailed,
                    atr,
                    config=self.settings.reminder,
                    noted=noted,
                    now=now,
                    seen_at=seen,
                )
                if decision.due:
                    await self._queue_note(vote, emailed, atr.ballots[emailed.voter].choice)
                    continue
            if not decision.due:
                if decision.reason not in TEMPORARY:
                    known.declined[emailed.voter] = emailed.message_id
                continue
            await self._queue_reminder(vote, emailed)

    async def _queue_reminder(self, vote: tracking.TrackedVote, voted: tally.EmailedVote) -> None:
        mail, row, created = await self._enqueue_voter_mail(vote, voted, "reminder", "")
        if not created:
            return
        to = render.recipient(row.recipient)
        if self.settings.dry_run:
            await self._write_shadow(vote, "reminder", voted.voter, mail)
            return
        self.emit(
            "reminder_queued",
            vote,
            f"reminder to {to} ({voted.vote} by email)",
            voter=voted.voter,
            to=to,
            message_id=row.message_id,
        )

    async def _write_shadow(
        self, vote: tracking.TrackedVote, kind: str, voter: str, mail: email.message.EmailMessage
    ) -> None:
        """A dry run's mail: written as an .eml file and logged, never sent (its row stays `dry_run`)."""
        event: events.Kind = "reminder_dry_run" if kind == "reminder" else "notice_dry_run"
        to = render.recipient(voter)
        if kind == "reminder" and self._metrics is not None:
            self._metrics.reminder("skipped")
        if voter in self.settings.opt_out:
            self.emit(event, vote, f"would skip the {kind} to {to}: recipient opted out", voter=voter, to=to)
            return
        written = "not written" if self._shadow is None else (await self._shadow.send(mail)).detail
        message_id = str(mail["Message-ID"])
        self.emit(event, vote, f"would send the {kind} to {to} ({written})", voter=voter, to=to, message_id=message_id)

    async def _queue_note(self, vote: tracking.TrackedVote, voted: tally.EmailedVote, ballot_choice: str) -> None:
        """The one note to a voter whose emailed vote differs from their ballot in ATR."""
        mail, _, created = await self._enqueue_voter_mail(vote, voted, BALLOT_NOTE, ballot_choice)
        if not created:
            return
        if self.settings.dry_run:
            await self._write_shadow(vote, "ballot note", voted.voter, mail)
            return
        log.info("desk.ballot_note_queued", release=vote.release_key, voter=voted.voter, ballot=ballot_choice)

    async def _enqueue_voter_mail(
        self, vote: tracking.TrackedVote, voted: tally.EmailedVote, kind: str, ballot_choice: str
    ) -> tuple[email.message.EmailMessage, records.OutboxRow, bool]:
        """Write a mail to a voter into the outbox (once per kind, vote and voter): the mail, its row, whether new."""
        mail, message_id, now = await self._voter_mail(vote, voted, ballot_choice)
        row, created = await self.store.enqueue(
            kind=kind,
            release_key=vote.release_key,
            vote_seq=vote.vote_seq,
            recipient=voted.voter,
            voter=voted.voter,
            raw=mail.as_bytes(),
            message_id=message_id,
            now=now,
            state=DRY_RUN_STATE if self.settings.dry_run else records.OutboxState.PENDING.value,
        )
        return mail, row, created

    async def _voter_mail(
        self, vote: tracking.TrackedVote, voted: tally.EmailedVote, ballot_choice: str
    ) -> tuple[email.message.EmailMessage, str, datetime.datetime]:
        """A reminder (or, with `ballot_choice`, a ballot note), named with the roster's name for the uid."""
        now = self._clock()
        message_id = outbox.new_message_id(MAIL_DOMAIN)
        # Never the From header's name: anyone can write one, and it would be the greeting.
        name = (await self._roster_for(vote)).name_of(voted.voter)
        context = render.ReminderContext(
            voter_uid=voted.voter,
            project=vote.project,
            version=vote.version,
            release_key=vote.release_key,
            vote_seq=vote.vote_seq,
            vote_value=voted.vote,
            atr_host=self.settings.atr_host,
            voter_name=name,
            project_name=vote.project_name,
            quotation=voted.quotation,
            vote_subject=vote.subject,
            vote_date=voted.date,
            vote_end=vote.vote_end,
            vote_round=vote.vote_round,
            carried=voted.carried,
            opt_out=self.settings.opt_out_text,
            contact=self.settings.contact,
            ballot_choice=ballot_choice,
        )
        headers = render.Headers(self.settings.sender, voted.voter, message_id, now, name, self.settings.reply_to)
        if ballot_choice:
            return self.templates.ballot_note(context, headers), message_id, now
        return self.templates.reminder(context, headers), message_id, now

    # Resolution ---------------------------------------------------------------------------------------------

    def _resolution_time(self, vote: tracking.TrackedVote) -> bool:
        if vote.vote_end is None or not lifecycle.is_open(vote.status):
            return False
        now = self._clock()
        later = self._known[vote.id].next_resolve_check
        if later is not None and now < later:
            return False
        return now >= vote.vote_end + self.settings.resolve.grace

    async def _resolve(self, vote: tracking.TrackedVote) -> None:
        await self._read_thread_again(vote)
        atr = await self._fresh_atr(vote)
        known = self._known[vote.id]
        if atr is None or known.result is None:
            return
        decision = decide.resolution_due(vote, atr, known.result.votes, config=self.settings.resolve, now=self._clock())
        log.info(
            "desk.resolution",
            release=vote.release_key,
            vote_seq=vote.vote_seq,
            action=decision.action,
            reason=str(decision.reason),
            detail=decision.detail,
        )
        # A held or waiting vote is looked at again later, not at every check: ATR's budget is shared.
        known.next_resolve_check = self._clock() + RECHECK_HELD
        if decision.action == "resolve" and decision.resolution is not None:
            await self._signal(vote, decision.resolution)
        elif decision.action in ("hold", "manual"):
            await self._hold(vote, decision)
        elif decision.action in ("drop", "never") and not self.settings.dry_run:
            await self._move(vote, lifecycle.VoteEvent.DROP)

    async def _signal(self, vote: tracking.TrackedVote, resolution: decide.Resolution) -> None:
        if self.settings.dry_run:
            # The vote stays open: the live run that follows resolves it.
            self.emit("resolution_dry_run", vote, f"would resolve as {resolution} (dry run)", resolution=resolution)
            return
        record, go = await self.store.begin_resolution(vote.release_key, vote.vote_seq, resolution, self._clock())
        if not go and not await self._retake_stale(vote, record):
            return
        try:
            await self.atr.vote_resolve(vote.project, vote.version, resolution)
        except (errors.ConflictError, errors.NotFoundError) as exc:
            # ATR answers 404 "Release not found" once the vote left release_candidate (atr.md §8.5).
            await self._after_conflict(vote, record, str(exc))
            return
        except (errors.ServerError, errors.TransportError, errors.RateLimitedError) as exc:
            # Transient, and perhaps applied: the row is released for a retry soon. Should ATR have
            # resolved it after all, the retry gets a 409 and finds the vote resolved.
            log.warning("desk.resolve_retry", release=vote.release_key, error=str(exc))
            await self.store.mark_resolution_held(record.id, f"ATR error, retrying: {exc}", self._clock())
            self._known[vote.id].next_resolve_check = self._clock() + RETRY_RESOLVE
            return
        except errors.AtrError as exc:
            await self.store.mark_resolution_failed(record.id, str(exc), self._clock())
            self.emit("resolve_failed", vote, f"ATR refused to resolve: {exc}")
            return
        await self.store.mark_resolution_called(record.id, resolution, self._clock())
        await self.store.mark_resolution_done(record.id, resolution, self._clock())
        await self._move(vote, lifecycle.VoteEvent.RESOLVE)
        if self._metrics is not None:
            self._metrics.resolution("signalled")
        self.emit("resolved", vote, f"resolved as {resolution} through ATR's API", resolution=resolution)

    async def _move(self, vote: tracking.TrackedVote, event: lifecycle.VoteEvent) -> None:
        """The vote's next status after `event` (the lifecycle table refuses a move it does not allow)."""
        await self.store.set_vote_status(vote.id, lifecycle.next_status(vote.status, event), self._clock())

    async def _retake_stale(self, vote: tracking.TrackedVote, record: records.Resolution) -> bool:
        """A `pending` row left by a crash before the call may be taken up again; anything else may not."""
        if record.state != "pending" or self._clock() - record.updated_at < STALE_PENDING:
            return False
        try:
            release = await self.atr.release_get(vote.project, vote.version)
        except errors.AtrError:
            return False
        return release.phase == models.PHASE_CANDIDATE and release.current_vote_seq == vote.vote_seq

    async def _after_conflict(self, vote: tracking.TrackedVote, record: records.Resolution, error: str) -> None:
        """404 or 409: resolved already (by anyone: the RM, ATR's own auto-resolve, our own earlier call),
        or not resolvable yet. `release/get` tells which; a resolution elsewhere is never a failure."""
        try:
            release: models.Release | None = await self.atr.release_get(vote.project, vote.version)
        except errors.NotFoundError:
            release = None
        except errors.AtrError:
            self._known[vote.id].next_resolve_check = self._clock() + RETRY_RESOLVE
            await self.store.mark_resolution_held(record.id, f"ATR said: {error}; checking again", self._clock())
            return
        if release is None or release.phase != models.PHASE_CANDIDATE or release.current_vote_seq != vote.vote_seq:
            phase = release.phase if release is not None else "gone"
            log.info("desk.resolved_elsewhere", release=vote.release_key, phase=phase)
            await self.store.mark_resolution_done(record.id, f"resolved elsewhere ({phase})", self._clock())
            await self._move(vote, lifecycle.VoteEvent.RESOLVE)
            self.emit("resolved_elsewhere", vote, f"resolved elsewhere (ATR: {error})", phase=phase)
            return
        await self.store.mark_resolution_held(record.id, f"ATR said: {error}", self._clock())

    async def resolved_elsewhere(self, vote: tracking.TrackedVote, phase: str | None) -> None:
        """The vote left release_candidate without this watcher: ATR's own opt-in auto-resolve at the
        end passes Trusted Votes on the ballots alone (atr.md §8.4). Where this watcher would have held
        the vote (unrecorded binding email votes change the result), the RM still gets the held notice."""
        if vote.mode != "trusted" or vote.vote_end is None or phase not in (models.PHASE_PREVIEW, models.PHASE_RELEASE):
            return
        now = self._clock()
        if now < vote.vote_end:
            return
        known = self._known.setdefault(vote.id, _Known())
        # vote/tabulate has no phase check and still answers for this vote_seq (§10.5.7).
        await self._load_atr(vote)
        result = await self.retally(vote)
        if known.atr is None or result is None:
            return
        running = dataclasses.replace(vote, phase=tracking.CANDIDATE_PHASE, status=lifecycle.VoteStatus.OPEN)
        due = max(now, vote.vote_end + self.settings.resolve.grace)
        decision = decide.resolution_due(running, known.atr, result.votes, config=self.settings.resolve, now=due)
        if decision.action != "hold":
            return
        detail = f"ATR resolved this vote itself at its end, on the trusted ballots alone. {decision.detail}"
        await self._hold(vote, dataclasses.replace(decision, detail=detail))

    async def _hold(self, vote: tracking.TrackedVote, decision: decide.ResolutionDecision) -> None:
        if self.settings.dry_run:
            # No resolution row: the live run that follows holds the vote itself.
            await self._notify_manager(vote, decision)
            return
        record, go = await self.store.begin_resolution(vote.release_key, vote.vote_seq, "held", self._clock())
        if go:
            await self.store.mark_resolution_held(record.id, decision.detail, self._clock())
            if self._metrics is not None:
                self._metrics.resolution("held")
        elif record.state != "held":
            return
        await self._notify_manager(vote, decision)

    async def _notify_manager(self, vote: tracking.TrackedVote, decision: decide.ResolutionDecision) -> None:
        manager = await self._manager_uid(vote)
        if manager is None:
            log.warning("desk.no_release_manager", release=vote.release_key)
            return
        mails = await self.store.mails(vote.release_key, vote.vote_seq)
        sent = [
            render.ReminderSent(m.voter, m.message_id, m.state, m.sent_at)
            for m in mails
            if m.kind == "reminder" and (self.settings.dry_run or m.state != DRY_RUN_STATE)
        ]
        people = await self._roster_for(vote)
        names = {uid: people.name_of(uid) for uid in {manager, *(u.voter for u in decision.unrecorded)}}
        now = self._clock()
        message_id = outbox.new_message_id(MAIL_DOMAIN)
        context = render.NoticeContext(
            rm_uid=manager,
            project=vote.project,
            version=vote.version,
            release_key=vote.release_key,
            vote_seq=vote.vote_seq,
            atr_host=self.settings.atr_host,
            decision=decision,
            vote_subject=vote.subject,
            vote_end=vote.vote_end,
            reminders=sent,
            rm_name=names[manager],
            project_name=vote.project_name,
            contact=self.settings.contact,
            names=names,
            flagged=[_flagged(item, people) for item in await self.store.flagged_messages(vote.id)],
        )
        headers = render.Headers(self.settings.sender, manager, message_id, now, names[manager], self.settings.reply_to)
        mail = self.templates.held_notice(context, headers)
        row, created = await self.store.enqueue(
            kind="held_notice",
            release_key=vote.release_key,
            vote_seq=vote.vote_seq,
            recipient=manager,
            raw=mail.as_bytes(),
            message_id=message_id,
            voter=manager,
            now=now,
            state=DRY_RUN_STATE if self.settings.dry_run else records.OutboxState.PENDING.value,
        )
        if not created:
            return
        to = render.recipient(row.recipient)
        if self.settings.dry_run:
            self.emit("held", vote, f"would hold: {decision.detail} (dry run)", reason=str(decision.reason))
            await self._write_shadow(vote, "notice", manager, mail)
            return
        self.emit("held", vote, decision.detail, reason=str(decision.reason))
        self.emit(
            "notice_queued",
            vote,
            f"notice to the release manager {to}",
            voter=manager,
            to=to,
            message_id=row.message_id,
        )

    async def _manager_uid(self, vote: tracking.TrackedVote) -> str | None:
        """The release manager: the uid that sent the [VOTE] (ATR sends it from `{uid}@apache.org`)."""
        keys = await self.store.thread_keys(vote.id)
        if not keys:
            return None
        raw = await self.store.get_raw(keys[0])
        if raw is None:
            return None
        return identity.uid_from_address(intake.sender_address(raw))


def _summary(decision: records.Decision) -> tuple[str, ...]:
    return (decision.decision, decision.reason, decision.detail, decision.email_message_id, decision.ballot)


def _flagged(item: records.FlaggedMessage, people: roster.Roster) -> render.Flagged:
    uid = identity.uid_from_address(item.sender) or people.uid_for_address(item.sender) or ""
    return render.Flagged(item.message_id, item.sender, item.flag, item.detail, item.date, uid)


# ATR's answers turned into the values the decisions read (pure).


def atr_state(result: models.VoteTabulateResults, fetched_at: datetime.datetime) -> decide.AtrState:
    """The effective ballots (carried ones included), the trusted summary and whether it passes."""
    ballots: dict[str, decide.Ballot] = {}
    for entry in result.trusted_ballots or []:
        choice = _choice(entry.choice)
        if choice is None:
            continue
        ballots[entry.voter_asf_uid] = decide.Ballot(
            voter=entry.voter_asf_uid,
            choice=choice,
            is_binding=entry.is_binding,
            is_carried=entry.is_carried,
            cast_at=entry.cast_at,
        )
    summary = result.trusted_summary
    return decide.AtrState(
        vote_seq=result.vote_seq,
        fetched_at=fetched_at,
        ballots=ballots,
        trusted_passed=result.trusted_passed,
        summary=_trusted_summary(summary) if summary is not None else None,
    )


def _choice(value: str) -> decide.Choice | None:
    if value == "+1":
        return "+1"
    if value == "0":
        return "0"
    if value == "-1":
        return "-1"
    return None


def _trusted_summary(summary: models.TrustedVoteSummary) -> decide.TrustedSummary:
    return decide.TrustedSummary(
        binding_yes=summary.binding_votes_yes,
        binding_no=summary.binding_votes_no,
        binding_abstain=summary.binding_votes_abstain,
        non_binding_yes=summary.non_binding_votes_yes,
        non_binding_no=summary.non_binding_votes_no,
        non_binding_abstain=summary.non_binding_votes_abstain,
    )
