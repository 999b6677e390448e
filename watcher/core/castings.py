"""Find the vote cast in a message body (pure: no I/O).

ATR's line rules (reference/atr.md §5.2) are the floor. Beyond them this module:

- reads on below a quoted block, so bottom-posted and inline replies count; an attribution
  line ("On ... wrote:", "Am ... schrieb ...:", "Le ... a écrit :", "... 写道：", wrapped over
  up to three lines) is skipped, and when unprefixed text follows it (an HTML quote that lost
  its ">") reading stops there;
- stops at a signature ("-- ", "--"), an Outlook separator in several languages, "____", and an
  unprefixed header block ("From:"/"De :"/"Von:" with "Sent:"/"Envoyé :"/"Gesendet:"/"To:" ...);
- skips quoted lines, including indented ones and lines quoted with "|" (mail clients and
  Markdown tables both use it; neither holds a vote);
- accepts a vote written mid-line ("Awesome! +1", "here is my +1", "I vote:+1") only where the
  words around it cast it, at low confidence; a vote that opens a line is high confidence;
- treats agreeing castings as one vote and disagreeing ones as "?";
- refuses tokens that are not votes: tally wording ("+1 votes", "+1's from", "at least 3 +1",
  "+1 : Robert, Hervé"), template lines ("[ ] +1", unbracketed "+1 Release ..." / "-1 Do not
  release ..." runs), a +1 that is talked about ("translate this to a +1", "your +1"), a verb
  ("I'd +1 Bob's point"), numbers, versions, dates, diff hunks and phone numbers;
- records fractions ("+0.5", "-0,9") without counting them, and reports approval wording
  without a token ("works well for me", "LGTM") as a possible vote.

The work one message can cause is bounded, whatever its shape (anyone can post to a vote thread):

- only the first 1,000,000 characters of the body are looked at (a vote sits at the top of a
  reply, or below a quote; no reply on the ASF lists comes near that size); quoted blocks inside
  them are skipped by one regex at C speed;
- of the voter's own (unquoted) text, at most 1,000 non-blank lines or 64 KiB are read, the first
  2,000 characters of a line, and at most 10 tokens a line. The longest vote in the corpus sits
  on the second line of the voter's text; a long review with its vote at the bottom is some
  50 lines. Text past a bound is not read and the reading says so in its reasons;
- every regex is linear on its input (possessive quantifiers, no nested repeats, no retrying a
  run of spaces from each of its positions), so the cost is linear in the text read, and the
  text read is bounded.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Final, Literal

VoteValue = Literal["+1", "0", "-1", "?"]
Confidence = Literal["high", "low"]
Position = Literal["start", "mid"]


@dataclasses.dataclass(frozen=True, slots=True)
class Casting:
    """One vote token found in the voter's own text."""

    value: str
    """"+1", "0", "-1", or a fraction exactly as written ("+0.5", "-0.9")."""
    line: str
    """The line it came from, stripped."""
    fractional: bool
    position: Position = "start"
    """"start" when the token opens the line, "mid" when it sits in running text."""
    condition: str | None = None
    """The condition of a conditional vote ("if the CI run passes"), as written."""


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    """What one message body says about the vote."""

    vote: VoteValue | None
    castings: tuple[Casting, ...]
    quotation: str
    confidence: Confidence
    reasons: tuple[str, ...]
    fraction: str | None
    possible: str | None
    self_label: str | None
    lines_read: int = 0
    """How many lines of the voter's own text the rules looked at (bounded: see the module docstring)."""
    withdrawn: bool = False
    """The voter withdraws their earlier vote ("I retract my +1"); `vote` is the new one, if any."""
    condition: str | None = None
    """A conditional vote's condition ("as long as we fix the NOTICE year"): low confidence."""


# --- Where the voter's own text ends ------------------------------------------------------

_OUTLOOK_SEPARATOR: Final = re.compile(
    r"-{2,}+\s*(?:original message|message d'origine|ursprüngliche nachricht|originalnachricht|"
    r"message original|messaggio originale|mensaje original|mensagem original|oorspronkelijk bericht|"
    r"ursprungligt meddelande|originalmeddelelse|alkuperäinen viesti|wiadomość oryginalna|"
    r"původní zpráva|forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado)"
    r"\s*-{2,}",
    re.IGNORECASE,
)
_FORWARDED: Final = re.compile(r"begin forwarded message\s*:", re.IGNORECASE)
_HEADER_KEY: Final = re.compile(
    r"(from|de|von|da|van|od|från|fra|lähettäjä|发件人|寄件者|sent|date|datum|envoyé|gesendet|inviato|"
    r"enviado|enviada|verzonden|skickat|wysłane|发送时间|to|à|an|a|para|aan|till|do|收件人|cc|subject|objet|"
    r"betreff|oggetto|asunto|assunto|onderwerp|ämne|temat|主题)\s?[:：]",
    re.IGNORECASE,
)
_FROM_KEYS: Final = frozenset({"from", "de", "von", "da", "van", "od", "från", "fra", "lähettäjä", "发件人", "寄件者"})
_HEADER_LOOKAHEAD: Final = 5
_QUOTE_MARKS: Final = ">|"
_STOP_FIRST: Final = "-_Bb"
_COLONS: Final = ":："
_OPENER_PREFIXES: Final = ("On", "Am", "Le", "El", "Il", "Op", "Em", "De", "Dn", "W ", "在 ")
# A run of quoted lines, each ending in a newline (the last may end the text).
_QUOTE_BLOCK: Final = re.compile(r"(?:[ \t]*+[>|][^\n]*+(?:\n|\Z))++")

