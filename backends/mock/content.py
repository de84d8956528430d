"""Deterministic answers: token estimates, reply text, tool choice and arguments, JSON-mode content.

Rules (documented for test writers):
- Tokens are regex pieces: a word or a single punctuation mark, with its leading whitespace.
  A completion streams one piece per chunk, and ``completion_tokens`` is the number of pieces.
- The reply is ``"Mock reply to: "`` plus the first 12 words of the last user message
  (``[[mock:...]]`` markers removed). ``tokens=N`` pads it with filler words or cuts it to exactly N pieces.
- A tool is called when ``tools`` are offered and ``tool_choice`` is ``"required"`` or names a function, or
  (``tool_choice`` absent or ``"auto"``) the last message is from the user and mentions a tool's name or one of
  the words "call", "tool", "weather". The called tool is the one named or mentioned, else the first.
- After a ``tool`` message the reply is ``"Mock reply using the tool result: "`` plus the result's first words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import invalid_request
from .faults import strip_magic
from .schema import example_for

PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_TOOL_HINT = re.compile(r"\b(?:call|tool|tools|weather)\b", re.IGNORECASE)
_FILLER = tuple(f" {word}" for word in "lorem ipsum dolor sit amet consectetur adipiscing elit sed do".split())
ECHO_WORDS = 12
PER_MESSAGE_TOKENS = 3
REPLY_PRIMING_TOKENS = 3


@dataclass(slots=True)
class Answer:
    """One choice's deterministic output: content pieces, or tool-call argument pieces when ``tool`` is set."""

    pieces: list[str]
    finish_reason: str
    tool: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def count_tokens(text: str) -> int:
    """A cheap, deterministic token estimate: words plus punctuation marks."""
    return len(_TOKEN.findall(text))


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into stream pieces whose concatenation is ``text`` (minus trailing whitespace)."""
    return PIECE.findall(text)


def text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or the ``text`` parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def reply_text(prompt: str, prefix: str) -> str:
    """``prefix`` followed by the prompt's first words, markers removed."""
    words = strip_magic(prompt).split()[:ECHO_WORDS]
    return f"{prefix} {' '.join(words)}" if words else prefix.rstrip(":") + "."


def fit_pieces(pieces: list[str], tokens: int | None) -> list[str]:
    """Cut or pad ``pieces`` to exactly ``tokens`` pieces (unchanged when ``tokens`` is None)."""
    if tokens is None:
        return pieces
    if len(pieces) >= tokens:
        return pieces[:tokens]
    return pieces + [_FILLER[i % len(_FILLER)] for i in range(tokens - len(pieces))]


def limit_answer(answer: Answer, limit: Any) -> Answer:
    """Apply ``max_tokens``: cut the pieces and report ``finish_reason="length"`` when they do not fit."""
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < len(answer.pieces):
        return Answer(answer.pieces[:limit], "length", answer.tool)
    return answer


def chat_prompt_tokens(messages: Sequence[Any], tools: Any) -> int:
    """Estimate prompt tokens like OpenAI: content plus a few tokens per message and for reply priming."""
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += PER_MESSAGE_TOKENS + count_tokens(text_of(message.get("content")))
        total += 1 if message.get("name") else 0
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                total += PER_MESSAGE_TOKENS + count_tokens(f"{function.get('name')} {function.get('arguments')}")
    if tools:
        total += count_tokens(json.dumps(tools))
    return total


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last ``user`` message ('' when there is none)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def plan_chat(body: dict[str, Any], tokens: int | None) -> Answer:
    """Decide the chat answer for a validated request body; ``tokens`` comes from the fault spec."""
    messages: list[Any] = body["messages"]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    user_text = last_user_text(messages)
    tool = choose_tool(body, user_text, last_role=last.get("role"))
    if tool is not None:
        arguments = json.dumps(example_for(tool.get("parameters") or {"type": "object", "properties": {}}))
        answer = Answer(split_pieces(arguments), "tool_calls", str(tool.get("name")))
    elif (content := json_content(body.get("response_format"), user_text)) is not None:
        answer = Answer(split_pieces(content), "stop")
    else:
        if last.get("role") == "tool":
            text = reply_text(text_of(last.get("content")), "Mock reply using the tool result:")
        else:
            text = reply_text(user_text, "Mock reply to:")
        answer = Answer(fit_pieces(split_pieces(text), tokens), "stop")
    return limit_answer(answer, body.get("max_completion_tokens") or body.get("max_tokens"))


def choose_tool(body: dict[str, Any], user_text: str, *, last_role: Any) -> dict[str, Any] | None:
    """The function to call (its ``function`` object), or None to answer in text. See the module rules."""
    tools: list[dict[str, Any]] = [
        t["function"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type", "function") == "function" and isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        for tool in tools:
            if tool.get("name") == name:
                return tool
        raise invalid_request(f"Invalid value for 'tool_choice': function {name!r} is not in 'tools'.", "tool_choice")
    mentioned = next((t for t in tools if isinstance(t.get("name"), str) and t["name"] in user_text), None)
    if choice == "required":
        return mentioned or tools[0]
    if last_role == "user" and (mentioned or _TOOL_HINT.search(user_text)):
        return mentioned or tools[0]
    return None


def json_content(response_format: Any, user_text: str) -> str | None:
    """JSON-mode content: a schema-valid document for ``json_schema``, an object for ``json_object``."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return json.dumps(example_for(schema))
        kind = "json_object"
    if kind == "json_object":
        return json.dumps({"reply": reply_text(user_text, "Mock reply to:")})
    return None


def distort_json(answer: Answer, *, bad: bool, wrong: bool, fence: bool) -> Answer:
    """[verify] Spoil a JSON answer (content in JSON mode, or tool arguments) as the ``*_json`` fault keys ask."""
    text = answer.text
    if wrong:
        text = '{"mock_wrong": true}'
    elif bad:
        text = "Sure! Here it is: " + text[: max(1, len(text) // 2)]
    if fence and answer.tool is None:
        text = "```json\n" + text + "\n```"
    return Answer(split_pieces(text), answer.finish_reason, answer.tool) if text != answer.text else answer
