"""Shared test configuration: fixtures for real servers live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.corpus",
    "tests.fixtures.ponymail",
    "tests.fixtures.dovecot",
    "tests.fixtures.smtp",
    "tests.fixtures.atr",
    "tests.fixtures.postgres",
    "tests.fixtures.e2e",
]