# Openers of an attribution that may wrap over several lines ("On Sun, 12 Nov 2017 ..., Name <a@b>\nwrote:").
_ATTRIBUTION_OPENER: Final = re.compile(r"(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|在)\s")
# An attribution ends with ":" after one of these verbs, or after "<address>" (Gmail in some locales).
_ATTRIBUTION_VERBS: Final = (
    "wrote",
    "writes",
    "schrieb",
    "schreef",
    "skrev",
    "a écrit",
    "a ecrit",
    "escribió",
    "escribio",
    "ha scritto",
    "pisze",
    "napisał",
    "napisal",
    "napsal",
    "escreveu",
    "kirjoitti",
    "написал",
    "写道",
    "寫道",
)
_ADDRESS_COLON: Final = re.compile(r"<[^<>\s@]+@[^<>\s]+>\s*[:：]\s*$")
_ATTRIBUTION_TAIL: Final = 120
_ATTRIBUTION_WRAP: Final = 3
_STOP: Final = -1
# A weak attribution ("Bob wrote:") names no address or date; it ends the reading only when a quote follows.
_STRONG_ATTRIBUTION: Final = re.compile(r"@|\d")

# --- Lines that are never votes -----------------------------------------------------------

_EMPTY_BOX: Final = re.compile(r"[\[(]\s*[\])]\s*[+-]?[01]\b")
_LOG_LINE: Final = re.compile(r"\[(?:INFO|WARN|WARNING|ERROR|DEBUG|TRACE|FATAL)\]")

# --- Tokens -------------------------------------------------------------------------------

_TOKEN: Final = re.compile(r"(?<![\w.+\-/\\=<>@#$%&|~^])([+-]?)([01])(?:([.,])(\d+))?(?![\w%/@])")
LINE_CHARS: Final = 2000
LINE_TOKENS: Final = 10
TEXT_CHARS: Final = 1_000_000
OWN_LINES: Final = 1000
OWN_CHARS: Final = 65_536
QUOTATION_CHARS: Final = 500
TEXT_CUT: Final = "text after the first 1,000,000 characters not read"
OWN_CUT: Final = "voter's text after its first 1,000 lines or 64 KiB not read"
_DASHES: Final = str.maketrans({"\u2212": "-", "\u2013": "-", "\uff0b": "+"})

# What follows the token.
# Possessive quantifiers (*+) keep these linear on long runs of spaces.
_NUMERIC_AFTER: Final = re.compile(r"[.,:\-]\d|\s*+,\s*+\d|\s*+[(.\-]?\s*+\d{2,}|\s*+[x×*/+=<>]\s*+\d")
_UNIT_AFTER: Final = re.compile(
    r"\s++(?:more|less|fewer|extra|days?|hours?|hrs?|weeks?|months?|years?|minutes?|mins?|seconds?|secs?|ms|"
    r"s|h|d|px|pt|em|bytes?|kb|mb|gb|chars?|characters?|lines?|rows?|columns?|items?|elements?|offset|index|"
    r"percent|points?|step|steps|level|levels|degrees?)\b",
    re.IGNORECASE,
)
_PLURAL_AFTER: Final = re.compile(r"(?:'s|’s)\b|\s++votes\b|\s++(?:vote\s++)?(?:count|tally)\b", re.IGNORECASE)
_VOTEISH_AFTER: Final = re.compile(
    r"\s*+(?:\(\s*+(?:non|not)?[-\s]?binding\s*+\)|(?:non|not)?[-\s]?binding\b|from\s+me\b|from\s+my\s+side\b|"
    r"(?:for|to|on)\s+(?:the\s+|this\s+)?release\b|release\b)",
    re.IGNORECASE,
)
_FROM_ME_AFTER: Final = re.compile(r"\s*+(?:\([^)]*+\)\s*+)?from\s++(?:me|my\s+side)\b", re.IGNORECASE)
_END_AFTER: Final = re.compile(r"[\s.!)*:;]*+$")
_BARE_ZERO_AFTER: Final = re.compile(
    r"\s*+$|\s*+[(\-–—:,.!;]|\s++(?:i|i'm|i've|from|because|as|binding|non-binding|nonbinding|no opinion|"
    r"don't|do not|not sure|neutral|abstain|for)\b",
    re.IGNORECASE,
)
_RESULT_COLON: Final = re.compile(r"\s*+(?:\([^)]*+\))?\s*+[:=]")
_TALLY_LINE: Final = re.compile(r"(?:[-*•]\s+)?[+-]?[01]\b")
_RESULT_COUNT: Final = re.compile(r"\s*+(?:\([^)]*+\))?\s*+[:=]\s*+\d+\b")
# No \s* around the separators: split would retry a run of spaces from each of its positions (n²).
_LIST_SPLIT: Final = re.compile(r"[,;&]|\band\b")
# [^()] and not [^)]: from each of a million "(" the scan for ")" would run to the end of the line.
_PAREN: Final = re.compile(r"\([^()]*+\)")

