"""Does the console cost the gateway anything? Proxy latency at c=64, request log off vs on vs on + a viewer.

    python benchmarks/console_overhead.py [--requests 3000] [--rounds 3] [--concurrency 64]

Three Chaperone processes on one mock upstream, the same policy (a ``cost`` chain, an admin key):
``off`` runs with ``CHAPERONE_REQUEST_LOG=off`` and ``console.step_timing: false`` (the gateway as before the
console), ``on`` with the request log and step timing (the default), and ``on+viewer`` the same while a
client reloads the console's overview every second. Rounds interleave the three so drift on this shared
machine hits them alike. Prints p50/p99 latency and throughput per variant, and each process's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.targets import HOST, Fleet, Target, child_env, free_port, start_mock, wait_ready

ADMIN = "bench-admin-key-0123456789"
APP_KEY = "sk-bench-0123456789"
BODY = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Say hello in a few words."}]}


def policy(mock: str, timing: bool) -> str:
    return (
        f'backends:\n  mock: {{url: "{mock}/v1", max_connections: 1024}}\nmodels:\n  "*": {{backend: mock}}\n'
        f"chains:\n  default: [{{cost: {{}}}}]\nkeys:\n  - {{name: app, key: '{APP_KEY}'}}\n"
        f"admin: {{key: '{ADMIN}'}}\nconsole: {{step_timing: {'true' if timing else 'false'}}}\n"
    )


def start(fleet: Fleet, name: str, mock: str, log_on: bool) -> Target:
    port = free_port()
    home = fleet.workdir / name
    home.mkdir()
    path = home / "policy.yaml"
    path.write_text(policy(mock, log_on))
    env = child_env(
        CHAPERONE_HOME=str(home), CHAPERONE_RELOAD_INTERVAL_S="0", CHAPERONE_SHUTDOWN_TIMEOUT_S="1",
        CHAPERONE_LOG_LEVEL="WARNING", CHAPERONE_REQUEST_LOG="" if log_on else "off",
    )  # fmt: skip
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--policy", str(path), "--host", HOST, "--port", str(port)]
    proc, log = fleet.spawn(name, argv, env)
    return Target(name, port, proc, log, ready_path="/healthz")


async def load(url: str, requests: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = iter(range(requests))
    headers = {"Authorization": f"Bearer {APP_KEY}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            begin = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status}: {await resp.text()}")
            latencies.append(time.perf_counter() - begin)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        begin = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return latencies, time.perf_counter() - begin


async def viewer(url: str, stop: asyncio.Event, times: list[float]) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while not stop.is_set():
            begin = time.perf_counter()
            async with session.get(url + "/chaperone/ui/?window=1h") as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            times.append(time.perf_counter() - begin)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="console-overhead-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            mock = start_mock(fleet)
            wait_ready([mock])
            targets = {
                "off": start(fleet, "off", mock.base, False),
                "on": start(fleet, "on", mock.base, True),
                "on+viewer": start(fleet, "on-viewer", mock.base, True),
            }
            wait_ready(list(targets.values()))
            for target in targets.values():
                await load(target.base, 200, args.concurrency)  # warm up
            results: dict[str, list[float]] = {name: [] for name in targets}
            walls: dict[str, float] = dict.fromkeys(targets, 0.0)
            page_times: list[float] = []
            for _ in range(args.rounds):
                for name, target in targets.items():
                    stop = asyncio.Event()
                    task = asyncio.ensure_future(viewer(target.base, stop, page_times)) if "viewer" in name else None
                    latencies, wall = await load(target.base, args.requests, args.concurrency)
                    stop.set()
                    if task is not None:
                        await task
                    results[name] += latencies
                    walls[name] += wall
            print(f"c={args.concurrency}, {args.rounds} interleaved rounds of {args.requests} requests per variant\n")
            print("| variant | p50 ms | p99 ms | req/s | RSS MB |")
            print("|---|---:|---:|---:|---:|")
            for name, values in results.items():
                values.sort()
                p50 = 1000 * statistics.median(values)
                p99 = 1000 * values[int(0.99 * (len(values) - 1))]
                assert targets[name].proc is not None
                rss = rss_mb(targets[name].proc.pid)
                print(f"| {name} | {p50:.1f} | {p99:.1f} | {len(values) / walls[name]:.0f} | {rss:.0f} |")
            if page_times:
                p50 = 1000 * statistics.median(page_times)
                worst = 1000 * max(page_times)
                print(f"\noverview reloads under load: {len(page_times)}, p50 {p50:.1f} ms, max {worst:.1f} ms")
        finally:
            fleet.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
