"""Mails rendered from Jinja templates: the reminder and the release-manager notice.

Templates ship in `watcher/templates/` and an operator's `templates_dir` is searched first.
Operators may edit templates, so they run in Jinja's immutable sandbox with StrictUndefined.
Values from mail (names, subjects, quoted lines) are passed only as variables, never as
template source, and everything that reaches a header is one line without control characters.
The recipient is always `{uid}@apache.org`, built from a checked uid, never from a mail's address.

Anyone can post to a vote thread, so nothing a sender wrote may speak with the daemon's
authority. The person's name (in `To:` and in the greeting) is the roster's or ATR's for that
uid, never a From header's, and only if it is a plain name (no link, address or control
character). A quoted vote is one line of at most `QUOTE_CHARS` (40) characters, the casting and
a few words of context: links, host names and addresses are replaced by markers before it is cut,
after NFKC folding (so full-width and other compatibility look-alikes are caught too). The one
link in a mail is the ATR vote page the daemon builds from ATR's host.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.headerregistry
import email.message
import email.policy
import email.utils
import pathlib
import re
import unicodedata
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

import jinja2
import jinja2.exceptions
import jinja2.sandbox

import watcher.core.decide as decide
import watcher.core.tally as tally

REMINDER: Final = "reminder"
HELD_NOTICE: Final = "held_notice"
BALLOT_NOTE: Final = "ballot_note"
DEFAULT_OPT_OUT: Final = "reply to this message and ask to be left out of them"
RECIPIENT_DOMAIN: Final = "apache.org"
MAX_SUBJECT: Final = 200
_ADDRESS_RE: Final = re.compile(r"[^@\s<>\"(),;:\[\]\\]+@[A-Za-z0-9.-]+")
_MESSAGE_ID_RE: Final = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
_WHITESPACE_RE: Final = re.compile(r"\s+")
# A casting and a few words: "+1 (binding), checked sigs and licenses" is 40.
QUOTE_CHARS: Final = 40
SUBJECT_CHARS: Final = 120
NAME_CHARS: Final = 64
LINK_MARK: Final = "[link removed]"
ADDRESS_MARK: Final = "[address removed]"
_URL_RE: Final = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*:/+|//|\bwww\.|\b(?:mailto|data|javascript|file|tel|sms|news|urn):)\S*", re.IGNORECASE
)
_MAIL_RE: Final = re.compile(r"\S+@\S+")
# A host name without a scheme ("atr-login.evil.example"): labels, then an alphabetic top-level label.
_HOST_RE: Final = re.compile(r"(?:[\w-]+\.)+[^\W\d_]{2,}\b\S*")
_MID_SAFE_RE: Final = re.compile(r"[A-Za-z0-9._%+=$#-]{1,100}@[A-Za-z0-9.-]{1,100}")


class RenderError(Exception):
    """A mail that cannot be rendered: a template missing, broken or unsafe, or a header value refused."""


@dataclasses.dataclass(frozen=True, slots=True)
class Headers:
    """The envelope of one mail, chosen before rendering.

    `sender` and `reply_to` come from the configuration (`Name <addr>` or a bare address);
    `message_id` is chosen when the outbox row is written and reused on every re-send.
    """

    sender: str
    to_uid: str
    message_id: str
    date: datetime.datetime
    to_name: str = ""
    reply_to: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ReminderContext:
    """What the reminder says (templates/README.md lists the variables it becomes)."""

    voter_uid: str
    project: str
    version: str
    release_key: str
    vote_seq: int
    vote_value: str
    atr_host: str
    voter_name: str = ""
    project_name: str = ""
    quotation: str = ""
    vote_subject: str = ""
    vote_date: datetime.datetime | None = None
    vote_end: datetime.datetime | None = None
    vote_round: int | None = None
    carried: bool = False
    opt_out: str = DEFAULT_OPT_OUT
    contact: str = ""
    ballot_choice: str = ""
    """The voter's ballot in ATR (the ballot note: it differs from the emailed vote)."""

    def variables(self) -> dict[str, Any]:
        """The template variables."""
        return {
            "voter_uid": self.voter_uid,
            "ballot_choice": one_line(self.ballot_choice),
            "voter_name": person_name(self.voter_name),
            "project": self.project,
            "project_name": one_line(self.project_name) or self.project,
            "version": self.version,
            "release_key": self.release_key,
            "vote_seq": self.vote_seq,
            "vote_value": one_line(self.vote_value),
            "quotation": quoted(self.quotation),
            "vote_subject": defanged(self.vote_subject, SUBJECT_CHARS),
            "vote_date": utc_text(self.vote_date),
            "deadline": utc_text(self.vote_end),
            "vote_url": vote_url(self.atr_host, self.project, self.version),
            "atr_host": self.atr_host,
            "vote_round": self.vote_round,
            "carried": self.carried,
            "opt_out": one_line(self.opt_out),
            "contact": one_line(self.contact),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ReminderSent:
    """A reminder already written to the outbox, for the release-manager notice."""

    voter: str
    message_id: str
    status: str
    sent_at: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Flagged:
    """A message of the thread that was not read (too large, or unreadable), for the release manager."""

    message_id: str
    sender: str
    flag: str
    detail: str
    date: datetime.datetime | None = None
    sender_uid: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class NoticeContext:
    """What the release-manager notice says about a vote that was not resolved automatically."""

    rm_uid: str
    project: str
    version: str
    release_key: str
    vote_seq: int
    atr_host: str
    decision: decide.ResolutionDecision
    rm_name: str = ""
    project_name: str = ""
    vote_subject: str = ""
    vote_end: datetime.datetime | None = None
    reminders: Sequence[ReminderSent] = ()
    contact: str = ""
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """uid -> the roster's or ATR's name (a From header's name is never shown)."""
    flagged: Sequence[Flagged] = ()

    def variables(self) -> dict[str, Any]:
        """The template variables."""
        zero = tally.Counts()
        return {
            "rm_uid": self.rm_uid,
            "rm_name": person_name(self.rm_name),
            "project": self.project,
            "project_name": one_line(self.project_name) or self.project,
            "version": self.version,
            "release_key": self.release_key,
            "vote_seq": self.vote_seq,
            "vote_subject": defanged(self.vote_subject, SUBJECT_CHARS),
            "deadline": utc_text(self.vote_end),
            "vote_url": vote_url(self.atr_host, self.project, self.version),
            "atr_host": self.atr_host,
            "action": self.decision.action,
            "reason": self.decision.reason.value,
            "detail": one_line(self.decision.detail),
            "trusted": _counts(self.decision.trusted or zero),
            "with_email": _counts(self.decision.with_email or zero),
            "unrecorded": [_unrecorded(item, self.names) for item in self.decision.unrecorded],
            "reminders": [_reminder(item) for item in self.reminders],
            "flagged": [_flagged(item) for item in self.flagged],
            "contact": one_line(self.contact),
        }


class Templates:
    """The template environments: plain text without escaping, HTML with it; both sandboxed."""

    def __init__(self, templates_dir: pathlib.Path | None = None, *, html: bool = True) -> None:
        """Templates from `templates_dir` first, then the shipped ones; `html=False` leaves out HTML parts."""
        if templates_dir is not None and not templates_dir.is_dir():
            raise RenderError(f"templates_dir {templates_dir} is not a directory")
        loader = _loader(templates_dir)
        self._text = _environment(loader, autoescape=False)
        self._html = _environment(loader, autoescape=True)
        self._with_html = html

    def reminder(self, context: ReminderContext, headers: Headers) -> email.message.EmailMessage:
        """The reminder to cast an emailed vote in ATR."""
        return self.render(REMINDER, context.variables(), headers)

    def ballot_note(self, context: ReminderContext, headers: Headers) -> email.message.EmailMessage:
        """The note to a voter whose emailed vote differs from their ballot in ATR."""
        return self.render(BALLOT_NOTE, context.variables(), headers)

    def held_notice(self, context: NoticeContext, headers: Headers) -> email.message.EmailMessage:
        """The notice to the release manager about a vote that was held or left to them."""
        return self.render(HELD_NOTICE, context.variables(), headers)

    def render(self, name: str, variables: Mapping[str, Any], headers: Headers) -> email.message.EmailMessage:
        """Render `{name}.subject.j2`, `{name}.txt.j2` and, when present, `{name}.html.j2` into one mail."""
        subject = one_line(self._render(self._text, f"{name}.subject.j2", variables))[:MAX_SUBJECT]
        if not subject:
            raise RenderError(f"{name}.subject.j2 rendered an empty subject")
        text = self._render(self._text, f"{name}.txt.j2", variables)
        html = self._optional(f"{name}.html.j2", variables) if self._with_html else None
        msg = email.message.EmailMessage(policy=email.policy.default)
        _set_headers(msg, headers, subject)
        msg.set_content(_ending_newline(text))
        if html is not None:
            msg.add_alternative(_ending_newline(html), subtype="html")
        return msg

    def _optional(self, template: str, variables: Mapping[str, Any]) -> str | None:
        try:
            self._html.get_template(template)
        except jinja2.TemplateNotFound:
            return None
        return self._render(self._html, template, variables)

    @staticmethod
    def _render(environment: jinja2.Environment, template: str, variables: Mapping[str, Any]) -> str:
        try:
            return environment.get_template(template).render(variables)
        except jinja2.TemplateNotFound:
            raise RenderError(f"template {template} not found") from None
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {template}: {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {template}, line {exc.lineno}: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise RenderError(f"template {template}: refused by the sandbox: {exc}") from None


def recipient(uid: str) -> str:
    """`{uid}@apache.org`, after checking that `uid` is an ASF uid (`[a-z0-9_.-]+`)."""
    if not decide.UID_RE.fullmatch(uid) or uid.startswith(".") or uid.endswith(".") or ".." in uid:
        raise RenderError(f"{uid!r} is not an ASF uid")
    return f"{uid}@{RECIPIENT_DOMAIN}"


def vote_url(atr_host: str, project: str, version: str) -> str:
    """The ATR vote page: `https://{atr_host}/vote/{project}/{version}`."""
    segments = "/".join(urllib.parse.quote(part, safe="") for part in (project, version))
    return f"https://{atr_host}/vote/{segments}"


def one_line(value: str) -> str:
    """`value` as one line: whitespace runs (CR and LF included) become one space, control characters go."""
    flat = _WHITESPACE_RE.sub(" ", value)
    return "".join(char for char in flat if unicodedata.category(char)[0] != "C").strip()


def defanged(value: str, limit: int) -> str:
    """Mail text made harmless: one line, NFKC-folded, links, host names and addresses replaced, cut to `limit`.

    A cut is made at a word boundary and never inside a marker, and is shown with "…".
    """
    text = one_line(unicodedata.normalize("NFKC", value))
    text = _URL_RE.sub(LINK_MARK, text)
    text = _MAIL_RE.sub(ADDRESS_MARK, text)
    text = _HOST_RE.sub(LINK_MARK, text)
    text = re.sub(r"(?:\[link removed\]\s*){2,}", LINK_MARK + " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    marker = cut.rfind("[")
    if marker >= 0 and "]" not in cut[marker:]:
        cut = cut[:marker]
    elif " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:-") + "…"


def quoted(value: str) -> str:
    """A quoted vote as a mail shows it: `QUOTE_CHARS` characters at most, nothing clickable."""
    return defanged(value, QUOTE_CHARS)


def person_name(value: str) -> str:
    """A roster or ATR name fit for `To:` and a greeting; "" (greet by uid) when it holds a link or an address."""
    name = one_line(value)
    folded = unicodedata.normalize("NFKC", name)
    if _URL_RE.search(folded) or "@" in folded or _HOST_RE.search(folded) or len(name) > NAME_CHARS:
        return ""
    return name


def message_id_text(value: str) -> str:
    """A Message-ID as a notice shows it: `<local@domain>` when it has that plain shape, else a placeholder."""
    bare = value.strip().strip("<>")
    if _MID_SAFE_RE.fullmatch(bare):
        return f"<{bare}>"
    return "(a Message-ID of an unusual shape, not shown)"


def address_text(value: str) -> str:
    """A sender's address shown defanged (`user[@]example[.]org`), so that no mail program makes it a link."""
    flat = one_line(value)[:NAME_CHARS]
    return flat.replace("@", "[@]").replace(".", "[.]") if flat else "(no address)"


def utc_text(moment: datetime.datetime | None) -> str:
    """`2026-11-23 12:00 UTC`, or "" when unknown (naive times are taken as UTC)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _set_headers(msg: email.message.EmailMessage, headers: Headers, subject: str) -> None:
    if not _MESSAGE_ID_RE.fullmatch(headers.message_id):
        raise RenderError(f"{headers.message_id!r} is not a Message-ID")
    sender = _address(headers.sender, "sender")
    msg["From"] = sender
    msg["To"] = email.headerregistry.Address(
        display_name=person_name(headers.to_name), addr_spec=recipient(headers.to_uid)
    )
    reply_to = _address(headers.reply_to, "reply-to") if headers.reply_to else None
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(_utc(headers.date))
    msg["Message-ID"] = headers.message_id
    msg["Auto-Submitted"] = "auto-generated"
    # RFC 2369: a mail to the reply address asks to be left out (the operator adds the uid to reminders.opt_out).
    unsubscribe = urllib.parse.quote(f"opt out {headers.to_uid}")
    msg["List-Unsubscribe"] = f"<mailto:{(reply_to or sender).addr_spec}?subject={unsubscribe}>"


def _address(value: str, what: str) -> email.headerregistry.Address:
    # One address, parsed strictly: a list, a defect or a line break is a configuration error.
    header = email.policy.default.header_factory(what, value)
    if "\r" in value or "\n" in value or header.defects or not isinstance(header, email.headerregistry.AddressHeader):
        raise RenderError(f"{what} {value!r} is not one address")
    if len(header.addresses) != 1:
        raise RenderError(f"{what} {value!r} is not one address")
    address = header.addresses[0]
    if not _ADDRESS_RE.fullmatch(address.addr_spec):
        raise RenderError(f"{what} {value!r} is not one address")
    return email.headerregistry.Address(display_name=one_line(address.display_name), addr_spec=address.addr_spec)


def _loader(templates_dir: pathlib.Path | None) -> jinja2.BaseLoader:
    shipped = jinja2.PackageLoader("watcher", "templates")
    if templates_dir is None:
        return shipped
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(templates_dir), shipped])


def _environment(loader: jinja2.BaseLoader, *, autoescape: bool) -> jinja2.Environment:
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
    )


def _counts(counts: tally.Counts) -> dict[str, Any]:
    return {"yes": counts.yes, "no": counts.no, "abstain": counts.abstain, "passes": counts.passes}


def _unrecorded(item: decide.Unrecorded, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "voter": item.voter,
        "name": person_name(names.get(item.voter, "")),
        "vote": item.vote,
        "kind": item.kind,
        "ballot_choice": item.ballot_choice or "",
        "quotation": quoted(item.quotation),
        "date": utc_text(item.date),
        "message_id": message_id_text(item.message_id),
    }


def _flagged(item: Flagged) -> dict[str, Any]:
    return {
        "sender": item.sender_uid or address_text(item.sender),
        "flag": item.flag,
        "why": "too large to read" if item.flag == "too_large" else "could not be read",
        "detail": one_line(item.detail),
        "date": utc_text(item.date),
        "message_id": message_id_text(item.message_id),
    }


def _reminder(item: ReminderSent) -> dict[str, Any]:
    return {
        "voter": item.voter,
        "message_id": item.message_id,
        "status": item.status,
        "sent_at": utc_text(item.sent_at),
    }


def _ending_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)