# What precedes the token.
_START_BEFORE: Final = re.compile(
    r"\s*(?:[-*•]\s+|\d{1,2}[.)]\s+|\[[xX✓✔vV*+]\]\s*|\(\s*|\*{1,2}|[\"']|(?:my\s+)?vote\s*:\s*|"
    r"(?:non[-\s]?binding|binding)\s*[:,]?\s*)?$",
    re.IGNORECASE,
)
_FILLED_BOX_BEFORE: Final = re.compile(r"\s*\[[xX✓✔vV*+]\]\s*$")
_TALK_BEFORE: Final = re.compile(
    r"\b(?:a|an|the|this|that|these|those|your|his|her|their|our|its|another|any|each|every|no|not|such|of|"
    r"as|with|without|than|give|given|gave|giving|got|get|gets|getting|translate|translated|count|counted|"
    r"counts|treat|treated|interpret|interpreted|consider|considered|need|needs|needed|require|requires|"
    r"required|want|wants|into|to|for|about|at least|least|more|fewer|only|\d+|one|two|three|four|five|six|"
    r"seven|eight|nine|ten|several|many|enough|multiple|some|all|zero)"
    r"\s+(?:(?:binding|non-binding|non binding|pmc|ppmc|ipmc|committer|formal|big|strong|explicit)\s+)?$",
    re.IGNORECASE,
)
_TALK_TALLY: Final = re.compile(
    r"\b(?:\d+|at least|least|one|two|three|four|five|six|seven|eight|nine|ten|several|many|enough|multiple|"
    r"more|fewer|only|zero)\s+(?:(?:binding|non-binding|non binding|pmc|ppmc|ipmc|committer|formal)\s+)?$",
    re.IGNORECASE,
)
# The voter's own vote in words that otherwise talk about one ("count me as +1", "I give it a +1").
_OWN_BEFORE: Final = re.compile(
    r"(?:\bme\s+as|\bmy\s+vote\s+(?:is|to|as)|\bvote\s+to|\bi\s+(?:will\s+|'ll\s+)?give\s+(?:it|this)\s+a|"
    r"\bi'?m\s+a|\bi\s+am\s+a)\s+$",
    re.IGNORECASE,
)
_MODAL_BEFORE: Final = re.compile(
    r"(?:'d|’d|\bwould|'ll|’ll|\bwill|\bcould|\bcan|\bshould|\bmight|\bmay|\bmust)\s+$", re.IGNORECASE
)
_VOTEISH_BEFORE: Final = re.compile(
    r"(?:\bmy(?:\s+\w+)?|\bvote[sd]?|\bvoting|\bmine\s+is|\bvote\s+is|\bi'?m|\bi\s+am|\bwe'?re|\bwe\s+are|"
    r"\bnon-?binding|\bnon\s+binding|\bbinding|\bhere'?s|\bhere\s+is|\bso|\bhence|\bthus|\btherefore|"
    r"\boverall|\banyway|\band|\balso|\bthen|\bfinally|\bpersonally|\bfrom\s+me|\bconclusion|\bsummary|"
    r"\bshort|\bverdict|\blgtm|\bme\s+as)\s*[:,]?\s*$",
    re.IGNORECASE,
)
_CLAUSE_START_BEFORE: Final = re.compile(r"(?:[.!?;:,(\[{]|\.\.\.|\s[-–—]|[:;]-?[)D(])\s*$")
# Words that make a token at the end of a line a value in code or prose, not a vote ("rc -1", "slot -1").
_NOUN_BEFORE: Final = re.compile(
    r"\b(?:rc|slot|index|idx|priority|level|offset|value|val|code|return|returns|returned|to|from|by|of|is|"
    r"was|be|at|minus|plus|equals|set|n|i|x|y|size|length|len|count|version|v|step|delta|diff|score|weight|"
    r"exit|status|port|id|position|pos|row|col|column|line|page|timeout|retries|depth|max|min|limit|default|"
    r"in|on|and|or|than|like|with|number|result|results|expect|expects|expected|give|gives|gave|yield|yields|"
    r"get|gets|got|become|becomes|show|shows|print|prints|report|reports|say|says|said)\s*$|[=<>]\s*$",
    re.IGNORECASE,
)
# The words just before a mid-line token decide; searching only them keeps the regexes cheap.
_BEFORE_TAIL: Final = 48
_CLAUSE_SPLIT: Final = re.compile(r"[.!?;:,()]")
_SHORT_CLAUSE_WORDS: Final = 4
_OTHERS_AFTER: Final = re.compile(r"\s*+(?:\([^)]*+\)\s*+)?from\s++(?!me\b|my\b|Me\b|My\b)[A-Z]")

