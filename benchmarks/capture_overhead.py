"""What the capture plugin adds to an answer's latency: the same chain with and without ``capture``, one run.

Starts the mock upstream and four ``chaperone serve`` processes: ``[]`` and ``[capture]`` (capture masks
on its own, presidio in its writer process), ``[pii]`` and ``[pii, capture]`` (capture reuses the pii
step's placeholders). Sends the same chat request (with an e-mail address and a card number in it), whole
and streamed, at a fixed concurrency, in interleaved rounds, and reports client-side latency p50 / p99 and
CPU per request (the proxy alone, and with its children: capture's writer process), each as a ratio to
the same chain without capture. After the processes stop (the writer drains at shutdown) it counts the
rows in each capture store against the requests sent, so "no added latency" is never bought by losing
records silently.

    python benchmarks/capture_overhead.py [--requests 400] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import cpu_seconds_precise
from benchmarks.targets import Fleet, Target, start_chaperone, start_mock, wait_ready

TEXT = "Send the invoice to jane.doe@example.com and charge 4111 1111 1111 1111, thanks [[mock:tokens=24]]"
BODY = {"model": "m", "messages": [{"role": "user", "content": TEXT}]}
VARIANTS: dict[str, list[Any]] = {
    "empty": [],
    "capture": ["capture"],
    "pii": [{"pii": {}}],
    "pii+capture": [{"pii": {}}, "capture"],
}
BASELINE = {"capture": "empty", "pii+capture": "pii"}


async def drive(base: str, stream: bool, requests: int, concurrency: int) -> list[float]:
    payload = {**BODY, "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {})}
    queue = iter(range(requests))
    times: list[float] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            started = time.perf_counter()
            async with session.post(base + "/v1/chat/completions", json=payload) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"answered {resp.status}")
            times.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return times


def family_cpu(target: Target) -> float:
    """CPU seconds of the proxy and its children (the capture writer's process)."""
    assert target.proc is not None
    pids = [target.proc.pid]
    try:
        for task in os.listdir(f"/proc/{target.proc.pid}/task"):
            with open(f"/proc/{target.proc.pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return sum(cpu_seconds_precise(pid) or 0.0 for pid in pids)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace, fleet: Fleet) -> tuple[dict[str, Any], dict[str, int]]:
    mock = start_mock(fleet)
    wait_ready([mock])
    targets: list[Target] = [start_chaperone(fleet, name, mock.base, chain) for name, chain in VARIANTS.items()]
    wait_ready(targets)
    sent = dict.fromkeys(VARIANTS, 0)
    for target in targets:
        for stream in (False, True):
            await drive(target.base, stream, 100, args.concurrency)  # warm-up (presidio, connections)
            sent[target.name] += 100
    results: dict[tuple[str, bool], dict[str, list[float]]] = {}
    for round_no in range(args.rounds):
        order = targets[round_no % len(targets) :] + targets[: round_no % len(targets)]
        for stream in (False, True):
            for target in order:
                before, family = target.cpu_precise() or 0.0, family_cpu(target)
                times = await drive(target.base, stream, args.requests, args.concurrency)
                cpu = ((target.cpu_precise() or 0.0) - before) / args.requests * 1e6
                total = (family_cpu(target) - family) / args.requests * 1e6
                sent[target.name] += args.requests
                slot = results.setdefault((target.name, stream), {"p50": [], "p99": [], "cpu": [], "all": []})
                slot["p50"].append(quantile(times, 0.5) * 1000)
                slot["p99"].append(quantile(times, 0.99) * 1000)
                slot["cpu"].append(cpu)
                slot["all"].append(total)
        print(f"round {round_no + 1} done at {time.strftime('%H:%M:%S')}", file=sys.stderr)
    return {f"{n}|{int(s)}": {k: statistics.median(v) for k, v in d.items()} for (n, s), d in results.items()}, sent


def stored(workdir: Path, name: str) -> int | None:
    path = workdir / name / "capture" / "capture.sqlite"
    if not path.exists():
        return None
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0])


def report(medians: dict[str, Any], sent: dict[str, int], rows: dict[str, int | None]) -> str:
    lines = ["| mode | chain | p50 ms | p99 ms | proxy CPU µs/req | + writer process | p50 ratio | p99 ratio | "
             "proxy CPU ratio |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for stream in (False, True):
        for name in VARIANTS:
            m = medians[f"{name}|{int(stream)}"]
            base = medians.get(f"{BASELINE.get(name, name)}|{int(stream)}", m)
            ratios = " | ".join(f"{m[k] / base[k]:.3f}" if base[k] else "-" for k in ("p50", "p99", "cpu"))
            lines.append(f"| {'stream' if stream else 'whole'} | [{name}] | {m['p50']:.2f} | {m['p99']:.2f} | "
                         f"{m['cpu']:.0f} | {m['all']:.0f} | {ratios} |")  # fmt: skip
    lines.append("")
    lines += ["| chain | requests sent | rows stored |", "|---|---:|---:|"]
    for name in ("capture", "pii+capture"):
        lines.append(f"| [{name}] | {sent[name]} | {rows[name]} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per chain, mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaperone-capture-bench-") as workdir:
        fleet = Fleet(Path(workdir))
        try:
            medians, sent = asyncio.run(measure(args, fleet))
        finally:
            fleet.stop()  # SIGTERM: each capture writer drains its queue before the process exits
        rows = {name: stored(Path(workdir), name) for name in VARIANTS}
    print(report(medians, sent, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
