"""The state database's tables (SQLAlchemy Core). The migrations in `watcher/migrations/` build exactly these."""

from __future__ import annotations

import datetime
from typing import Final

import sqlalchemy as sa

import watcher.core.lifecycle as lifecycle

# Constraint and index names are fixed by convention, so that migrations can name them on every backend.
NAMING: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.types.TypeDecorator[datetime.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps naive UTC text; it comes back aware)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime.datetime | None, dialect: sa.Dialect) -> datetime.datetime | None:
        """Refuse naive times (their zone is a guess); store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime.datetime | None, dialect: sa.Dialect) -> datetime.datetime | None:
        """Aware UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


class StatusColumn(sa.types.TypeDecorator[lifecycle.VoteStatus]):
    """A tracked vote's `lifecycle.VoteStatus`, stored as its string value (`open`, `closed`, ...)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: lifecycle.VoteStatus | str | None, dialect: sa.Dialect) -> str | None:
        """The status's value; a string that names no status is refused."""
        return None if value is None else lifecycle.VoteStatus(value).value

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> lifecycle.VoteStatus | None:
        """The status the stored string names."""
        return None if value is None else lifecycle.VoteStatus(value)


metadata: Final = sa.MetaData(naming_convention=NAMING)

messages: Final = sa.Table(
    "messages",
    metadata,
    # Message-ID without angle brackets, else "sha256:<hex>" of the bytes (`watcher.core.message.content_key`).
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("message_id", sa.Text, nullable=False, server_default=""),
    sa.Column("list_id", sa.Text, nullable=False, server_default=""),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("date", UtcDateTime, nullable=True),
    sa.Column("in_reply_to", sa.Text, nullable=False, server_default=""),
    # Message-IDs of the References header, separated by spaces.
    sa.Column("references", sa.Text, nullable=False, server_default=""),
    # Kept for messages of vote threads; NULL for the rest of the list traffic (only seen, for de-duplication).
    sa.Column("raw", sa.LargeBinary, nullable=True),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("stored_at", UtcDateTime, nullable=False),
    # "too_large" or "unreadable": never parsed (again); listed for the release manager with `flag_detail`.
    sa.Column("flag", sa.Text, nullable=False, server_default=""),
    sa.Column("flag_detail", sa.Text, nullable=False, server_default=""),
    # The From address of a flagged message, read from its header block only.
    sa.Column("sender", sa.Text, nullable=False, server_default=""),
    # The message read once (`digest.Digest` as JSON); NULL until read (migration 0007).
    sa.Column("reading", sa.Text, nullable=True),
    sa.Index(None, "list_id"),
    sa.Index(None, "in_reply_to"),
)

votes: Final = sa.Table(
    "votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_key", sa.Text, nullable=False),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("vote_seq", sa.Integer, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    # None for a non-podling; 1 (PPMC) or 2 (IPMC) for a podling.
    sa.Column("vote_round", sa.Integer, nullable=True),
    sa.Column("committee", sa.Text, nullable=False, server_default=""),
    sa.Column("list_address", sa.Text, nullable=False, server_default=""),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("root_message_id", sa.Text, nullable=False, server_default=""),
    sa.Column("vote_started", UtcDateTime, nullable=True),
    sa.Column("vote_end", UtcDateTime, nullable=True),
    sa.Column("phase", sa.Text, nullable=False, server_default=""),
    sa.Column("status", StatusColumn, nullable=False, server_default=lifecycle.INITIAL.value),
    sa.Column("extra", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("release_key", "vote_seq"),
    sa.Index(None, "status"),
)

vote_messages: Final = sa.Table(
    "vote_messages",
    metadata,
    sa.Column("vote_id", sa.Integer, sa.ForeignKey("votes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("message_key", sa.Text, sa.ForeignKey("messages.key"), primary_key=True),
    # Archive order within the thread.
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Index(None, "message_key"),
)

voter_votes: Final = sa.Table(
    "voter_votes",
    metadata,
    sa.Column("vote_id", sa.Integer, sa.ForeignKey("votes.id", ondelete="CASCADE"), primary_key=True),
    # The uid, or the lower-cased address when there is none.
    sa.Column("voter", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("message_key", sa.Text, nullable=False, server_default=""),
    sa.Column("date", UtcDateTime, nullable=True),
    sa.Column("quotation", sa.Text, nullable=False, server_default=""),
    sa.Column("confidence", sa.Text, nullable=False, server_default=""),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("updated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("position", sa.Integer, nullable=False, server_default="0"),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

cursors: Final = sa.Table(
    "cursors",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("folder", sa.Text, primary_key=True),
    sa.Column("validity", sa.BigInteger, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

outbox: Final = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # "reminder", or the kind of a release-manager notice.
    sa.Column("kind", sa.Text, nullable=False, server_default="reminder"),
    sa.Column("release_key", sa.Text, nullable=False),
    sa.Column("vote_seq", sa.Integer, nullable=False),
    # The uid the mail is about (a reminder's voter; "" for notices) and the uid it goes to.
    sa.Column("voter", sa.Text, nullable=False, server_default=""),
    sa.Column("recipient", sa.Text, nullable=False),
    # Chosen when the row is written: a retry after a crash sends the same bytes with the same Message-ID.
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claimed_by", sa.Text, nullable=False, server_default=""),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("kind", "release_key", "vote_seq", "recipient"),
    sa.Index(None, "state", "next_attempt_at"),
    sa.Index(None, "recipient", "sent_at"),
)

resolutions: Final = sa.Table(
    "resolutions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_key", sa.Text, nullable=False),
    sa.Column("vote_seq", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("resolution", sa.Text, nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("release_key", "vote_seq"),
)

leases: Final = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
)

# ATR's JWT, shared by `run`, `run --once` and every instance (one exchange per half hour, not per run).
atr_tokens: Final = sa.Table(
    "atr_tokens",
    metadata,
    # "{base_url} {uid}": a JWT belongs to one ATR and one account.
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("jwt", sa.Text, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Every PAT exchange, so that all processes together stay within ATR's 10 an hour (reference/atr.md §10.3).
atr_exchanges: Final = sa.Table(
    "atr_exchanges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    # "renew" (the JWT was due), "401" (ATR refused the JWT), "rejected" (ATR refused the PAT).
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index(None, "account", "at"),
)

decisions: Final = sa.Table(
    "decisions",
    metadata,
    # Why each voter was (or was not) reminded, as last decided: what `vote-watcher explain` reads.
    sa.Column("release_key", sa.Text, primary_key=True),
    sa.Column("vote_seq", sa.Integer, primary_key=True),
    sa.Column("voter", sa.Text, primary_key=True),
    # The latest emailed vote (+1, 0, -1, ?), its voter status in this round, Message-ID and date.
    sa.Column("email_vote", sa.Text, nullable=False, server_default=""),
    sa.Column("email_status", sa.Text, nullable=False, server_default=""),
    sa.Column("email_message_id", sa.Text, nullable=False, server_default=""),
    sa.Column("email_date", UtcDateTime, nullable=True),
    # The ATR ballot as last seen ("" for none), and when ATR was read.
    sa.Column("ballot", sa.Text, nullable=False, server_default=""),
    sa.Column("atr_read_at", UtcDateTime, nullable=True),
    # "due" (a reminder was queued) or "not_due"; the reason key of watcher.core.decide.Reason, and its text.
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("decided_at", UtcDateTime, nullable=False),
)

observations: Final = sa.Table(
    "observations",
    metadata,
    # What an instance last saw of the world (a source's last good poll, ATR's budget and JWT), for `status`.
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("instance", sa.Text, primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