# The vote as meant: withdrawn, changed, conditional, aimed at a point, spelled "±0".
# "±0" and "+/-0" are read as "+0" (same length, so that offsets into the line still hold).
_ZERO_SPELLINGS: Final = (("+/-", "  +"), ("±", "+"))
_RETRACT: Final = re.compile(
    r"\b(?:retract(?:s|ed|ing)?|withdraw(?:s|n|ing)?|withdrew|rescind(?:s|ed|ing)?|revok(?:e|es|ed|ing)|"
    r"take\s+back|taking\s+back|cancel(?:s|l?ed|l?ing)?|disregard|ignore|scratch)\s+"
    r"(?:my\s+(?:earlier\s+|previous\s+|original\s+|own\s+)?(?:vote|[+-][01]|0)|[+-][01])",
    re.IGNORECASE,
)
_CHANGE: Final = re.compile(
    r"(?:\b(?:chang|switch|revis|updat|amend|turn|mov|flip)\w*+\s++(?:my\s++(?:vote\s++|[+-][01]\s++|0\s++)?|"
    r"(?:the\s++|this\s++)?vote\s++)(?:from\s++\S++\s++)?(?:to|into)|\bswitch(?:ing)?\s++to|"
    r"\bmake\s++(?:that|it|mine)|\bchanging\s++to|\bchange\s++to)\s++(?:an?\s++)?",
    re.IGNORECASE,
)
_WITHDRAW_WORDS: Final = ("retract", "withdr", "rescind", "revok", "back", "cancel", "disregard", "ignore", "scratch")
_CONDITIONAL_AFTER: Final = re.compile(
    r"\s*+(?:\([^()]*+\)\s*+)?[,:;\-–—]?\s*+(?:but\s++)?(?:only\s++)?"
    r"(?P<condition>if|as\s++long\s++as|provided|providing|assuming|once(?!\s+(?:again|more))|on\s++condition|"
    r"conditional|pending|"
    r"subject\s++to|unless)\b",
    re.IGNORECASE,
)
_CONDITION_CHARS: Final = 120
_AIMED_AFTER: Final = re.compile(
    r"\s*+(?:to|on|for|with)\s++(?:what\b|[A-Z][\w-]*+(?:'s|’s)\s|"
    r"(?i:the|this|that|your|his|her|their|these|those|[a-z][\w-]*+(?:'s|’s))\s++(?:\w++\s++)?"
    r"(?i:suggestion|proposal|idea|point|comment|approach|plan|fix|pr|patch|remark|option|question|concern|"
    r"view|opinion|reply|message|mail|email|argument|reasoning|analysis|thought)s?\b)"
)
_ZERO_MID: Final = re.compile(
    r"\b(?:i'?m|i\s+am|i\s+vote|put\s+me\s+(?:down\s+)?(?:as|at)|count\s+me\s+as)\s+(0)"
    r"(?=\s+(?:on|for|here|about|regarding|from)\b|\s*+[.!,;]|\s*+$)",
    re.IGNORECASE,
)

# --- Around the casting -------------------------------------------------------------------

_TALLY_CONTEXT: Final = re.compile(
    r"\bvot(?:e|ing)\s+(?:has\s+|have\s+)?(?:passed|failed|closed|ended|carried|succeeded|is\s+(?:closed|over))\b|"
    r"\bfollowing\s+(?:result|results|votes|tally)\b|\b(?:current|interim|final|vote)\s+(?:tally|count)\b|"
    r"\btally\s*:|\bvotes\s+so\s+far\b|\bso\s+far\s+we\s+have\b|"
    r"^(?:the\s+)?(?:current\s+|binding\s+|non-binding\s+)?(?:votes|results?)\s*(?:of\s+the\s+vote\s*)?:?\s*$"
)
# Every tally context above holds one of these; testing them first spares the regex on most lines.
_TALLY_KEYS: Final = ("vot", "result", "tally", "count", "far")
_TEMPLATE_WORDS: Final = re.compile(
    r"release\s+this|do\s+not\s+release|don't\s+release|\bapprove\b|\bdisapprove\b|\breasons?\b|\bopinion\b|"
    r"\bbecause\b|\bwhy\b|feel\s+strongly",
    re.IGNORECASE,
)
_TEMPLATE_GAP: Final = 3
# A line the voter signs ("+1 from me", "+1 (binding)") is a vote even next to template lines.
_OWN_VOTE_WORDS: Final = re.compile(r"from\s+me\b|\bmy\s+vote\b|\bbinding\b", re.IGNORECASE)
_LABEL: Final = re.compile(r"\b(non[-\s]?binding|nonbinding|not\s+binding|binding)\b", re.IGNORECASE)
_LABEL_LINE: Final = re.compile(r"\(?\s*(non[-\s]?binding|nonbinding|not\s+binding|binding)\s*\)?\.?", re.IGNORECASE)

# --- Possible votes: approval without a token ---------------------------------------------

# Each pattern opens with a literal so that the regex engine scans for it at C speed (a leading \b
# or a case-insensitive alternation costs ~100 ns a character); the word boundary is checked in code.
_APPROVALS: Final = tuple(
    re.compile(pattern)
    for pattern in (
        r"lgtm\b",
        r"looks?\s+(?:good|great|fine|ok|okay)\b",
        r"work(?:s|ed)?\s+(?:well|fine|great|for\s+me|as\s+expected)\b",
        r"ship\s+it\b",
        r"approve(?:\s+(?:the|this)\s+release)?\b",
        r"no\s+(?:trouble|troubles|issues?|problems?|errors?|failures?)\b(?:\s+(?:found|encountered|seen|spotted))?",
        r"without\s+(?:any\s+)?(?:trouble|issues?|problems?|errors?)\b",
        r"all\s+good\b",
        r"good\s+to\s+go\b",
        r"thumbs\s+up\b",
        "👍",
    )
)
_NO_TROUBLE_BEFORE: Final = frozenset(
    {"had", "have", "found", "saw", "seen", "experienced", "encountered", "into", "hit", "with", "got", "absolutely"}
)
_SENTENCE_MARKS: Final = (". ", ".\n", "! ", "!\n", "? ", "?\n", "\n\n")
_SENTENCE_ENDS: Final = (".", "!", "?", "\n\n")
_SENTENCE_WINDOW: Final = 200
_APPROVAL_TRIES: Final = 5
# Matched against lower-cased text, without IGNORECASE: case folding makes every position slower.
_DISAPPROVAL: Final = re.compile(
    r"\b(?:not|never|cannot|no\s+longer|fail\w*|broken|break\w*|wrong|regression|blocker|unfortunately|if|"
    r"unless|would|should|whether)\b|n't\b|n’t\b|\?"
)
_EXCERPT_CHARS: Final = 160


