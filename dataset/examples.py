"""Store rows as training examples: the prompt the model saw, the answer kept, preference pairs with their source.

An SFT example is ``prompt + [answer]`` (a feedback correction, when given, replaces the answer: a
demonstration). Preference pairs come from the gateway's own events, each labelled with its source:
``judge_refine`` (a draft the judge failed vs the refined answer it passed), ``judge_fallback`` (the
primary's answer the judge failed vs the fallback model's), ``schema_repair`` (an answer that broke the
schema vs the repaired one), ``retry`` (an answer discarded for another attempt), and ``demonstration``
(the answer vs the user's correction sent through ``POST /chaperone/feedback``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_ACCEPTED = {"judge": {"pass", "refined", "fallback", "audit_pass"}, "schema": {"valid", "repaired", "audit_valid"}}


@dataclass(slots=True)
class Example:
    """One exportable row: ``rejected`` is set for a preference pair."""

    id: str
    prompt: list[dict[str, Any]]
    chosen: dict[str, Any]
    row: dict[str, Any]
    source: str = "answer"
    rejected: dict[str, Any] | None = None
    tools: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def field(self, name: str) -> str:
        """A field to stratify or label by: the row's column, or ``source``."""
        if name == "source":
            return self.source
        value = self.row.get(name)
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def prompt_of(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The request as chat messages (chat; completions and Responses given as plain strings)."""
    request = row.get("request")
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list) and messages:
        return [dict(m) for m in messages if isinstance(m, dict)]
    text = request.get("prompt") if row.get("endpoint") == "completions" else request.get("input")
    if isinstance(text, str) and text:
        out = [{"role": "system", "content": request["instructions"]}] if request.get("instructions") else []
        return [*out, {"role": "user", "content": text}]
    return None


def accepted(row: dict[str, Any]) -> bool:
    """Whether the gateway's checks accepted the final answer (no judge or schema verdict against it)."""
    verdicts = row.get("verdicts") or {}
    return all(verdicts.get(name) in ok for name, ok in _ACCEPTED.items() if name in verdicts)


def sft_example(row: dict[str, Any]) -> Example | None:
    prompt, answer = prompt_of(row), row.get("answer")
    feedback = row.get("feedback") or {}
    correction = feedback.get("correction")
    if prompt is None:
        return None
    if isinstance(correction, dict):
        return Example(row["request_id"], prompt, correction, row, "demonstration", tools=_tools(row))
    if not isinstance(answer, dict):
        return None
    return Example(row["request_id"], prompt, answer, row, "answer", tools=_tools(row))


def pair_examples(row: dict[str, Any]) -> list[Example]:
    """Every preference pair one row yields, chosen side first."""
    prompt, answer = prompt_of(row), row.get("answer")
    if prompt is None or not isinstance(answer, dict):
        return []
    pairs = []
    if accepted(row):
        for n, draft in enumerate(row.get("drafts") or []):
            rejected = draft.get("message")
            if isinstance(rejected, dict) and _text(rejected) != _text(answer):
                pairs.append(Example(f"{row['request_id']}:{n}", prompt, answer, row, str(draft.get("source")),
                                     rejected, _tools(row)))  # fmt: skip
    correction = (row.get("feedback") or {}).get("correction")
    if isinstance(correction, dict) and _text(correction) != _text(answer):
        pairs.append(Example(f"{row['request_id']}:fb", prompt, correction, row, "demonstration", answer, _tools(row)))
    return pairs


def _tools(row: dict[str, Any]) -> list[Any] | None:
    tools = (row.get("request") or {}).get("tools")
    return tools if isinstance(tools, list) and tools else None


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    calls = message.get("tool_calls") or []
    return f"{content or ''}|{calls}"


def message_text(message: dict[str, Any]) -> str:
    """The readable text of a message: its content (text parts joined) and tool-call arguments."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    calls = " ".join(str((c.get("function") or {}).get("arguments", "")) for c in message.get("tool_calls") or [])
    return f"{content or ''} {calls}".strip()


def prompt_text(prompt: list[dict[str, Any]]) -> str:
    """The user's side of a prompt (user messages), what a leakage check compares."""
    return "\n".join(message_text(m) for m in prompt if m.get("role") == "user")


def example_text(example: Example) -> str:
    parts = [prompt_text(example.prompt), message_text(example.chosen)]
    if example.rejected is not None:
        parts.append(message_text(example.rejected))
    return "\n".join(parts)
