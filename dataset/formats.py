"""The export formats: how an example becomes a line, and the rules every line is checked against before writing.

openai-sft   {"messages": [...], "tools"?: [...]}  OpenAI chat fine-tuning: roles system/user/assistant/tool,
             the last message the assistant's, tool calls as {"id", "type": "function", "function":
             {"name", "arguments" (a JSON string)}}, tool messages with their tool_call_id, weight 0/1.
openai-dpo   {"input": {"messages": [...], "tools"?}, "preferred_output": [assistant],
             "non_preferred_output": [assistant]}  OpenAI preference fine-tuning; the input ends with a
             user (or tool) turn; each output is exactly one assistant message; the two differ.
trl          {"prompt": [...], "chosen": [assistant], "rejected": [assistant]}  TRL's conversational
             preference format (DPOTrainer, ORPO, KTO via pairs).
sharegpt     {"conversations": [{"from": system|human|gpt|function_call|observation, "value"}], "tools"?}
             after an optional system turn, human/observation and gpt/function_call alternate;
             the model's turn is last.
eval         {"id", "messages": [...], "expected"}  the rows ``chaperone eval run`` reads: the prompt (ending
             with a user or tool turn) and the answer kept as the reference, e.g. a held-out set to pass
             as ``--eval-set`` to later exports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dataset.examples import Example, message_text

FORMATS = ("openai-sft", "openai-dpo", "trl", "sharegpt", "eval")
PAIRED = frozenset({"openai-dpo", "trl"})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "weight", "refusal"})


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k in _MESSAGE_KEYS and v is not None}
    if out.get("role") == "developer":
        out["role"] = "system"
    if out.get("role") == "assistant" and "content" not in out and not out.get("tool_calls"):
        out["content"] = ""
    return out


def to_line(fmt: str, example: Example) -> dict[str, Any]:
    prompt = [_clean(m) for m in example.prompt]
    chosen = _clean({**example.chosen, "role": "assistant"})
    if fmt == "openai-sft":
        line: dict[str, Any] = {"messages": [*prompt, chosen]}
        if example.tools:
            line["tools"] = example.tools
        return line
    if fmt == "sharegpt":
        return _sharegpt([*prompt, chosen], example.tools)
    if fmt == "eval":
        return {"id": example.id, "messages": prompt, "expected": message_text(example.chosen)}
    assert example.rejected is not None, "a preference format needs a pair"
    rejected = _clean({**example.rejected, "role": "assistant"})
    if fmt == "openai-dpo":
        given: dict[str, Any] = {"messages": prompt}
        if example.tools:
            given["tools"] = example.tools
        return {"input": given, "preferred_output": [chosen], "non_preferred_output": [rejected]}
    return {"prompt": prompt, "chosen": [chosen], "rejected": [rejected]}


def _sharegpt(messages: list[dict[str, Any]], tools: list[Any] | None) -> dict[str, Any]:
    turns = []
    for m in messages:
        role = m.get("role")
        if role == "assistant" and m.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")}
                     for c in m["tool_calls"]]  # fmt: skip
            turns.append({"from": "function_call", "value": json.dumps(calls[0] if len(calls) == 1 else calls)})
            continue
        who = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}.get(str(role), "?")
        turns.append({"from": who, "value": _content_text(m.get("content"))})
    line: dict[str, Any] = {"conversations": turns}
    if tools:
        line["tools"] = json.dumps([t.get("function", t) for t in tools])
    return line


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


# ---- validation -------------------------------------------------------------------------------------------------


def _message_problems(m: Any, where: str) -> list[str]:
    if not isinstance(m, dict):
        return [f"{where}: not an object"]
    found = [f"{where}: unknown key {k!r}" for k in m if k not in _MESSAGE_KEYS]
    role = m.get("role")
    if role not in _ROLES - {"developer"}:
        return [*found, f"{where}.role: {role!r} is not system, user, assistant or tool"]
    content = m.get("content")
    if role == "assistant" and m.get("tool_calls"):
        found += _calls_problems(m["tool_calls"], where)
        if content is not None and not isinstance(content, str):
            found.append(f"{where}.content: must be a string or null next to tool_calls")
    elif isinstance(content, list):
        if role != "user" or not all(isinstance(p, dict) and p.get("type") in ("text", "image_url") for p in content):
            found.append(f"{where}.content: content parts are text or image_url, in user messages only")
    elif not isinstance(content, str) or (role == "assistant" and not content.strip()):
        found.append(f"{where}.content: must be a non-empty string")
    if role == "tool" and not isinstance(m.get("tool_call_id"), str):
        found.append(f"{where}.tool_call_id: a tool message needs the id of the call it answers")
    if "weight" in m and m["weight"] not in (0, 1):
        found.append(f"{where}.weight: must be 0 or 1")
    return found


def _calls_problems(calls: Any, where: str) -> list[str]:
    if not isinstance(calls, list):
        return [f"{where}.tool_calls: must be a list"]
    found = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not (isinstance(call, dict) and isinstance(call.get("id"), str) and call.get("type") == "function"
                and isinstance(function, dict) and isinstance(function.get("name"), str)):  # fmt: skip
            found.append(f"{where}.tool_calls[{i}]: needs id, type 'function' and function.name")
            continue
        try:
            json.loads(function.get("arguments") or "")
        except (TypeError, ValueError):
            found.append(f"{where}.tool_calls[{i}].function.arguments: must be a JSON string")
    return found


def _tools_problems(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and t.get("type") == "function" and isinstance((t.get("function") or {}).get("name"), str)
        for t in tools
    ):
        return ["tools: a list of {type: 'function', function: {name, …}}"]
    return []


def _messages_problems(messages: Any, where: str) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return [f"{where}: a non-empty list of messages"]
    return [p for i, m in enumerate(messages) for p in _message_problems(m, f"{where}[{i}]")]


def _sft(line: dict[str, Any]) -> list[str]:
    found = [f"unknown key {k!r}" for k in line if k not in ("messages", "tools", "parallel_tool_calls")]
    found += _messages_problems(line.get("messages"), "messages") + _tools_problems(line.get("tools"))
    messages = line.get("messages") or [{}]
    if isinstance(messages, list) and (not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant"):
        found.append("messages: the last message must be the assistant's")
    return found


def _one_assistant(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) != 1:
        return [f"{where}: exactly one assistant message"]
    found = _message_problems(value[0], f"{where}[0]")
    if isinstance(value[0], dict) and value[0].get("role") != "assistant":
        found.append(f"{where}[0].role: must be assistant")
    return found


def _dpo(line: dict[str, Any]) -> list[str]:
    found = [f"unknown key {k!r}" for k in line if k not in ("input", "preferred_output", "non_preferred_output")]
    given = line.get("input")
    if not isinstance(given, dict):
        return [*found, "input: an object with messages"]
    found += _messages_problems(given.get("messages"), "input.messages") + _tools_problems(given.get("tools"))
    last = (given.get("messages") or [{}])[-1]
    if isinstance(last, dict) and last.get("role") not in ("user", "tool"):
        found.append("input.messages: must end with a user or tool message")
    found += _one_assistant(line.get("preferred_output"), "preferred_output")
    found += _one_assistant(line.get("non_preferred_output"), "non_preferred_output")
    if line.get("preferred_output") == line.get("non_preferred_output"):
        found.append("preferred_output and non_preferred_output are the same")
    return found


def _trl(line: dict[str, Any]) -> list[str]:
    found = [f"unknown key {k!r}" for k in line if k not in ("prompt", "chosen", "rejected")]
    found += _messages_problems(line.get("prompt"), "prompt")
    found += _one_assistant(line.get("chosen"), "chosen") + _one_assistant(line.get("rejected"), "rejected")
    if line.get("chosen") == line.get("rejected"):
        found.append("chosen and rejected are the same")
    return found


_SIDE = {"human": "in", "observation": "in", "gpt": "out", "function_call": "out"}


def _sharegpt_problems(line: dict[str, Any]) -> list[str]:
    found = [f"unknown key {k!r}" for k in line if k not in ("conversations", "tools", "system")]
    turns = line.get("conversations")
    if not isinstance(turns, list) or not turns:
        return [*found, "conversations: a non-empty list"]
    body = turns[1:] if isinstance(turns[0], dict) and turns[0].get("from") == "system" else turns
    for i, turn in enumerate(body):
        if not (isinstance(turn, dict) and set(turn) == {"from", "value"} and isinstance(turn["value"], str)):
            found.append(f"conversations[{i}]: an object with 'from' and a string 'value'")
            continue
        side = _SIDE.get(turn["from"])
        if side != ("in" if i % 2 == 0 else "out"):
            found.append(f"conversations[{i}].from: {turn['from']!r} out of turn (human and gpt alternate)")
    if (
        not body
        or not isinstance(body[-1], dict)
        or _SIDE.get(body[-1].get("from", "")) != "out"
        or not body[-1].get("value")
    ):
        found.append("conversations: must end with a non-empty gpt or function_call turn")
    return found


def _eval(line: dict[str, Any]) -> list[str]:
    found = [f"unknown key {k!r}" for k in line if k not in ("id", "messages", "expected", "context")]
    if not isinstance(line.get("id"), str) or not line["id"]:
        found.append("id: a non-empty string")
    found += _messages_problems(line.get("messages"), "messages")
    last = (line.get("messages") or [{}])[-1]
    if isinstance(last, dict) and last.get("role") not in ("user", "tool"):
        found.append("messages: must end with a user or tool message")
    if not isinstance(line.get("expected"), str) or not line["expected"].strip():
        found.append("expected: a non-empty string")
    return found


VALIDATORS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "openai-sft": _sft, "openai-dpo": _dpo, "trl": _trl, "sharegpt": _sharegpt_problems, "eval": _eval,
}  # fmt: skip


def problems(fmt: str, line: Any) -> list[str]:
    """What breaks ``fmt``'s rules in one line (empty: valid)."""
    if not isinstance(line, dict):
        return ["a line is a JSON object"]
    return VALIDATORS[fmt](line)
