"""The one loopback rule, on the cases the five copies it replaced answered differently."""

import pytest

import watcher.atr.client as client
import watcher.config as config
import watcher.core.loopback as loopback
import watcher.mail.mailer as mailer
import watcher.services.secrets as secrets
import watcher.sources.ponymail as ponymail


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        " localhost ",
        "mail.localhost",  # RFC 6761 §6.3: every name under .localhost
        "a.b.localhost",
        "127.0.0.1",
        "127.3.2.1",  # all of 127.0.0.0/8
        "127.255.255.254",
        "::1",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "[::ffff:127.0.0.2]",
    ],
)
def test_loopback_hosts(host: str) -> None:
    assert loopback.is_loopback(host) is True


@pytest.mark.parametrize(
    "host",
    [
        "",
        "[]",
        "localhost.localdomain",  # a name /etc/hosts may point anywhere
        "localhost.example.org",
        "notlocalhost",
        "xlocalhost",
        "lists.apache.org",
        "10.0.0.1",
        "128.0.0.1",
        "::2",
        "::ffff:10.0.0.1",
        "[127.0.0.1",
        "[localhost]",  # brackets hold an IP literal only
        "127.1",  # inet_aton shorthand: not an IP literal
        "0.0.0.0",
    ],
)
def test_other_hosts(host: str) -> None:
    assert loopback.is_loopback(host) is False


def _edges_accept(host: str) -> list[bool]:
    """Whether each edge lets plain text go to `host`: the ATR client, the archive, SMTP, IMAP's configuration."""
    url = f"http://{host}:8080/"
    answers = []
    for check in (client.checked_base_url, ponymail.check_url):
        try:
            check(url)
            answers.append(True)
        except ValueError:
            answers.append(False)
    try:
        mailer.SmtpMailer(mailer.SmtpSettings(host.strip("[]"), 25, tls="none"))
        answers.append(True)
    except mailer.MailerError:
        answers.append(False)
    # The IMAP source takes its settings as given: its configuration entry is what refuses.
    entry = config.ImapSection(kind="imap", host=host, user="watcher", password=secrets.Secret("pw"), tls="none")
    answers.append(not any(problem.path == "tls" for problem in entry.check()))
    return answers


@pytest.mark.parametrize(
    ("host", "accepted"),
    [
        ("mail.localhost", True),  # the IMAP and config copies took it, the others did not
        ("[::1]", True),
        ("127.0.0.2", True),
        ("localhost.localdomain", False),  # the mailer and archive copies took it, the others did not
        ("lists.apache.org", False),
    ],
)
def test_every_edge_gives_the_same_answer(host: str, accepted: bool) -> None:
    assert _edges_accept(host) == [accepted] * 4
