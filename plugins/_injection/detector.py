"""The detection engine: normalise, score every view with the rules and the classifier, decide.

``Detector().scan(text, source="user")`` is a pure function of its input (no I/O, no exchange), so
the plugin, the ``chaperone scan`` CLI and the benchmark all call the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from plugins._injection import rules
from plugins._injection.classifier import Classifier
from plugins._injection.normalize import normalize

Source = Literal["user", "untrusted"]
Action = Literal["block", "flag", "sanitize"]
_CHUNK = 700  # characters per classifier window: an injection hidden in a long document is not diluted
_SPLIT = re.compile(r"(?<=[.!?\u3002\uff01\uff1f\n])\s*")
# Rules that mean more in content the user did not write (documents, tool results, web pages).
_UNTRUSTED_BOOST = {rules.INDIRECT: 0.1, rules.TOOL: 0.1, rules.EXFILTRATION: 0.05}
_QUOTED = re.compile(
    r"(?<!\w)'[^'\n]{3,200}'(?!\w)|\"[^\"\n]{3,200}\"|“[^”\n]{3,200}”|«[^»\n]{3,200}»|「[^」\n]{1,200}」"
)
_SUSPICIOUS_TRICKS = frozenset({"base64", "base32", "hex", "rot13", "reversed", "tag_chars", "bidi", "url_encoding"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the detector concluded about one text.

    ``score`` is in [0, 1]; ``action`` is the configured action when ``score`` reached the source's
    threshold, else None. ``categories`` and ``rules`` say why; ``tricks`` which disguises were undone.
    """

    score: float
    categories: list[str]
    action: str | None
    source: str
    rules: list[str] = field(default_factory=list)
    tricks: list[str] = field(default_factory=list)
    classifier: float = 0.0

    @property
    def detected(self) -> bool:
        return self.action is not None


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The shipped model, loaded once per process (it is read-only)."""
    return Classifier.load()


class Detector:
    """Scores texts for prompt injection; thresholds are per source (what the user wrote vs untrusted content)."""

    def __init__(
        self,
        *,
        action: Action = "block",
        user_threshold: float = 0.5,
        untrusted_threshold: float = 0.5,
        max_chars: int = 50_000,
        classifier: Classifier | None = None,
    ) -> None:
        self.action = action
        self.max_chars = max_chars
        self.thresholds: dict[str, float] = {"user": user_threshold, "untrusted": untrusted_threshold}
        self.classifier = classifier or default_classifier()

    def scan(self, text: str, source: Source = "user") -> Verdict:
        """Score ``text`` as coming from ``source`` ("user" or "untrusted").

        A text longer than ``max_chars`` is scored on its first and last ``max_chars / 2`` characters.
        """
        truncated = len(text) > self.max_chars
        if truncated:
            half = self.max_chars // 2
            text = f"{text[:half]}\n{text[-half:]}"
        norm = normalize(text)
        views = [("text", norm.text), *norm.variants]
        best, best_rules, best_clf = 0.0, [], 0.0
        for how, view in views:
            score, hits, clf = self._score_view(view, source)
            if how != "text" and how in _SUSPICIOUS_TRICKS and score >= 0.3:
                score = min(1.0, score + 0.1)  # something worth hiding is itself a signal
            if score > best:
                best, best_rules, best_clf = score, hits, clf
        categories = sorted({r.category for r in best_rules if r.weight >= 0.3})
        if not categories and best >= self.thresholds[source]:
            categories = [rules.INDIRECT if source == "untrusted" else rules.OVERRIDE]
        return Verdict(
            score=round(best, 4),
            categories=categories,
            action=self.action if best >= self.thresholds[source] else None,
            source=source,
            rules=sorted(r.name for r in best_rules),
            tricks=sorted(norm.tricks | {"truncated"} if truncated else norm.tricks),
            classifier=round(best_clf, 4),
        )

    def rule_score(self, view: str, source: str) -> float:
        """The rules' combined score for one canonical view (what training calibrates against)."""
        return self._rule_score(view, source, rules.match(view))

    def classifier_probability(self, view: str, source: str) -> float:
        """The classifier's highest attack probability over the windows of one canonical view."""
        return max(self.classifier.probability(chunk, source) for chunk in _chunks(view))

    def _score_view(self, view: str, source: str) -> tuple[float, list[rules.Rule], float]:
        hits = rules.match(view)
        rule_score = self._rule_score(view, source, hits)
        clf = self.classifier_probability(view, source)
        return 1.0 - (1.0 - rule_score) * (1.0 - clf), hits, clf

    def _rule_score(self, view: str, source: str, hits: list[rules.Rule]) -> float:
        quoted = [m.span() for m in _QUOTED.finditer(view)] if hits else []
        miss = 1.0
        for rule in hits:
            weight = rule.weight + (_UNTRUSTED_BOOST.get(rule.category, 0.0) if source == "untrusted" else 0.0)
            if quoted and _only_quoted(rule, view, quoted):
                weight *= 0.5  # mentioned, not said: "translate 'ignore previous instructions' for my slide"
            miss *= 1.0 - min(weight, 0.99)
        return 1.0 - miss


def _only_quoted(rule: rules.Rule, view: str, quoted: list[tuple[int, int]]) -> bool:
    """Whether every occurrence of ``rule`` lies inside one quoted span."""
    return all(any(a <= m.start() and m.end() <= b for a, b in quoted) for m in rule.pattern.finditer(view))


def _chunks(text: str) -> list[str]:
    """``text`` cut at sentence ends into windows of about ``_CHUNK`` characters (one window if short)."""
    if len(text) <= 2 * _CHUNK:
        return [text]
    out, current = [], ""
    for piece in _SPLIT.split(text):
        if current and len(current) + len(piece) > _CHUNK:
            out.append(current)
            current = ""
        current = f"{current} {piece}" if current else piece
    if current:
        out.append(current)
    return out