@dataclasses.dataclass(slots=True)
class _Found:
    """A casting with where it was found; internal to one read()."""

    casting: Casting
    index: int
    below_quote: bool
    filled_box: bool


@dataclasses.dataclass(slots=True)
class _Scan:
    """What one pass over the body collected."""

    found: list[_Found]
    own: list[str]
    ignored: list[str]
    lines_read: int = 0
    withdrawn: bool = False


def read(text: str) -> Reading:
    """Find the vote cast in a message body (already decoded, LF line endings).

    Linear in the text, and reads a bounded prefix of it (see the module docstring).
    """
    cut = len(text) > TEXT_CHARS
    if cut:
        text = text[:TEXT_CHARS]
    if "\u2212" in text or "\u2013" in text or "\uff0b" in text:
        text = text.translate(_DASHES)
    lines = text.split("\n")
    scan = _scan(text, lines)
    if cut:
        scan.ignored.append(TEXT_CUT)
    found = _drop_template_runs(scan.found, scan.ignored)
    return _reading(found, scan, lines)


def _scan(text: str, lines: list[str]) -> _Scan:
    """Walk the voter's own lines: skip quotes and template lines, stop at a copy of earlier mail.

    This runs for every message of a vote thread, so the common lines take only cheap character
    tests; regexes run only on lines that may matter.
    """
    scan = _Scan([], [], [])
    own = scan.own
    below_quote = tally = False
    previous = ""
    own_chars = 0
    index = -1
    offset = 0  # where lines[index + 1] starts in text
    count = len(lines)
    while index + 1 < count:
        index += 1
        raw = lines[index]
        start = offset
        offset += len(raw) + 1
        line = raw.strip()[:LINE_CHARS]
        if not line:
            if own and own[-1]:
                own.append("")  # a paragraph break, for the excerpt of a possible vote
            continue
        first = line[0]
        if first in _QUOTE_MARKS:
            below_quote = True
            skipped, offset = _quote_block(text, start, offset)
            index += skipped
            continue
        if (first in _STOP_FIRST or ":" in line or "：" in line) and _ends_body(line, lines, index):
            break
        if line[-1] in _COLONS or line.startswith(_OPENER_PREFIXES):
            span = _attribution_span(line, lines, index)
            if span == _STOP:
                break
            if span:
                offset += sum(len(extra) + 1 for extra in lines[index + 1 : index + span])
                index += span - 1
                continue
        own_chars += len(line)
        if scan.lines_read >= OWN_LINES or own_chars > OWN_CHARS:
            scan.ignored.append(OWN_CUT)
            break
        scan.lines_read += 1
        tally = _own_line(scan, line, index, below_quote, tally=tally, previous=previous)
        previous = line
    return scan


def _own_line(scan: _Scan, line: str, index: int, below_quote: bool, *, tally: bool, previous: str) -> bool:
    """Read one line of the voter's own text; returns whether a tally block goes on."""
    if ("1" in line or "0" in line) and _has_token(line, line[0]):
        tally = _in_tally(line, previous, tally)
        _read_line(scan, line, index, below_quote, tally)
        return tally
    # Only lines without a token can hold a possible vote: "[ ] +1 Approve the release" must not.
    scan.own.append(line)
    if _may_withdraw(line):
        scan.withdrawn = True
        scan.ignored.append("earlier vote withdrawn")
    return False


def _quote_block(text: str, start: int, offset: int) -> tuple[int, int]:
    """Skip a block of quoted lines at C speed: (further lines to skip, offset after the block)."""
    block = _QUOTE_BLOCK.match(text, start)
    if block is None:
        return 0, offset
    end = block.end()
    return text.count("\n", start, end) + (end == len(text)) - 1, end


def _has_token(line: str, first: str) -> bool:
    if "+1" in line or "-1" in line or "+0" in line or "-0" in line or first == "0" or "±0" in line:
        return True
    return " 0" in line and _ZERO_MID.search(line) is not None


def _attribution_span(line: str, lines: list[str], index: int) -> int:
    """Lines to skip for an attribution introducing a quote; _STOP before an unprefixed copy; 0 if none."""
    span = _attribution(line, lines, index)
    if not span:
        return 0
    after = _next_text(lines, index + span)
    if after is not None and after[0] in _QUOTE_MARKS:
        return span
    # Unprefixed text under an attribution is a copy of the earlier mail (HTML quotes lose their ">").
    if span > 1 or _STRONG_ATTRIBUTION.search(line):
        return _STOP
    return 1


def _in_tally(line: str, previous: str, tally: bool) -> bool:
    """A tally block: a line that announces a result, and the "+1: names" lines under it."""
    if tally and _TALLY_LINE.match(line):
        return True
    return _tally_context(line) or _tally_context(previous)


def _tally_context(line: str) -> bool:
    low = line.lower()
    return any(key in low for key in _TALLY_KEYS) and bool(_TALLY_CONTEXT.search(low))


