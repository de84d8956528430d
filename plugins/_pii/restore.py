"""Reversible PII placeholders: mask a request's texts given detected spans, restore the originals in the answer.

One ``PlaceholderMap`` lives for one request, in memory only (never stored, logged or repr'd with values).
``apply`` replaces each detected span by its mode's token:

- ``pseudonymize``: ``<PERSON_1>``, ``<EMAIL_ADDRESS_2>``... numbered per entity type from 1, consistent across
  every text of the request (same entity type and same original value, same placeholder), and reversible;
- ``mask``: ``<PERSON>``, one-way; ``redact``: ``[REDACTED]``, one-way.

A placeholder that already occurs literally in the request's texts is never issued (its number is skipped), so
``restore`` only ever turns placeholders this map issued back into originals, and unknown ones (``<PERSON_99>``, a
user's literal ``<PERSON_1>``) pass through untouched.

Placeholder grammar, on purpose strict: ``<`` ENTITY ``_`` N ``>`` exactly as issued, matched ASCII
case-insensitively (``<person_1>`` and ``<Person_1>`` restore); no inner whitespace, no missing brackets, no
leading zeros. Anything looser risks "restoring" text the model wrote on its own.

``StreamRestorer`` does the same for a text that arrives in pieces (a stream's content or tool-call arguments):
it holds back only a tail that is still a proper prefix of an issued placeholder, so the concatenated output of
``feed`` calls plus ``flush`` always equals ``restore`` of the whole text, however it was split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MODES = frozenset({"pseudonymize", "mask", "redact"})
REDACTED = "[REDACTED]"

_STRICTNESS = {"pseudonymize": 0, "mask": 1, "redact": 2}  # which mode wins when two spans overlap
_ENTITY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NUMBER_SUFFIX = re.compile(r"_[0-9]+\Z")
# ASCII classes only, looked up lower-cased: a Unicode \w would let the Kelvin sign in "<\u212a_1>" lower-case to <k_1>.
_PLACEHOLDER = re.compile(r"<[A-Za-z0-9_]+_[0-9]+>")


@dataclass(frozen=True, slots=True)
class Span:
    """A detected PII span ``text[start:end]`` of type ``entity``, and what to replace it with (``mode``)."""

    entity: str
    start: int
    end: int
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"span mode {self.mode!r} is not one of {sorted(MODES)}")
        # An entity ending in _<digits> would make its mask token <X_1> look like a numbered placeholder.
        if not _ENTITY.fullmatch(self.entity) or _NUMBER_SUFFIX.search(self.entity):
            raise ValueError(
                f"span entity {self.entity!r} must be ASCII letters, digits and underscores, start with a letter "
                "and not end in _<digits>"
            )
        if not 0 <= self.start <= self.end:
            raise ValueError(f"span {self.start}:{self.end} is not a valid range")


class PlaceholderMap:
    """One request's reversible mapping between originals and the placeholders that stand for them.

    Pass every text of the request as ``reserved_texts`` before the first ``apply``, so no issued placeholder
    collides with one a user typed literally in any of them (``apply`` also reserves its own text, but a literal
    in a text applied later cannot be told apart from an already issued placeholder).
    """

    __slots__ = ("_by_value", "_counts", "_escaped", "_longest", "_next", "_originals", "_prefixes", "_reserved")

    def __init__(self, reserved_texts: Iterable[str] = ()) -> None:
        self._reserved: set[str] = set()  # lower-cased placeholder-shaped literals of the request
        for text in reserved_texts:
            self._reserve(text)
        self._by_value: dict[tuple[str, str], str] = {}  # (ENTITY, original) -> placeholder
        self._originals: dict[str, str] = {}  # lower-cased placeholder -> original
        self._escaped: dict[str, str] = {}  # lower-cased placeholder -> original as inside a JSON string
        self._prefixes: set[str] = set()  # proper prefixes of the issued placeholders, lower-cased
        self._longest = 0
        self._next: dict[str, int] = {}  # ENTITY -> first number not tried yet
        self._counts: dict[str, int] = {}  # ENTITY -> spans replaced, all modes

    def _reserve(self, text: str) -> None:
        if "<" in text:
            self._reserved.update(token.lower() for token in _PLACEHOLDER.findall(text))

    def apply(self, text: str, spans: Sequence[Span]) -> str:
        """``text`` with each span replaced by its mode's token.

        Spans may come in any order; empty spans are ignored, overlapping ones merged into one span covering both,
        with the stricter mode (redact > mask > pseudonymize). A span past the end of ``text`` is a ValueError.
        """
        self._reserve(text)
        parts: list[str] = []
        position = 0
        for span in _merged(spans, len(text)):
            parts.append(text[position : span.start])
            parts.append(self._replacement(span, text[span.start : span.end]))
            position = span.end
        parts.append(text[position:])
        return "".join(parts)

    def _replacement(self, span: Span, value: str) -> str:
        entity = span.entity.upper()
        self._counts[entity] = self._counts.get(entity, 0) + 1
        if span.mode == "redact":
            return REDACTED
        if span.mode == "mask":
            return f"<{entity}>"
        return self._placeholder(entity, value)

    def _placeholder(self, entity: str, value: str) -> str:
        if (issued := self._by_value.get((entity, value))) is not None:
            return issued
        number = self._next.get(entity, 1)
        while (placeholder := f"<{entity}_{number}>").lower() in self._reserved:
            number += 1
        self._next[entity] = number + 1
        key = placeholder.lower()
        self._by_value[entity, value] = placeholder
        self._originals[key] = value
        self._escaped[key] = json.dumps(value)[1:-1]
        self._prefixes.update(key[:end] for end in range(1, len(key)))
        self._longest = max(self._longest, len(key))
        return placeholder

    def __len__(self) -> int:
        """How many reversible placeholders were issued."""
        return len(self._originals)

    def pairs(self) -> list[tuple[str, str]]:
        """[loop] ``(original, placeholder)`` for every issued placeholder: capture re-masks restored text with them."""
        return [(value, placeholder) for (_, value), placeholder in self._by_value.items()]

    def entity_counts(self) -> dict[str, int]:
        """Spans replaced per (upper-cased) entity type, all modes together: for logs and metrics, never values."""
        return dict(self._counts)

    def restore(self, text: str, *, json_escape: bool = False) -> str:
        """``text`` with every placeholder this map issued replaced by its original.

        :param json_escape: ``text`` is JSON: insert originals escaped as inside a JSON string, so quotes,
            backslashes and newlines in them keep it valid.
        """
        if not self._originals or "<" not in text:
            return text
        originals = self._escaped if json_escape else self._originals
        return _PLACEHOLDER.sub(lambda match: originals.get(match.group().lower(), match.group()), text)

    def restorer(self, *, json_escape: bool = False) -> StreamRestorer:
        """A restorer for one text that grows piece by piece (one per choice and per field of a stream)."""
        return StreamRestorer(self, json_escape=json_escape)

    def _may_grow_into_placeholder(self, tail: str) -> bool:
        return len(tail) < self._longest and tail.isascii() and tail.lower() in self._prefixes


class StreamRestorer:
    """Restores one streamed text piece by piece, holding back only what may still become an issued placeholder.

    A placeholder contains a single ``<``, its first character, so the only text worth holding is the tail from
    the last ``<``, and only while it is a proper prefix of an issued placeholder: at most the longest one's length
    minus one. With no placeholder issued, or with nothing held and no ``<`` in the piece, ``feed`` returns the
    piece itself.
    """

    __slots__ = ("_held", "_json_escape", "_map")

    def __init__(self, placeholders: PlaceholderMap, *, json_escape: bool = False) -> None:
        self._map = placeholders
        self._json_escape = json_escape
        self._held = ""

    def feed(self, piece: str) -> str:
        """The restored text that is safe to emit now."""
        held = self._held
        if not held:
            if "<" not in piece or not self._map._originals:
                return piece
            text = piece
        else:
            text = held + piece
        cut = text.rfind("<")
        tail = text[cut:]
        if self._map._may_grow_into_placeholder(tail):
            self._held = tail
            text = text[:cut]
        else:
            self._held = ""
        return self._map.restore(text, json_escape=self._json_escape)

    def flush(self) -> str:
        """Everything still held, restored where complete: call at the end of the stream."""
        text, self._held = self._held, ""
        return self._map.restore(text, json_escape=self._json_escape)

    @property
    def pending(self) -> bool:
        """True while part of the text is held back."""
        return bool(self._held)


def _merged(spans: Sequence[Span], length: int) -> list[Span]:
    """The non-empty spans in text order, overlapping ones merged; a ValueError for one past ``length``."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda span: (span.start, -span.end)):
        if span.end > length:
            raise ValueError(f"span {span.start}:{span.end} is outside a text of {length} characters")
        if span.start == span.end:
            continue
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            winner = span if _STRICTNESS[span.mode] > _STRICTNESS[last.mode] else last
            merged[-1] = Span(winner.entity, last.start, max(last.end, span.end), winner.mode)
        else:
            merged.append(span)
    return merged
