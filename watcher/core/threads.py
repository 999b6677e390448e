"""Which messages belong to which vote thread (pure: no I/O, no clock).

A thread is its [VOTE] message (the root) and every message whose nearest known parent, by
In-Reply-To and then References (nearest first), is in the thread. Two fallbacks cover what
real lists do:

- a reply with no usable references (a client that drops them) joins when its normalised
  subject equals the root's;
- a [RESULT] or [CANCEL] sent as a new thread joins when it names the same release: same
  version, same "take N", and the same product words once filler ("apache", "release",
  "version") and a project-name prefix are ignored. Real case: "[VOTE] Release Maven Indexer
  6.0.0" ended by "[RESULT] [VOTE] Release Apache Maven Indexer version 6.0.0".

A message that references a thread but opens another vote (a [VOTE] with a different subject
and no reply prefix) starts a thread of its own and takes its replies with it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator, Sequence
from typing import Final, Literal, Protocol, TypeVar

import watcher.core.message as message

Kind = Literal["vote", "result", "cancel", "other"]

_TAG: Final = r"\[\s*{}\s*\]"
_VOTE_TAG: Final = re.compile(_TAG.format(r"vote"), re.IGNORECASE)
_RESULT_TAG: Final = re.compile(_TAG.format(r"(?:vote[\s_-]*)?results?"), re.IGNORECASE)
_CANCEL_TAG: Final = re.compile(_TAG.format(r"(?:vote[\s_-]*)?cancel(?:l?ed)?"), re.IGNORECASE)
_DISCUSS_TAG: Final = re.compile(_TAG.format(r"discuss(?:ion)?"), re.IGNORECASE)
_META_TAGS: Final = re.compile(
    _TAG.format(
        r"(?:vote|(?:vote[\s_-]*)?results?|(?:vote[\s_-]*)?cancel(?:l?ed)?|discuss(?:ion)?|announce|ann|"
        r"external|ext|extern|externe)"
    ),
    re.IGNORECASE,
)
# Mail gateways mark outside mail ("[EXTERNAL] RE: ...", "EXTERNAL: Re: ..."); the mark is no part of the subject.
_EXTERNAL_PREFIX: Final = re.compile(r"^\s*(?:external|ext)\s*:\s*", re.IGNORECASE)
_LEADING_TAGS: Final = re.compile(r"^(?:\s*\[[^\]]*\]|\s*(?:external|ext)\s*:)+\s*", re.IGNORECASE)
# Reply and forward prefixes in the languages seen on ASF lists (Outlook translates them).
_REPLY_PREFIX: Final = re.compile(
    r"^\s*(?:re|aw|antw|sv|vs|r|réf\.?|ref|rif|odp|wg|fwd?|tr|回复|答复|转发)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_MARKER: Final = re.compile(r"\b(?:take|round|attempt|try|rc|iteration)\s*#?\s*(\d+)\b")
_TOKEN_SPLIT: Final = re.compile(r"[\s,;:()\[\]{}<>\"'!?/|*]+")
# One unseparated suffix ("1.0rc1"), then separated ones ("3.0.0-alpha-1"): no nested repeats.
_VERSION: Final = re.compile(r"v?(\d+(?:\.\d+)+(?:[-_.+]?[a-z0-9]+)?(?:[-_.+][a-z0-9]+)*)")
_VERSION_RC: Final = re.compile(r"[-_.]?rc[-_.]?(\d+)$")
_FILLER: Final = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "for",
        "apache",
        "release",
        "releases",
        "releasing",
        "version",
        "ver",
        "candidate",
        "vote",
        "result",
        "results",
        "incubating",
    }
)
_MESSAGE_ID_LIKE: Final = re.compile(r"^<[^<>\s]+>$|^[^<>\s@]+@[^<>\s@]+$")
_CANDIDATES_SHOWN: Final = 12


class Threaded(Protocol):
    """What thread matching reads of a message (`message.Message` and `message.Envelope` fit)."""

    @property
    def message_id(self) -> str: ...

    @property
    def in_reply_to(self) -> str: ...

    @property
    def references(self) -> tuple[str, ...]: ...

    @property
    def subject(self) -> str: ...


M = TypeVar("M", bound=Threaded)


class ThreadNotFoundError(Exception):
    """No single vote thread matches the selector; the message says what was looked for."""


class AmbiguousThreadError(ThreadNotFoundError):
    """Several vote threads match the selector equally well; the message lists them."""

    def __init__(self, selector: str, candidates: Sequence[tuple[str, str]]) -> None:
        self.candidates: tuple[tuple[str, str], ...] = tuple(candidates)
        shown = "\n".join(f"  <{mid}>  {subject}" for mid, subject in self.candidates[:_CANDIDATES_SHOWN])
        more = len(self.candidates) - _CANDIDATES_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(self.candidates)} vote threads match {selector!r}; "
            f"give the full subject or a Message-ID:\n{shown}{tail}"
        )


# The short names callers catch; an ambiguous selector is also "not found" (no single thread).
ThreadNotFound = ThreadNotFoundError
AmbiguousThread = AmbiguousThreadError


@dataclasses.dataclass(frozen=True, slots=True)
class _Release:
    """What a subject says about a release: versions, re-vote number and product words."""

    versions: frozenset[str]
    marker: int | None
    products: tuple[str, ...]


@functools.lru_cache(maxsize=4096)
def normalise_subject(subject: str) -> str:
    """A subject without reply prefixes, vote tags, case or extra whitespace.

    "Re: AW: [RESULT] [VOTE] Release Apache Maven Indexer 6.0.0" gives
    "release apache maven indexer 6.0.0". Everything else (such as "(take 2)") is kept.
    """
    text = " ".join(subject.split())
    while True:
        unmarked = _EXTERNAL_PREFIX.sub("", text, count=1)
        stripped = _META_TAGS.sub(" ", _REPLY_PREFIX.sub("", unmarked, count=1)).strip()
        if stripped == text:
            break
        text = stripped
    return " ".join(text.split()).casefold()


def kind_of(subject: str) -> Kind:
    """What a subject announces: a vote, its result, its cancellation, or something else.

    Tags count anywhere and in any case ("Re: [vote] [Result] ..." is a result). A [DISCUSS]
    thread about a vote is "other": it is not where votes are cast.
    """
    if _RESULT_TAG.search(subject):
        return "result"
    if _CANCEL_TAG.search(subject):
        return "cancel"
    if _DISCUSS_TAG.search(subject):
        return "other"
    if _VOTE_TAG.search(subject):
        return "vote"
    return "other"


def is_reply(msg: Threaded) -> bool:
    """Whether a message answers another: it has parents or a reply/forward prefix."""
    return bool(msg.in_reply_to or msg.references) or _REPLY_PREFIX.match(subject_without_tags(msg.subject)) is not None


def is_vote_call(msg: Threaded) -> bool:
    """Whether a message opens a new [VOTE] thread (a [VOTE] subject and not a reply)."""
    return kind_of(msg.subject) == "vote" and not is_reply(msg)


def subject_without_tags(subject: str) -> str:
    """The subject with list and vote tags removed from its start ("[maven] Re: x" → "Re: x")."""
    return _LEADING_TAGS.sub("", subject)


def parents(msg: Threaded) -> tuple[str, ...]:
    """Message-IDs the message replies to, nearest first (In-Reply-To, then References backwards)."""
    ordered = [message.normalise_message_id(msg.in_reply_to)]
    ordered += [message.normalise_message_id(ref) for ref in reversed(msg.references)]
    return tuple(dict.fromkeys(mid for mid in ordered if mid))


def same_release(vote_subject: str, other_subject: str) -> bool:
    """Whether another subject (a new-thread [RESULT], a template) names the vote's release.

    Versions must be equal; a "take N" / "round N" / "RCn" in the other subject must equal the
    vote's (none in the vote means 1); product words must match, one side may add a leading
    project name ("indexer" vs "maven indexer").
    """
    vote = _release(normalise_subject(vote_subject))
    other = _release(normalise_subject(other_subject))
    if vote.versions != other.versions:
        return False
    if other.marker is not None and (vote.marker or 1) != other.marker:
        return False
    if not vote.versions and not vote.products:
        return False
    return _same_product(vote.products, other.products)


def select_thread(messages: Sequence[M], selector: str) -> list[M]:
    """The messages of one vote thread, in archive order.

    `selector` is the root's Message-ID (with or without <>) or its subject, whole or in part
    (case and reply prefixes do not matter). An exact subject match beats a partial one.
    Raises ThreadNotFound when nothing matches and AmbiguousThread when several threads do.
    Duplicate Message-IDs are kept once (the first copy).
    """
    unique = _dedupe(messages)
    anchor = _find_anchor(unique, selector)
    members = _collect(unique, anchor)
    return [msg for index, msg in enumerate(unique) if index in members]


class ThreadMatcher:
    """Incremental thread matching for the daemon: which tracked vote a new message belongs to.

    It remembers every Message-ID it assigned, so replies to replies match, and only those:
    memory grows with the tracked threads, not with the list's traffic.
    """

    def __init__(self) -> None:
        self._roots: dict[str, str] = {}
        self._owner: dict[str, str] = {}
        self._forks: dict[str, str] = {}

    @property
    def roots(self) -> tuple[str, ...]:
        """The tracked vote roots' Message-IDs, in the order they were tracked."""
        return tuple(self._roots)

    def track(self, root_message_id: str, subject: str) -> None:
        """Follow the vote whose [VOTE] message has this Message-ID and subject."""
        root = message.normalise_message_id(root_message_id)
        if not root:
            return
        self._roots[root] = subject
        self._owner[root] = root
        self._forks.pop(root, None)

    def remember(self, message_id: str, root_message_id: str) -> None:
        """Record a known member (restoring state after a restart)."""
        mid = message.normalise_message_id(message_id)
        root = message.normalise_message_id(root_message_id)
        if mid and root in self._roots:
            self._owner[mid] = root

    def forget(self, root_message_id: str) -> None:
        """Stop following a vote and drop what was remembered for it."""
        root = message.normalise_message_id(root_message_id)
        self._roots.pop(root, None)
        self._owner = {mid: owner for mid, owner in self._owner.items() if owner != root}
        self._forks = {mid: owner for mid, owner in self._forks.items() if owner != root}

    def match(self, msg: Threaded) -> str | None:
        """The root Message-ID of the tracked vote this message belongs to, or None."""
        mid = message.normalise_message_id(msg.message_id)
        if mid in self._owner:
            return self._owner[mid]
        if mid in self._forks:
            return None
        root, decided = self._by_parents(msg, mid)
        if not decided:
            root = self._adopt(msg)
        if root is not None and mid:
            self._owner[mid] = root
        return root

    def _by_parents(self, msg: Threaded, mid: str) -> tuple[str | None, bool]:
        for parent in parents(msg):
            if parent in self._forks:
                self._note_fork(mid, self._forks[parent])
                return None, True
            owner = self._owner.get(parent)
            if owner is None:
                continue
            if _opens_other_vote(msg, self._roots[owner]):
                self._note_fork(mid, owner)
                return None, True
            return owner, True
        return None, False

    def _note_fork(self, mid: str, owner: str) -> None:
        if mid:
            self._forks[mid] = owner

    def _adopt(self, msg: Threaded) -> str | None:
        kind = kind_of(msg.subject)
        for root, subject in reversed(self._roots.items()):
            if kind in ("result", "cancel") and same_release(subject, msg.subject):
                return root
            if _subject_reply(msg, subject):
                return root
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class _Anchor:
    """The root of the selected thread; `index` is where it is (or its first reply, if absent)."""

    message_id: str
    subject: str
    index: int
    present: bool


def _dedupe(messages: Sequence[M]) -> list[M]:
    seen: set[str] = set()
    unique: list[M] = []
    for msg in messages:
        mid = message.normalise_message_id(msg.message_id)
        if mid and mid in seen:
            continue
        seen.add(mid)
        unique.append(msg)
    return unique


def _find_anchor(messages: Sequence[Threaded], selector: str) -> _Anchor:
    wanted = selector.strip()
    if not wanted:
        raise ThreadNotFound("no thread selector given (a [VOTE] subject or a Message-ID)")
    if _MESSAGE_ID_LIKE.match(wanted):
        return _anchor_by_id(messages, message.normalise_message_id(wanted))
    return _anchor_by_subject(messages, wanted)


def _anchor_by_id(messages: Sequence[Threaded], mid: str) -> _Anchor:
    index = _index_of(messages, mid)
    if index is None:
        raise ThreadNotFound(f"no message with Message-ID <{mid}> in the given sources")
    if not _opens_vote(messages[index]):
        # A reply's id selects the vote it answers, when that vote is in the archive.
        index = next((i for i in _ancestors(messages, index) if _opens_vote(messages[i])), index)
    root = messages[index]
    return _Anchor(message.normalise_message_id(root.message_id), root.subject, index, True)


def _ancestors(messages: Sequence[Threaded], index: int) -> Iterator[int]:
    """Indexes of the message's parents that are in the archive, farthest (thread root) first."""
    for parent in reversed(parents(messages[index])):
        found = _index_of(messages, parent)
        if found is not None:
            yield found


