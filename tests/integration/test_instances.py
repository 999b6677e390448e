"""Several instances on one PostgreSQL: singleton work under leases, nothing lost, nothing done twice.

The multi-process tests run real `vote-watcher run --config` processes against one PostgreSQL
database, with the sandbox ATR and the sandbox lists.apache.org on this test's event loop, the
emailed votes delivered to a Dovecot folder (the mailbox the lists are subscribed to), and an
aiosmtpd sink counting the reminders. Everything runs on the wall clock: ten Trusted Votes end
a few seconds into the test (the sandbox starts them 72 hours minus that ago), each with three
ballots already cast in ATR and five binding PMC members who vote +1 by email only. Each of
those 50 gets exactly one reminder, and each vote is resolved through ATR exactly once.

The votes open (in the sandbox ATR) once every instance is up, as a release manager starts a vote
while the watchers run: how long the processes take to start on a loaded machine is no part of
the votes' time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import email.message
import email.utils
import os
import pathlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final

import pytest

import tests.support.dovecot as dovecot
import tests.support.instances as instances
import tests.support.postgres as postgres
import watcher.flow.leases as leases
import watcher.sandbox.atr_http as atr_http
import watcher.sandbox.atr_scenario as atr_scenario
import watcher.sandbox.atr_state as atr_state
import watcher.sandbox.lists_http as lists_http
import watcher.store as store
from tests.fixtures.smtp import SmtpSink

PROJECTS: Final = ("alder", "birch", "cedar", "dogwood", "elm", "fir", "ginkgo", "hazel", "ivy", "juniper")
EMAIL_VOTERS: Final = 5
BALLOTS: Final = 3
PAT: Final = "pat-watcher-instances-0c1d"
TTL_S: Final = 3.0
LEASES: Final = (leases.DISCOVERY, leases.archive("archive"), leases.mailbox("lists-mailbox"))
HOUR_S: Final = 3600


# The world: scenario, stand-ins, instances ---------------------------------------------------------------------


def scenario(ends_in_s: int) -> dict[str, Any]:
    """Ten Trusted Votes that end `ends_in_s` seconds from now; three ballots each are in ATR already."""
    committees: dict[str, Any] = {}
    projects: dict[str, Any] = {}
    releases: list[dict[str, Any]] = []
    ballots: list[dict[str, Any]] = []
    for seq, key in enumerate(PROJECTS, start=1):
        casters = [f"{key}a{n}" for n in range(1, BALLOTS + 1)]
        members = [f"{key}rm", *casters, *email_voters(key)]
        committees[key] = {
            "name": key.title(),
            "committee_members": members,
            "committers": [*members, instances.WATCHER_UID],
            "release_managers": [f"{key}rm", instances.WATCHER_UID],
        }
        projects[key] = {
            "name": f"Apache {key.title()}",
            "committee_key": key,
            "policy": {"vote_mode": "trusted", "min_hours": 72, "vote_recipients": {"to": f"dev@{key}.apache.org"}},
        }
        releases.append(
            {
                "project_key": key,
                "version": "1.0.0",
                "phase": "release_candidate",
                "vote_mode": "trusted",
                "current_vote_seq": seq,
                # A 72-hour vote (its [VOTE] says so) that started 72 hours ago, less `ends_in_s`.
                "vote_started": f"-{72 * HOUR_S - ends_in_s}s",
                "vote_duration": 72,
                "initiator": f"{key}rm",
            }
        )
        ballots += [{"release_key": f"{key}-1.0.0", "voter_asf_uid": uid, "choice": "+1"} for uid in casters]
    return {
        "atr": {
            "pats": {instances.WATCHER_UID: PAT},
            "jwt_per_hour": 1000,
            "api_per_minute": 1_000_000,
            "api_per_hour": 1_000_000,
            "resolve_per_hour": 1000,
            "committees": committees,
            "projects": projects,
            "releases": releases,
            "ballots": ballots,
        }
    }


def email_voters(key: str) -> list[str]:
    """The binding members of a project who vote by email only."""
    return [f"{key}v{n}" for n in range(1, EMAIL_VOTERS + 1)]


@dataclasses.dataclass
class World:
    """The stand-ins, the database and the instances of one test."""

    folder: pathlib.Path
    database_url: str
    atr: atr_http.AtrSandbox
    archive: lists_http.PonyMailSandbox
    smtp: SmtpSink
    imap: dovecot.DovecotServer
    mailbox: instances.Mailbox
    db: store.Store
    ends_in_s: int
    ends_at: float = 0.0
    running: list[instances.Instance] = dataclasses.field(default_factory=list)

    def start(self, count: int) -> list[instances.Instance]:
        """Start `count` instances named vw1, vw2, ... on the same database."""
        started = []
        for _ in range(count):
            name = f"vw{len(self.running) + 1}"
            config = instances.write_config(
                self.folder / name,
                name=name,
                database_url=self.database_url,
                atr_url=self.atr.url,
                pat=PAT,
                archive_url=self.archive.url,
                lists=[f"dev@{key}.apache.org" for key in PROJECTS],
                smtp_port=self.smtp.port,
                mailbox=self.mailbox,
                ttl=f"{int(TTL_S)}s",
                heartbeat="1s",
                log_level=os.environ.get("VW_TEST_LOG", "info"),
            )
            instance = instances.Instance(name, config)
            instance.start()
            self.running.append(instance)
            started.append(instance)
        return started

    def vote_by_email(self, voters: Iterable[tuple[str, str]]) -> int:
        """Deliver "+1 (binding)" replies from these (project, uid) to the lists' mailbox; returns the count."""
        raws = [self._reply(key, uid) for key, uid in voters]
        self.imap.append(self.mailbox.folder, raws)
        return len(raws)

    def _reply(self, key: str, uid: str) -> bytes:
        release = self.atr.state.releases[f"{key}-1.0.0"]
        mail = email.message.EmailMessage()
        mail["From"] = f"{uid.title()} <{uid}@apache.org>"
        mail["To"] = release.email_to
        mail["Subject"] = f"Re: {release.vote_subject}"
        mail["Date"] = email.utils.formatdate(time.time(), usegmt=True)
        mail["Message-ID"] = f"<{uuid.uuid4()}@mail.example>"
        mail["In-Reply-To"] = mail["References"] = f"<{release.vote_message_id}>"
        mail["List-Id"] = f"<{release.email_to.replace('@', '.')}>"
        mail.set_content("+1 (binding)\n\nChecked the signatures and the licence.\n")
        return mail.as_bytes()

    # What happened.

    def reminders(self) -> collections.Counter[str]:
        """Mails the sink received, per recipient."""
        return collections.Counter(to for mail in self.smtp.received for to in mail.rcpt_tos)

    def resolve_calls(self) -> list[atr_http.RequestRecord]:
        """Every vote/resolve request the sandbox ATR answered."""
        return [r for r in self.atr.requests if r.path == "/api/vote/resolve"]

    def results_posted(self) -> collections.Counter[str]:
        """[RESULT] mails ATR posted (one per successful resolve), per list."""
        counter: collections.Counter[str] = collections.Counter()
        for mail in self.atr.posted:
            if b"Subject: [RESULT]" in mail.raw:
                counter[mail.list_address] += 1
        return counter

    async def holders(self) -> dict[str, str]:
        """Lease name → the instance holding it now."""
        found = {}
        for name in LEASES:
            owner = await instances.lease_owner(self.db, name)
            if owner is not None:
                found[name] = instances.instance_of(owner)
        return found

    async def pending_mail(self) -> int:
        """Outbox rows not settled yet, over every vote."""
        rows = [m for key in PROJECTS for m in await self.db.mails(f"{key}-1.0.0", PROJECTS.index(key) + 1)]
        return sum(1 for m in rows if m.state == "pending")

    # Waiting.

    async def until(self, check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 30.0) -> float:
        """Poll `check` until it holds; returns the seconds waited. Fails with the instances' logs otherwise."""
        started = time.monotonic()
        while True:
            outcome = check()
            if isinstance(outcome, Awaitable):
                outcome = await outcome
            if outcome:
                return time.monotonic() - started
            dead = [i for i in self.running if not i.alive and i.process is not None and i.process.returncode != -9]
            if dead or time.monotonic() - started > timeout:
                logs = "\n\n".join(
                    f"--- {i.name} ({i.process and i.process.returncode})\n{i.log_tail()}" for i in self.running
                )
                raise AssertionError(f"waited {timeout:.0f}s for {what}; instances died: {dead}\n{logs}")
            await asyncio.sleep(0.05)

    async def until_watching(self) -> None:
        """Every instance is up and holds its leases; then the votes open, and each is tracked with its thread."""

        async def up() -> bool:
            return _all_logged(self.running, "daemon.ready")() and len(await self.holders()) == len(LEASES)

        await self.until(up, "the instances to start and take the leases")
        await self.open_votes()

        async def tracked() -> bool:
            votes = await self.db.votes(open_only=True)
            return len(votes) == len(PROJECTS) and all(v.root_message_id for v in votes)

        await self.until(tracked, "the instances to track the ten votes")
        self.check_time_left()

    async def open_votes(self) -> None:
        """The ten votes start now, ending `ends_in_s` from now (72 hours after their start); ATR mails each [VOTE]."""
        now = time.time()
        for release in self.atr.state.releases.values():
            release.phase = atr_state.CANDIDATE
            release.vote_started = now - (72 * HOUR_S - self.ends_in_s)
        self.ends_at = now + self.ends_in_s
        await self.atr.announce_votes()

    def check_time_left(self) -> None:
        """Mail that arrives now must leave time to remind before the votes end (no reminder comes after)."""
        left = self.ends_at - time.time()
        assert left > 10, f"this machine is too slow for the test's timeline: the votes end in {left:.1f}s"

    async def until_settled(self, reminders: int) -> None:
        """`reminders` mails have reached the sink and nothing is left in the outbox."""
        await self.until(lambda: sum(self.reminders().values()) >= reminders, f"{reminders} reminders")

        async def settled() -> bool:
            return await self.pending_mail() == 0

        await self.until(settled, "an empty outbox")

    async def until_resolved(self) -> None:
        """Every vote was resolved through ATR, and ATR's [RESULT] went out."""
        left = self.ends_at - time.time()
        await self.until(lambda: len(self.results_posted()) == len(PROJECTS), "ten resolutions", timeout=left + 20)

    async def stop_all(self) -> dict[str, int]:
        """SIGTERM to every live instance; exit status per instance."""
        statuses = {}
        for instance in self.running:
            if instance.alive:
                statuses[instance.name] = await instance.stop()
        return statuses

    def check_exactly_once(self) -> None:
        """One reminder per email voter, none to anyone else; one resolve per vote, and no second attempt."""
        expected = {f"{uid}@apache.org" for key in PROJECTS for uid in email_voters(key)}
        sent = self.reminders()
        assert set(sent) == expected
        assert [to for to, count in sent.items() if count != 1] == []
        calls = self.resolve_calls()
        assert [r.status for r in calls] == [200] * len(PROJECTS)
        assert self.results_posted() == {f"dev@{key}.apache.org": 1 for key in PROJECTS}
        assert all(r.phase == "release_preview" for r in self.atr.state.releases.values())


