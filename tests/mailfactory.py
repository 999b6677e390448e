"""Builds raw test emails (bytes) with the headers vote threads carry."""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Sequence

LIST_ID = "<dev.example.apache.org>"
BASE_DATE = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)


def mail(
    body: str,
    *,
    sender: str = "Jane Doe <jane@apache.org>",
    subject: str = "Re: [VOTE] Release Example 1.0.0",
    message_id: str = "m1@example.org",
    in_reply_to: str | None = "vote@example.org",
    date: datetime.datetime | None = BASE_DATE,
    list_id: str = LIST_ID,
    cc: Sequence[str] = (),
    received_spf: Sequence[str] = (),
    content_type: str = "text/plain; charset=utf-8",
    extra: Sequence[str] = (),
) -> bytes:
    """One RFC 822 message; pass None for headers that should be absent."""
    lines = [f"From: {sender}", f"Subject: {subject}", f"List-Id: {list_id}"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    if in_reply_to:
        lines += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
    if date is not None:
        lines.append(f"Date: {email.utils.format_datetime(date)}")
    lines += [f"Cc: {entry}" for entry in cc]
    lines += [f"Received-SPF: {spf}" for spf in received_spf]
    lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}", "Content-Transfer-Encoding: 8bit", *extra]
    return ("\n".join(lines) + "\n\n" + body).encode("utf-8")


def at(hours: float) -> datetime.datetime:
    """BASE_DATE plus some hours."""
    return BASE_DATE + datetime.timedelta(hours=hours)
