"""The mailer and the outbox against a real aiosmtpd sink on loopback (plain, STARTTLS, implicit TLS)."""

from __future__ import annotations

import dataclasses
import datetime
import email
import email.message
import email.policy
import pathlib
import random
import socket

import pytest
import trustme

import watcher.mail.mailer as mailer
import watcher.mail.outbox as outbox
import watcher.mail.render as render
import watcher.services.secrets as secrets
import watcher.store.records as records
from tests.fixtures.smtp import PASSWORD, USER, SmtpSink, Stage

T0 = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
SENDER = "Vote Watcher <vote-watcher@apache.org>"
TEMPLATES = render.Templates()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, delta: datetime.timedelta) -> None:
        self.now += delta


def reminder(uid: str, message_id: str | None = None) -> email.message.EmailMessage:
    context = render.ReminderContext(
        voter_uid=uid,
        project="foo",
        version="1.0.0",
        release_key="foo-1.0.0",
        vote_seq=3,
        vote_value="+1",
        atr_host="release-test.apache.org",
        quotation="+1 (binding)",
        vote_end=T0 + datetime.timedelta(hours=72),
    )
    mid = message_id or outbox.new_message_id("vote-watcher.test")
    headers = render.Headers(sender=SENDER, to_uid=uid, message_id=mid, date=T0)
    return TEMPLATES.reminder(context, headers)


def add(store: outbox.MemoryOutboxStore, uid: str, *, release_key: str = "foo-1.0.0") -> records.OutboxRow:
    msg = reminder(uid)
    row = store.add(uid, msg.as_bytes(), str(msg["Message-ID"]), release_key=release_key, vote_seq=3, now=T0)
    assert row is not None
    return row


def plain(sink: SmtpSink) -> mailer.SmtpMailer:
    return mailer.SmtpMailer(mailer.SmtpSettings(sink.host, sink.port, tls="none"))


def make_outbox(
    store: outbox.MemoryOutboxStore, sender: mailer.Mailer, clock: Clock, **policy: object
) -> outbox.Outbox:
    settings = dataclasses.replace(outbox.OutboxPolicy(daily_cap=None), **policy)
    return outbox.Outbox(store, sender, settings, owner="test", clock=clock, rng=random.Random(7))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_reminder_is_sent_to_the_uid_only(smtp_sink: SmtpSink) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    deliveries = await make_outbox(store, plain(smtp_sink), clock).run_once()
    assert [(d.result, d.recipient) for d in deliveries] == [("sent", "alice")]
    [mail] = await smtp_sink.wait_for(1)
    assert mail.rcpt_tos == ("alice@apache.org",)
    assert mail.mail_from == "vote-watcher@apache.org"
    assert mail.message["Message-ID"] == row.message_id
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert [a.addr_spec for a in mail.message["To"].addresses] == ["alice@apache.org"]
    assert mail.message["Cc"] is None
    assert store.status(row.id)[0] == records.OutboxState.SENT
    assert await make_outbox(store, plain(smtp_sink), clock).run_once() == []


@pytest.mark.parametrize(
    "to",
    ["mallory@evil.example", "alice@apache.org, mallory@evil.example", "dev@foo.apache.org", "Alice@apache.org"],
)
async def test_mail_to_anything_but_one_uid_at_apache_org_is_refused(smtp_sink: SmtpSink, to: str) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "vote-watcher@apache.org"
    msg["To"] = to
    msg["Subject"] = "x"
    msg["Message-ID"] = "<x@y>"
    msg.set_content("x\n")
    result = await plain(smtp_sink).send(msg)
    assert result.outcome == mailer.Outcome.PERMANENT
    assert "refused" in result.detail
    assert smtp_sink.received == []


async def test_bcc_is_refused(smtp_sink: SmtpSink) -> None:
    msg = reminder("alice")
    msg["Bcc"] = "mallory@evil.example"
    result = await plain(smtp_sink).send(msg)
    assert result.outcome == mailer.Outcome.PERMANENT
    assert smtp_sink.received == []


