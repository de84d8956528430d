"""Is ``chaperone bench``'s load generator the bottleneck, and how far off are its timestamps?

Starts the mock, paced (first event after ``--latency-ms``, ``--chunk-delay-ms`` between events),
and at each concurrency runs the same streams twice: through ``bench.run`` (SSE parsed per event,
JSON per event, per-event timestamps) and through a minimal client (aiohttp ``iter_any``, one
``perf_counter`` per read, no parsing). The minimal client's TTFT and gap figures are the floor the
box allows; bench's excess over them is its own timing error. Events per client CPU-second tells
whether one core keeps up (issue 11 asks for >= 2,000 with an error under 1 ms).

    python benchmarks/generator.py [--concurrency 8,32,64] [--tokens 64] [--chunk-delay-ms 10]
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

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.client import new_session
from bench.load import LoadSpec
from bench.run import Plan, run_plan
from bench.workload import WorkloadSpec
from benchmarks.targets import Fleet, start_mock, wait_ready


async def minimal(url: str, body: bytes, concurrency: int, requests: int) -> dict[str, float]:
    """TTFT (first read) and the median gap between reads, with nothing but reads and timestamps."""
    ttfts: list[float] = []
    gaps: list[float] = []
    left = [requests]
    async with new_session() as session:

        async def client() -> None:
            while left[0] > 0:
                left[0] -= 1
                t0 = time.perf_counter()
                last = None
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                    async for _ in resp.content.iter_any():
                        now = time.perf_counter()
                        if last is None:
                            ttfts.append(now - t0)
                        else:
                            gaps.append(now - last)
                        last = now

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return {"ttft_p50_ms": statistics.median(ttfts) * 1e3, "gap_p50_ms": statistics.median(gaps) * 1e3}


async def measure(url: str, args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    fault = f"latency_ms={args.latency_ms:g},chunk_delay_ms={args.chunk_delay_ms:g}"
    workload = WorkloadSpec(model="mock-gpt", input_tokens=32, output_tokens=args.tokens, mock=True, mock_fault=fault)
    load = LoadSpec(concurrency=concurrency, requests=concurrency * args.rounds, warmup="0", cooldown="0")
    summary, _ = await run_plan(Plan({"mock": url}, workload, load, progress=False), asyncio.Event())
    s = summary["targets"]["mock"]
    body = orjson.dumps({"model": "m", "stream": True, "messages": [
        {"role": "user", "content": f"hi [[mock:tokens={args.tokens},{fault}]]"}]})  # fmt: skip
    floor = await minimal(url + "/chat/completions", body, concurrency, concurrency * args.rounds)
    gen = s["generator"]
    return {
        "concurrency": concurrency,
        "offered_events_s": concurrency * 1000 / args.chunk_delay_ms,
        "events_per_cpu_s": gen["events_per_cpu_s"],
        "client_cpu_pct": gen["client_cpu_pct"],
        "ttft_p50_ms": s["ttft_ms"]["p50"],
        "floor_ttft_p50_ms": floor["ttft_p50_ms"],
        "itl_p50_ms": s["itl_ms"]["p50"],
        "floor_gap_p50_ms": floor["gap_p50_ms"],
        "loop_lag_p50_ms": gen["loop_lag_ms"]["p50"],
        "loop_lag_p99_ms": gen["loop_lag_ms"]["p99"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="8,32,64", help="comma-separated (default 8,32,64)")
    parser.add_argument("--tokens", type=int, default=64, help="content events per stream (default 64)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="mock delay before the first event")
    parser.add_argument("--chunk-delay-ms", type=float, default=10.0, help="mock gap between events")
    parser.add_argument("--rounds", type=int, default=3, help="streams per client (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp))
        try:
            mock = start_mock(fleet)
            wait_ready([mock])
            rows = [asyncio.run(measure(mock.base + "/v1", args, int(c))) for c in args.concurrency.split(",")]
        finally:
            fleet.stop()
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---:|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
