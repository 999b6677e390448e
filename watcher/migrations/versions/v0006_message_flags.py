"""Messages carry a flag: `too_large` (over `watcher.max_message_bytes`) or `unreadable` (its reading passed the
worker's time limit, or the worker died on it), with the reason and the sender's address, so that it is listed for
the release manager and never read again (a restart does not redo it).

Revision ID: 0006
Revises: 0005 (written on 0002; chained after 0005 when main was merged)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the flag, its detail and the sender to every message ("" for the existing ones)."""
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("flag", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("flag_detail", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("sender", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    """Drop them (flagged messages would then be read again)."""
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("sender")
        batch.drop_column("flag_detail")
        batch.drop_column("flag")
