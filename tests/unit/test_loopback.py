"""The one loopback rule, on the cases the five copies it replaced answered differently."""

import pytest

import watcher.core.loopback as loopback


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
