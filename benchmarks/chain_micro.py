"""In-process micro-benchmark of the chain runner: what each no-op plugin costs, without sockets or noise.

The end-to-end harness sees the chain's cost through a ±15 % haze of machine noise; this runs
``Chain.run`` + ``Chain.complete`` (and, for streams, the chunk path) in a tight loop for an empty
chain and for the eight no-op plugins, with a terminal that returns a prepared response, and reports
µs per request and the per-plugin difference. The stream part compares the pass-through cutter
(``sse.EventCutter``, what the server does when no plugin hooks ``on_chunk``) with ``Chain.process_stream``.

    python benchmarks/chain_micro.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.noop_plugins import NOOP_PLUGINS, NoopConfig
from proxy import sse
from proxy.chain import Chain, compile_chain
from proxy.exchange import ApiRequest, ApiResponse, Exchange

CHUNK = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
)


def stream_blocks(tokens: int) -> list[bytes]:
    """A 16-token answer as it typically arrives: role chunk, content chunks, usage chunk and [DONE]."""
    return [CHUNK] * (tokens + 2) + [sse.DONE]


def exchange(chain: Chain) -> Exchange:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    request = ApiRequest("chat", "/chat/completions", body, {})
    return Exchange("id", None, chain, None, request, None, time.monotonic() + 60)  # type: ignore[arg-type]


async def per_call_us(fn: Callable[[], Awaitable[Any]], iterations: int) -> float:
    """Best of three timings of ``iterations`` awaited calls, in µs per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(iterations):
            await fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e6 / iterations


async def run_cost(chain: Chain, iterations: int) -> float:
    response = ApiResponse(200, raw=b"{}")

    async def terminal(ex: Exchange) -> ApiResponse:
        return response

    async def once() -> None:
        ex = exchange(chain)
        await chain.run(ex, terminal)
        await chain.complete(ex)

    return await per_call_us(once, iterations)


async def stream_cost(chain: Chain, blocks: list[bytes], iterations: int) -> float:
    async def upstream() -> AsyncIterator[bytes]:
        for block in blocks:
            yield block

    async def once() -> None:
        ex = exchange(chain)
        ex.entered = len(chain.steps)
        if chain.parses_chunks:
            async for _ in chain.process_stream(ex, upstream()):
                pass
        else:  # the server's pass-through loop
            cutter = sse.EventCutter()
            async for data in upstream():
                cutter.feed(data)
            cutter.rest()

    return await per_call_us(once, iterations)


async def main_async(iterations: int, tokens: int) -> int:
    empty = compile_chain("empty", [])
    noop8 = compile_chain("noop8", [(cls.name, cls(NoopConfig())) for cls in NOOP_PLUGINS])
    e_run, n_run = await run_cost(empty, iterations), await run_cost(noop8, iterations)
    blocks = stream_blocks(tokens)
    stream_iterations = max(1, iterations // 10)
    e_stream = await stream_cost(empty, blocks, stream_iterations)
    n_stream = await stream_cost(noop8, blocks, stream_iterations)
    print(f"chain.run + complete: empty {e_run:.1f} µs, noop8 {n_run:.1f} µs → {(n_run - e_run) / 8:.2f} µs per plugin")
    print(
        f"stream of {len(blocks)} events, one event per read: pass-through {e_stream:.1f} µs, noop8 "
        f"(parse + 1 on_chunk + re-encode) {n_stream:.1f} µs → {(n_stream - e_stream) / len(blocks):.1f} µs per event"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main_async(args.iterations, args.tokens))
    return uvloop.run(main_async(args.iterations, args.tokens))


if __name__ == "__main__":
    sys.exit(main())
