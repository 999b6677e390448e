"""Real servers on loopback for the tests and bench/: Dovecot, PostgreSQL, daemon instances, hostile mail.

Not part of the package: the daemon never imports them.
"""