@contextlib.asynccontextmanager
async def world(
    folder: pathlib.Path,
    database_url: str,
    smtp: SmtpSink,
    imap: dovecot.DovecotServer,
    imap_folder: str,
    ends_in_s: int,
) -> AsyncIterator[World]:
    """Start the stand-ins on this loop and an upgraded database; stop every instance at the end."""
    db = await store.open(database_url)
    await db.upgrade()
    archive = lists_http.PonyMailSandbox()
    await archive.start()
    atr = atr_http.AtrSandbox(atr_scenario.from_mapping(scenario(ends_in_s), time.time()), on_receipt=archive.add)
    # Not yet started (a draft in ATR) until `World.open_votes`.
    for release in atr.state.releases.values():
        release.phase = atr_state.DRAFT
    await atr.start()
    mailbox = instances.Mailbox(imap.host, imap.plain_port, imap.user, imap.password, imap_folder)
    env = World(folder, database_url, atr, archive, smtp, imap, mailbox, db, ends_in_s=ends_in_s)
    try:
        yield env
    finally:
        for instance in env.running:
            if instance.alive:
                instance.kill()
        await atr.stop()
        await archive.stop()
        await db.close()


@pytest.fixture
def new_database(postgres_server: postgres.PostgresServer) -> str:
    """A fresh database on the shared server (dropped with the session's others)."""
    return postgres_server.create_database("vw_instances")


