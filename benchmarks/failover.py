"""Failover cost: what a dead or hanging primary adds to a request that a fallback answers.

Starts the mock upstream and one Chaperone (each its own process) with the policy printed at the
top of the report: model routes whose primary is healthy, refuses connections, or hangs, each
falling back to the same healthy backend, behind the ``retry`` plugin. Then:

1. **Refused primary, circuit open.** After a few requests have opened the primary's circuit,
   requests to the ``refused`` route and to the ``healthy`` route are sent in interleaved rounds at
   a fixed concurrency; reported: p50 and mean latency of each and the difference (the added cost
   of failing over with the circuit open). ``healthy-b`` is a second healthy route, on the backend
   the fallback uses: the noise floor between two routes that do the same work. The same with the
   circuit off (``refused-nocircuit``: every request tries the dead port first) for comparison.
2. **Hanging primary.** A burst of ``--burst`` concurrent streamed requests hits the ``hanging`` route while its
   circuit is still closed: every one waits for the attempt timeout once, then the fallback streams;
   later requests find the circuit open. Reported: time to first byte of the first burst and of the
   requests after it, against the healthy route's.

    python benchmarks/failover.py [--requests 400] [--rounds 3] [--concurrency 1] [--burst 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.targets import HOST, Fleet, Target, child_env, free_port, start_mock, wait_ready

ATTEMPT_TIMEOUT_S = 1.0
PROMPT = "How do gateways fail over? [[mock:tokens=16]]"


def policy_text(mock: str, dead: str) -> str:
    return textwrap.dedent(f"""
    backends:
      live: {{url: "{mock}"}}
      spare: {{url: "{mock}"}}
      dead: {{url: "{dead}", connect_timeout_s: 1, circuit: {{cooldown_s: 300}}}}
      dead-nocircuit: {{url: "{dead}", connect_timeout_s: 1, circuit: {{enabled: false}}}}
      hang: {{url: "{mock}", headers: {{x-mock-fault: hang}}, circuit: {{timeouts: 1, cooldown_s: 300}}}}
    models:
      healthy: {{backend: live, fallback: [backup]}}
      healthy-b: {{backend: spare, fallback: [backup]}}
      refused: {{backend: dead, fallback: [backup]}}
      refused-nocircuit: {{backend: dead-nocircuit, fallback: [backup]}}
      hanging: {{backend: hang, fallback: [backup]}}
      backup: {{backend: spare, model: backup-model}}
    chains:
      default:
        - retry: {{attempts: 2, backoff_s: 0.05, attempt_timeout_s: {ATTEMPT_TIMEOUT_S}}}
    """)


def start_gateway(fleet: Fleet, policy: str) -> Target:
    port = free_port()
    home = fleet.workdir / "chaperone"
    home.mkdir()
    path = home / "policy.yaml"
    path.write_text(policy)
    env = child_env(
        CHAPERONE_HOME=str(home),
        CHAPERONE_RELOAD_INTERVAL_S="0",
        CHAPERONE_SHUTDOWN_TIMEOUT_S="1",
        CHAPERONE_LOG_LEVEL="ERROR",
    )
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--policy", str(path), "--host", HOST, "--port", str(port)]
    proc, log = fleet.spawn("chaperone", argv, env)
    return Target("chaperone", port, proc, log, ready_path="/healthz")


async def one(session: aiohttp.ClientSession, url: str, model: str, stream: bool) -> tuple[float, float]:
    """(time to first body byte, total time) of one chat request, in seconds; raises unless it came from backup."""
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
    start = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        first = await resp.content.readany()
        ttfb = time.perf_counter() - start
        await resp.read()
        if resp.status != 200 or not first:
            raise RuntimeError(f"{model} answered {resp.status}")
        if model not in ("healthy", "healthy-b") and resp.headers.get("x-chaperone-backend") != "spare":
            raise RuntimeError(f"{model} was answered by {resp.headers.get('x-chaperone-backend')}")
    return ttfb, time.perf_counter() - start


async def batch(url: str, model: str, requests: int, concurrency: int, stream: bool = False) -> list[float]:
    latencies: list[float] = []
    queue = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            latencies.append((await one(session, url, model, stream))[1])

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies


def ms(values: list[float], how: str = "p50") -> float:
    return 1000 * (statistics.median(values) if how == "p50" else statistics.fmean(values))


async def refused(url: str, args: argparse.Namespace) -> None:
    for model in ("healthy", "healthy-b", "refused", "refused-nocircuit"):
        await batch(url, model, 50, args.concurrency)  # warm up; opens the refused route's circuit
    samples: dict[str, list[float]] = {"healthy": [], "healthy-b": [], "refused": [], "refused-nocircuit": []}
    for _ in range(args.rounds):
        for model in samples:
            samples[model] += await batch(url, model, args.requests, args.concurrency)
    base_p50, base_mean = ms(samples["healthy"]), ms(samples["healthy"], "mean")
    print(f"\n## Refused primary (connection refused), concurrency {args.concurrency}, {args.rounds} rounds\n")
    print("| route | requests | p50 ms | mean ms | added p50 ms | added mean ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for model, values in samples.items():
        p50, mean = ms(values), ms(values, "mean")
        print(f"| {model} | {len(values)} | {p50:.2f} | {mean:.2f} | {p50 - base_p50:+.2f} | {mean - base_mean:+.2f} |")


async def hanging(url: str, args: argparse.Namespace) -> None:
    async with aiohttp.ClientSession() as session:
        healthy = [(await one(session, url, "healthy", True))[0] for _ in range(20)]
        began = time.perf_counter()
        burst = await asyncio.gather(*(one(session, url, "hanging", True) for _ in range(args.burst)))
        burst_wall = time.perf_counter() - began
        after: list[float] = []
        for _ in range(100):  # interleaved with the healthy route, so both see the same machine
            after.append((await one(session, url, "hanging", True))[0])
            healthy.append((await one(session, url, "healthy", True))[0])
    first = [ttfb for ttfb, _ in burst]
    print(f"\n## Hanging primary (never answers), streamed, attempt timeout {ATTEMPT_TIMEOUT_S:g} s\n")
    print("| requests | n | TTFB p50 ms | TTFB max ms |")
    print("|---|---:|---:|---:|")
    print(f"| healthy route | {len(healthy)} | {ms(healthy):.1f} | {1000 * max(healthy):.1f} |")
    print(f"| first burst, circuit closed | {len(first)} | {ms(first):.1f} | {1000 * max(first):.1f} |")
    print(f"| after, circuit open | {len(after)} | {ms(after):.1f} | {1000 * max(after):.1f} |")
    print(f"\nThe burst of {len(first)} concurrent requests took {burst_wall:.2f} s in all.")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="chaperone-failover-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            mock = start_mock(fleet)
            wait_ready([mock])
            policy = policy_text(mock.base + "/v1", f"http://{HOST}:{free_port()}/v1")
            gateway = start_gateway(fleet, policy)
            wait_ready([gateway])
            print("# Failover benchmark\n\nPolicy:\n\n```yaml" + policy + "```")
            await refused(gateway.base, args)
            await hanging(gateway.base, args)
        finally:
            fleet.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per route and round (default 400)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent clients (default 1)")
    parser.add_argument("--burst", type=int, default=8, help="concurrent requests that meet the hang (default 8)")
    asyncio.run(main(parser.parse_args()))
