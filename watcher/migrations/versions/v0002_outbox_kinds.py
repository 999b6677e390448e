"""The outbox carries release-manager notices beside reminders; indexes for claiming, daily caps and threading.

A row gets a `kind` ("reminder" for every existing row), and its uniqueness moves from
(release, vote_seq, voter) to (kind, release, vote_seq, recipient): still one reminder per voter
(a reminder goes to its voter), and now one notice of each kind per release manager.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OLD_UNIQUE = "uq_outbox_release_key_vote_seq_voter"
_NEW_UNIQUE = "uq_outbox_kind_release_key_vote_seq_recipient"


def upgrade() -> None:
    """Add the kind, swap the unique constraint, add the indexes."""
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("kind", sa.Text, nullable=False, server_default="reminder"))
        batch.drop_constraint(_OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(_NEW_UNIQUE, ["kind", "release_key", "vote_seq", "recipient"])
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_recipient_sent_at", "outbox", ["recipient", "sent_at"])
    op.create_index("ix_messages_in_reply_to", "messages", ["in_reply_to"])


def downgrade() -> None:
    """Back to reminders only (notices are dropped: the old constraint cannot hold them)."""
    op.drop_index("ix_messages_in_reply_to", "messages")
    op.drop_index("ix_outbox_recipient_sent_at", "outbox")
    op.drop_index("ix_outbox_state_next_attempt_at", "outbox")
    op.execute(sa.text("DELETE FROM outbox WHERE kind <> 'reminder'"))
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(_NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(_OLD_UNIQUE, ["release_key", "vote_seq", "voter"])
        batch.drop_column("kind")