async def test_row_whose_mail_goes_elsewhere_fails(smtp_sink: SmtpSink) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    msg = reminder("alice")
    row = store.add("bob", msg.as_bytes(), str(msg["Message-ID"]), now=T0)
    assert row is not None
    [delivery] = await make_outbox(store, plain(smtp_sink), clock).run_once()
    assert delivery.result == "failed"
    assert "alice@apache.org" in delivery.detail
    assert smtp_sink.received == []


@pytest.mark.parametrize("reply", ["451 4.3.0 Try again later", "421 4.3.2 Service not available"])
async def test_transient_replies_are_retried_with_backoff_then_sent(smtp_sink: SmtpSink, reply: str) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    smtp_sink.fail(reply, times=2)
    box = make_outbox(store, plain(smtp_sink), clock)
    base = box.policy.base_delay

    [first] = await box.run_once()
    assert first.result == "retry"
    assert first.next_at is not None
    assert clock.now + base / 2 <= first.next_at <= clock.now + base
    assert await box.run_once() == []  # not due before next_at

    clock.now = first.next_at
    [second] = await box.run_once()
    assert second.result == "retry"
    assert second.next_at is not None
    assert clock.now + base <= second.next_at <= clock.now + 2 * base

    clock.now = second.next_at
    [third] = await box.run_once()
    assert third.result == "sent"
    assert len(await smtp_sink.wait_for(1)) == 1
    assert smtp_sink.handler.refused == [reply, reply]
    status, attempts, _, _ = store.status(row.id)
    assert (status, attempts) == (records.OutboxState.SENT, 2)


@pytest.mark.parametrize("reply", ["550 5.1.1 No such user", "551 5.1.6 User not local", "553 5.1.3 Bad address"])
async def test_recipient_refusal_at_rcpt_fails_without_retry(smtp_sink: SmtpSink, reply: str) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    smtp_sink.fail(reply, times=5, stage="RCPT")
    box = make_outbox(store, plain(smtp_sink), clock)
    [delivery] = await box.run_once()
    assert delivery.result == "failed"
    code = reply[:3]
    assert code in delivery.detail
    status, attempts, error, _ = store.status(row.id)
    assert (status, attempts) == (records.OutboxState.FAILED, 0)
    assert code in error
    clock.advance(datetime.timedelta(days=2))
    assert await box.run_once() == []
    assert smtp_sink.handler.refused == [reply]
    assert smtp_sink.received == []


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("DATA", "554 5.7.1 Relaying denied by policy"),
        ("DATA", "550 5.7.1 Message rejected by local policy"),
        ("DATA", "451 4.3.0 Try again later"),
        ("RCPT", "554 5.7.1 Relay access denied"),
        ("RCPT", "452 4.2.2 Mailbox full"),
        ("RCPT", "552 5.2.2 Over quota"),
    ],
)
async def test_answers_about_the_relay_keep_the_mail_pending(smtp_sink: SmtpSink, stage: Stage, reply: str) -> None:
    # A misconfigured relay (554 relay policy) is not the recipient's fault: the mail waits for it.
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    smtp_sink.fail(reply, times=3, stage=stage)
    box = make_outbox(store, plain(smtp_sink), clock)
    results = []
    for _ in range(4):
        results += [d.result for d in await box.run_once()]
        clock.advance(box.policy.max_delay)
    assert results == ["retry", "retry", "retry", "sent"]
    assert store.status(row.id)[:2] == (records.OutboxState.SENT, 3)
    [mail] = smtp_sink.received
    assert mail.message["Message-ID"] == row.message_id


