"""Where model-visible text lives in chat completions, legacy completions and embeddings.

Requests:
  chat         ``messages[i].content`` (a string, or ``text`` / ``refusal`` parts of a list),
               ``messages[i].name``, assistant ``tool_calls[j].function.arguments`` and the legacy
               ``function_call.arguments``; ``tools[k].function.description`` and the descriptions
               inside its ``parameters`` schema (the model reads those too).
  completions  ``prompt`` as a string or a list of strings (token-id lists are not text).
  embeddings   ``input`` as a string or a list of strings (token-id lists are not text).

Answers and stream deltas:
  chat         ``choices[i].message`` / ``choices[i].delta``: ``content``, ``refusal``,
               ``tool_calls[j].function.arguments``, ``function_call.arguments``; every choice (``n>1``).
  completions  ``choices[i].text``.

Stream keys are ``(choice index, kind, tool-call index)``; a choice's texts end at its ``finish_reason``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from proxy.textview.base import TRUST_OF_ROLE, Path, StreamKey, TextRef, ref_at, tool_definition


def request_texts(endpoint: str, body: dict[str, Any]) -> list[TextRef]:
    """Every text the model will read in a chat, completions or embeddings request, in body order."""
    if endpoint == "chat":
        return list(_chat_request(body))
    if endpoint == "completions":
        return list(_string_or_list(body, "prompt", "prompt"))
    if endpoint == "embeddings":
        return list(_string_or_list(body, "input", "input"))
    return []


def _string_or_list(body: dict[str, Any], field: str, kind: str) -> Iterator[TextRef]:
    value = body.get(field)
    if isinstance(value, str):
        yield TextRef(value, kind, kind, "user", (field,), False, body, field)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield TextRef(item, kind, kind, "user", (field, i), False, value, i)


def _chat_request(body: dict[str, Any]) -> Iterator[TextRef]:
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict):
                yield from _message(message, ("messages", i))
    tools = body.get("tools")
    if isinstance(tools, list):
        for k, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict):
                yield from tool_definition(function, ("tools", k, "function"))


def _message(message: dict[str, Any], path: Path) -> Iterator[TextRef]:
    role = message.get("role")
    role = role if isinstance(role, str) else "user"
    trust = TRUST_OF_ROLE.get(role, "user")
    kind = "content"
    content = message.get("content")
    if isinstance(content, str):
        yield TextRef(content, role, kind, trust, (*path, "content"), False, message, "content")
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            part_type = part.get("type")
            if part_type == "text" and (ref := ref_at(part, "text", role, kind, trust, (*path, "content", j, "text"))):
                yield ref
            elif part_type == "refusal" and (
                ref := ref_at(part, "refusal", role, "refusal", trust, (*path, "content", j, "refusal"))
            ):
                yield ref
    if "name" in message and (ref := ref_at(message, "name", role, "name", trust, (*path, "name"))):
        yield ref
    if "refusal" in message and (ref := ref_at(message, "refusal", role, "refusal", trust, (*path, "refusal"))):
        yield ref
    yield from _tool_arguments(message, role, trust, path, None)


def _tool_arguments(holder: dict[str, Any], role: str, trust: str, path: Path, choice: int | None) -> Iterator[TextRef]:
    calls = holder.get("tool_calls")
    if isinstance(calls, list):
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and "arguments" in function:
                index = call.get("index", j)
                key: StreamKey | None = None
                if choice is not None:
                    key = (choice, "tool_arguments", index if isinstance(index, int) else j)
                where = (*path, "tool_calls", j, "function", "arguments")
                ref = ref_at(function, "arguments", role, "tool_arguments", trust, where, json=True, stream_key=key)
                if ref:
                    yield ref
    legacy = holder.get("function_call")
    if isinstance(legacy, dict) and "arguments" in legacy:
        key = None if choice is None else (choice, "function_arguments", None)
        ref = ref_at(
            legacy, "arguments", role, "tool_arguments", trust, (*path, "function_call", "arguments"),
            json=True, stream_key=key,
        )  # fmt: skip
        if ref:
            yield ref


# ---- answers --------------------------------------------------------------------------------


def response_texts(endpoint: str, body: dict[str, Any]) -> list[TextRef]:
    """Every text the model wrote in a whole answer (all choices)."""
    return list(_choices(endpoint, body, "message"))


def chunk_texts(endpoint: str, chunk: dict[str, Any]) -> list[TextRef]:
    """Every text piece in one parsed stream chunk; ``stream_key`` names the growing text it extends."""
    return list(_choices(endpoint, chunk, "delta"))


def _choices(endpoint: str, body: dict[str, Any], holder_key: str) -> Iterator[TextRef]:
    choices = body.get("choices")
    if not isinstance(choices, list):
        return
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        index = index if isinstance(index, int) else position
        if endpoint == "completions":
            if ref := ref_at(choice, "text", "assistant", "content", "model", ("choices", position, "text"),
                           stream_key=(index, "content", None)):  # fmt: skip
                yield ref
            continue
        holder = choice.get(holder_key)
        if not isinstance(holder, dict):
            continue
        path: Path = ("choices", position, holder_key)
        for kind in ("content", "refusal"):
            if kind in holder and (
                ref := ref_at(holder, kind, "assistant", kind, "model", (*path, kind), stream_key=(index, kind, None))
            ):
                yield ref
        yield from _tool_arguments(holder, "assistant", "model", path, index)


# ---- stream shapes --------------------------------------------------------------------------


def chunk_ends(chunk: dict[str, Any]) -> list[tuple[int | str | None, ...]]:
    """A choice's texts end with its ``finish_reason``: one ``(index,)`` prefix per finishing choice."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return []
    return [
        (choice["index"],) for choice in choices
        if isinstance(choice, dict) and choice.get("finish_reason") and isinstance(choice.get("index"), int)
    ]  # fmt: skip