# Keepers in this process ----------------------------------------------------------------------------------------


async def test_one_keeper_holds_a_lease_and_another_takes_it_over_within_the_ttl(new_database: str) -> None:
    ttl, heartbeat = datetime.timedelta(seconds=1), datetime.timedelta(milliseconds=250)
    first_db, second_db = await store.open(new_database), await store.open(new_database)
    await first_db.upgrade()
    first = leases.LeaseKeeper(first_db, leases.owner_id("a"), ["discovery"], ttl=ttl, heartbeat=heartbeat)
    second = leases.LeaseKeeper(second_db, leases.owner_id("b"), ["discovery"], ttl=ttl, heartbeat=heartbeat)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    beating: list[asyncio.Future[None]] = []
    try:
        await first.tick()
        await second.tick()
        assert (first.holds("discovery"), second.holds("discovery")) == (True, False)
        beating += [asyncio.ensure_future(first.run(stop_first)), asyncio.ensure_future(second.run(stop_second))]
        await asyncio.sleep(3 * ttl.total_seconds())
        # The holder renews: the other never gets it while it lives.
        assert (first.holds("discovery"), second.holds("discovery")) == (True, False)
        stop_first.set()
        stopped = time.monotonic()
        await second.held("discovery").wait()
        takeover = time.monotonic() - stopped
        # It stopped renewing without giving the lease up (as if killed): its own hold ends by the deadline.
        await asyncio.sleep(0.05)
        assert not first.holds("discovery")
        assert takeover <= ttl.total_seconds() + 0.2
        row = await second_db.lease("discovery")
        assert row is not None and row.owner == second.owner
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.gather(*beating)
        await second.release_all()
        await first_db.close()
        await second_db.close()


