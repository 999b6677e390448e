"""Whether a subject is the [VOTE] call of one release, however it is worded (pure; one rule for every source).

ATR renders the subject from the project's template, but release managers edit it, send by hand,
or use another template: "[VOTE] Release Apache Foo 1.2.0 RC1", "[VOTE] Foo (incubating) 1.2.0",
"[vote] Apache Foo v1.2.0, take 2". So the rendered subject is a hint, not a key (DESIGN.md §3):
a subject matches when it carries the [VOTE] tag (not [RESULT], [CANCEL] or [DISCUSS]), names the
project by its key or one of its names (with or without "Apache" and "(incubating)"), and names the
version as a whole (an RC or take suffix allowed, "1.2.0" never matching "1.2.01" or "1.2.0.1").
A reply ("Re: [VOTE] ...") matches as a reply, so callers can prefer the opening message.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Final

import watcher.core.threads as threads

# Words that say nothing about which project a subject names.
_NOISE: Final = frozenset({"apache", "incubating", "incubator", "release", "the", "of", "for", "vote"})
_WORD: Final = re.compile(r"[0-9a-z]+")
# What may follow a version in the same token: an RC, take or round number ("1.2.0-RC1", "1.2.0rc1"),
# "-incubating"; any other suffix ("1.2.0-M1", "1.2.0-beta") names another version.
_SUFFIX: Final = r"(?:[-_.]?(?:rc|cr|take|round)[-_.]?\d+|[-_.]incubating){0,2}"


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseName:
    """What a [VOTE] subject must name: the project (key and names) and the version."""

    project: str
    version: str
    names: tuple[str, ...] = ()
    """Display names, e.g. "Apache Foo (Incubating)"; the key alone also names the project."""
    subject: str = ""
    """The subject ATR rendered, if known: an exact match of it is preferred."""


@dataclasses.dataclass(frozen=True, slots=True)
class Match:
    """A subject that names the release."""

    reply: bool
    """It has a reply or forward prefix: part of the thread, not its opening message."""
    exact: bool
    """Word for word the subject ATR rendered."""


def release(project: str, version: str, subject: str = "", names: Iterable[str] = ()) -> ReleaseName:
    """A ReleaseName, with the project's name as the rendered subject spells it added to `names`."""
    found = [*names, *name_in_subject(subject, version)]
    return ReleaseName(project, version, tuple(dict.fromkeys(n for n in found if n)), subject)


def name_in_subject(subject: str, version: str) -> tuple[str, ...]:
    """The words before the version in a rendered subject ("[VOTE] Release Apache Foo 1.2.0" → "apache foo")."""
    text = threads.normalise_subject(subject)
    found = _version_pattern(version).search(text) if version and text else None
    if found is None:
        return ()
    words = [w for w in _WORD.findall(text[: found.start()]) if w not in _NOISE]
    return (" ".join(words),) if words else ()


def match(subject: str, wanted: ReleaseName) -> Match | None:
    """How `subject` names the release, or None when it is not a [VOTE] subject of that release."""
    if threads.kind_of(subject) != "vote":
        return None
    reply = is_reply_subject(subject)
    if wanted.subject and _squash(subject) == _squash(wanted.subject):
        return Match(reply=reply, exact=True)
    text = threads.normalise_subject(subject)
    if not wanted.version:
        return None
    if _version_pattern(wanted.version).search(text) is None:
        return None
    words = set(_WORD.findall(text))
    named = [_project_words(wanted.project), *(_project_words(name) for name in wanted.names)]
    if not any(name and name <= words for name in named):
        return None
    return Match(reply=reply, exact=False)


def is_vote_call(subject: str, wanted: ReleaseName) -> bool:
    """Whether `subject` opens the release's vote: it names the release and is no reply."""
    found = match(subject, wanted)
    return found is not None and not found.reply


def is_reply_subject(subject: str) -> bool:
    """A reply or forward prefix in any language ASF lists see (the thread module's rule)."""
    return threads.is_reply(_Subject(subject))


@dataclasses.dataclass(frozen=True, slots=True)
class _Subject:
    subject: str
    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()


def _project_words(name: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(name.casefold()) if w not in _NOISE)


def _version_pattern(version: str) -> re.Pattern[str]:
    # A whole version: not inside a longer number ("11.2.0", "1.2.0.1", "1.2.01"); a "v" before it is fine.
    escaped = re.escape(version.casefold())
    return re.compile(rf"(?<![0-9a-z.])v?{escaped}{_SUFFIX}(?![0-9a-z]|\.[0-9]|[-_+][0-9a-z])")


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()
