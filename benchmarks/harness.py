"""Benchmark harness: Chaperone's overhead against a direct call and a minimal reference proxy.

Starts a mock upstream, the reference proxy (``reference_proxy.py``) and Chaperone in several
policy variants, each its own subprocess on a free loopback port, then drives them with the load
generator (``loadgen.py``, also its own process). For every target and scenario it reports
requests/s, latency p50/p99, latency added over ``direct``, TTFT, and the target process's CPU time
per request as a ratio to the reference's, measured in the same run. See ``benchmarks/README.md``.

    python benchmarks/harness.py --quick          # ~1 minute smoke run
    python benchmarks/harness.py --rounds 3       # fuller run
    chaperone bench overhead --quick              # the same
    python benchmarks/harness.py --baseline main  # before and after: each Chaperone target also at ``main``

``--baseline REV`` checks ``REV`` out in a temporary git worktree and runs every selected Chaperone
target twice, from this checkout and from the worktree (``<target>@REV``), in the same rounds against
the same reference: a change to the hot path measured before and after in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script or through `chaperone bench`

from benchmarks import report
from benchmarks.report import Row, Scenario
from benchmarks.targets import (
    CHAPERONE_VARIANTS,
    HERE,
    REFERENCE_CLIENTS,
    ROOT,
    Fleet,
    Target,
    child_env,
    log_tail,
    start_chaperone,
    start_mock,
    start_reference,
    wait_ready,
)

ALL_TARGETS = ("direct", *REFERENCE_CLIENTS, *CHAPERONE_VARIANTS)
RESULTS = HERE / "results"


def chat_body(stream: bool, tokens: int, chunk_delay_ms: float = 0.0) -> str:
    """A pre-serialised chat request; the mock's magic string fixes the answer's length (and pacing).

    ``{n}`` becomes the request's number in the load generator: every body differs, so a cache in
    the chain (``chaperone-money``) measures misses, and every target gets the same work.
    """
    magic = f"tokens={tokens}" + (f",chunk_delay_ms={chunk_delay_ms:g}" if chunk_delay_ms else "")
    body: dict[str, Any] = {
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "You are a benchmark."},
            {"role": "user", "content": f"Say something short, number {{n}}. [[mock:{magic}]]"},
        ],
        "max_tokens": 256,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":"))


class LoadGen:
    """One or more load-generator processes; a job is split evenly across them."""

    def __init__(self, fleet: Fleet, workers: int) -> None:
        argv = [sys.executable, str(HERE / "loadgen.py")]
        self.procs = [
            subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        fleet.procs.extend(self.procs)

    def run(self, url: str, body: str, scenario: Scenario, requests: int) -> dict[str, Any]:
        n = len(self.procs)
        shares = [
            (scenario.concurrency // n + (i < scenario.concurrency % n), requests // n + (i < requests % n))
            for i in range(n)
        ]
        used = [(proc, c, r) for proc, (c, r) in zip(self.procs, shares, strict=True) if c and r]
        for proc, conc, reqs in used:
            job = {
                "url": url,
                "body": body,
                "stream": scenario.stream,
                "concurrency": conc,
                "requests": reqs,
                "tokens": scenario.tokens if scenario.stream else 0,
            }
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
        results = [self._read(proc) for proc, _, _ in used]
        merged = results[0]
        for extra in results[1:]:
            for key in ("latencies", "ttfts", "max_gaps"):
                merged[key] += extra[key]
            for key in ("errors", "incomplete", "client_cpu_s"):
                merged[key] += extra[key]
            merged["elapsed_s"] = max(merged["elapsed_s"], extra["elapsed_s"])
            merged["sample_error"] = merged["sample_error"] or extra["sample_error"]
        merged["client_cpu_s"] /= len(used)  # per worker, so client CPU% reads as "of one core"
        return merged

    @staticmethod
    def _read(proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited with status {proc.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result


def build_scenarios(args: argparse.Namespace) -> list[Scenario]:
    scenarios = [
        Scenario(f"{kind} c={c}", kind == "stream", c, args.requests, args.tokens)
        for kind in ("chat", "stream")
        for c in args.concurrency
    ]
    if args.streams:
        scenarios.append(
            Scenario(
                f"stream {args.streams} concurrent",
                True,
                args.streams,
                args.stall_requests or args.streams,
                args.tokens,
                args.stall_chunk_delay_ms,
                stall_check=True,
            )
        )
    return scenarios


def start_targets(
    fleet: Fleet, names: list[str], baseline: tuple[str, Path] | None = None
) -> tuple[Target, list[Target]]:
    """The mock and the targets; with ``baseline`` (its name and worktree) each Chaperone target twice."""
    mock = start_mock(fleet)
    upstream = mock.base
    targets: list[Target] = []
    for name in names:
        if name == "direct":
            targets.append(Target("direct", mock.port, ready_path="/_mock/health"))
        elif name in REFERENCE_CLIENTS:
            targets.append(start_reference(fleet, upstream, name))
        else:
            targets.append(start_chaperone(fleet, name, upstream, CHAPERONE_VARIANTS[name]()))
            if baseline is not None:
                label, root = baseline
                chain = CHAPERONE_VARIANTS[name]()
                targets.append(start_chaperone(fleet, f"{name}@{label}", upstream, chain, root=root))
    wait_ready([mock, *targets])
    return mock, targets


def baseline_worktree(rev: str, workdir: Path, repo: Path = ROOT) -> Path:
    """Check ``rev`` out in a detached git worktree under ``workdir``; a clear error when it cannot be."""
    path = workdir / "baseline"
    done = subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(path), rev], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"--baseline {rev}: git worktree add failed: {done.stderr.strip() or done.stdout.strip()}")
    return path


def remove_worktree(path: Path, repo: Path = ROOT) -> None:
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], capture_output=True)
    subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)


def measure(
    args: argparse.Namespace, loadgen: LoadGen, mock: Target, targets: list[Target], scenarios: list[Scenario]
) -> list[Row]:
    """Rounds x scenarios x targets, with the target order rotated each round to spread drift evenly."""
    rows = {(s.name, t.name): Row(t.name, s.name) for s in scenarios for t in targets}
    for target in targets:  # first contact: imports, pools, JIT-free but cache-warm paths
        for stream in (False, True):
            body = chat_body(stream, args.tokens)
            loadgen.run(target.base + "/v1/chat/completions", body, Scenario("warm", stream, 8, 0, args.tokens), 64)
    for rnd in range(args.rounds):
        order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
        for scenario in scenarios:
            body = chat_body(scenario.stream, scenario.tokens, scenario.chunk_delay_ms)
            for target in order:
                url = target.base + "/v1/chat/completions"
                warmup = _warmup(args, scenario)
                if warmup:
                    loadgen.run(url, body, scenario, warmup)
                cpu0, precise0, mock0 = target.cpu(), target.cpu_precise(), mock.cpu()
                result = loadgen.run(url, body, scenario, scenario.requests)
                cpu1, precise1, mock1 = target.cpu(), target.cpu_precise(), mock.cpu()
                proxy = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
                precise = precise1 - precise0 if precise0 is not None and precise1 is not None else None
                rows[(scenario.name, target.name)].add(
                    result, scenario.requests, proxy, precise, (mock1 or 0) - (mock0 or 0)
                )
                _check_alive([mock, target])
                _progress(args, rnd, scenario, target, result)
    return list(rows.values())


def _check_alive(targets: list[Target]) -> None:
    for target in targets:
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with status {target.proc.returncode}:\n{log_tail(target)}")


def _warmup(args: argparse.Namespace, scenario: Scenario) -> int:
    """Unmeasured requests before a measurement: enough to open the scenario's connections (quick: fewer;
    the quick stall check starts cold, so its burst of new connections is part of what it checks)."""
    warmup: int = args.warmup
    if args.quick:
        return 0 if scenario.stall_check else warmup
    return max(warmup, scenario.concurrency)


def _progress(args: argparse.Namespace, rnd: int, scenario: Scenario, target: Target, result: dict[str, Any]) -> None:
    if args.verbose:
        ok = len(result["latencies"])
        rps = ok / result["elapsed_s"] if result["elapsed_s"] else 0
        print(f"  round {rnd + 1} {scenario.name:<24} {target.name:<26} {ok:>6} ok {rps:>8.0f} req/s", file=sys.stderr)


def environment() -> dict[str, Any]:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    except OSError:
        rev = ""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "git": rev.strip(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="harness.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run (fewer requests, one round)")
    parser.add_argument(
        "--requests", type=int, help="measured requests per target and scenario (default 2000; quick 200)"
    )
    parser.add_argument("--concurrency", type=_ints, default=[1, 16, 64], help="comma-separated (default 1,16,64)")
    parser.add_argument("--tokens", type=int, default=16, help="content chunks per answer (default 16)")
    parser.add_argument("--streams", type=int, default=512, help="concurrent streams in the stall check (0 to skip)")
    parser.add_argument(
        "--stall-requests", type=int, default=0, help="streams in the stall check (default = --streams)"
    )
    parser.add_argument(
        "--stall-chunk-delay-ms", type=float, default=100.0, help="mock pacing between chunks in the stall check (ms)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat all scenarios, summing samples (default 1)")
    parser.add_argument(
        "--warmup", type=int, help="unmeasured requests before each measurement (default 200; quick 30)"
    )
    parser.add_argument("--targets", type=_names, default=list(ALL_TARGETS), help=f"subset of {','.join(ALL_TARGETS)}")
    parser.add_argument("--client-workers", type=int, default=1, help="load-generator processes (default 1)")
    parser.add_argument("--out", type=Path, help="JSON results file (default benchmarks/results/bench-<time>.json)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the subprocess logs (path printed)")
    parser.add_argument(
        "--baseline", metavar="REV", help="also run each Chaperone target from git revision REV (before/after)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)  # `chaperone bench -- --quick`
    args.requests = args.requests or (200 if args.quick else 2000)
    args.warmup = args.warmup if args.warmup is not None else (30 if args.quick else 200)
    for needed in ("direct", "reference"):
        if needed not in args.targets:
            args.targets.insert(0 if needed == "direct" else 1, needed)
    return args


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = sorted(set(names) - set(ALL_TARGETS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(ALL_TARGETS)}")
    return [n for n in ALL_TARGETS if n in names]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    workdir = Path(tempfile.mkdtemp(prefix="chaperone-bench-"))
    fleet = Fleet(workdir)
    scenarios = build_scenarios(args)
    started = time.monotonic()
    env_before = environment()
    worktree: Path | None = None
    try:
        baseline = None
        if args.baseline:
            worktree = baseline_worktree(args.baseline, workdir)
            baseline = ("".join(c if c.isalnum() or c in "._-" else "_" for c in args.baseline), worktree)
        mock, targets = start_targets(fleet, args.targets, baseline)
        loadgen = LoadGen(fleet, args.client_workers)
        rows = [row.stats() for row in measure(args, loadgen, mock, targets, scenarios)]
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopping all benchmark processes", file=sys.stderr)
        return 130
    finally:
        fleet.stop()
        if worktree is not None:
            remove_worktree(worktree)
        if args.keep_logs:
            print(f"logs: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return _report(args, scenarios, rows, env_before, time.monotonic() - started)


def _report(
    args: argparse.Namespace, scenarios: list[Scenario], rows: list[dict[str, Any]], env: dict[str, Any], took: float
) -> int:
    report.derive(rows)
    verdict = report.verdicts(rows, scenarios)
    precise = report.verdicts(rows, scenarios, key="cpu_us_per_req_schedstat")
    print(report.markdown(rows, scenarios))
    print(report.verdict_text(verdict, precise))
    failures = [r for r in rows if r["errors"] or r["incomplete"]]
    for row in failures:
        print(
            f"! {row['target']} / {row['scenario']}: {row['errors']} errors, {row['incomplete']} incomplete: "
            f"{row['sample_error']}"
        )
    env["loadavg_after"] = os.getloadavg()
    env["duration_s"] = round(took, 1)
    out = args.out or RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    scenario_list = [vars(s) for s in scenarios]
    payload = {
        "environment": env,
        "config": config,
        "scenarios": scenario_list,
        "rows": rows,
        "verdict": verdict,
        "verdict_schedstat": precise,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    print(
        f"\n{len(rows)} rows in {took:.0f}s; loadavg before {env['loadavg'][0]:.2f}, after "
        f"{env['loadavg_after'][0]:.2f}; results: {out}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