async def test_work_under_a_lease_is_cancelled_the_moment_the_lease_passes_to_another(new_database: str) -> None:
    ttl, heartbeat = datetime.timedelta(seconds=2), datetime.timedelta(milliseconds=200)
    db = await store.open(new_database)
    await db.upgrade()
    keeper = leases.LeaseKeeper(db, leases.owner_id("a"), ["imap:box"], ttl=ttl, heartbeat=heartbeat)
    stop = asyncio.Event()
    started = asyncio.Event()
    cancelled = asyncio.Event()
    beating = asyncio.ensure_future(keeper.run(stop))

    async def idle() -> str:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "finished"

    try:
        await keeper.tick()
        working = asyncio.ensure_future(keeper.run_under("imap:box", idle))
        await started.wait()
        # Another instance takes the lease (as if ours had expired while we were away).
        later = datetime.datetime.now(datetime.UTC) + ttl * 2
        assert await db.acquire_lease("imap:box", "thief:1:0", ttl * 10, now=later)
        taken = time.monotonic()
        assert await asyncio.wait_for(working, 2) is None
        assert cancelled.is_set()
        assert time.monotonic() - taken <= heartbeat.total_seconds() + 0.2
        assert not keeper.holds("imap:box")
        # Work is not even started while the lease is someone else's.
        assert await keeper.run_under("imap:box", idle) is None
    finally:
        stop.set()
        await beating
        await keeper.release_all()
        await db.close()


async def test_a_stopping_instance_gives_its_leases_up_and_a_solo_keeper_needs_no_database(new_database: str) -> None:
    ttl, heartbeat = datetime.timedelta(seconds=30), datetime.timedelta(seconds=10)
    db = await store.open(new_database)
    await db.upgrade()
    keeper = leases.LeaseKeeper(db, leases.owner_id("a"), ["discovery"], ttl=ttl, heartbeat=heartbeat)
    await keeper.tick()
    assert keeper.holds("discovery")
    await keeper.release_all()
    assert not keeper.holds("discovery")
    assert await db.lease("discovery") is None
    # A released keeper takes nothing again: the lease is free for the next instance at once.
    await keeper.tick()
    assert not keeper.holds("discovery")
    assert await db.acquire_lease("discovery", "next:1:0", ttl)
    await db.close()
    solo = leases.LeaseKeeper.solo()
    assert solo.holds("discovery") and solo.holds(leases.mailbox("any")) and not solo.shared
    assert await solo.run_under("discovery", lambda: asyncio.sleep(0, "done")) == "done"