def _index_of(messages: Sequence[Threaded], mid: str) -> int | None:
    for index, msg in enumerate(messages):
        if message.normalise_message_id(msg.message_id) == mid:
            return index
    return None


def _anchor_by_subject(messages: Sequence[Threaded], selector: str) -> _Anchor:
    wanted = normalise_subject(selector)
    if not wanted:
        raise ThreadNotFound(f"{selector!r} has nothing to match once tags and prefixes are removed")
    calls = _vote_calls(messages)
    chosen = _best_match(messages, calls, wanted, selector)
    if chosen is not None:
        msg = messages[chosen]
        return _Anchor(message.normalise_message_id(msg.message_id), msg.subject, chosen, True)
    return _absent_root(messages, wanted, selector, calls)


def _vote_calls(messages: Sequence[Threaded]) -> list[int]:
    """Indexes of vote calls: new [VOTE] threads, and [VOTE]s for another subject sent as replies."""
    calls = [index for index, msg in enumerate(messages) if is_vote_call(msg)]
    subjects = {normalise_subject(messages[index].subject) for index in calls}
    # A re-vote sent as a reply to the cancellation is a vote call too; a [VOTE] reply whose
    # client dropped "Re:" has the subject of its vote and is not.
    forks = [
        index
        for index, msg in enumerate(messages)
        if is_reply(msg) and _opens_vote(msg) and normalise_subject(msg.subject) not in subjects
    ]
    return sorted({*calls, *forks})


