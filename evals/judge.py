"""LLM-judge scorers: a rubric (``judge``) and grounding in the row's context (``factuality``).

The judge is just another model behind the same OpenAI-compatible URL. It is asked for JSON,
``{"verdict": "pass"|"fail", "reasons": [...]}`` (``response_format`` json_schema, which backends that
do not support it ignore), and its reply is read with the judge plugin's verdict parser. A reply that
is not a JSON object with a pass/fail verdict is invalid: it is asked again up to ``retries`` times,
the invalid reply shown back with a reminder of the format (each retry its own cached call), then
counted in ``invalid`` and left out of the vote.

With ``repeats`` K > 1 the judge is asked K times (each repeat cached on its own); the row's label is
the majority (a tie counts as fail), its score the share of ``pass`` votes, and ``agreement`` the
share of valid votes that agree with the majority (1.0: unanimous).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evals.calls import Caller, CallFailed, answer_text
from evals.data import Row

DEFAULT_RUBRIC = (
    "The answer is correct, relevant to the request and complete; when a reference answer is given, "
    "it agrees with the reference in substance (wording may differ)."
)
_FACTUALITY = (
    "Every factual claim in the answer is supported by the context. Fail the answer if it states "
    "anything the context does not support or contradicts (a hallucination), even if it is true elsewhere."
)
_SYSTEM = (
    "You are a strict evaluator. Read the criteria, the request and the answer, then reply with only a JSON "
    'object: {"verdict": "pass" or "fail", "reasons": ["short reason", ...]}.'
)
_NUDGE = {
    "role": "user",
    "content": 'That reply was not a JSON object with a "verdict" of "pass" or "fail". '
    'Reply again with only that JSON object: {"verdict": "pass" or "fail", "reasons": ["..."]}.',
}
_VERDICT_KEYS = frozenset({"verdict", "pass", "passed", "ok", "result", "decision", "grounded"})
_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["verdict", "reasons"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class JudgeOptions:
    model: str
    rubric: str = DEFAULT_RUBRIC
    repeats: int = 1
    retries: int = 2
    temperature: float | None = None  # default: 0 for one repeat, 0.7 for several


@dataclass(slots=True)
class Judgement:
    """One row's judgement: the majority label, its score, the votes and their reasons."""

    label: str | None  # pass / fail; None when every repeat was invalid
    score: float | None
    agreement: float | None
    votes: list[str] = field(default_factory=list)
    reasons: list[list[str]] = field(default_factory=list)
    invalid: int = 0  # repeats without a valid reply after every retry (left out of the vote)
    invalid_replies: int = 0  # invalid replies in all, retried ones included

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "score": self.score, "agreement": self.agreement, "votes": self.votes,
            "reasons": self.reasons, "invalid": self.invalid, "invalid_replies": self.invalid_replies,
        }  # fmt: skip


def prompt(kind: str, row: Row, answer: str, rubric: str) -> str:
    parts = [f"Criteria: {_FACTUALITY if kind == 'factuality' else rubric}"]
    if kind == "factuality":
        parts.append(f"Context:\n{row.context or ''}")
    parts.append(f"Request:\n{row.question()}")
    if kind == "judge" and row.expected is not None:
        parts.append(f"Reference answer:\n{row.expected}")
    parts.append(f"Answer to evaluate:\n{answer}")
    return "\n\n".join(parts)


def request(kind: str, row: Row, answer: str, options: JudgeOptions) -> dict[str, Any]:
    temperature = options.temperature
    if temperature is None:
        temperature = 0.0 if options.repeats == 1 else 0.7
    return {
        "model": options.model,
        "temperature": temperature,
        "messages": [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": prompt(kind, row, answer, options.rubric)},
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": _SCHEMA}},
    }


def read(reply: str) -> tuple[str, list[str]] | None:
    """(label, reasons) from a judge reply that is a JSON object with a verdict; None when invalid."""
    from plugins._judge.verdict import read_verdict
    from plugins._schema.check import NotJson, parse_json

    try:
        value = parse_json(reply)
    except NotJson:
        return None
    if not isinstance(value, dict) or not _VERDICT_KEYS & {str(k).lower() for k in value}:
        return None  # JSON, but no verdict in it (the words are not read: that is the lenient parser's job)
    verdict = read_verdict(reply)
    if verdict.passed is None:
        return None
    return ("pass" if verdict.passed else "fail"), list(verdict.reasons)


def tally(votes: list[str], reasons: list[list[str]], invalid: int = 0, invalid_replies: int = 0) -> Judgement:
    """The majority label (a tie is a fail), the share of pass votes, and the agreement with the majority."""
    if not votes:
        return Judgement(None, None, None, votes, reasons, invalid, invalid_replies)
    passes = votes.count("pass")
    label = "pass" if passes * 2 > len(votes) else "fail"
    agreement = votes.count(label) / len(votes)
    score, agree = round(passes / len(votes), 6), round(agreement, 6)
    return Judgement(label, score, agree, votes, reasons, invalid, invalid_replies)


async def judge(caller: Caller, kind: str, row: Row, answer: str, options: JudgeOptions) -> Judgement:
    """Ask the judge ``options.repeats`` times (retrying invalid replies); raises ``CallFailed``."""
    body = request(kind, row, answer, options)
    votes: list[str] = []
    reasons: list[list[str]] = []
    invalid = replies = 0
    for repeat in range(options.repeats):
        asked = body
        for attempt in range(options.retries + 1):
            reply = answer_text(await caller.chat(asked, f"{kind}#{repeat}.{attempt}"))
            parsed = read(reply)
            if parsed is not None:
                votes.append(parsed[0])
                reasons.append(parsed[1])
                break
            replies += 1
            asked = {**body, "messages": [*body["messages"], {"role": "assistant", "content": reply}, _NUDGE]}
        else:
            invalid += 1
    return tally(votes, reasons, invalid, replies)


__all__ = ["CallFailed", "JudgeOptions", "Judgement", "judge", "read", "tally"]
