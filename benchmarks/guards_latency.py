"""Latency the guard plugins add: ``pii`` (both tiers) and ``injection``, against the empty chain, same run.

Starts the mock upstream and one Chaperone process per chain (as ``harness.py`` does), then sends a
200-word prompt, without and with personal data, at concurrency 1, non-streamed and streamed, in
``--rounds`` interleaved rounds. It reports p50/p99 latency and stream TTFT for each chain, and the
p50 added over the empty chain measured in the same round (the median of the rounds' differences).
With PII in the prompt the mock echoes placeholders, so the streamed figures include restoration.

    python benchmarks/guards_latency.py                  # 3 rounds of 300 requests per cell
    python benchmarks/guards_latency.py --requests 100 --rounds 1
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
    "pii": [{"pii": {}}],
    "pii-ner": [{"pii": {"ner": True}}],
    "injection": [{"injection": {"action": "block"}}],
    "pii+injection": [{"pii": {}}, {"injection": {"action": "block"}}],
}
FILLER = (
    "The quarterly planning meeting covered the roadmap for the next release, the migration of the "
    "reporting service, hiring for the platform team, and the budget review for cloud spending. "
    "Several teams asked for clearer ownership of shared libraries and a faster review process. "
)
PII = "Please email jane.roe@example.org or call +1 212 555 0199 about card 4111 1111 1111 1111. "


def prompt(with_pii: bool, words: int = 200) -> str:
    text = ""
    while len(text.split()) < words:
        text += FILLER
    text = " ".join(text.split()[:words])
    return (PII + text) if with_pii else text


def body(text: str, stream: bool) -> str:
    payload: dict[str, Any] = {
        "model": "bench-model",
        "messages": [{"role": "user", "content": text + " [[mock:tokens=24]]"}],
    }
    if stream:
        payload["stream"] = True
    return json.dumps(payload)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per chain, prompt and mode per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--chains", default=",".join(CHAINS), help=f"subset of {','.join(CHAINS)}")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    names = [n for n in args.chains.split(",") if n]
    if "empty" not in names:
        names.insert(0, "empty")
    with tempfile.TemporaryDirectory(prefix="chaperone-guards-") as tmp:
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
    cells = [(pii, stream) for pii in (False, True) for stream in (False, True)]
    samples: dict[tuple[str, bool, bool], list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for with_pii, stream in cells:
            # tokens=0: restoring merges a placeholder's pieces, so the chunk count is not the mock's
            scenario = Scenario("chat-stream" if stream else "chat", stream, 1, args.requests, 0)
            payload = body(prompt(with_pii), stream)
            for name in order:
                url = targets[name].base + "/v1/chat/completions"
                loadgen.run(url, payload, scenario, 20)  # warm-up
                result = loadgen.run(url, payload, scenario, args.requests)
                if result["errors"] or result["incomplete"]:
                    print(f"{name}: {result['errors']} errors: {result['sample_error']}", file=sys.stderr)
                    return 1
                samples.setdefault((name, with_pii, stream), []).append(result)
                print(f"round {rnd + 1} {name:14} pii={with_pii!s:5} stream={stream!s:5} "
                      f"p50 {p(result['latencies'], 0.5):7.2f} ms", file=sys.stderr, flush=True)  # fmt: skip
    rows = _table(names, cells, samples)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


def _table(
    names: list[str], cells: list[tuple[bool, bool]], samples: dict[tuple[str, bool, bool], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    print("| chain | prompt | mode | p50 ms | p99 ms | +p50 ms vs empty | TTFT p50 ms | +TTFT p50 ms |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for with_pii, stream in cells:
        base = samples[("empty", with_pii, stream)]
        for name in names:
            runs = samples[(name, with_pii, stream)]
            lat = [x for r in runs for x in r["latencies"]]
            ttft = [x for r in runs for x in r["ttfts"]]
            added = _median_gap(runs, base, "latencies")
            added_ttft = _median_gap(runs, base, "ttfts") if stream else float("nan")
            row = {"chain": name, "pii_in_prompt": with_pii, "stream": stream, "p50_ms": p(lat, 0.5),
                   "p99_ms": p(lat, 0.99), "added_p50_ms": added, "ttft_p50_ms": p(ttft, 0.5) if stream else None,
                   "added_ttft_p50_ms": added_ttft if stream else None}  # fmt: skip
            rows.append(row)
            ttft_cells = f"{row['ttft_p50_ms']:.2f} | {added_ttft:+.2f}" if stream else "- | -"
            print(f"| {name} | {'200 words + PII' if with_pii else '200 words, clean'} | "
                  f"{'stream' if stream else 'whole'} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                  f"{added:+.2f} | {ttft_cells} |")  # fmt: skip
    return rows


def _median_gap(runs: list[dict[str, Any]], base: list[dict[str, Any]], key: str) -> float:
    """The median over rounds of (this chain's p50 minus the empty chain's p50 in the same round)."""
    return statistics.median(p(r[key], 0.5) - p(b[key], 0.5) for r, b in zip(runs, base, strict=True))


if __name__ == "__main__":
    sys.exit(main())
