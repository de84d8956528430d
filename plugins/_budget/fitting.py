"""Making a conversation fit a token limit: which turns to drop, and the summary sub-call.

Messages are grouped into *units* that are kept or dropped whole: an assistant message with
``tool_calls`` and the ``tool`` results answering it form one unit, so a tool call is never split from
its result. System and developer messages, the last user message and the latest unit (the turn in
progress: the last user message, or the latest tool call and its results in an agent loop) are pinned;
older tool rounds after the last user message may go, so a long agent loop can be cut too.
``truncate`` drops the oldest units first; ``middle_out`` drops the unit nearest the middle of the
droppable ones first (keeping the conversation's opening and its latest turns).

Anthropic Messages (``rounds``): a unit is one user turn and everything up to the next one (the
assistant's answer, its ``tool_use`` blocks and the ``tool_result`` turns answering them), so what is
left still starts with a user turn and still alternates, as the API requires; the system prompt is a
top-level field there, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import tiktoken

from proxy import tokens

_PINNED_ROLES = frozenset({"system", "developer"})
# Responses items that start a tool round (reasoning precedes the call it led to), and those that belong to it.
_CALL_ITEMS = frozenset({"function_call", "reasoning", "custom_tool_call"})
_CALL_PARTS = frozenset({"function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output"})
SUMMARY_PROMPT = (
    "Summarize the conversation below for an assistant who will continue it. Keep facts, names, numbers, "
    "decisions and open questions; write plain prose, no preamble."
)


@dataclass(slots=True)
class Unit:
    start: int  # index of the first message
    stop: int  # one past the last
    tokens: int
    pinned: bool


def _opens_call(item: Any) -> bool:
    """A chat assistant message with tool calls, or a Responses ``function_call`` / ``reasoning`` item."""
    if not isinstance(item, dict):
        return False
    return bool(item.get("role") == "assistant" and item.get("tool_calls")) or item.get("type") in _CALL_ITEMS


def _answers_call(item: Any) -> bool:
    """A chat ``tool`` message, or a Responses call item or its output (they stay with the call)."""
    return isinstance(item, dict) and (item.get("role") == "tool" or item.get("type") in _CALL_PARTS)


def units(enc: tiktoken.Encoding, messages: list[Any]) -> list[Unit]:
    """The conversation (chat messages or Responses input items) as keep-or-drop units, with their tokens."""
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    out: list[Unit] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        j = i + 1
        if _opens_call(message):
            answered = False  # a call after an answer starts the next round (parallel calls stay together)
            while j < len(messages) and _answers_call(messages[j]):
                opens = _opens_call(messages[j])
                if opens and answered:
                    break
                answered = answered or not opens
                j += 1
        size = sum(tokens.message_tokens(enc, m) for m in messages[i:j] if isinstance(m, dict))
        role = message.get("role") if isinstance(message, dict) else None
        out.append(Unit(i, j, size, role in _PINNED_ROLES or i == last_user or last_user < 0))
        i = j
    if out:
        out[-1].pinned = True
    return out


def _only_tool_results(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    )


def rounds(enc: tiktoken.Encoding, messages: list[Any]) -> list[Unit]:
    """Anthropic Messages as keep-or-drop units: a user turn (not only tool results) and what follows it."""
    starts = [
        i for i, m in enumerate(messages)
        if isinstance(m, dict) and m.get("role") == "user" and not _only_tool_results(m)
    ]  # fmt: skip
    if not starts or starts[0] != 0:
        starts = [0, *(i for i in starts if i != 0)]
    out: list[Unit] = []
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(messages)
        size = sum(tokens.message_tokens(enc, m) for m in messages[start:stop] if isinstance(m, dict))
        out.append(Unit(start, stop, size, n == len(starts) - 1))
    return out


def choose_drops(parts: list[Unit], excess: int, middle_out: bool) -> list[Unit] | None:
    """Units to drop so that at least ``excess`` tokens go, or None when the pinned ones alone are too big."""
    droppable = [u for u in parts if not u.pinned]
    if middle_out:
        mid = (len(droppable) - 1) / 2
        order = sorted(range(len(droppable)), key=lambda k: abs(k - mid))
        droppable = [droppable[k] for k in order]
    dropped: list[Unit] = []
    freed = 0
    for unit in droppable:
        if freed >= excess:
            break
        dropped.append(unit)
        freed += unit.tokens
    return dropped if freed >= excess else None


def without(messages: list[Any], dropped: list[Unit]) -> list[Any]:
    gone = {i for u in dropped for i in range(u.start, u.stop)}
    return [m for i, m in enumerate(messages) if i not in gone]


def transcript(messages: list[Any]) -> str:
    """Plain text of a conversation for the summarizer: ``role: content`` lines, tool calls and results as JSON.

    Chat messages, Responses input items (messages, ``function_call`` and its output) and Anthropic
    messages (text, ``tool_use`` and ``tool_result`` blocks) alike.
    """
    lines = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        kind = m.get("type")
        if kind in ("function_call", "custom_tool_call"):
            lines.append(f"assistant: [tool call {m.get('name')}: {m.get('arguments', m.get('input', ''))}]")
            continue
        if kind in ("function_call_output", "custom_tool_call_output"):
            lines.append(f"tool: {_plain(m.get('output'))}")
            continue
        text = _plain(m.get("content"))
        if m.get("tool_calls"):
            text += " [tool calls: " + str(m["tool_calls"]) + "]"
        lines.append(f"{m.get('role', '?')}: {text}")
    return "\n".join(lines)


def _plain(content: Any) -> str:
    """A content value as text: a string, or its parts' texts (tool uses and results as JSON)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else json.dumps(content)
    out = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "tool_use":
            out.append(f"[tool call {part.get('name')}: {json.dumps(part.get('input', {}))}]")
        elif part.get("type") == "tool_result":
            out.append(f"[tool result: {_plain(part.get('content'))}]")
        elif isinstance(part.get("text"), str):
            out.append(part["text"])
    return " ".join(out)


def summary_request(messages: list[Any], max_tokens: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SUMMARY_PROMPT},
            {"role": "user", "content": transcript(messages)},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def summary_text(answer: dict[str, Any]) -> str | None:
    choices = answer.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        content = (choices[0].get("message") or {}).get("content")
        if isinstance(content, str) and content.strip():
            return content.strip()
    return None


def summary_message(text: str) -> dict[str, Any]:
    """The summary as a system message (chat) or system input item (Responses)."""
    return {"role": "system", "content": f"{SUMMARY_LEAD}{text}"}


def system_with_summary(system: Any, text: str) -> str | list[Any]:
    """An Anthropic ``system`` (absent, a string or text blocks) with the summary after it."""
    summary = f"{SUMMARY_LEAD}{text}"
    if isinstance(system, list):
        return [*system, {"type": "text", "text": summary}]
    if isinstance(system, str) and system.strip():
        return f"{system}\n\n{summary}"
    return summary


SUMMARY_LEAD = "Summary of the earlier conversation: "
