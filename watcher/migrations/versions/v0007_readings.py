"""Messages carry their reading (`watcher.core.digest.Digest` as JSON), made once when the message is taken, so that a
re-tally combines stored readings instead of parsing the whole thread again. Old rows have none: each is read once,
at its next tally, and its reading stored.

Revision ID: 0007
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the reading (empty for the existing messages: read again once)."""
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reading", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop it (every tally parses its thread again)."""
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("reading")
