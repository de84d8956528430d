"""Anthropic stream events in, OpenAI ``chat.completion.chunk`` objects out, for one streamed answer.

Every chunk carries the message's id, creation time and model. ``message_start`` gives the first chunk
(``role: assistant``); text deltas become ``content``, ``thinking`` deltas ``reasoning_content``, and a
``tool_use`` block one tool call (its ``index`` counting tool calls, not blocks) whose ``input_json_delta``
pieces are its ``arguments``. ``message_delta`` carries the finish reason; the usage chunk (no choices,
as OpenAI sends it) follows only when the request asked for ``stream_options.include_usage``, then
``[DONE]``. An ``error`` event raises (the core ends the client's stream with an error event); a stream
that stops before ``message_stop`` raises too, so a cut answer never looks complete.

``MessagesUsage`` is for a Messages request passed through as it is: it completes ``message_delta``'s
usage with the input counts of ``message_start`` (Anthropic may report only ``output_tokens`` there), so
the core's accounting, which reads the last usage of a stream, sees every token.
"""

from __future__ import annotations

import time
from typing import Any

from backends._anthropic.response import chat_usage, finish_reason, stream_error
from backends.provider import DONE
from proxy.errors import UpstreamError

_INPUT_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class MessagesToChat:
    """Translate one Anthropic event stream into chat chunks (``feed`` per event, ``finish`` at the end)."""

    def __init__(self, request: dict[str, Any], backend: str) -> None:
        options = request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.backend = backend
        self._id = ""
        self._model = request.get("model")
        self._created = int(time.time())
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # block index -> tool call index
        self._done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
                "choices": [choice]}  # fmt: skip

    def _block_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        block = event.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            position = self._tools[event.get("index", 0)] = len(self._tools)
            call = {"index": position, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _block_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "thinking_delta":
            return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
        if kind == "input_json_delta":
            position = self._tools.get(event.get("index", 0))
            if position is not None and delta.get("partial_json"):
                call = {"index": position, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
        return []  # signature_delta, citations_delta: nothing a chat client reads

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks for one parsed Anthropic stream event."""
        if self._done:
            return []
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = message.get("id") or self._id
            self._model = message.get("model") or self._model
            self._usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return [self._chunk({}, finish_reason((event.get("delta") or {}).get("stop_reason")))]
        if kind == "message_stop":
            self._done = True
            usage = chat_usage(self._usage)
            tail = [{**self._chunk({}), "choices": [], "usage": usage}] if self.include_usage else []
            return [*tail, DONE]
        if kind == "error":
            self._done = True
            raise stream_error(event, self.backend)
        return []  # ping, content_block_stop, and event types added later

    def finish(self) -> list[dict[str, Any]]:
        """Nothing after ``message_stop``; a stream that ended without one is an upstream failure."""
        if not self._done:
            self._done = True
            raise UpstreamError(f"backend {self.backend!r} ended the stream early", code="upstream_disconnected")
        return []


class MessagesUsage:
    """Pass a native Messages stream through, adding ``message_start``'s input counts to ``message_delta``."""

    def __init__(self) -> None:
        self._input: dict[str, Any] = {}

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self._input = {k: usage[k] for k in _INPUT_COUNTS if usage.get(k) is not None}
        elif kind == "message_delta" and self._input:
            usage = event.get("usage")
            if isinstance(usage, dict):
                missing = {k: v for k, v in self._input.items() if usage.get(k) is None}
                if missing:
                    event = {**event, "usage": {**usage, **missing}}
        return [event]

    def finish(self) -> list[dict[str, Any]]:
        return []