def append_text(endpoint: str, chunk: dict[str, Any], key: StreamKey, text: str) -> bool:
    """Add ``text`` to the growing text ``key`` inside ``chunk``, after what the chunk carries of it already."""
    choices = chunk.get("choices")
    choice = next(
        (c for c in choices if isinstance(c, dict) and c.get("index") == key[0]), None
    ) if isinstance(choices, list) else None  # fmt: skip
    if choice is None:
        return False
    _add(choice, key, text, endpoint)
    return True


def delta_chunk(endpoint: str, key: StreamKey, text: str, like: dict[str, Any]) -> dict[str, Any]:
    """A chunk of the stream ``like`` came from, carrying only ``text`` for the growing text ``key``."""
    template: dict[str, Any] = {name: like[name] for name in ("id", "object", "created", "model") if name in like}
    index = key[0]
    choice: dict[str, Any] = (
        {"index": index, "text": "", "finish_reason": None} if endpoint == "completions"
        else {"index": index, "delta": {}, "finish_reason": None}
    )  # fmt: skip
    _add(choice, key, text, endpoint)
    return {**template, "choices": [choice]}


def _add(choice: dict[str, Any], key: StreamKey, text: str, endpoint: str) -> None:
    _, kind, tool_index = key
    if endpoint == "completions":
        choice["text"] = (choice.get("text") or "") + text
        return
    delta = choice.setdefault("delta", {})
    if kind in ("content", "refusal"):
        delta[kind] = (delta.get(kind) or "") + text
    elif kind == "function_arguments":
        call = delta.setdefault("function_call", {})
        call["arguments"] = (call.get("arguments") or "") + text
    else:
        calls = delta.setdefault("tool_calls", [])
        entry = next((c for c in calls if isinstance(c, dict) and c.get("index") == tool_index), None)
        if entry is None:
            entry = {"index": tool_index, "function": {"arguments": ""}}
            calls.append(entry)
        function = entry.setdefault("function", {})
        function["arguments"] = (function.get("arguments") or "") + text