# Real processes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3])
async def test_instances_on_one_database_remind_once_and_resolve_once(
    count: int,
    tmp_path: pathlib.Path,
    new_database: str,
    smtp_sink: SmtpSink,
    dovecot_server: dovecot.DovecotServer,
    imap_folder: str,
) -> None:
    async with world(tmp_path, new_database, smtp_sink, dovecot_server, imap_folder, ends_in_s=22) as env:
        running = env.start(count)
        await env.until_watching()
        delivered = env.vote_by_email((key, uid) for key in PROJECTS for uid in email_voters(key))
        await env.until_settled(delivered)
        await env.until_resolved()
        # Late duplicates would show up here.
        await asyncio.sleep(2)
        holders = await env.holders()
        # Only the mailbox's lease holder kept an IMAP connection; only the discovery holder polled ATR's votes.
        assert _logged_by(running, "imap.connected") == {holders[leases.mailbox("lists-mailbox")]}
        assert _logged_by(running, "discovery.vote") == {holders[leases.DISCOVERY]}
        statuses = await env.stop_all()
        env.check_exactly_once()
        assert statuses == {i.name: 0 for i in running}
        # Stopping gives the leases up, so that a standby need not wait for the TTL.
        assert [name for name in LEASES if await env.db.lease(name) is not None] == []


async def test_the_lease_holder_killed_mid_run_is_replaced_within_the_ttl_and_nothing_is_lost(
    tmp_path: pathlib.Path,
    new_database: str,
    smtp_sink: SmtpSink,
    dovecot_server: dovecot.DovecotServer,
    imap_folder: str,
) -> None:
    async with world(tmp_path, new_database, smtp_sink, dovecot_server, imap_folder, ends_in_s=30) as env:
        running = env.start(3)
        await env.until_watching()
        first = [(key, uid) for key in PROJECTS for uid in email_voters(key)[:3]]
        second = [(key, uid) for key in PROJECTS for uid in email_voters(key)[3:]]
        await env.until_settled(env.vote_by_email(first))
        holders = await env.holders()
        victim = next(i for i in running if i.name == holders[leases.mailbox("lists-mailbox")])
        held = [name for name, holder in holders.items() if holder == victim.name]
        victim.kill()
        killed = time.monotonic()
        # Mail arrives while nobody watches the mailbox: the next holder catches up from the saved cursor.
        env.vote_by_email(second)
        env.check_time_left()
        takeovers = {}
        for name in held:

            async def moved(lease: str = name) -> bool:
                owner = await instances.lease_owner(env.db, lease)
                return owner is not None and instances.instance_of(owner) != victim.name

            await env.until(moved, f"another instance to take {name}", timeout=TTL_S + 5)
            takeovers[name] = time.monotonic() - killed
        await env.until_settled(len(first) + len(second))
        await env.until_resolved()
        await asyncio.sleep(2)
        statuses = await env.stop_all()
        env.check_exactly_once()
        assert victim.process is not None and victim.process.returncode == -9
        assert statuses == {i.name: 0 for i in running if i is not victim}
        assert all(seconds <= TTL_S + 0.5 for seconds in takeovers.values()), takeovers
        print(
            f"\ntakeover after SIGKILL (ttl {TTL_S:.0f}s): " + ", ".join(f"{n} {s:.2f}s" for n, s in takeovers.items())
        )


