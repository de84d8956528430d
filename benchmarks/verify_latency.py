"""The latency trade-off of verify-then-release: ``schema`` and ``judge`` holding a stream, or auditing it.

Starts the mock upstream and one Chaperone process per chain (as ``harness.py`` does) and sends a
JSON-mode chat request (``response_format: json_object``; the mock streams its JSON answer one piece
per chunk, ``--chunk-delay-ms`` apart) at concurrency 1, streamed and not, in ``--rounds`` interleaved
rounds. It reports p50/p99 latency and stream TTFT per chain, and the p50 added over the empty chain
in the same round. ``enforce`` chains hold the stream until the answer is checked, so their TTFT is
about the whole stream's duration; ``audit`` chains stream live and check after the end. The judge is
the mock itself (a sub-call through the ``*`` route), so its figures include one extra upstream call.

    python benchmarks/verify_latency.py                    # 3 rounds of 100 requests per cell
    python benchmarks/verify_latency.py --requests 50 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import LoadGen
from benchmarks.report import Scenario
from benchmarks.targets import Fleet, Target, start_chaperone, start_mock, wait_ready

CHAINS: dict[str, list[Any]] = {
    "empty": [],
    "schema": [{"schema": {}}],
    "schema-audit": [{"schema": {"mode": "audit"}}],
    "judge": [{"judge": {"model": "judge"}}],
    "judge-audit": [{"judge": {"model": "judge", "mode": "audit"}}],
    "judge+schema": [{"judge": {"model": "judge"}}, {"schema": {}}],
}


def body(stream: bool, delay_ms: float) -> str:
    magic = f"[[mock:chunk_delay_ms={delay_ms:g}]]" if delay_ms and stream else ""
    payload: dict[str, Any] = {
        "model": "bench-model",
        "messages": [{"role": "user", "content": f"List three colours of the rainbow as JSON. {magic}"}],
        "response_format": {"type": "json_object"},
    }
    if stream:
        payload["stream"] = True
    return json.dumps(payload)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="requests per chain and mode per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--chunk-delay-ms", type=float, default=5.0, help="mock pacing between stream chunks")
    parser.add_argument("--chains", default=",".join(CHAINS), help=f"subset of {','.join(CHAINS)}")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    names = [n for n in args.chains.split(",") if n]
    if "empty" not in names:
        names.insert(0, "empty")
    with tempfile.TemporaryDirectory(prefix="chaperone-verify-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            return _run(args, fleet, names)
        finally:
            fleet.stop()


def _run(args: argparse.Namespace, fleet: Fleet, names: list[str]) -> int:
    mock = start_mock(fleet)
    wait_ready([mock])
    targets: dict[str, Target] = {n: start_chaperone(fleet, f"chaperone-{n}", mock.base, CHAINS[n]) for n in names}
    wait_ready(list(targets.values()), timeout_s=120)
    loadgen = LoadGen(fleet, 1)
    samples: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for stream in (False, True):
            scenario = Scenario("json-stream" if stream else "json", stream, 1, args.requests, 0)
            payload = body(stream, args.chunk_delay_ms)
            for name in order:
                url = targets[name].base + "/v1/chat/completions"
                loadgen.run(url, payload, scenario, 10)  # warm-up
                result = loadgen.run(url, payload, scenario, args.requests)
                if result["errors"] or result["incomplete"]:
                    print(f"{name}: {result['errors']} errors: {result['sample_error']}", file=sys.stderr)
                    return 1
                samples.setdefault((name, stream), []).append(result)
                print(f"round {rnd + 1} {name:14} stream={stream!s:5} p50 {p(result['latencies'], 0.5):7.2f} ms",
                      file=sys.stderr, flush=True)  # fmt: skip
    rows = _table(names, samples)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


def _table(names: list[str], samples: dict[tuple[str, bool], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    print("| chain | mode | p50 ms | p99 ms | +p50 ms vs empty | TTFT p50 ms | +TTFT p50 ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for stream in (False, True):
        base = samples[("empty", stream)]
        for name in names:
            runs = samples[(name, stream)]
            lat = [x for r in runs for x in r["latencies"]]
            ttft = [x for r in runs for x in r["ttfts"]]
            added = _median_gap(runs, base, "latencies")
            added_ttft = _median_gap(runs, base, "ttfts") if stream else float("nan")
            row = {"chain": name, "stream": stream, "p50_ms": p(lat, 0.5), "p99_ms": p(lat, 0.99),
                   "added_p50_ms": added, "ttft_p50_ms": p(ttft, 0.5) if stream else None,
                   "added_ttft_p50_ms": added_ttft if stream else None}  # fmt: skip
            rows.append(row)
            ttft_cells = f"{row['ttft_p50_ms']:.2f} | {added_ttft:+.2f}" if stream else "- | -"
            print(f"| {name} | {'stream' if stream else 'whole'} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                  f"{added:+.2f} | {ttft_cells} |")  # fmt: skip
    return rows


def _median_gap(runs: list[dict[str, Any]], base: list[dict[str, Any]], key: str) -> float:
    """The median over rounds of (this chain's p50 minus the empty chain's p50 in the same round)."""
    return statistics.median(p(r[key], 0.5) - p(b[key], 0.5) for r, b in zip(runs, base, strict=True))


if __name__ == "__main__":
    sys.exit(main())
