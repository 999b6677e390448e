"""Decisions per voter (why a reminder was or was not sent) and what each instance last observed.

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Text, nullable=False, server_default="")


def upgrade() -> None:
    """Create the two tables."""
    op.create_table(
        "decisions",
        sa.Column("release_key", sa.Text, nullable=False),
        sa.Column("vote_seq", sa.Integer, nullable=False),
        sa.Column("voter", sa.Text, nullable=False),
        _text("email_vote"),
        _text("email_status"),
        _text("email_message_id"),
        _time("email_date", nullable=True),
        _text("ballot"),
        _time("atr_read_at", nullable=True),
        sa.Column("decision", sa.Text, nullable=False),
        _text("reason"),
        _text("detail"),
        _time("decided_at"),
        sa.PrimaryKeyConstraint("release_key", "vote_seq", "voter", name="pk_decisions"),
    )
    op.create_table(
        "observations",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("instance", sa.Text, nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("key", "instance", name="pk_observations"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("observations")
    op.drop_table("decisions")
