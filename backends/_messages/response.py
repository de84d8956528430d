"""An OpenAI chat completion (whole or streamed), translated into an Anthropic ``Message`` or its events.

Choices made where the two APIs differ:

- ``stop_reason``: ``length`` → ``max_tokens``, ``tool_calls`` (or any answer carrying tool calls) →
  ``tool_use``, ``content_filter`` → ``refusal``, ``stop`` → ``end_turn``, except that when the backend
  names the stop string that ended the text (vLLM's ``stop_reason`` on the choice) and the client asked
  for it in ``stop_sequences``, it is ``stop_sequence`` with ``stop_sequence`` set. Other backends do not
  say, so their stop-sequence hits read ``end_turn``.
- Tool-call ``arguments`` that are not a JSON object cannot be a ``tool_use.input``; the raw string is
  kept as ``{RAW_ARGUMENTS_KEY: "<arguments>"}`` so the client (and the model, on the next turn) sees
  what came back instead of an empty input.
- ``usage.input_tokens`` excludes cached prompt tokens (reported as ``cache_read_input_tokens``), as
  Anthropic counts them. Reasoning text (``reasoning_content``) is dropped: Anthropic ``thinking`` blocks
  need a signature no chat backend gives.
- ``model`` is the name the client asked for, not the upstream's.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from proxy.messages_api import encode_event, error_object, error_type

__all__ = [
    "RAW_ARGUMENTS_KEY",
    "STOP_REASONS",
    "ChatToMessagesStream",
    "encode_event",
    "error_object",
    "error_type",
    "from_chat",
    "stop_reason",
    "tool_input",
    "usage",
]

RAW_ARGUMENTS_KEY = "_raw_arguments"
STOP_REASONS = {  # chat finish_reason -> Anthropic stop_reason
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

log = logging.getLogger(__name__)


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's ``arguments`` string as a ``tool_use.input`` object (see ``RAW_ARGUMENTS_KEY``)."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS_KEY: str(arguments)}


def stop_reason(finish_reason: Any, matched: Any, request: dict[str, Any], *, tools: bool) -> tuple[str, str | None]:
    """Anthropic ``(stop_reason, stop_sequence)`` for a chat ``finish_reason`` (and vLLM's ``stop_reason``)."""
    if finish_reason in STOP_REASONS:
        return STOP_REASONS[finish_reason], None
    if tools:
        return "tool_use", None
    if isinstance(matched, str) and matched in (request.get("stop_sequences") or ()):
        return "stop_sequence", matched
    return "end_turn", None


def usage(chat_usage: Any) -> dict[str, int]:
    """Anthropic ``usage`` from a chat ``usage`` (zeros when the backend sent none)."""
    if not isinstance(chat_usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    details = chat_usage.get("prompt_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    out = {"input_tokens": max(prompt - cached, 0), "output_tokens": int(chat_usage.get("completion_tokens") or 0)}
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        out["cache_read_input_tokens"] = cached
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some backends answer with content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _tool_id(message_id: str, n: int) -> str:
    return f"toolu_{message_id.removeprefix('msg_')}_{n}"


def from_chat(chat: dict[str, Any], request: dict[str, Any], *, message_id: str) -> dict[str, Any]:
    """The Anthropic ``Message`` for a chat completion answering ``to_chat(request)``."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if text := _text(message.get("content")):
        content.append({"type": "text", "text": text})
    for n, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _tool_id(message_id, n),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    has_tools = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"), request, tools=has_tools)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.get("model"),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(chat.get("usage")),
    }


class ChatToMessagesStream:
    """Chat completion chunks in, Anthropic stream events out, for one streamed answer.

    Blocks are numbered in the order they open (text and tool_use alike) and only one is open at a
    time, as Anthropic streams them. Tool calls are expected one after another (as OpenAI and vLLM send
    them); a late argument piece for a tool call already closed cannot be sent and is logged and dropped.
    ``message_delta`` waits for the usage chunk that ends a chat stream (or for ``finish()``).
    """

    def __init__(self, request: dict[str, Any], *, message_id: str, input_tokens: int = 0) -> None:
        self.request = request
        self.message_id = message_id
        self._input_tokens = input_tokens
        self._blocks: list[dict[str, Any]] = []  # the final content, with tool arguments as strings
        self._open: int | None = None  # index of the open block
        self._tools: dict[int, int] = {}  # chat tool_call index -> block index
        self._started = False
        self._done = False
        self._finish_reason: Any = None
        self._matched: Any = None
        self._usage: Any = None

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.request.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [{"type": "content_block_stop", "index": index}]

    def _open_block(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self._open = len(self._blocks)
        self._blocks.append(block)
        start = {k: v for k, v in block.items() if k != "arguments"}
        if block["type"] == "tool_use":
            start["input"] = {}
        events.append({"type": "content_block_start", "index": self._open, "content_block": start})
        return events

    def _on_text(self, text: str) -> list[dict[str, Any]]:
        events = []
        if self._open is None or self._blocks[self._open]["type"] != "text":
            events = self._open_block({"type": "text", "text": ""})
        assert self._open is not None
        self._blocks[self._open]["text"] += text
        events.append(
            {"type": "content_block_delta", "index": self._open, "delta": {"type": "text_delta", "text": text}}
        )
        return events

    def _on_tool(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self._tools:
            block_id = call.get("id") or _tool_id(self.message_id, len(self._tools))
            block = {"type": "tool_use", "id": block_id, "name": function.get("name") or "", "arguments": ""}
            events = self._open_block(block)
            self._tools[position] = len(self._blocks) - 1
        index = self._tools[position]
        piece = function.get("arguments")
        if piece:
            if index != self._open:
                log.warning("message %s: dropped a late argument piece for tool call %s", self.message_id, position)
                return events
            self._blocks[index]["arguments"] += piece
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        return events

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The events for one parsed ``chat.completion.chunk``."""
        if self._done:
            return []
        events = self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices") or []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n > 1 is not a Messages concept: the first choice only
            delta = choice.get("delta") or {}
            if text := _text(delta.get("content")):
                events += self._on_text(text)
            for call in delta.get("tool_calls") or ():
                events += self._on_tool(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                self._matched = choice.get("stop_reason")
                events += self._close()
        if not choices and self._usage is not None and self._finish_reason is not None:
            events += self.finish()
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Close the open block, then ``message_delta`` (stop reason, usage) and ``message_stop``; once."""
        if self._done:
            return []
        events = self._start() + self._close()
        self._done = True
        message = self.message
        delta_usage: dict[str, Any] = dict(message["usage"])
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": delta_usage,
            }
        )
        events.append({"type": "message_stop"})
        return events

    def fail(self, status: int, message: str) -> list[dict[str, Any]]:
        """The ``error`` event that ends a stream cut by a failure; nothing follows it."""
        self._done = True
        return [error_object(status, message)]

    @property
    def message(self) -> dict[str, Any]:
        """The ``Message`` streamed so far (complete once ``finish()`` ran)."""
        content = []
        for block in self._blocks:
            if block["type"] == "tool_use":
                content.append(
                    {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": tool_input(block["arguments"]),
                    }
                )
            else:
                content.append(dict(block))
        has_tools = any(block["type"] == "tool_use" for block in content)
        reason, sequence = stop_reason(self._finish_reason, self._matched, self.request, tools=has_tools)
        counted = usage(self._usage)
        if self._usage is None:
            counted["input_tokens"] = self._input_tokens
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.request.get("model"),
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": counted,
        }
