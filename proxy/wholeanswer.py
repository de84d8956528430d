"""Whole-answer plugins: collect a streamed answer, hand it to the chain as one answer, replay it as SSE.

A plugin that must see the whole answer before the client does (schema enforcement, a judge) says so
with ``buffers_response = True`` (see ``proxy.hookspecs``). Only in a chain with such a step, and only
for a streamed request, does ``proxy.chain`` wrap the upstream call with ``collecting``: the upstream
still streams, its events are gathered and assembled into the answer the endpoint would have sent
without ``stream`` (a ``chat.completion``, a ``text_completion``, a Responses ``response``, an
Anthropic ``message``), so every step sees a whole answer (``wrap_call`` results, ``on_response`` with a
body). When the chain is done, ``replay`` turns the answer back into the stream the client asked for:
the upstream's own bytes when no step changed the answer, else events built from the answer in the
same shapes and framing (``event:`` names, ``sequence_number``), the usage chunk kept, ``[DONE]`` where
the upstream sent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from proxy import sse
from proxy.answershapes import assemble, synthesize
from proxy.errors import UpstreamError
from proxy.exchange import ApiResponse, Exchange, StashKey

if TYPE_CHECKING:
    from proxy.chain import Terminal


@dataclass(slots=True)
class Collected:
    """One collected upstream stream: its raw events, the answer assembled from them, and how it ended."""

    events: bytes
    snapshot: bytes  # the assembled answer as JSON, to tell whether a step changed it
    done: bool  # the upstream ended with ``data: [DONE]``
    named: bool  # events carried ``event:`` lines
    usage_chunk: bool  # a chat/completions stream carried a separate usage chunk


COLLECTED = StashKey[dict[int, Collected]]()  # id(ApiResponse) → its collected stream, for replay


def collecting(terminal: Terminal) -> Terminal:
    """Wrap the upstream call so a streamed answer comes back whole (``body`` set, ``stream`` None)."""

    async def collect(exchange: Exchange) -> ApiResponse:
        response = await terminal(exchange)
        if response.stream is None:
            return response
        return await collect_stream(exchange, response)

    return collect


async def collect_stream(exchange: Exchange, response: ApiResponse) -> ApiResponse:
    """Read ``response.stream`` to its end and return the whole answer it carried.

    Raises ``UpstreamError`` when the stream reports an error event or carries no answer.
    """
    stream = response.stream
    assert stream is not None
    endpoint = exchange.request.endpoint
    cutter = sse.EventCutter()
    blocks: list[bytes] = []
    chunks: list[dict[str, Any]] = []
    done = named = False
    try:
        async for data in stream:
            block = cutter.feed(data)
            if block:
                blocks.append(block)
        rest = cutter.rest()
        if rest:
            blocks.append(rest)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    raw = b"".join(blocks)
    for event in sse.split_events(raw):
        chunk = sse.decode_data(event)
        if chunk is None:
            done = done or sse.is_done(event)
            continue
        named = named or event.startswith(b"event:")
        _raise_for_error(chunk)
        chunks.append(chunk)
    answer = assemble(endpoint, chunks)
    if answer is None:
        raise UpstreamError("the upstream's stream ended without an answer", code="incomplete_stream")
    usage_chunk = any("usage" in c and not c.get("choices") and c.get("usage") for c in chunks)
    whole = ApiResponse(response.status, body=answer, headers=_headers(response.headers), source=response.source)
    exchange.stash.setdefault(COLLECTED, {})[id(whole)] = Collected(
        raw, orjson.dumps(answer), done, named, usage_chunk and endpoint in ("chat", "completions")
    )
    return whole


def _raise_for_error(chunk: dict[str, Any]) -> None:
    error = chunk.get("error")
    if chunk.get("type") == "error" or (isinstance(error, dict) and "choices" not in chunk):
        message = error.get("message") if isinstance(error, dict) else None
        raise UpstreamError(f"the upstream's stream failed: {message or 'error event'}", code="upstream_stream_error")


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("content-type", "content-length", "transfer-encoding")}


def replay(exchange: Exchange, response: ApiResponse) -> ApiResponse:
    """The stream to send for a whole ``response`` to a streamed request (the chain calls it last).

    The upstream's own bytes when the answer is unchanged, else events built from the answer. The
    chunk hooks of the chain are switched off for this stream: every step already saw the answer whole.
    """
    body = response.json() if response.body is None else response.body
    collected = (exchange.stash.get(COLLECTED) or {}).get(id(response))
    endpoint = exchange.request.endpoint
    if collected is not None and orjson.dumps(body) == collected.snapshot:
        data = collected.events
    else:
        usage = collected.usage_chunk if collected is not None else _asked_usage(exchange)
        named = collected.named if collected is not None else endpoint in ("responses", "messages")
        done = collected.done if collected is not None else endpoint in ("chat", "completions")
        data = sse.encode_events(synthesize(endpoint, body, usage_chunk=usage), named) + (sse.DONE if done else b"")
    exchange.stream_idle = frozenset(id(step.plugin) for step in exchange.chain.steps)
    return ApiResponse(
        response.status, stream=sse.once(data), headers=_headers(response.headers), source=response.source
    )


def _asked_usage(exchange: Exchange) -> bool:
    options = exchange.request.body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
