"""The initial schema: messages, tracked votes and threads, voters' votes, cursors, reminders, resolutions, leases.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Text, nullable=False, server_default="")


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "messages",
        sa.Column("key", sa.Text, nullable=False),
        _text("message_id"),
        _text("list_id"),
        _text("subject"),
        _time("date", nullable=True),
        _text("in_reply_to"),
        _text("references"),
        sa.Column("raw", sa.LargeBinary, nullable=True),
        _text("source"),
        _time("stored_at"),
        sa.PrimaryKeyConstraint("key", name="pk_messages"),
    )
    op.create_index("ix_messages_list_id", "messages", ["list_id"])
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("release_key", sa.Text, nullable=False),
        sa.Column("project", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("vote_seq", sa.Integer, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("vote_round", sa.Integer, nullable=True),
        _text("committee"),
        _text("list_address"),
        _text("subject"),
        _text("root_message_id"),
        _time("vote_started", nullable=True),
        _time("vote_end", nullable=True),
        _text("phase"),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("extra", sa.JSON, nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_votes"),
        sa.UniqueConstraint("release_key", "vote_seq", name="uq_votes_release_key_vote_seq"),
    )
    op.create_index("ix_votes_status", "votes", ["status"])
    op.create_table(
        "vote_messages",
        sa.Column("vote_id", sa.Integer, nullable=False),
        sa.Column("message_key", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        _time("added_at"),
        sa.PrimaryKeyConstraint("vote_id", "message_key", name="pk_vote_messages"),
        sa.ForeignKeyConstraint(["vote_id"], ["votes.id"], name="fk_vote_messages_vote_id_votes", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_key"], ["messages.key"], name="fk_vote_messages_message_key_messages"),
    )
    op.create_index("ix_vote_messages_message_key", "vote_messages", ["message_key"])
    op.create_table(
        "voter_votes",
        sa.Column("vote_id", sa.Integer, nullable=False),
        sa.Column("voter", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        _text("message_key"),
        _time("date", nullable=True),
        _text("quotation"),
        _text("confidence"),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("updated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        _time("recorded_at"),
        sa.PrimaryKeyConstraint("vote_id", "voter", name="pk_voter_votes"),
        sa.ForeignKeyConstraint(["vote_id"], ["votes.id"], name="fk_voter_votes_vote_id_votes", ondelete="CASCADE"),
    )
    op.create_table(
        "cursors",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("validity", sa.BigInteger, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("source", "folder", name="pk_cursors"),
    )
    # The reminders outbox: one row per (release, vote_seq, voter), written before the mail is sent.
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("release_key", sa.Text, nullable=False),
        sa.Column("vote_seq", sa.Integer, nullable=False),
        _text("voter"),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _text("last_error"),
        _time("next_attempt_at"),
        _text("claimed_by"),
        _time("claimed_until", nullable=True),
        _time("sent_at", nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("release_key", "vote_seq", "voter", name="uq_outbox_release_key_vote_seq_voter"),
    )
    op.create_table(
        "resolutions",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("release_key", sa.Text, nullable=False),
        sa.Column("vote_seq", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        _text("resolution"),
        _text("detail"),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_resolutions"),
        sa.UniqueConstraint("release_key", "vote_seq", name="uq_resolutions_release_key_vote_seq"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        _time("expires_at"),
        _time("acquired_at"),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    """Drop every table."""
    for table in ("leases", "resolutions", "outbox", "cursors", "voter_votes", "vote_messages", "votes", "messages"):
        op.drop_table(table)
