"""What the ``/v1/messages`` endpoints need, Anthropic-flavoured: checks, error bodies, the key, token counts.

Clients of this surface (the anthropic SDK, coding agents) read Anthropic errors, so a refusal names
the field as Anthropic does (``messages.1.content.0.type: …``) and errors leave as
``{"type": "error", "error": {"type", "message"}}`` with the status deciding the type. Only what the
Messages API would itself reject is refused here; unknown fields pass. What a chat backend cannot do
(documents, server tools) is refused later, by ``proxy.messages_chat.to_chat``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import orjson

from proxy import tokens
from proxy.errors import ChaperoneError, InvalidRequest
from proxy.messages_chat import to_chat

ROLES = frozenset({"user", "assistant", "system"})  # "system" entries: newer SDKs send them in messages
BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "thinking",
        "redacted_thinking",
        "tool_use",
        "tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
    }
)
# Required fields of the block types whose shape is fixed: (field, JSON type, what to call it).
_FIELDS: dict[str, tuple[tuple[str, type | tuple[type, ...], str], ...]] = {
    "text": (("text", str, "a string"),),
    "thinking": (("thinking", str, "a string"), ("signature", str, "a string")),
    "redacted_thinking": (("data", str, "a string"),),
    "document": (("source", dict, "a document source object"),),
    "search_result": (("source", str, "a string"), ("title", str, "a string"), ("content", list, "a list")),
    "container_upload": (("file_id", str, "a string"),),
}
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
IMAGE_SOURCES = frozenset({"base64", "url", "file"})
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's ``error.type`` for each HTTP status it documents."""