async def test_every_instance_recovers_when_postgresql_comes_back(
    tmp_path: pathlib.Path,
    smtp_sink: SmtpSink,
    dovecot_server: dovecot.DovecotServer,
    imap_folder: str,
) -> None:
    try:
        cluster = postgres.start_cluster()
    except postgres.PostgresError as exc:
        pytest.fail(f"no throwaway PostgreSQL for the outage test: {exc}", pytrace=False)
    try:
        url = cluster.create_database("vw_outage")
        async with world(tmp_path, url, smtp_sink, dovecot_server, imap_folder, ends_in_s=36) as env:
            running = env.start(3)
            await env.until_watching()
            first = [(key, uid) for key in PROJECTS for uid in email_voters(key)[:2]]
            second = [(key, uid) for key in PROJECTS for uid in email_voters(key)[2:]]
            await env.until_settled(env.vote_by_email(first))
            cluster.stop()
            await asyncio.sleep(TTL_S + 1.5)
            assert all(i.alive for i in running)
            # Nobody can renew: every holder stopped its singleton work at its deadline.
            assert _logged_by(running, "lease.lost") == set((await _holders_before(env, running)).values())
            cluster.start()
            restarted = time.monotonic()
            env.vote_by_email(second)
            env.check_time_left()
            await env.until(_all_logged(running, "lease.heartbeat_recovered"), "every instance to reach the database")
            recovered = time.monotonic() - restarted
            await env.until(lambda: _leases_held(env), "the leases to be held again")
            await env.until_settled(len(first) + len(second))
            await env.until_resolved()
            await asyncio.sleep(2)
            assert all(i.alive for i in running)
            statuses = await env.stop_all()
            env.check_exactly_once()
            assert statuses == {i.name: 0 for i in running}
            assert _logged_by(running, "lease.heartbeat_failed") == {i.name for i in running}
            assert recovered < TTL_S + 3
    finally:
        postgres.cleanup(cluster)


async def test_a_second_instance_on_one_sqlite_file_is_refused(tmp_path: pathlib.Path) -> None:
    pat = tmp_path / "pat"
    pat.write_text(f"{PAT}\n")
    pat.chmod(0o600)
    (tmp_path / "lists.mbox").write_bytes(b"")
    atr = atr_http.AtrSandbox(atr_scenario.from_mapping({"atr": {"pats": {"watcher": PAT}}}, time.time()))
    await atr.start()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[watcher]
state_dir = "{tmp_path / "state"}"
log_format = "json"
[atr]
base_url = "{atr.url}"
uid = "watcher"
pat_file = "{pat}"
[[sources]]
kind = "mbox"
path = "{tmp_path / "lists.mbox"}"
[reminders]
enabled = false
[resolve]
enabled = false
"""
    )
    db = await store.open(f"sqlite:///{tmp_path / 'state' / 'vote-watcher.db'}")
    await db.upgrade()
    await db.close()
    first = instances.Instance("first", config)
    second = instances.Instance("second", config)
    first.start()
    try:
        deadline = time.monotonic() + 30
        while "daemon.ready" not in {line.get("event") for line in first.events()}:
            assert time.monotonic() < deadline and first.alive, first.log_tail()
            await asyncio.sleep(0.05)
        second.start()
        assert second.process is not None
        status = await asyncio.get_running_loop().run_in_executor(None, second.process.wait, 30)
        assert status == 3
        text = second.log_path.read_text()
        assert f"another vote-watcher (process {first.pid}) is using" in text
        assert "use PostgreSQL (watcher.database_url) to run several" in text
        assert first.alive
    finally:
        assert await first.stop() == 0
        await atr.stop()


# Helpers --------------------------------------------------------------------------------------------------------


def _logged_by(running: list[instances.Instance], event: str) -> set[str]:
    """The instances whose log has this event."""
    return {i.name for i in running if any(line.get("event") == event for line in i.events())}


def _all_logged(running: list[instances.Instance], event: str) -> Callable[[], bool]:
    return lambda: _logged_by(running, event) == {i.name for i in running}


async def _leases_held(env: World) -> bool:
    return len(await env.holders()) == len(LEASES)


async def _holders_before(env: World, running: list[instances.Instance]) -> dict[str, str]:
    """Who held each lease before the outage, from the logs (the table cannot be read now)."""
    held: dict[str, str] = {}
    for instance in running:
        for line in instance.events():
            if line.get("event") == "lease.acquired":
                held[str(line["lease"])] = instance.name
    return held
