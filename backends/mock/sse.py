"""Server-sent events for streamed completions: cheap pre-rendered chunk templates and the stream writer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .calls import Call

DONE = b"data: [DONE]\n\n"
_COMPACT = (",", ":")


class ChunkTemplate:
    """Renders ``data: {...}`` events that share id, object, created and model, without re-encoding them."""

    __slots__ = ("_head", "_tail")

    def __init__(self, *, id_: str, object_: str, created: int, model: str, include_usage: bool) -> None:
        self._head = (
            f'data: {{"id":{json.dumps(id_)},"object":"{object_}","created":{created},'
            f'"model":{json.dumps(model)},"system_fingerprint":"fp_mock","choices":['
        )
        self._tail = "]" + (',"usage":null' if include_usage else "") + "}\n\n"

    def chunk(self, choice_json: str) -> bytes:
        """One event with a single rendered choice."""
        return (self._head + choice_json + self._tail).encode()

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        """The ``include_usage`` event: no choices, and the usage block."""
        return (self._head + '],"usage":' + json.dumps(usage, separators=_COMPACT) + "}\n\n").encode()


def dumps(value: Any) -> str:
    """Compact JSON, as OpenAI streams it."""
    return json.dumps(value, separators=_COMPACT)


def finish_json(finish_reason: str | None) -> str:
    return "null" if finish_reason is None else f'"{finish_reason}"'


async def send_stream(call: Call, events: list[bytes]) -> web.StreamResponse:
    """Send ``events`` then ``[DONE]``; honour ``chunk_delay_ms`` and ``drop_after``; record disconnects.

    With no chunk delay the whole stream goes out in one write (cheap at high concurrency);
    with a delay each event is its own write.
    """
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    response.headers["Cache-Control"] = "no-cache"
    drop_after = call.fault.drop_after
    if drop_after is not None:
        events = events[:drop_after]
    elif events:
        events[-1] += DONE
    try:
        await response.prepare(call.request)
        await _write_events(response, events, call.chunk_delay)
        if drop_after is not None:
            call.drop()
            return response
        await response.write_eof()
    except ConnectionResetError:
        call.record.finish("client_disconnected")
    return response


async def _write_events(response: web.StreamResponse, events: list[bytes], delay: float) -> None:
    if delay <= 0:
        await response.write(b"".join(events))
        return
    for index, event in enumerate(events):
        if index:
            await asyncio.sleep(delay)
        await response.write(event)
