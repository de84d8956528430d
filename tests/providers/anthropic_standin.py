"""A stand-in for Anthropic's Messages API (``POST /v1/messages``, ``GET /v1/models``), for tests.

It is not Anthropic: it speaks the wire format (JSON and the SSE event stream, ``tool_use`` blocks,
usage with cache counts, Anthropic error bodies) and refuses what the real API refuses in ways a
translation could get wrong (no key, no ``anthropic-version``, no ``max_tokens``, turns that
do not alternate, a ``tool_result`` whose id no ``tool_use`` in the previous turn has, a temperature
over 1). ``tests/providers/test_anthropic_standin.py`` checks it with the anthropic SDK itself.

What it answers, by the last user turn:

- a ``tool_result``: ``The tool said: <content>`` (text);
- text containing ``weather in <City>`` with a ``get_weather`` tool offered: a ``tool_use`` of it;
- ``overloaded`` → 529 ``overloaded_error``; ``slow down`` → 429 with ``retry-after: 7``;
  ``break the stream`` → an ``error`` event after the first text delta (streams only);
- anything else: ``Echo: <text>``.

Usage: ``input_tokens`` is the number of words sent, plus ``cache_read_input_tokens`` 5 and
``cache_creation_input_tokens`` 2; ``output_tokens`` the number of words answered. The stream's
``message_delta`` reports ``output_tokens`` only, as Anthropic long did.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

KEY = "sk-ant-standin"
CACHE_READ, CACHE_WRITE = 5, 2


@dataclass
class Standin:
    """The app's state: every request it received (path, headers, body), in order."""

    requests: list[dict[str, Any]] = field(default_factory=list)


STANDIN = web.AppKey("standin", Standin)


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers={"request-id": "req_standin", **(headers or {})})


def _words(value: Any) -> int:
    """Words in the texts of ``value`` (``text`` and string ``content`` fields, at any depth)."""
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if not isinstance(value, dict):
        return 0
    total = 0
    for key, inner in value.items():
        if key in ("text", "content") and isinstance(inner, str):
            total += len(re.findall(r"\w+", inner))
        else:
            total += _words(inner)
    return total


def _problem(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    if isinstance(body.get("temperature"), int | float) and body["temperature"] > 1:
        return "temperature: Input should be less than or equal to 1"
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return "messages: the first message must use the user role"
    previous: dict[str, Any] | None = None
    for i, message in enumerate(messages):
        if previous is not None and previous["role"] == message["role"]:
            return f"messages.{i}: roles must alternate between user and assistant"
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        used = {
            b["id"] for b in (previous or {}).get("content") or () if isinstance(b, dict) and b["type"] == "tool_use"
        }
        for j, block in enumerate(blocks):
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in used:
                return f"messages.{i}.content.{j}: unexpected tool_use_id found in tool_result blocks"
        previous = message
    return None


def _reply(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The content blocks and stop reason for the last user turn."""
    last = body["messages"][-1]["content"]
    blocks = [{"type": "text", "text": last}] if isinstance(last, str) else last
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if results:
        content = results[-1].get("content")
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content or ())
        return [{"type": "text", "text": f"The tool said: {text}"}], "end_turn"
    text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    city = re.search(r"weather in (\w+)", text)
    if city and any(t.get("name") == "get_weather" for t in body.get("tools") or ()):
        use = {"type": "tool_use", "id": "toolu_standin_1", "name": "get_weather", "input": {"city": city[1]}}
        return [{"type": "text", "text": "Let me check."}, use], "tool_use"
    return [{"type": "text", "text": f"Echo: {text}"}], "end_turn"


def _message(body: dict[str, Any], content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": "msg_standin_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": _words(body["messages"]),
            "cache_read_input_tokens": CACHE_READ,
            "cache_creation_input_tokens": CACHE_WRITE,
            "output_tokens": _words(content),
        },
    }


def _event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _pieces(text: str, n: int = 3) -> list[str]:
    step = max(1, len(text) // n)
    return [text[i : i + step] for i in range(0, len(text), step)]


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    if block["type"] == "text":
        out = [_event({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})]
        deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
    else:
        start = {**block, "input": {}}
        out = [_event({"type": "content_block_start", "index": index, "content_block": start})]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(json.dumps(block["input"]), 4)]
    out += [_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    out.append(_event({"type": "content_block_stop", "index": index}))
    return out


async def _stream(request: web.Request, message: dict[str, Any], broken: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "request-id": "req_standin"})
    await response.prepare(request)
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    await response.write(_event({"type": "message_start", "message": start}) + _event({"type": "ping"}))
    for index, block in enumerate(message["content"]):
        for i, data in enumerate(_block_events(index, block)):
            await response.write(data)  # one write per event: the proxy must reassemble across reads
            if broken and i == 1:
                await response.write(_event({"type": "error", "error": {"type": "overloaded_error",
                                                                         "message": "Overloaded"}}))  # fmt: skip
                return response
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    await response.write(
        _event({"type": "message_delta", "delta": delta, "usage": {"output_tokens": message["usage"]["output_tokens"]}})
    )
    await response.write(_event({"type": "message_stop"}))
    return response


def _authorized(request: web.Request) -> bool:
    """The key as ``x-api-key``, or as a bearer token (newer anthropic SDKs send that)."""
    return request.headers.get("x-api-key") == KEY or request.headers.get("authorization") == f"Bearer {KEY}"


async def messages(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[STANDIN].requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
    if not _authorized(request):
        return _error(401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return _error(400, "invalid_request_error", "anthropic-version: header is required")
    problem = _problem(body)
    if problem:
        return _error(400, "invalid_request_error", problem)
    text = json.dumps(body["messages"][-1]["content"])
    if "overloaded" in text:
        return _error(529, "overloaded_error", "Overloaded")
    if "slow down" in text:
        return _error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {"retry-after": "7"})
    content, stop = _reply(body)
    message = _message(body, content, stop)
    if body.get("stream"):
        return await _stream(request, message, "break the stream" in text)
    return web.json_response(message, headers={"request-id": "req_standin"})


async def models(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _error(401, "authentication_error", "invalid x-api-key")
    model = {"type": "model", "id": "claude-standin", "display_name": "Stand-in", "created_at": "2025-01-01T00:00:00Z"}
    return web.json_response({"data": [model], "has_more": False, "first_id": "claude-standin", "last_id": None})


def create_app() -> web.Application:
    app = web.Application()
    app[STANDIN] = Standin()
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    return app