def error_type(status: int) -> str:
    """The Anthropic ``error.type`` for an HTTP status (other 4xx: invalid_request_error; 5xx: api_error)."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_object(status: int, message: str) -> dict[str, Any]:
    """The Anthropic error body: ``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def encode_event(event: dict[str, Any]) -> bytes:
    """One server-sent event as Anthropic streams it: ``event: <type>`` then its JSON ``data:``."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _fail(param: str, what: str, code: str = "invalid_value") -> NoReturn:
    raise InvalidRequest(f"{param}: {what}", param=param, code=code)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _want(value: Any, types: type | tuple[type, ...], param: str, name: str) -> None:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        _fail(param, f"expected {name}, got a boolean")
    if not isinstance(value, types):
        _fail(param, f"expected {name}, got {_kind(value)}")


def _number(value: Any, param: str, lo: float, hi: float | None) -> None:
    _want(value, (int, float), param, "a number")
    if not math.isfinite(value) or value < lo or (hi is not None and value > hi):
        _fail(param, f"must be between {lo} and {hi}, got {value}" if hi is not None else f"must be ≥ {lo}")


def _integer(value: Any, param: str, lo: int) -> None:
    _want(value, int, param, "an integer")
    if value < lo:
        _fail(param, f"must be ≥ {lo}, got {value}")


def _text_blocks(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    _want(value, list, param, "a string or a list of text blocks")
    for i, block in enumerate(value):
        _want(block, dict, f"{param}.{i}", "a text block")
        if block.get("type") != "text":
            _fail(f"{param}.{i}.type", f"expected 'text', got {block.get('type')!r}")
        _want(block.get("text"), str, f"{param}.{i}.text", "a string")


def _image(block: dict[str, Any], param: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        _fail(f"{param}.source", f"expected an image source object, got {_kind(source)}")
    kind = source.get("type")
    if not isinstance(kind, str) or kind not in IMAGE_SOURCES:
        _fail(f"{param}.source.type", f"must be one of base64, file, url, got {kind!r}")
    required = {"base64": ("media_type", "data"), "url": ("url",), "file": ("file_id",)}[kind]
    for key in required:
        _want(source.get(key), str, f"{param}.source.{key}", "a string")


def _block(block: Any, param: str, role: str) -> None:
    _want(block, dict, param, "a content block object")
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in BLOCK_TYPES:  # [edge] a dict "type" is unhashable
        _fail(f"{param}.type", f"unknown content block type {kind!r}")
    if kind in _FIELDS:  # [edge] every block type with a fixed shape is checked against it
        for field, types, name in _FIELDS[kind]:
            _want(block.get(field), types, f"{param}.{field}", name)
    if kind == "image":
        _image(block, param)
    elif kind == "tool_use":
        if role != "assistant":
            _fail(f"{param}.type", "tool_use blocks belong in assistant messages")
        _want(block.get("id"), str, f"{param}.id", "a string")
        _want(block.get("name"), str, f"{param}.name", "a string")
        _want(block.get("input"), dict, f"{param}.input", "an object")
    elif kind == "tool_result":
        if role != "user":
            _fail(f"{param}.type", "tool_result blocks belong in user messages")
        _want(block.get("tool_use_id"), str, f"{param}.tool_use_id", "a string")
        content = block.get("content", "")
        if not isinstance(content, str):
            _want(content, list, f"{param}.content", "a string or a list of content blocks")
            for k, inner in enumerate(content):
                _block(inner, f"{param}.content.{k}", "tool_result")
        if "is_error" in block:
            _want(block["is_error"], bool, f"{param}.is_error", "a boolean")


def _message(message: Any, param: str, *, last: bool) -> None:
    _want(message, dict, param, "a message object")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        _fail(f"{param}.role", f"must be one of assistant, user, got {role!r}")
    content = message.get("content")
    if content is None:
        _fail(f"{param}.content", "Field required", code="missing_required_parameter")
    if not content and not (last and role == "assistant"):
        _fail(param, "all messages must have non-empty content except for the optional final assistant message")
    if role == "system":
        _text_blocks(content, f"{param}.content")
    elif not isinstance(content, str):
        _want(content, list, f"{param}.content", "a string or a list of content blocks")
        for j, block in enumerate(content):
            _block(block, f"{param}.content.{j}", role)


def _tools(tools: Any) -> None:
    _want(tools, list, "tools", "a list")
    for i, tool in enumerate(tools):
        _want(tool, dict, f"tools.{i}", "a tool object")
        _want(tool.get("name"), str, f"tools.{i}.name", "a string")
        if tool.get("type") in (None, "custom"):
            _want(tool.get("input_schema"), dict, f"tools.{i}.input_schema", "a JSON schema object")
            if tool.get("description") is not None:
                _want(tool["description"], str, f"tools.{i}.description", "a string")
        else:
            _want(tool["type"], str, f"tools.{i}.type", "a string")


def _tool_choice(choice: Any) -> None:
    _want(choice, dict, "tool_choice", "an object")
    if not isinstance(choice.get("type"), str) or choice["type"] not in TOOL_CHOICES:
        _fail("tool_choice.type", f"must be one of any, auto, none, tool, got {choice.get('type')!r}")
    if choice["type"] == "tool":
        _want(choice.get("name"), str, "tool_choice.name", "a string")
    if "disable_parallel_tool_use" in choice:
        _want(choice["disable_parallel_tool_use"], bool, "tool_choice.disable_parallel_tool_use", "a boolean")


def _optional(body: dict[str, Any]) -> None:
    checks: dict[str, Callable[[Any], None]] = {
        "system": lambda v: _text_blocks(v, "system"),
        "tools": _tools,
        "tool_choice": _tool_choice,
        "temperature": lambda v: _number(v, "temperature", 0, 1),
        "top_p": lambda v: _number(v, "top_p", 0, 1),
        "top_k": lambda v: _integer(v, "top_k", 0),
        "stream": lambda v: _want(v, bool, "stream", "a boolean"),
        "metadata": lambda v: _want(v, dict, "metadata", "an object"),
    }
    for key, check in checks.items():
        if body.get(key) is not None:
            check(body[key])
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        _fail("stop_sequences", "expected a list of strings")
    user = (body.get("metadata") or {}).get("user_id")
    if user is not None:
        _want(user, str, "metadata.user_id", "a string")


def validate_count_tokens(body: dict[str, Any]) -> None:
    """Refuse a ``/v1/messages/count_tokens`` body the Messages API would refuse (``max_tokens`` not needed)."""
    model = body.get("model")
    if model is None:
        _fail("model", "Field required", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        _fail("model", "expected a non-empty string")
    messages = body.get("messages")
    if messages is None:
        _fail("messages", "Field required", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        _fail("messages", "expected a non-empty list of messages")
    for i, message in enumerate(messages):
        _message(message, f"messages.{i}", last=i == len(messages) - 1)
    _optional(body)


def validate(body: dict[str, Any]) -> None:
    """Refuse a ``/v1/messages`` body the Messages API would refuse, naming the field; unknown fields pass."""
    if body.get("max_tokens") is None:
        _fail("max_tokens", "Field required", code="missing_required_parameter")
    _integer(body["max_tokens"], "max_tokens", 1)
    validate_count_tokens(body)


def error_body(exc: ChaperoneError, *, request_id: str | None = None) -> bytes:
    """The Anthropic error JSON for ``exc``; send it with ``exc.http_status`` and ``exc.headers()``.

    An upstream's own error (``UpstreamStatus``) keeps its status and its message.
    """
    body = error_object(exc.http_status, exc.message)
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


def error_event(exc: ChaperoneError) -> bytes:
    """The ``event: error`` that ends a stream already under way (the anthropic SDK raises it)."""
    return encode_event(error_object(exc.http_status, exc.message))


def api_key_header(headers: Mapping[str, str]) -> str | None:
    """The ``Authorization`` value to authenticate with: the client's own, else ``Bearer <x-api-key>``."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in ("authorization", "x-api-key") and value.strip() and lowered not in found:
            found[lowered] = value.strip()
    if "authorization" in found:
        return found["authorization"]
    if "x-api-key" in found:
        return f"Bearer {found['x-api-key']}"
    return None


def count_tokens(body: dict[str, Any]) -> int:
    """Input tokens of a (validated) Messages request, as the chat backend will receive it: an estimate.

    Counted with tiktoken (``proxy.tokens``; o200k for non-OpenAI models) over the translated chat
    request: system, texts, tool_use inputs and tool_result contents as their chat messages (3 tokens
    of overhead each, plus 3 to prime the reply), tool definitions as their JSON, and each image as
    ``tokens.IMAGE_TOKENS``. Thinking blocks are not sent, so not counted. Raises ``InvalidRequest``
    where ``to_chat`` would (documents, server tools). CPU-bound (about 4 M tokens/s: a
    100k-token conversation takes ~25 ms): run long ones off the event loop.
    """
    return tokens.count_chat(to_chat({**body, "stream": False}))
