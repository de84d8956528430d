"""Read a judge's verdict from its reply, however a small local model wrote it.

Tried in order: the whole reply as JSON (a markdown fence allowed); the first ``{…}`` in it; the
``"key": value`` pairs of JSON cut short (a judge that hit its token limit); then the words themselves
("PASS", "fail", "score: 7/10"). Keys are read loosely: ``pass`` / ``passed`` / ``ok`` / ``verdict``
("pass", "yes", "fail", …), ``score`` (0 to 1, or out of 10 or 100), ``reasons`` (a list or a string).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from plugins._schema.check import NotJson, parse_json

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_SCORE = re.compile(r"score\W{0,4}(\d+(?:\.\d+)?)\s*(?:/\s*(\d+))?", re.IGNORECASE)
_FAIL_WORDS = re.compile(r"\b(fail(?:s|ed)?|reject(?:ed)?|no|false|not grounded|unsupported)\b", re.IGNORECASE)
_PASS_WORDS = re.compile(r"\b(pass(?:es|ed)?|accept(?:ed)?|yes|true|grounded)\b", re.IGNORECASE)
_PAIR = re.compile(r'"(pass|passed|ok|verdict|result|decision)"\s*:\s*"?([A-Za-z]+)', re.IGNORECASE)
_PAIR_SCORE = re.compile(r'"(?:score|rating)"\s*:\s*"?(\d+(?:\.\d+)?)', re.IGNORECASE)
_YES = frozenset({"pass", "passed", "yes", "true", "ok", "accept", "accepted", "grounded", "good"})
_NO = frozenset({"fail", "failed", "no", "false", "reject", "rejected", "bad"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's decision: ``passed`` (None: the reply said neither), a score in [0, 1] when given, reasons."""

    passed: bool | None
    score: float | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def accepts(self, threshold: float) -> bool:
        if self.passed is False:
            return False
        if self.score is not None:
            return self.score >= threshold
        return self.passed is True


def read_verdict(reply: str) -> Verdict:
    """The verdict in ``reply``; ``passed`` is None when nothing in it reads as one."""
    value = _as_object(reply)
    if value is not None:
        verdict = _from_object(value)
        if verdict.passed is not None or verdict.score is not None:
            return verdict
    pair = _PAIR.search(reply)
    if pair is not None:  # JSON cut short: read its pairs, never the key names as words
        score = _PAIR_SCORE.search(reply)
        return Verdict(_truth(pair.group(2)), _score(score.group(1)) if score else None)
    return _from_words(reply)


def _as_object(reply: str) -> dict[str, Any] | None:
    for candidate in (reply, *(m.group(0) for m in [_OBJECT.search(reply)] if m)):
        try:
            value = parse_json(candidate)
        except NotJson:
            continue
        if isinstance(value, dict):
            return value
    return None


def _from_object(value: dict[str, Any]) -> Verdict:
    lowered = {str(k).lower(): v for k, v in value.items()}
    passed: bool | None = None
    for key in ("pass", "passed", "ok", "verdict", "result", "decision", "grounded"):
        if key in lowered:
            passed = _truth(lowered[key])
            if passed is not None:
                break
    score = _score(lowered.get("score", lowered.get("rating")))
    reasons = lowered.get("reasons", lowered.get("reason", lowered.get("explanation", ())))
    if isinstance(reasons, str):
        reasons = [reasons]
    text = tuple(str(r) for r in reasons if str(r).strip()) if isinstance(reasons, list) else ()
    return Verdict(passed, score, text)


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in _YES else False if word in _NO else None
    return None


def _score(value: Any, out_of: float | None = None) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value or value < 0:
        return None
    scale = out_of or (1.0 if value <= 1 else 10.0 if value <= 10 else 100.0)
    return min(float(value) / scale, 1.0)


def _from_words(reply: str) -> Verdict:
    match = _SCORE.search(reply)
    score = _score(match.group(1), float(match.group(2)) if match and match.group(2) else None) if match else None
    fails, passes = _FAIL_WORDS.search(reply), _PASS_WORDS.search(reply)
    passed = None
    if fails and (not passes or fails.start() < passes.start()):
        passed = False
    elif passes:
        passed = True
    reason = reply.strip()[:300]
    return Verdict(passed, score, (reason,) if reason and passed is not None else ())