def _read_line(scan: _Scan, line: str, index: int, below_quote: bool, tally: bool) -> None:
    if _EMPTY_BOX.search(line):
        scan.ignored.append("template lines ([ ] +1) skipped")
        return
    if line[0] == "[" and _LOG_LINE.match(line):
        return
    written = line
    for spelling, token in _ZERO_SPELLINGS:
        if spelling in line:
            line = line.replace(spelling, token)
    changed = _changed_vote(line, written, scan.ignored)
    if changed is not None:
        scan.found.append(_Found(changed, index, below_quote, False))
        return
    start = 0
    retract = _RETRACT.search(line)
    if retract is not None:
        scan.withdrawn = True
        scan.ignored.append("earlier vote withdrawn")
        start = retract.end()
    for casting, filled in _castings(line, tally, scan.ignored, start):
        scan.found.append(_Found(dataclasses.replace(casting, line=written), index, below_quote, filled))
    zero = _ZERO_MID.search(line, start) if not scan.found or scan.found[-1].index != index else None
    if zero is not None:
        scan.found.append(_Found(Casting("0", written, False, "mid"), index, below_quote, False))


def _may_withdraw(line: str) -> bool:
    """ "I retract my vote" on a line without a token; substring tests first, as most lines have none."""
    low = line.lower()
    return any(word in low for word in _WITHDRAW_WORDS) and _RETRACT.search(line) is not None


def _changed_vote(line: str, written: str, ignored: list[str]) -> Casting | None:
    """The new value of a changed vote ("changing my -1 to a ±0", "make that a +1"), else None."""
    change = _CHANGE.search(line)
    if change is None:
        return None
    token = _TOKEN.match(line, change.end())
    if token is None:
        return None
    sign, digit, separator, _decimals = token.groups()
    if not sign and digit != "0":
        return None
    fractional = separator is not None
    value = token.group(0) if fractional else _normal_value(sign, digit)
    ignored.append(f"vote changed to {value}")
    return Casting(value, written, fractional, "mid")


def _ends_body(line: str, lines: list[str], index: int) -> bool:
    """A signature, an Outlook separator or an unprefixed header block ends the voter's text."""
    first = line[0]
    if first == "-":
        return line == "--" or (line[-1] == "-" and bool(_OUTLOOK_SEPARATOR.match(line)))
    if first == "_":
        return line.startswith("____")
    if first in "Bb" and _FORWARDED.match(line):
        return True
    header = _HEADER_KEY.match(line)
    if header is None:
        return False
    keys = {header.group(1).lower()}
    for following in lines[index + 1 : index + 1 + _HEADER_LOOKAHEAD]:
        more = _HEADER_KEY.match(following.strip())
        if more is not None:
            keys.add(more.group(1).lower())
    return len(keys) > 1 and not keys.isdisjoint(_FROM_KEYS)


def _attribution(line: str, lines: list[str], index: int) -> int:
    """How many lines an attribution ("On ... wrote:") starting here spans; 0 if none."""
    # A line with a casting in it ("+1, as Bob wrote:") is the voter's own text.
    if _has_signed_token(line):
        return 0
    if line[-1] in _COLONS and _attribution_text(line):
        return 1
    if not _ATTRIBUTION_OPENER.match(line):
        return 0
    joined = line
    for extra in range(1, _ATTRIBUTION_WRAP):
        if index + extra >= len(lines):
            return 0
        following = lines[index + extra].strip()
        if not following or following[0] in ">|":
            return 0
        joined = f"{joined} {following}"
        if following[-1] in _COLONS and _attribution_text(joined):
            return extra + 1
    return 0


def _attribution_text(text: str) -> bool:
    """Text ending in ":" that reads as an attribution; substring tests, as regexes cost per character."""
    tail = text[-_ATTRIBUTION_TAIL:].lower()
    return any(verb in tail for verb in _ATTRIBUTION_VERBS) or bool(_ADDRESS_COLON.search(tail))


def _has_signed_token(line: str) -> bool:
    """A "+1", "-1", "+0" or "-0" that is not part of a number ("+0100" and "2017-11-17" are not)."""
    return any(match.group(1) for match in _TOKEN.finditer(line))


def _next_text(lines: list[str], index: int) -> str | None:
    """The next non-blank line from `index`, stripped."""
    # Indexes, not a slice: a slice copies the rest of the list on every call (n² on "+1" per line).
    for position in range(index, len(lines)):
        stripped = lines[position].strip()
        if stripped:
            return stripped
    return None


def _castings(line: str, tally: bool, ignored: list[str], start: int = 0) -> list[tuple[Casting, bool]]:
    """The castings in one line of the voter's own text, each with whether it fills a template box."""
    result: list[tuple[Casting, bool]] = []
    # A vote is cast near the start of a short line; the caps keep a hostile line from costing n².
    for match in itertools.islice(_TOKEN.finditer(line, start, LINE_CHARS), LINE_TOKENS):
        position = _position(line, match, tally, ignored)
        if position is None:
            continue
        sign, digit, separator, _decimals = match.groups()
        fractional = separator is not None
        value = match.group(0) if fractional else _normal_value(sign, digit)
        filled = bool(_FILLED_BOX_BEFORE.match(line[: match.start()]))
        condition = _CONDITIONAL_AFTER.match(line, match.end())
        written = None
        if condition is not None:
            begin = condition.start("condition")
            written = line[begin : begin + _CONDITION_CHARS].strip()
        result.append((Casting(value, line, fractional, position, written), filled))
    return result


def _normal_value(sign: str, digit: str) -> str:
    if digit == "0":
        return "0"
    return "-1" if sign == "-" else "+1"


