"""Vetoes against semantic false hits: prompts that embed close together but ask something else.

Embeddings place "enable 2FA" next to "disable 2FA", "capital of France" next to "capital of Spain" and
"5 km to miles" next to "5 miles to km". A candidate whose cosine similarity passes the threshold is
still refused when the two prompts differ in:

- numbers (digits, decimals, number words, ordinals: "3 tips" vs "5 tips", "first" vs "second");
- polarity: negators (not, never, without, no, n't ...; and the common ones of German, French,
  Spanish, Italian, Portuguese and Dutch), either side of an opposite pair (enable/disable, turn
  on/off, add/remove, increase/decrease, before/after, min/max ...), or a word that is the other
  prompt's word with a negating prefix (un-, dis-, de-, in-, im-, non-, anti-: lock/unlock, like/dislike);
- specific tokens: capitalised or all-caps words, identifiers (snake_case, dotted names, paths,
  e-mail addresses, tokens mixing letters and digits) and quoted strings: each one in one prompt must
  appear, in any case, among the words of the other;
- direction: for "A to B" / "from A to B" conversions and translations, the order of the terms;
- a swapped slot: the same request template with content words replaced ("population" for "area",
  "read" for "write") where no replaced word has a close match (word-embedding cosine, given by the
  caller) among the words that replaced it. Paraphrases mostly change function words and structure;
  near misses keep the template and change the slot.

Everything here is regular-expression work over short texts (tens of microseconds).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

_WORD = re.compile(r"[^\W\d_][\w'.@/-]*\w|[^\W\d_]|\d[\w.,%/:-]*")
_NUMBER = re.compile(r"(?<![A-Za-z0-9])\d+(?:[.,]\d+)*(?![A-Za-z])")
_FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
_QUOTED = re.compile(r"[\"“'`]([^\"”'`]{2,60})[\"”'`]")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n)\W*([A-Za-z][\w'\u2019]*)")
_DIRECTION = re.compile(r"\b(?:from\s+)?(\w[\w-]*)\s+(?:to|into|->|→)\s+(\w[\w-]*)", re.IGNORECASE)

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "thirty": "30",
    "hundred": "100", "thousand": "1000", "million": "1e6", "billion": "1e9", "dozen": "12", "half": "0.5",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th", "last": "last",
    "single": "1", "double": "x2", "twice": "x2", "triple": "x3", "once": "x1",
}  # fmt: skip

NEGATORS = frozenset(
    {"not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor", "cannot", "except",
     "excluding", "unless", "lack", "lacking", "non",
     "nicht", "kein", "keine", "keinen", "ohne", "nie", "niemals",  # de
     "ne", "pas", "sans", "jamais", "aucun", "aucune",  # fr
     "sin", "nunca", "ningún", "ninguna", "tampoco",  # es
     "senza", "mai", "nessun", "nessuna",  # it
     "não", "sem", "nenhum", "nenhuma",  # pt
     "niet", "geen", "zonder", "nooit"}  # nl
)  # fmt: skip

_NEGATING_STEMS = ("avoid", "exclud", "omit", "skip", "prevent", "forbid", "refus")
"""Verbs that negate what follows, in any inflection (avoiding tolls, excluding weekends)."""

_OPPOSITES: tuple[tuple[str, str, str], ...] = (
    ("toggle", "enable enabled enabling activate activated turn_on switch_on on unmute unblock allow "
     "aktivieren einschalten activer activar attivare ativar inschakelen",
     "disable disabled disabling deactivate deactivated turn_off switch_off off mute block deny "
     "deaktivieren ausschalten désactiver desactivar disattivare desativar uitschakelen"),
    ("install", "install installing installed setup set_up", "uninstall uninstalling uninstalled remove_app"),
    ("add", "add adding added insert include including grant", "remove removing removed delete exclude revoke"),
    ("lock", "lock locked encrypt encrypted encryption", "unlock unlocked decrypt decrypted decryption"),
    ("size", "increase increasing raise bigger larger largest more higher high maximum max upgrade gain",
     "decrease decreasing reduce lower smaller smallest less fewer low minimum min downgrade lose"),
    ("move", "upload push import send arriving arrive incoming",
     "download pull export receive departing depart outgoing"),
    ("session", "login log_in sign_in signin", "logout log_out sign_out signout"),
    ("state", "open opening start starting started", "close closing stop stopping stopped"),
    ("vis", "public visible show", "private hidden hide"),
    ("sub", "subscribe follow", "unsubscribe unfollow"),
    ("order", "ascending asc", "descending desc"),
    ("time", "before earlier early first previous past", "after later late last next future"),
    ("value", "advantages pros benefits good safe best accept true yes",
     "disadvantages cons risks bad unsafe worst reject false"),
    ("trade", "buy buying purchase", "sell selling"),
    ("temp", "heat heating hot warm", "cool cooling cold"),
    ("flation", "inflation", "deflation"),
    ("code", "encode encoding encoded", "decode decoding decoded"),
    ("case", "uppercase upper capitalize", "lowercase lower"),
    ("side", "left", "right"),
    ("ns", "north northern", "south southern"),
    ("ew", "east eastern", "west western"),
    ("outcome", "win winning pass passing success succeed approve approved",
     "lose losing fail failing failure deny denied"),
    ("io", "input inbound ingress", "output outbound egress"),
    ("sync", "synchronous sync blocking", "asynchronous async non-blocking"),
)  # fmt: skip
OPPOSITES: dict[str, tuple[str, int]] = {
    word: (group, sign)
    for group, plus, minus in _OPPOSITES
    for sign, words in ((1, plus), (-1, minus))
    for word in words.split()
}
STOPWORDS = frozenset(
    """a an the of in on at to for from with by about into over under and or but if then so than as is are was
    were be been being am do does did doing done have has had having i me my mine we us our you your yours he
    she it its they them their this that these those there here what which who whom whose when where why how
    can could would should will shall may might must please tell give show explain describe help want need
    know like let some any all each every other such very really just also much many most one thing things
    way ways best good right proper simple simply briefly brief quick quickly easy easily possible it's
    what's whats i'm i'd you're there's that's let's go going get getting got make making made use using used
    say said""".split()
)
"""Function words and generic request words, left out of the swapped-slot comparison."""

_PHRASES = re.compile(r"\b(turn|switch|log|sign|set)\s+(on|off|in|out|up)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Features:
    """What a prompt pins down, for comparing it with a cached prompt."""

    text: str  # lower-cased, for multi-word specific terms
    words: frozenset[str]
    numbers: frozenset[str]
    polarity: frozenset[tuple[str, int]]
    negated: bool
    specific: frozenset[str]
    directions: tuple[tuple[str, str], ...]
    content: Counter[str]


def features(text: str) -> Features:
    """The veto features of one prompt."""
    joined = _PHRASES.sub(lambda m: f"{m.group(1)}_{m.group(2)}", text)
    tokens = _WORD.findall(joined)
    lowered = [t.lower().strip(".'") for t in tokens]
    numbers = set(_NUMBER.findall(text.replace(",", "")))
    polarity: set[tuple[str, int]] = set()
    negated = "n't" in text.lower() or "n\u2019t" in text.lower()
    for word in lowered:
        if word in NUMBER_WORDS:
            numbers.add(NUMBER_WORDS[word])
        if word in NEGATORS or word.endswith("n't") or word.startswith(_NEGATING_STEMS):
            negated = True
        if (hit := OPPOSITES.get(word)) is not None:
            polarity.add(hit)
    words = frozenset(_stem(w) for w in lowered) | frozenset(lowered) | {f.lower() for f in _FLAG.findall(text)}
    directions = tuple((_stem(a.lower()), _stem(b.lower())) for a, b in _DIRECTION.findall(text))
    specific = _specific(text, _WORD.findall(text))
    content = Counter(_stem(w) for w in lowered if w.isalpha() and w not in STOPWORDS)
    return Features(
        text.lower(), words, frozenset(numbers), frozenset(polarity), negated, specific, directions, content
    )


def _specific(text: str, tokens: list[str]) -> frozenset[str]:
    starts = {_stem(m.group(1)) for m in _SENTENCE_START.finditer(text)}
    out = {q.strip().lower() for q in _QUOTED.findall(text)}
    out |= {flag.lower() for flag in _FLAG.findall(text)}
    for token in tokens:
        bare = token.strip(".'")
        if len(bare) < 2:
            continue
        has_digit = any(c.isdigit() for c in bare) and any(c.isalpha() for c in bare)
        ident = any(c in bare for c in "_./@") or has_digit or (bare[1:] != bare[1:].lower() and bare != bare.upper())
        caps = bare[0].isupper() and _stem(bare) not in starts
        if ident or caps or (bare.isupper() and len(bare) > 1):
            out.add(_stem(bare.lower()))
    return frozenset(out)


def _stem(word: str) -> str:
    for suffix in ("'s", "\u2019s"):
        word = word.removesuffix(suffix)
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


WordSimilarity = Callable[[list[str], list[str]], float]
"""Given two lists of words, the lowest over all words of the best cosine to a word of the other list."""

SLOT_SIMILARITY = 0.5
"""A replaced word needs at least this word-embedding cosine to one of its replacements (tuned on the pair set)."""


def swapped_slot(new: Features, cached: Features, similarity: WordSimilarity) -> bool:
    """Whether the two prompts are one template with a slot filled differently (see the module doc)."""
    gone = list((cached.content - new.content).elements())
    came = list((new.content - cached.content).elements())
    if not gone or not came:
        return False
    return similarity(sorted(set(gone)), sorted(set(came))) < SLOT_SIMILARITY


def veto(new: Features, cached: Features) -> str | None:
    """Why ``cached`` must not answer ``new`` (a short reason), or None when nothing forbids it."""
    if new.numbers != cached.numbers:
        return "number"
    if new.negated != cached.negated:
        return "negation"
    if _opposed(new.polarity, cached.polarity) or _prefixed(new.words, cached.words):
        return "polarity"
    if not (_covered(new.specific, cached) and _covered(cached.specific, new)):
        return "entity"
    if _reversed(new.directions, cached.directions):
        return "direction"
    return None


def _opposed(a: frozenset[tuple[str, int]], b: frozenset[tuple[str, int]]) -> bool:
    """Both prompts use a pair of opposites, with different sides (one-sided use is left to similarity)."""
    groups = {g for g, _ in a} & {g for g, _ in b}
    return any({s for g2, s in a if g2 == g} != {s for g2, s in b if g2 == g} for g in groups)


_PREFIXES = ("un", "dis", "de", "in", "im", "non", "anti", "non-", "anti-")


def _prefixed(a: frozenset[str], b: frozenset[str]) -> bool:
    """One prompt has a word the other has with a negating prefix (both directions)."""
    return any(p + w in b for w in a if len(w) > 2 for p in _PREFIXES) or any(
        p + w in a for w in b if len(w) > 2 for p in _PREFIXES
    )


def _covered(terms: frozenset[str], other: Features) -> bool:
    return all(term in other.words or (" " in term and term in other.text) for term in terms)


def _reversed(a: tuple[tuple[str, str], ...], b: tuple[tuple[str, str], ...]) -> bool:
    return any((y, x) in b for x, y in a if x != y)
