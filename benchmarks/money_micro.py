"""In-process micro-benchmark of the cost-and-capacity plugins: CPU per request, each alone and together.

The harness sees ``chaperone-money`` through sockets, aiohttp and a ±15-30 % haze of machine noise;
this runs the real ``cost``, ``budget`` (counting + rpm/tpm) and exact ``cache`` plugins on a real
diskcache store, ``Chain.run`` + the stream path + ``Chain.complete``, 16 requests at a time on uvloop,
with a terminal that answers like the mock (a 16-token answer with usage; every request a cache
miss). It reports process CPU per request (all threads: the store's pool included), the median of
``--rounds``, and what each chain adds over the empty one, for whole answers and for streams.

    python benchmarks/money_micro.py [--requests 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import uvloop

from proxy.exchange import ApiResponse, Exchange
from proxy.registry import build_registry
from proxy.runtime import Resources
from proxy.store import StoreConfig, open_store
from tests.chain_helpers import compile_chain_policy, make_exchange

_COST = "{cost: {}}"
_BUDGET = "{budget: {per_key: {rpm: 100000000, tpm: 1000000000000}}}"
_CACHE = "{cache: {mode: exact, max_temperature: 2.0, missing_temperature: 0.0}}"
CHAINS = {
    "empty": "[]",
    "cost": f"[{_COST}]",
    "budget": f"[{_BUDGET}]",
    "cache": f"[{_CACHE}]",
    "money": f"[{_COST}, {_BUDGET}, {_CACHE}]",
}
USAGE = {"prompt_tokens": 24, "completion_tokens": 16, "total_tokens": 40}
HEAD = {"id": "chatcmpl-1", "created": 1, "model": "bench-model", "system_fingerprint": "fp"}
ANSWER = orjson.dumps(
    {
        **HEAD,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " word" * 16}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
)


def _event(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if usage is None else []
    chunk = {**HEAD, "object": "chat.completion.chunk", "choices": choices, "usage": usage}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_events(with_usage: bool) -> list[bytes]:
    """What the mock streams for 16 tokens: role, 16 deltas, finish, the usage chunk when asked, [DONE]."""
    events = [_event({"role": "assistant", "content": ""}), *(_event({"content": " word"}) for _ in range(16))]
    events.append(_event({}, "stop"))
    if with_usage:
        events.append(_event({}, usage=USAGE))
    return [*events, b"data: [DONE]\n\n"]


async def terminal(exchange: Exchange) -> ApiResponse:
    if not exchange.request.stream:
        return ApiResponse(200, raw=ANSWER, headers={"content-type": "application/json"}, source="upstream")
    options = exchange.request.body.get("stream_options")
    events = stream_events(isinstance(options, dict) and options.get("include_usage") is True)

    async def gen() -> AsyncIterator[bytes]:
        for event in events:  # one event per upstream read, as the mock flushes them
            yield event

    return ApiResponse(200, stream=gen(), headers={"content-type": "text/event-stream"}, source="upstream")


async def cpu_per_request(chain_text: str, stream: bool, requests: int) -> float:
    """Process CPU µs per request of ``requests`` misses, after a warm-up, on a fresh store."""
    policy = compile_chain_policy(chain_text, build_registry())
    chain = policy.chains["default"]
    home = Path(tempfile.mkdtemp(prefix="chaperone-money-micro-"))
    store = open_store(StoreConfig(), home, clock=time.time)
    await chain.startup(Resources(store, home))

    async def one(n: int) -> None:
        messages = [
            {"role": "system", "content": "You are a benchmark."},
            {"role": "user", "content": f"Say something short, number {n}."},
        ]
        body = {"model": "bench-model", "messages": messages, "max_tokens": 256, "stream": stream}
        exchange = make_exchange(policy, body)
        exchange.request.raw = orjson.dumps(body)  # as the server builds it: the client's bytes and their size
        exchange.request.size = len(exchange.request.raw)
        response = await chain.run(exchange, terminal)
        if response.stream is not None and chain.parses_chunks_for(exchange):
            async for _ in chain.process_stream(exchange, response.stream):
                pass
        elif response.stream is not None:  # as the server passes a stream through: the byte observers see it
            seen = chain.byte_observers_for(exchange)
            async for data in response.stream:
                for hook in seen:
                    hook(exchange, data)
        await chain.complete(exchange)

    try:
        for n in range(-300, 0):
            await one(n)
        start = time.process_time()
        for first in range(0, requests, 16):
            await asyncio.gather(*(one(n) for n in range(first, first + 16)))
        await asyncio.sleep(0.05)  # the cache's write-behind flush lands inside the measurement
        return (time.process_time() - start) * 1e6 / requests
    finally:
        await chain.shutdown()
        await store.close()


async def main_async(requests: int, rounds: int) -> int:
    for stream in (False, True):
        samples: dict[str, list[float]] = {name: [] for name in CHAINS}
        for r in range(rounds):
            for name, text in CHAINS.items():
                samples[name].append(await cpu_per_request(text, stream, requests))
            print(f"{'stream' if stream else 'chat'} round {r + 1}/{rounds} done", file=sys.stderr)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        empty = medians["empty"]
        kind = "stream" if stream else "chat"
        print(f"\n{kind}: CPU µs per request (median of {rounds}), added over the empty chain")
        for name, value in medians.items():
            print(f"  {name:7s} {value:7.1f}  +{value - empty:6.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    return uvloop.run(main_async(args.requests, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