def _best_match(messages: Sequence[Threaded], indexes: Sequence[int], wanted: str, selector: str) -> int | None:
    exact = [i for i in indexes if normalise_subject(messages[i].subject) == wanted]
    partial = [i for i in indexes if _contains(normalise_subject(messages[i].subject), wanted)]
    for found in (exact, partial):
        if len(found) == 1:
            return found[0]
        if found:
            candidates = [(message.normalise_message_id(messages[i].message_id), messages[i].subject) for i in found]
            raise AmbiguousThread(selector, candidates)
    return None


def _absent_root(messages: Sequence[Threaded], wanted: str, selector: str, calls: Sequence[int]) -> _Anchor:
    """Replies to a [VOTE] message that is not in the archive (it began earlier) still form a thread."""
    roots: dict[str, int] = {}
    for index, msg in enumerate(messages):
        ancestry = parents(msg)
        if kind_of(msg.subject) != "vote" or not ancestry:
            continue
        if not _contains(normalise_subject(msg.subject), wanted):
            continue
        roots.setdefault(ancestry[-1], index)
    if len(roots) == 1:
        root, index = next(iter(roots.items()))
        return _Anchor(root, messages[index].subject, index, False)
    if roots:
        raise AmbiguousThread(selector, [(root, messages[i].subject) for root, i in roots.items()])
    known = "; ".join(messages[i].subject for i in calls[:_CANDIDATES_SHOWN]) or "none"
    raise ThreadNotFound(f"no [VOTE] thread matches {selector!r} (vote threads in the sources: {known})")


def _contains(subject: str, wanted: str) -> bool:
    if wanted in subject:
        return True
    return set(_tokens(wanted)) <= set(_tokens(subject))