def _position(line: str, match: re.Match[str], tally: bool, ignored: list[str]) -> Position | None:
    """Where a token sits when it is a casting ("start" or "mid"), or None when it is not one."""
    sign, digit, separator, _decimals = match.groups()
    before = line[: match.start()]
    after = line[match.end() :]
    start = bool(_START_BEFORE.fullmatch(before))
    if not _plausible_token(sign, digit, separator, start, after):
        return None
    if _UNIT_AFTER.match(after):
        return None
    token = match.group(0)
    if _PLURAL_AFTER.match(after) or (tally and not _FROM_ME_AFTER.match(after)):
        ignored.append(f"{token} in tally wording, not a vote")
        return None
    if _OTHERS_AFTER.match(after):
        ignored.append(f"{token} reported for someone else, not cast")
        return None
    if _AIMED_AFTER.match(after):
        ignored.append(f"{token} on a proposal or point, not on the release")
        return None
    if start:
        if _is_result_list(after):
            ignored.append(f"{token} in a tally list, not a vote")
            return None
        return "start"
    return _mid_position(before[-_BEFORE_TAIL:], after, token, ignored)


def _plausible_token(sign: str, digit: str, separator: str | None, start: bool, after: str) -> bool:
    """Signs, digits and what follows: "+1" yes; "1", "+100", "+1.2", "+1 650 555 1234" no."""
    if _NUMERIC_AFTER.match(after):
        return False
    if not sign:
        return digit == "0" and separator is None and start and bool(_BARE_ZERO_AFTER.match(after))
    if separator is None:
        return True
    # Fractions: only below one ("+0.5"); a comma fraction ("+0,5") only where it opens the line.
    return digit == "0" and (separator == "." or start)


def _mid_position(before: str, after: str, token: str, ignored: list[str]) -> Position | None:
    """A token in running text counts only where the words around it cast it."""
    if before.endswith(":") and after.startswith(":"):
        return "mid"  # the thumbs-up emoji code ":+1:"
    if _OWN_BEFORE.search(before):
        return "mid"
    if _TALK_BEFORE.search(before) and not _FROM_ME_AFTER.match(after):
        if _TALK_TALLY.search(before):
            ignored.append(f"{token} in tally wording, not a vote")
        else:
            ignored.append(f"{token} talked about, not cast")
        return None
    if _MODAL_BEFORE.search(before):
        ignored.append(f"{token} used as a verb, not cast")
        return None
    if _VOTEISH_BEFORE.search(before) or _CLAUSE_START_BEFORE.search(before) or _VOTEISH_AFTER.match(after):
        return "mid"
    if _END_AFTER.match(after) and not _NOUN_BEFORE.search(before) and _short_clause(before):
        return "mid"  # "Great work +1"
    return None


def _short_clause(before: str) -> bool:
    """The words between the last punctuation and a token that ends its line are few (not a sentence)."""
    return len(_CLAUSE_SPLIT.split(before)[-1].split()) <= _SHORT_CLAUSE_WORDS


def _is_result_list(after: str) -> bool:
    """ "+1 : Martijn Verburg, Robert Scholte, ..." or "+1: 5": a result tally, not a vote."""
    if _RESULT_COUNT.match(after):
        return True
    colon = _RESULT_COLON.match(after)
    if colon is None:
        return False
    rest = _PAREN.sub("", after[colon.end() :])
    items = [item.strip() for item in _LIST_SPLIT.split(rest.strip())]
    trailing = bool(items) and items[-1] == ""
    names = [item for item in items if item]
    # "+1 (non-binding): Vaquar Khan" lists someone's vote; "+1 (binding): LGTM" is one.
    labelled = "(" in after[: colon.end()] and len(names) == 1 and not names[0].isupper()
    if len(names) < 2 and not (names and (trailing or labelled)):
        return False
    return all(_is_name(item) for item in names)


def _is_name(item: str) -> bool:
    words = item.split()
    return 0 < len(words) <= 4 and all(word[0].isupper() for word in words)


def _drop_template_runs(found: list[_Found], ignored: list[str]) -> list[_Found]:
    """Unbracketed template lines ("+1 Release this package" / "0 ..." / "-1 Do not release ...")."""
    starts = [n for n, item in enumerate(found) if _may_be_template(item)]
    if len(starts) < 2:
        return found
    dropped: set[int] = set()
    run = [starts[0]]
    for n in starts[1:]:
        if found[n].index - found[run[-1]].index > _TEMPLATE_GAP:
            dropped.update(_template_run(found, run))
            run = []
        run.append(n)
    dropped.update(_template_run(found, run))
    if not dropped:
        return found
    ignored.append("[VOTE] template lines skipped")
    return [item for n, item in enumerate(found) if n not in dropped]


def _may_be_template(item: _Found) -> bool:
    casting = item.casting
    return casting.position == "start" and not item.filled_box and not _OWN_VOTE_WORDS.search(casting.line)


def _template_run(found: list[_Found], run: list[int]) -> list[int]:
    """The run's members when they look like the template's explanation lines, else nothing."""
    lines = [found[n].casting for n in run]
    values = {casting.value for casting in lines if not casting.fractional}
    if len(values) < 2:
        return []
    if len(values) < 3 and not any(_TEMPLATE_WORDS.search(casting.line) for casting in lines):
        return []
    return run


