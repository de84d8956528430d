"""What the ``cost`` plugin adds per request, in-process: whole answers and streams, against an empty chain.

Runs the compiled chain the way the server does (request hooks, the call, response hooks; for a stream,
the chunk hooks over a 20-chunk chat stream; then ``on_complete``) with an in-process terminal, so the
figures are the plugin's own CPU, without sockets. Usage: ``python benchmarks/cost_plugin.py [-n 3000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script too: the tests' helpers below

from pydantic import BaseModel, ConfigDict

from proxy import hookimpl
from proxy.exchange import ApiResponse, Exchange, Usage
from proxy.registry import DEFAULT_PLUGINS, build_registry
from proxy.runtime import Resources
from proxy.store import open_store
from proxy.store.config import StoreConfig
from tests.chain_helpers import compile_chain_policy, make_exchange

USAGE = {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140}
WHOLE = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 20}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
).encode()


def stream_events(include_usage: bool) -> list[bytes]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini"}
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}], **extra}
        for _ in range(20)
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra})
    if include_usage:
        events.append({**base, "choices": [], "usage": USAGE})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


async def _stream(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event


EVENTS = {asked: stream_events(asked) for asked in (False, True)}


class NoopChunk:
    """A step that hooks ``on_chunk`` and does nothing: the chain's own cost of parsing a stream."""

    name = "noop_chunk"

    class Config(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, config: BaseModel) -> None:
        pass

    @hookimpl
    async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | None:
        return chunk


async def one(exchange: Exchange, stream: bool) -> None:
    body = exchange.request.body

    async def terminal(ex: Exchange) -> ApiResponse:
        if stream:
            asked = (body.get("stream_options") or {}).get("include_usage") is True
            return ApiResponse(200, stream=_stream(EVENTS[asked]))
        return ApiResponse(200, raw=WHOLE)

    chain = exchange.chain
    response = await chain.run(exchange, terminal)
    if response.stream is not None:
        source = (
            chain.process_stream(exchange, response.stream) if chain.parses_chunks_for(exchange) else response.stream
        )
        async for _ in source:
            pass
    elif chain.observes_completion:
        exchange.usage = Usage.from_openai(USAGE)  # the server's _note_result
    await chain.complete(exchange)


async def measure(chain: str, stream: bool, n: int, home: Path) -> float:
    registry = build_registry(entry_points=False, modules=tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.cost"))))
    registry(NoopChunk)
    policy = compile_chain_policy(chain, registry)
    store = open_store(StoreConfig(), home)
    chain_obj = policy.default_chain
    await chain_obj.startup(Resources(store=store, home=home))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello " * 50}], "stream": stream}
    try:
        for _ in range(200):  # warm up
            await one(make_exchange(policy, copy.deepcopy(body)), stream)
        runs = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(n):
                await one(make_exchange(policy, copy.deepcopy(body)), stream)
            runs.append((time.process_time() - started) / n * 1e6)
        return statistics.median(runs)
    finally:
        await chain_obj.shutdown()
        await store.close()


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for stream in (False, True):
            empty = await measure("[]", stream, n, home)
            rows = [("cost (defaults; no OTel sink)", "[cost]"), ("cost + JSONL file", "[{cost: {jsonl: {}}}]")]
            if stream:
                rows.insert(0, ("a do-nothing on_chunk step (the chain parsing the stream)", "[noop_chunk]"))
            print(f"{'stream' if stream else 'whole'}: empty chain {empty:.1f} µs/request")
            for label, chain in rows:
                took = await measure(chain, stream, n, home)
                print(f"  {label}: {took:.1f} µs (+{took - empty:.1f} µs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3000, help="requests per run (5 runs, median)")
    asyncio.run(main(parser.parse_args().n))