async def test_relay_down_for_six_hours_keeps_the_mail_pending_with_capped_backoff(smtp_sink: SmtpSink) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    down = mailer.SmtpMailer(mailer.SmtpSettings("127.0.0.1", closed_port(), tls="none"))
    box = make_outbox(store, down, clock)
    waits: list[datetime.timedelta] = []
    start = clock.now
    while clock.now - start < datetime.timedelta(hours=6):
        deliveries = await box.run_once()
        for delivery in deliveries:
            assert delivery.result == "retry"
            assert delivery.next_at is not None
            waits.append(delivery.next_at - clock.now)
        clock.advance(datetime.timedelta(minutes=1))
    status, attempts, error, _ = store.status(row.id)
    assert status == records.OutboxState.PENDING
    assert max(waits) <= box.policy.max_delay
    assert attempts == len(waits) >= 20  # capped: it kept trying all along, not once an hour
    assert "Connect" in error or "refused" in error.lower()
    box.mailer = plain(smtp_sink)
    clock.advance(box.policy.max_delay)
    assert [d.result for d in await box.run_once()] == ["sent"]
    assert len(smtp_sink.received) == 1


async def test_slow_end_of_data_answer_within_data_timeout_is_one_mail(smtp_sink: SmtpSink) -> None:
    # The relay takes 1.5 s to answer the end of DATA; the command timeout is 0.5 s, DATA's own 5 s.
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    smtp_sink.handler.data_delay_s = 1.5
    seconds = datetime.timedelta(seconds=1)
    relay = mailer.SmtpMailer(
        mailer.SmtpSettings(smtp_sink.host, smtp_sink.port, tls="none", timeout=seconds / 2, data_timeout=5 * seconds)
    )
    [delivery] = await make_outbox(store, relay, clock).run_once()
    assert delivery.result == "sent", delivery.detail
    assert not delivery.answer_lost
    assert store.status(row.id)[0] == records.OutboxState.SENT
    assert len(smtp_sink.received) == 1


async def test_lost_end_of_data_answer_is_counted_and_resent_with_the_same_message_id(smtp_sink: SmtpSink) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    smtp_sink.handler.data_delay_s = 1.5
    seconds = datetime.timedelta(seconds=1)
    relay = mailer.SmtpMailer(
        mailer.SmtpSettings(smtp_sink.host, smtp_sink.port, tls="none", timeout=seconds / 2, data_timeout=seconds / 2)
    )
    box = make_outbox(store, relay, clock)
    [lost] = await box.run_once()
    assert (lost.result, lost.answer_lost) == ("retry", True)
    assert "answer to DATA lost" in lost.detail
    assert store.status(row.id)[:2] == (records.OutboxState.PENDING, 1)
    smtp_sink.handler.data_delay_s = 0
    clock.advance(box.policy.max_delay)
    [again] = await box.run_once()
    assert again.result == "sent"
    mails = await smtp_sink.wait_for(2)
    assert [m.message["Message-ID"] for m in mails] == [row.message_id, row.message_id]


async def test_silent_relay_times_out_as_transient() -> None:
    # A listener that never accepts: the connection opens (backlog) but no greeting ever comes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        settings = mailer.SmtpSettings(
            "127.0.0.1", listener.getsockname()[1], tls="none", timeout=datetime.timedelta(seconds=0.3)
        )
        result = await mailer.SmtpMailer(settings).send(reminder("alice"))
    assert result.outcome == mailer.Outcome.TRANSIENT
    assert "Timeout" in result.detail


async def test_daily_cap_defers_the_rest(smtp_sink: SmtpSink) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    for release in ("a-1", "b-1", "c-1"):
        add(store, "alice", release_key=release)
    add(store, "bob")
    box = make_outbox(store, plain(smtp_sink), clock, daily_cap=2)
    deliveries = await box.run_once()
    assert [(d.recipient, d.result) for d in deliveries] == [
        ("alice", "sent"),
        ("alice", "sent"),
        ("alice", "deferred"),
        ("bob", "sent"),
    ]
    assert len(smtp_sink.to("alice@apache.org")) == 2
    assert len(smtp_sink.to("bob@apache.org")) == 1
    deferred = deliveries[2]
    assert deferred.next_at == clock.now + box.policy.cap_retry
    assert store.status(deferred.row_id)[1] == 0  # a deferral is not an attempt

    clock.now = deferred.next_at
    assert [d.result for d in await box.run_once()] == ["deferred"]
    clock.advance(datetime.timedelta(days=1))
    assert [d.result for d in await box.run_once()] == ["sent"]
    assert len(smtp_sink.to("alice@apache.org")) == 3


