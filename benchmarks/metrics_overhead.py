"""What metrics and the access log cost per request on the empty chain: the same build, A/B, in one run.

Starts the mock upstream and three ``chaperone serve`` processes with an empty chain: ``metrics:
{enabled: false}`` (nothing recorded: the baseline), the default (Prometheus metrics on), and the
default plus ``CHAPERONE_ACCESS_LOG`` to a file. Sends the same chat request, whole and streamed,
at a fixed concurrency, in interleaved rounds, and reports each process's CPU per request (from
``/proc``) and the difference to the baseline. The difference is what recording adds.
``--tree DIR`` adds a variant running the code of another checkout (e.g. the commit before
metrics, from ``git worktree add`` or ``git archive``) with the same policy, in the same rounds.

    python benchmarks/metrics_overhead.py [--requests 2000] [--rounds 5] [--concurrency 16] [--tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.targets import HOST, Fleet, Target, child_env, free_port, policy_text, start_mock, wait_ready

BODY = {"model": "m", "messages": [{"role": "user", "content": "Say something short [[mock:tokens=16]]"}]}
VARIANTS = {"metrics-off": "metrics: {enabled: false}\n", "metrics-on": "", "metrics+access-log": ""}


def start(fleet: Fleet, name: str, upstream: str, tree: str | None = None) -> Target:
    home = fleet.workdir / name
    home.mkdir()
    policy = home / "policy.yaml"
    policy.write_text(policy_text(upstream, []) + VARIANTS.get(name, ""))
    extra = {"CHAPERONE_ACCESS_LOG": str(home / "access.log")} if "access-log" in name else {}
    if tree is not None:
        extra["PYTHONPATH"] = tree
    env = child_env(
        CHAPERONE_HOME=str(home), CHAPERONE_RELOAD_INTERVAL_S="0", CHAPERONE_LOG_LEVEL="WARNING", **extra
    )  # fmt: skip
    port = free_port()
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--policy", str(policy), "--host", HOST, "--port", str(port)]
    if tree is None:
        proc, log = fleet.spawn(name, argv, env)
        return Target(name, port, proc, log)
    log = fleet.workdir / f"{name}.log"  # `python -m` puts the working directory first on sys.path: run there
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=tree, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    fleet.procs.append(proc)
    return Target(name, port, proc, log)


async def drive(base: str, stream: bool, requests: int, concurrency: int) -> None:
    payload = {**BODY, "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {})}
    queue = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            async with session.post(base + "/v1/chat/completions", json=payload) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"answered {resp.status}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


async def measure(args: argparse.Namespace, fleet: Fleet) -> dict[tuple[str, bool], list[float]]:
    mock = start_mock(fleet)
    wait_ready([mock])
    targets = [start(fleet, name, mock.base) for name in VARIANTS]
    if args.tree:
        targets.append(start(fleet, "other-tree", mock.base, args.tree))
    wait_ready(targets)
    results: dict[tuple[str, bool], list[float]] = {}
    for target in targets:
        for stream in (False, True):
            await drive(target.base, stream, 200, args.concurrency)  # warm-up
    for round_no in range(args.rounds):
        order = targets[round_no % len(targets) :] + targets[: round_no % len(targets)]
        for stream in (False, True):
            for target in order:
                before = target.cpu_precise() or target.cpu() or 0.0
                await drive(target.base, stream, args.requests, args.concurrency)
                after = target.cpu_precise() or target.cpu() or 0.0
                results.setdefault((target.name, stream), []).append((after - before) / args.requests * 1e6)
        print(f"round {round_no + 1} done at {time.strftime('%H:%M:%S')}", file=sys.stderr)
    return results


def report(results: dict[tuple[str, bool], list[float]]) -> str:
    lines = ["| mode | variant | CPU µs/req (median) | minus metrics-off µs |", "|---|---|---:|---:|"]
    for stream in (False, True):
        base = statistics.median(results[("metrics-off", stream)])
        for name in [n for n, s in results if s == stream]:
            cpu = statistics.median(results[(name, stream)])
            mode = "stream" if stream else "whole"
            lines.append(f"| {mode} | {name} | {cpu:.1f} | {cpu - base:+.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant, mode and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tree", help="another checkout to compare, run with the default policy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaperone-metrics-bench-") as workdir:
        fleet = Fleet(Path(workdir))
        try:
            results = asyncio.run(measure(args, fleet))
        finally:
            fleet.stop()
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
