"""An Anthropic Messages request, translated into an OpenAI chat completions request.

In the core because the core needs it too: ``/v1/messages/count_tokens`` counts what a chat backend
will read. ``backends.messages_chat`` (the adapter for chat-only backends) sends the result.

Choices made where the two APIs differ (each visible to the client):

- ``system`` (a string or text blocks, ``cache_control`` ignored) becomes the first system message;
  text blocks are joined with a blank line. A ``system``-role entry in ``messages`` (newer SDKs allow
  it) becomes a system message in place.
- A user turn's ``tool_result`` blocks become ``tool`` messages placed before the rest of that turn.
  An ``is_error`` result keeps its content, prefixed with ``TOOL_ERROR_PREFIX``: chat has no error flag.
  Images inside a tool result move to the user message that follows it (tool messages hold text only).
- ``thinking`` / ``redacted_thinking`` blocks and the ``thinking`` config are dropped; ``document``
  blocks, file-id image sources, server tools (``web_search_…``, ``bash_…``, ``text_editor_…``) and
  server-side blocks are refused with a 400 naming the field: a chat backend cannot honour them.
- Fields with no chat counterpart (``service_tier``, ``container``, …) are not forwarded.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import InvalidRequest

TOOL_ERROR_PREFIX = "Error: "
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_SAMPLING = ("max_tokens", "temperature", "top_p", "top_k")


def _refuse(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {what}", param=param, code="unsupported_value")


def _text_of(blocks: Any, param: str) -> str:
    """A string, or text blocks joined by a blank line (anything else refused)."""
    if isinstance(blocks, str):
        return blocks
    texts = []
    for i, block in enumerate(blocks or ()):
        if block.get("type") != "text":
            raise _refuse(f"{param}.{i}.type", f"only text blocks are supported here, got {block.get('type')!r}")
        texts.append(block.get("text", ""))
    return "\n\n".join(texts)


def _image_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url":
        url = str(source.get("url"))
    else:
        raise _refuse(f"{param}.source.type", f"image source {kind!r} is not supported by this backend")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: dict[str, Any], param: str, images: list[dict[str, Any]]) -> dict[str, Any]:
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    else:
        texts = []
        for k, part in enumerate(content):
            kind = part.get("type")
            if kind == "text":
                texts.append(part.get("text", ""))
            elif kind == "image":
                images.append(_image_part(part, f"{param}.content.{k}"))
            else:
                raise _refuse(f"{param}.content.{k}.type", f"{kind!r} blocks in a tool result are not supported")
        text = "\n".join(texts)
    if block.get("is_error"):
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _user_turn(content: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    moved_images: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind, where = block.get("type"), f"{param}.{j}"
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block, where))
        elif kind == "tool_result":
            tools.append(_tool_message(block, where, moved_images))
        elif kind not in _DROPPED_BLOCKS:
            raise _refuse(f"{where}.type", f"{kind!r} blocks are not supported by this backend")
    parts = moved_images + parts
    if not parts:
        return tools
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tools, {"role": "user", "content": parts[0]["text"]}]
    return [*tools, {"role": "user", "content": parts}]


def _assistant_turn(content: list[dict[str, Any]], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        elif kind not in _DROPPED_BLOCKS:
            raise _refuse(f"{param}.{j}.type", f"{kind!r} blocks are not supported in an assistant turn here")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _text_of(system, "system")})
    for i, message in enumerate(body.get("messages") or ()):
        role, content, param = message.get("role"), message.get("content"), f"messages.{i}.content"
        if role == "system":
            out.append({"role": "system", "content": _text_of(content, param)})
        elif isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "assistant":
            out.append(_assistant_turn(content, param))
        else:
            out.extend(_user_turn(content, param))
    return out


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            raise _refuse(
                f"tools.{i}.type",
                f"server tool {tool.get('type')!r} is not available through this backend; define a custom tool",
            )
        function: dict[str, Any] = {"name": tool.get("name"), "parameters": tool.get("input_schema") or {}}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: dict[str, Any], chat: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind == "none":
        chat["tool_choice"] = "none"
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        chat["parallel_tool_calls"] = False


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions request for a (validated) Messages request; raises ``InvalidRequest`` (400)
    for what a chat backend cannot do."""
    chat: dict[str, Any] = {"model": body.get("model"), "messages": _messages(body)}
    for key in _SAMPLING:
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("stop_sequences"):
        chat["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        chat["user"] = user
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if isinstance(body.get("tool_choice"), dict):
        _tool_choice(body["tool_choice"], chat)
        if not chat.get("tools") and "tool_choice" in chat:
            del chat["tool_choice"]  # OpenAI refuses tool_choice without tools; Anthropic accepts it
            chat.pop("parallel_tool_calls", None)
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat
