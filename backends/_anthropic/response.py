"""An Anthropic ``Message`` (and its errors and usage), translated into an OpenAI chat completion.

Choices made where the two APIs differ:

- ``finish_reason``: ``end_turn``, ``stop_sequence`` and ``pause_turn`` → ``stop``; ``max_tokens`` and
  ``model_context_window_exceeded`` → ``length``; ``tool_use`` → ``tool_calls``; ``refusal`` →
  ``content_filter`` (the inverse of ``backends._messages.response``'s table).
- ``usage``: ``prompt_tokens`` counts every input token, cache reads and writes included (Anthropic
  reports them apart from ``input_tokens``); ``prompt_tokens_details.cached_tokens`` holds the cache
  reads and ``cache_write_tokens`` the writes, so cost and budgets see what OpenAI would have reported.
- ``thinking`` blocks become ``reasoning_content`` (vLLM's name); their signatures are dropped.
- A ``tool_use.input`` kept as ``{RAW_ARGUMENTS_KEY: …}`` goes back as that raw string.
- Errors become OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with ``code`` the
  Anthropic ``error.type``; the status stays, except 529 (overloaded), which becomes a 503 that every
  OpenAI client retries.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from backends._messages.response import RAW_ARGUMENTS_KEY, STOP_REASONS
from proxy.errors import UpstreamError, UpstreamStatus

FINISH_REASONS = {anthropic: chat for chat, anthropic in STOP_REASONS.items() if chat != "function_call"} | {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
_STATUS = {529: 503}
_LIMITS = "anthropic-ratelimit-"
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


def finish_reason(stop_reason: Any) -> str:
    """The chat ``finish_reason`` for an Anthropic ``stop_reason`` (unknown ones read ``stop``)."""
    return FINISH_REASONS.get(stop_reason, "stop")


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """Chat ``usage`` for an Anthropic one (None when there is none)."""
    if not isinstance(usage, Mapping):
        return None
    counts = {k: v if isinstance(v, int) and not isinstance(v, bool) else 0 for k, v in usage.items()}
    cached, written = counts.get("cache_read_input_tokens", 0), counts.get("cache_creation_input_tokens", 0)
    prompt = counts.get("input_tokens", 0) + cached + written
    completion = counts.get("output_tokens", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
    }


def arguments(tool_input: Any) -> str:
    """A ``tool_use.input`` as chat ``arguments`` (a JSON string)."""
    if isinstance(tool_input, dict) and set(tool_input) == {RAW_ARGUMENTS_KEY}:
        return str(tool_input[RAW_ARGUMENTS_KEY])
    return orjson.dumps(tool_input if tool_input is not None else {}).decode()


def to_chat_completion(message: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The chat completion for an Anthropic ``Message``."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": arguments(block.get("input"))}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    out: dict[str, Any] = {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason(message.get("stop_reason"))}],
    }
    usage = chat_usage(message.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def _anthropic_error(body: bytes) -> tuple[str | None, str | None]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None, None
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else None)


def chat_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamStatus:
    """The OpenAI-shaped error for an Anthropic error answer (status and retry headers kept, 529 → 503)."""
    kind, message = _anthropic_error(body)
    text = message or (body[:200].decode("utf-8", "replace").strip() or f"upstream answered {status}")
    out_status = _STATUS.get(status, status)
    error_type = _OPENAI_TYPES.get(out_status, "invalid_request_error" if out_status < 500 else "upstream_error")
    payload = {"error": {"message": text, "type": error_type, "param": None, "code": kind}}
    kept = {k.lower(): v for k, v in headers.items() if k.lower() == "retry-after" or k.lower().startswith(_LIMITS)}
    return UpstreamStatus(out_status, orjson.dumps(payload), kept)


def stream_error(event: dict[str, Any], backend: str) -> UpstreamError:
    """The error to raise for an ``error`` event inside a stream (``overloaded_error`` → 503)."""
    error = event.get("error")
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "api_error")
    message = str(error.get("message") or f"backend {backend!r} failed")
    status = {"overloaded_error": 503, "rate_limit_error": 429, "timeout_error": 504}.get(kind, 502)
    payload = {"error": {"message": message, "type": "upstream_error", "param": None, "code": kind}}
    return UpstreamStatus(status, orjson.dumps(payload))
