"""What the schema plugin checks: the schema a request asks for, its tools, an answer's JSON texts and tool calls.

Requests: chat and completions ``response_format`` (``json_schema`` / ``json_object``), the Responses API's
``text.format``, the tools of chat (``function.parameters``), Responses (``parameters``) and Messages
(``input_schema``). Answers are read through ``proxy.textview``; tool calls per endpoint (chat
``tool_calls``, Responses ``function_call`` items, Messages ``tool_use`` blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from plugins._schema.check import Checker, Problem
from proxy import ApiRequest, textview

Tools = dict[str, tuple[Any, bool]]  # tool name → (its parameters schema, strict)


@dataclass(frozen=True, slots=True)
class Target:
    """What one request's answers must satisfy."""

    json: bool  # the answer's text must be JSON (an object when ``schema`` is None)
    schema: Any | None = None
    strict: bool = False
    tools: Tools = field(default_factory=dict)


def asked_format(request: ApiRequest) -> tuple[Any | None, bool] | None:
    """``(schema, strict)`` the request asks its answer to follow (schema None: any JSON object), or None."""
    body = request.body
    if request.endpoint == "responses":
        text = body.get("text")
        spec = text.get("format") if isinstance(text, dict) else None
        inner = spec
    else:
        spec = body.get("response_format")
        inner = spec.get("json_schema") if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        return None
    if spec.get("type") == "json_object":
        return None, False
    if spec.get("type") == "json_schema" and isinstance(inner, dict) and isinstance(inner.get("schema"), dict):
        return inner["schema"], inner.get("strict") is True
    return None


def request_tools(request: ApiRequest) -> Tools:
    """The function tools the request offers, with their argument schemas."""
    tools: Tools = {}
    for tool in request.body.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        spec = tool.get("function") if request.endpoint == "chat" else tool
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            continue
        schema = spec.get("input_schema" if request.endpoint == "messages" else "parameters")
        tools[spec["name"]] = (schema if isinstance(schema, dict) else {}, spec.get("strict") is True)
    return tools


def tool_calls(endpoint: str, answer: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(path, name, arguments)`` for every tool call in an answer (arguments: a JSON string or a dict)."""
    calls: list[tuple[str, str, Any]] = []
    if endpoint == "chat":
        for i, choice in enumerate(answer.get("choices") or ()):
            message = choice.get("message") if isinstance(choice, dict) else None
            for j, call in enumerate((message or {}).get("tool_calls") or ()):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    where = f"$.choices[{i}].tool_calls[{j}]"
                    calls.append((where, str(function.get("name")), function.get("arguments")))
    elif endpoint == "responses":
        for i, item in enumerate(answer.get("output") or ()):
            if isinstance(item, dict) and item.get("type") == "function_call":
                calls.append((f"$.output[{i}]", str(item.get("name")), item.get("arguments")))
    elif endpoint == "messages":
        for i, block in enumerate(answer.get("content") or ()):
            if isinstance(block, dict) and block.get("type") == "tool_use":
                calls.append((f"$.content[{i}]", str(block.get("name")), block.get("input")))
    return calls


def answer_texts(endpoint: str, answer: dict[str, Any]) -> list[tuple[str, str]]:
    """``(where, text)``: each choice's text (chat, completions), or the whole answer's text (Responses, Messages).

    ``where`` prefixes the JSON paths of errors in that text: ``$`` for the first (or only) one.
    """
    groups: dict[str, list[str]] = {}
    for ref in textview.response_texts(endpoint, answer):
        if ref.kind != "content":
            continue
        index = ref.path[1] if endpoint in ("chat", "completions") else 0
        groups.setdefault("$" if index == 0 else f"choices[{index}]:$", []).append(ref.text)
    return [(where, "".join(parts)) for where, parts in groups.items()]


def problems(
    endpoint: str, answer: dict[str, Any], target: Target, checker: Checker, allowed: frozenset[str] | None
) -> list[Problem]:
    """Everything wrong with ``answer`` for ``target``; [] when it is acceptable."""
    found: list[Problem] = []
    calls = tool_calls(endpoint, answer)
    if target.json:
        texts = answer_texts(endpoint, answer)
        if not texts and not calls:
            found.append(Problem("$", "the answer has no text to parse as JSON"))
        for where, text in texts:
            if not calls or text.strip():  # an answer that only called a tool has no JSON text to check
                found += checker.text_problems(target.schema, text, strict=target.strict, where=where)
    for path, name, arguments in calls:
        found += _call_problems(path, name, arguments, target, checker, allowed)
    return found


def _call_problems(
    path: str, name: str, arguments: Any, target: Target, checker: Checker, allowed: frozenset[str] | None
) -> list[Problem]:
    if allowed is not None and name not in allowed:
        names = ", ".join(sorted(allowed)) or "none"
        return [Problem(path, f"calls tool {name!r}, which is not allowed here (allowed: {names})")]
    if name not in target.tools:
        return [Problem(path, f"calls tool {name!r}, which the request did not offer")]
    schema, strict = target.tools[name]
    if isinstance(arguments, str):
        return checker.text_problems(schema, arguments, strict=strict, where=f"{path}.arguments")
    return checker.problems(schema, arguments, strict=strict, where=f"{path}.arguments")


def bad_text(endpoint: str, answer: dict[str, Any]) -> str:
    """The answer's own text (its first choice), to quote back in a repair turn."""
    texts = answer_texts(endpoint, answer)
    if texts and texts[0][1].strip():
        return texts[0][1]
    calls = tool_calls(endpoint, answer)
    return "; ".join(f"{name}({_as_text(args)})" for _, name, args in calls)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