def _reading(found: list[_Found], scan: _Scan, lines: list[str]) -> Reading:
    castings = tuple(item.casting for item in found)
    counted = [item for item in found if not item.casting.fractional]
    fraction = next((c.value for c in castings if c.fractional), None)
    quotation = _quotation(castings)
    reasons: list[str] = []
    if not counted:
        possible = None if castings else _possible(scan.own)
        label = _possible_label(possible)
        reasons.extend(scan.ignored)
        confidence: Confidence = "low" if possible or fraction else "high"
        return Reading(
            None,
            castings,
            quotation,
            confidence,
            _unique(reasons),
            fraction,
            possible,
            label,
            scan.lines_read,
            scan.withdrawn,
        )
    values = {item.casting.value for item in counted}
    vote: VoteValue
    if len(values) > 1:
        vote = "?"
        reasons.append("castings disagree: " + ", ".join(sorted(values)))
    else:
        vote = _as_vote(next(iter(values)))
        if len(counted) > 1:
            reasons.append(f"{_count_words(len(counted))} agreeing castings")
    if all(item.casting.position == "mid" for item in counted):
        reasons.append("vote mid-line")
    if any(item.below_quote for item in counted):
        reasons.append("vote below quoted text")
    if fraction is not None:
        reasons.append(f"fractional {fraction} also written; not counted")
    label = _self_label(counted, lines)
    if label is not None:
        reasons.append(f"self-labelled {label}")
    reasons.extend(scan.ignored)
    condition = next((item.casting.condition for item in counted if item.casting.condition), None)
    if condition is not None:
        reasons.append(f"conditional vote: {condition}")
    high = vote != "?" and condition is None and any(item.casting.position == "start" for item in counted)
    confidence = "high" if high else "low"
    return Reading(
        vote,
        castings,
        quotation,
        confidence,
        _unique(reasons),
        fraction,
        None,
        label,
        scan.lines_read,
        scan.withdrawn,
        condition,
    )


def _quotation(castings: tuple[Casting, ...]) -> str:
    """The casting lines, each once, joined; cut at a fixed length (a hostile reply may cast on every line)."""
    quotation = ""
    for line in dict.fromkeys(casting.line for casting in castings):
        quotation = f"{quotation} // {line}" if quotation else line
        if len(quotation) > QUOTATION_CHARS:
            return quotation[: QUOTATION_CHARS - 1] + "…"
    return quotation


def _as_vote(value: str) -> VoteValue:
    if value == "+1":
        return "+1"
    if value == "-1":
        return "-1"
    return "0"


def _count_words(count: int) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(count, str(count))


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _self_label(counted: list[_Found], lines: list[str]) -> str | None:
    """ "binding" / "non-binding" written on a casting line, or alone on the line after it."""
    for item in counted:
        found = _LABEL.search(item.casting.line) if "inding" in item.casting.line.lower() else None
        if found is None:
            following = _next_text(lines, item.index + 1)
            found = _LABEL_LINE.fullmatch(following) if following else None
        if found is not None:
            return _label_name(found.group(1))
    return None


def _label_name(word: str) -> str:
    return "binding" if word.lower() == "binding" else "non-binding"


def _possible(own: list[str]) -> str | None:
    """Approval wording without a casting, as a short excerpt for the release manager."""
    if not own:
        return None
    text = "\n".join(own)
    low = text.lower()
    if len(low) != len(text):
        low = text  # a few characters grow when lower-cased ("İ"); keep offsets aligned instead
    best: tuple[int, str] | None = None
    for pattern in _APPROVALS:
        found = _approval(pattern, text, low)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    return best[1] if best else None


def _approval(pattern: re.Pattern[str], text: str, low: str) -> tuple[int, str] | None:
    """The first use of one approval phrase that reads as approval, with its excerpt."""
    for tries, match in enumerate(pattern.finditer(low)):
        if tries == _APPROVAL_TRIES:
            return None
        start = match.start()
        if start and low[start - 1].isalnum():
            continue
        if not _approval_in_context(match, low):
            continue
        left, right = _sentence_bounds(text, start, match.end())
        if _DISAPPROVAL.search(low, left, right):
            continue
        return start, _excerpt(_paragraph_or(text, low, left, right))
    return None


def _approval_in_context(match: re.Match[str], low: str) -> bool:
    """ "no trouble" and "approve" need the words around them ("I experienced no trouble", "I approve")."""
    phrase = match.group(0)
    before = low[max(0, match.start() - 20) : match.start()].split()
    previous = before[-1] if before else ""
    if phrase.startswith("no"):
        return previous in _NO_TROUBLE_BEFORE or phrase.endswith(("found", "encountered", "seen", "spotted"))
    if phrase.startswith("approve"):
        return previous == "i" or phrase.endswith("release")
    return True


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    low_limit = max(0, start - _SENTENCE_WINDOW)
    left = max(text.rfind(mark, low_limit, start) for mark in _SENTENCE_MARKS)
    left = low_limit if left < 0 else left + 2
    if low_limit and left == low_limit:
        left = start
    stops = [found for found in (text.find(mark, end, end + _SENTENCE_WINDOW) for mark in _SENTENCE_ENDS) if found >= 0]
    right = min(stops) + 1 if stops else min(len(text), end + _SENTENCE_WINDOW)
    return left, right


def _paragraph_or(text: str, low: str, left: int, right: int) -> str:
    """The whole paragraph when it is short and says nothing against, else the sentence."""
    start = text.rfind("\n\n", 0, left) + 1
    stop = text.find("\n\n", right)
    stop = stop if stop >= 0 else len(text)
    if stop - start <= _EXCERPT_CHARS and not _DISAPPROVAL.search(low, start, stop):
        return text[start:stop]
    return text[left:right]


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def _possible_label(possible: str | None) -> str | None:
    if possible is None:
        return None
    found = _LABEL.search(possible)
    return _label_name(found.group(1)) if found else None
