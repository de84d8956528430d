"""What the Responses and Messages APIs cost through Chaperone, against chat completions, in one run.

Starts the mock upstream and Chaperone with an empty chain (each its own process), then sends the
same prompt as a chat completion, a Responses request and an Anthropic Messages request, whole and
streamed, at a fixed concurrency, in interleaved rounds. The Responses and Messages requests are
translated to chat completions and back (the mock speaks only chat), so the difference is the
translation: request, answer, and every stream event, plus storing the response (Responses, with
``store`` as the API defaults; ``responses-nostore`` sends ``store: false``). Reported: Chaperone's
CPU per request (from ``/proc``) and the client's p50 latency, as ratios to chat in the same mode.

    python benchmarks/api_overhead.py [--requests 400] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.targets import Fleet, start_chaperone, start_mock, wait_ready

PROMPT = "Say something about gateways and proxies [[mock:tokens=16]]"
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}),
    "responses": ("/v1/responses", {"model": "m", "input": PROMPT}),
    "responses-nostore": ("/v1/responses", {"model": "m", "input": PROMPT, "store": False}),
    "messages": ("/v1/messages", {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}),
}


async def drive(base: str, api: str, stream: bool, requests: int, concurrency: int) -> list[float]:
    path, body = BODIES[api]
    payload = {**body, "stream": stream}
    latencies: list[float] = []
    queue = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            start = time.perf_counter()
            async with session.post(base + path, json=payload, headers={"Authorization": "Bearer x"}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{api} answered {resp.status}")
            latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies


async def measure(args: argparse.Namespace, fleet: Fleet) -> dict[tuple[str, bool], list[tuple[float, float]]]:
    mock = start_mock(fleet)
    wait_ready([mock])
    chaperone = start_chaperone(fleet, "chaperone-empty", mock.base, [])
    wait_ready([chaperone])
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    cases = [(api, stream) for stream in (False, True) for api in BODIES]
    for case in cases:  # warm-up
        await drive(chaperone.base, case[0], case[1], 50, args.concurrency)
    for round_no in range(args.rounds):
        for case in cases[round_no % len(cases) :] + cases[: round_no % len(cases)]:
            before = chaperone.cpu() or 0.0
            latencies = await drive(chaperone.base, case[0], case[1], args.requests, args.concurrency)
            cpu_us = ((chaperone.cpu() or 0.0) - before) / args.requests * 1e6
            results.setdefault(case, []).append((cpu_us, statistics.median(latencies) * 1e3))
            print(f"round {round_no + 1}: {case[0]:9} stream={case[1]!s:5} {cpu_us:6.0f} µs/req", file=sys.stderr)
    return results


def report(results: dict[tuple[str, bool], list[tuple[float, float]]]) -> str:
    lines = ["| mode | API | CPU µs/req | x chat | p50 ms | x chat |", "|---|---|---:|---:|---:|---:|"]
    for stream in (False, True):
        chat_cpu = statistics.median(c for c, _ in results[("chat", stream)])
        chat_p50 = statistics.median(p for _, p in results[("chat", stream)])
        for api in BODIES:
            cpu = statistics.median(c for c, _ in results[(api, stream)])
            p50 = statistics.median(p for _, p in results[(api, stream)])
            mode = "stream" if stream else "whole"
            lines.append(f"| {mode} | {api} | {cpu:.0f} | {cpu / chat_cpu:.2f} | {p50:.2f} | {p50 / chat_p50:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per API, mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaperone-api-bench-") as workdir:
        fleet = Fleet(Path(workdir))
        try:
            results = asyncio.run(measure(args, fleet))
        finally:
            fleet.stop()
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