async def test_opted_out_recipient_is_skipped(smtp_sink: SmtpSink) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    carol = add(store, "carol")
    add(store, "dave")
    box = make_outbox(store, plain(smtp_sink), clock, opt_out=frozenset({"carol"}))
    assert [(d.recipient, d.result) for d in await box.run_once()] == [("carol", "skipped"), ("dave", "sent")]
    assert store.status(carol.id)[0] == records.OutboxState.SKIPPED
    assert smtp_sink.to("carol@apache.org") == []
    assert len(smtp_sink.to("dave@apache.org")) == 1


async def test_dry_run_writes_eml_files_and_sends_nothing(smtp_sink: SmtpSink, tmp_path: pathlib.Path) -> None:
    store, clock = outbox.MemoryOutboxStore(), Clock()
    row = add(store, "alice")
    folder = tmp_path / "dry-run"
    dry = mailer.DryRunMailer(folder)
    [delivery] = await make_outbox(store, dry, clock).run_once()
    assert delivery.result == "sent"
    [path] = folder.iterdir()
    assert path.name == row.message_id.strip("<>") + ".eml"
    written = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert written["Message-ID"] == row.message_id
    assert [a.addr_spec for a in written["To"].addresses] == ["alice@apache.org"]
    # The same Message-ID written again replaces the file.
    msg = outbox.message_of(row)
    assert isinstance(msg, email.message.EmailMessage)
    assert (await dry.send(msg)).sent
    assert len(list(folder.iterdir())) == 1
    assert smtp_sink.received == []


async def test_dry_run_refuses_what_a_real_send_refuses(tmp_path: pathlib.Path) -> None:
    msg = reminder("alice")
    msg.replace_header("To", "mallory@evil.example")
    result = await mailer.DryRunMailer(tmp_path).send(msg)
    assert result.outcome == mailer.Outcome.PERMANENT
    assert list(tmp_path.iterdir()) == []


def tls_settings(sink: SmtpSink, tls: mailer.Security, **changes: object) -> mailer.SmtpSettings:
    settings = mailer.SmtpSettings(
        sink.host, sink.port, tls=tls, user=USER, password=secrets.Secret(PASSWORD), ca_file=sink.ca_file
    )
    return dataclasses.replace(settings, **changes)


async def test_starttls_with_verified_certificate_and_login(smtp_starttls_sink: SmtpSink) -> None:
    relay = mailer.SmtpMailer(tls_settings(smtp_starttls_sink, "starttls"))
    result = await relay.send(reminder("alice"))
    assert result.sent, result.detail
    [mail] = await smtp_starttls_sink.wait_for(1)
    assert mail.authenticated_as == USER
    assert mail.rcpt_tos == ("alice@apache.org",)


async def test_implicit_tls_with_verified_certificate(smtp_implicit_tls_sink: SmtpSink) -> None:
    relay = mailer.SmtpMailer(tls_settings(smtp_implicit_tls_sink, "implicit"))
    result = await relay.send(reminder("alice"))
    assert result.sent, result.detail
    assert len(await smtp_implicit_tls_sink.wait_for(1)) == 1


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_certificate_from_another_ca_is_refused(
    tmp_path: pathlib.Path, smtp_starttls_sink: SmtpSink, smtp_implicit_tls_sink: SmtpSink, tls: mailer.Security
) -> None:
    sink = smtp_starttls_sink if tls == "starttls" else smtp_implicit_tls_sink
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    relay = mailer.SmtpMailer(tls_settings(sink, tls, ca_file=other))
    result = await relay.send(reminder("alice"))
    assert result.outcome == mailer.Outcome.TRANSIENT
    assert "certificate verify failed" in result.detail.lower()
    assert sink.received == []