def _collect(messages: Sequence[Threaded], anchor: _Anchor) -> set[int]:
    """Indexes of the thread's messages: the root's subtree, by each message's nearest parent."""
    present = {message.normalise_message_id(m.message_id) for m in messages} - {""}
    present.add(anchor.message_id)
    children: dict[str, list[int]] = {}
    for index, msg in enumerate(messages):
        own = message.normalise_message_id(msg.message_id)
        parent = next((p for p in parents(msg) if p in present and p != own), None)
        if parent is None and _adopted(messages, index, anchor):
            parent = anchor.message_id
        if parent is not None:
            children.setdefault(parent, []).append(index)
    members = {anchor.index} if anchor.present else set()
    for index in _descendants(messages, children, anchor):
        members.add(index)
    return members


def _descendants(messages: Sequence[Threaded], children: dict[str, list[int]], anchor: _Anchor) -> Iterator[int]:
    root_subject = anchor.subject
    pending = [anchor.message_id]
    seen = {anchor.message_id}
    while pending:
        for index in children.get(pending.pop(), []):
            msg = messages[index]
            if _opens_other_vote(msg, root_subject):
                continue
            yield index
            mid = message.normalise_message_id(msg.message_id)
            if mid and mid not in seen:
                seen.add(mid)
                pending.append(mid)


def _adopted(messages: Sequence[Threaded], index: int, anchor: _Anchor) -> bool:
    """Whether a message with no usable parent joins the thread by its subject."""
    if index < anchor.index or (anchor.present and index == anchor.index):
        return False
    msg = messages[index]
    if kind_of(msg.subject) in ("result", "cancel") and same_release(anchor.subject, msg.subject):
        # The result belongs to the latest vote on that release, not to an earlier take.
        return not any(same_release(call.subject, msg.subject) for call in _calls_between(messages, anchor, index))
    if _subject_reply(msg, anchor.subject):
        wanted = normalise_subject(anchor.subject)
        return not any(normalise_subject(c.subject) == wanted for c in _calls_between(messages, anchor, index))
    return False


def _calls_between(messages: Sequence[Threaded], anchor: _Anchor, index: int) -> Iterator[Threaded]:
    return (msg for msg in messages[anchor.index + 1 : index] if is_vote_call(msg))


def _opens_vote(msg: Threaded) -> bool:
    """A [VOTE] subject without a reply prefix: a vote call, even if sent as a reply."""
    return kind_of(msg.subject) == "vote" and not _REPLY_PREFIX.match(subject_without_tags(msg.subject))


def _subject_reply(msg: Threaded, root_subject: str) -> bool:
    return is_reply(msg) and normalise_subject(msg.subject) == normalise_subject(root_subject)


def _opens_other_vote(msg: Threaded, root_subject: str) -> bool:
    """A fresh [VOTE] subject (no reply prefix) for another release, sent as a reply."""
    return _opens_vote(msg) and normalise_subject(msg.subject) != normalise_subject(root_subject)


def _tokens(normalised: str) -> list[str]:
    stripped = (token.strip(".-_") for token in _TOKEN_SPLIT.split(normalised))
    return [token for token in stripped if token]


@functools.lru_cache(maxsize=4096)
def _release(normalised: str) -> _Release:
    marker: int | None = None
    found = _MARKER.search(normalised)
    if found:
        marker = int(found.group(1))
        normalised = normalised[: found.start()] + " " + normalised[found.end() :]
    versions: set[str] = set()
    products: list[str] = []
    for token in _tokens(normalised):
        version = _VERSION.fullmatch(token)
        if version is None:
            if token not in _FILLER:
                products.append(token)
            continue
        text = version.group(1).removesuffix("-incubating")
        rc = _VERSION_RC.search(text)
        if rc:
            marker = marker if marker is not None else int(rc.group(1))
            text = text[: rc.start()]
        versions.add(text)
    return _Release(frozenset(versions), marker, tuple(products))


def _same_product(vote: tuple[str, ...], other: tuple[str, ...]) -> bool:
    """Equal product words, or one side has extra words only before the shared ones (a project prefix)."""
    if set(vote) == set(other):
        return True
    shorter, longer = (vote, other) if len(vote) < len(other) else (other, vote)
    if not shorter or not set(shorter) <= set(longer):
        return False
    first_shared = min(longer.index(token) for token in shorter)
    return all(token in shorter for token in longer[first_shared:])
