"""ATR's JWT and the PAT exchanges, kept in the state database and shared by every process.

`run`, `run --once` from cron and every instance read one JWT (it lives 30 minutes), and count
their PAT exchanges together against ATR's 10 an hour (reference/atr.md §10.3, §10.4).

Revision ID: 0003
Revises: 0006 (chained after main's 0006 at the merge; written against 0002)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `atr_tokens` and `atr_exchanges`."""
    op.create_table(
        "atr_tokens",
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("jwt", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_atr_tokens"),
    )
    op.create_table(
        "atr_exchanges",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_atr_exchanges"),
    )
    op.create_index("ix_atr_exchanges_account_at", "atr_exchanges", ["account", "at"])


def downgrade() -> None:
    """Drop them (the next run exchanges the PAT again)."""
    op.drop_index("ix_atr_exchanges_account_at", "atr_exchanges")
    op.drop_table("atr_exchanges")
    op.drop_table("atr_tokens")