async def test_system_cas_do_not_trust_a_private_ca(smtp_starttls_sink: SmtpSink) -> None:
    relay = mailer.SmtpMailer(tls_settings(smtp_starttls_sink, "starttls", ca_file=None))
    result = await relay.send(reminder("alice"))
    assert result.outcome == mailer.Outcome.TRANSIENT
    assert smtp_starttls_sink.received == []


async def test_starttls_required_but_not_offered_sends_nothing(smtp_sink: SmtpSink) -> None:
    relay = mailer.SmtpMailer(mailer.SmtpSettings(smtp_sink.host, smtp_sink.port, tls="starttls"))
    result = await relay.send(reminder("alice"))
    assert result.outcome == mailer.Outcome.TRANSIENT
    assert smtp_sink.received == []


async def test_wrong_password_is_transient_and_never_shown(smtp_starttls_sink: SmtpSink) -> None:
    wrong = "not-the-password-81x"
    settings = tls_settings(smtp_starttls_sink, "starttls", password=secrets.Secret(wrong))
    relay = mailer.SmtpMailer(settings)
    result = await relay.send(reminder("alice"))
    assert result.outcome == mailer.Outcome.TRANSIENT
    assert result.code == 535
    for text in (result.detail, repr(result), repr(settings), repr(relay), str(settings)):
        assert wrong not in text
    assert smtp_starttls_sink.received == []


@pytest.mark.parametrize("host", ["mail.example.org", "10.0.0.1", "::2"])
def test_plain_text_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(mailer.MailerError, match="loopback"):
        mailer.SmtpMailer(mailer.SmtpSettings(host, 25, tls="none"))


def test_unreadable_ca_file_fails_at_start(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(mailer.MailerError, match="CA file"):
        mailer.SmtpMailer(mailer.SmtpSettings("relay.example.org", ca_file=bad))


async def test_crash_after_send_resends_the_same_message_id(smtp_sink: SmtpSink) -> None:
    store, clock = outbox.MemoryOutboxStore(lease=datetime.timedelta(minutes=5)), Clock()
    row = add(store, "alice")
    # The same key cannot be written twice: no second reminder with a new Message-ID.
    assert store.add("alice", reminder("alice").as_bytes(), "<other@x>", release_key="foo-1.0.0", vote_seq=3) is None

    # Instance A claims the row, the relay accepts it, and A dies before mark_sent.
    [claimed] = await store.claim_due(clock.now, 10, "instance-a")
    msg = outbox.message_of(claimed)
    assert isinstance(msg, email.message.EmailMessage)
    assert (await plain(smtp_sink).send(msg)).sent
    assert await store.claim_due(clock.now, 10, "instance-b") == []  # still under A's claim

    clock.advance(datetime.timedelta(minutes=6))
    box_b = outbox.Outbox(store, plain(smtp_sink), outbox.OutboxPolicy(), owner="instance-b", clock=clock)
    assert [d.result for d in await box_b.run_once()] == ["sent"]
    mails = await smtp_sink.wait_for(2)
    assert [m.message["Message-ID"] for m in mails] == [row.message_id, row.message_id]
    assert mails[0].content == mails[1].content
    assert await box_b.run_once() == []


def test_backoff_doubles_within_jitter_and_is_capped() -> None:
    policy = outbox.OutboxPolicy(base_delay=datetime.timedelta(seconds=10), max_delay=datetime.timedelta(seconds=60))
    rng = random.Random(1)
    for attempts, full in [(1, 10), (2, 20), (3, 40), (4, 60), (10, 60), (200, 60)]:
        for _ in range(50):
            wait = outbox.retry_delay(attempts, policy, rng).total_seconds()
            assert full / 2 <= wait <= full
