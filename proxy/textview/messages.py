"""Where model-visible text lives in Anthropic's Messages API (``POST /v1/messages``).

Requests:
  ``system`` (a string or ``text`` blocks); ``messages[i].content`` as a string or blocks: ``text``,
  ``tool_use.input`` (every string inside the decoded object, earlier model turns), ``tool_result.content``
  (untrusted tool output: a string or ``text`` blocks), ``thinking``; ``tools``: ``description`` and the
  descriptions in their ``input_schema``.

Answers: a Message's ``content`` blocks (``text``, the strings of ``tool_use.input``, ``thinking``).

Stream events: ``content_block_delta`` extends block ``index``'s text (``text_delta.text``,
``input_json_delta.partial_json`` — JSON, ``thinking_delta.thinking``), keyed ``(index, kind, None)``;
``content_block_start`` carries a block's first (usually empty) text whole. A block's text ends at its
``content_block_stop``, all texts at ``message_delta`` / ``message_stop`` / ``error``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from proxy.textview.base import TRUST_OF_ROLE, Path, StreamKey, TextRef, ref_at, schema_descriptions, string_leaves

_DELTAS = {"text_delta": ("text", "content"), "input_json_delta": ("partial_json", "tool_arguments"),
           "thinking_delta": ("thinking", "reasoning")}  # fmt: skip
_DELTA_TYPE = {kind: (delta, field) for delta, (field, kind) in _DELTAS.items()}
_ENDS_ALL = frozenset({"message_delta", "message_stop", "error"})


def request_texts(body: dict[str, Any]) -> list[TextRef]:
    refs: list[TextRef] = []
    system = body.get("system")
    if isinstance(system, str):
        refs.append(TextRef(system, "system", "content", "system", ("system",), False, body, "system"))
    elif isinstance(system, list):
        refs.extend(_blocks(system, "system", ("system",), None))
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = str(message["role"]) if isinstance(message.get("role"), str) else "user"
            content = message.get("content")
            if isinstance(content, str):
                trust = TRUST_OF_ROLE.get(role, "user")
                refs.append(TextRef(content, role, "content", trust, ("messages", i, "content"), False, message,
                                    "content"))  # fmt: skip
            elif isinstance(content, list):
                refs.extend(_blocks(content, role, ("messages", i, "content"), None))
    tools = body.get("tools")
    if isinstance(tools, list):
        for k, tool in enumerate(tools):
            if isinstance(tool, dict):
                refs.extend(_tool(tool, ("tools", k)))
    return refs


def _tool(tool: dict[str, Any], path: Path) -> Iterator[TextRef]:
    if ref := ref_at(tool, "description", "tools", "tool_definition", "system", (*path, "description")):
        yield ref
    schema = tool.get("input_schema")
    if isinstance(schema, dict):
        yield from schema_descriptions(schema, (*path, "input_schema"), 0)


def _blocks(blocks: list[Any], role: str, path: Path, indexed: bool | None) -> Iterator[TextRef]:
    """The texts of content blocks; ``indexed`` (answers) gives each a stream key by block position."""
    trust = TRUST_OF_ROLE.get(role, "user")
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        where = (*path, j)
        if kind == "text":
            key: StreamKey | None = (j, "content", None) if indexed else None
            if ref := ref_at(block, "text", role, "content", trust, (*where, "text"), stream_key=key):
                yield ref
        elif kind == "thinking":
            key = (j, "reasoning", None) if indexed else None
            if ref := ref_at(block, "thinking", role, "reasoning", trust, (*where, "thinking"), stream_key=key):
                yield ref
        elif kind == "tool_use":
            yield from string_leaves(block.get("input"), role, "tool_arguments", trust, (*where, "input"))
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                yield TextRef(content, "tool", "content", "untrusted", (*where, "content"), False, block, "content")
            elif isinstance(content, list):
                yield from _blocks(content, "tool", (*where, "content"), None)


def response_texts(body: dict[str, Any]) -> list[TextRef]:
    content = body.get("content")
    return list(_blocks(content, "assistant", ("content",), True)) if isinstance(content, list) else []


def chunk_texts(event: dict[str, Any]) -> list[TextRef]:
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event.get("delta")
        spec = _DELTAS.get(str(delta.get("type"))) if isinstance(delta, dict) else None
        if spec is None:
            return []
        field, text_kind = spec
        index = event.get("index", 0)
        key = (index if isinstance(index, int) else 0, text_kind, None)
        ref = ref_at(delta, field, "assistant", text_kind, "model", ("delta", field),
                     json=text_kind == "tool_arguments", stream_key=key)  # fmt: skip
        return [ref] if ref else []
    if kind == "content_block_start":
        block = event.get("content_block")
        return list(_blocks([block], "assistant", ("content_block",), None)) if isinstance(block, dict) else []
    if kind == "message_start":
        message = event.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            return list(_blocks(message["content"], "assistant", ("message", "content"), None))
    return []


def chunk_ends(event: dict[str, Any]) -> list[tuple[int | str | None, ...]]:
    kind = event.get("type")
    if kind in _ENDS_ALL:
        return [()]
    if kind == "content_block_stop" and isinstance(event.get("index"), int):
        return [(event["index"],)]
    return []


def delta_chunk(key: StreamKey, text: str, like: dict[str, Any]) -> dict[str, Any]:
    """A ``content_block_delta`` event carrying ``text`` for block ``key[0]``."""
    delta_type, field = _DELTA_TYPE.get(key[1], ("text_delta", "text"))
    return {"type": "content_block_delta", "index": key[0], "delta": {"type": delta_type, field: text}}
