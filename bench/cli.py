"""``chaperone bench run|sweep|compare|overhead``: argument parsing, Ctrl-C handling, terminal output."""

from __future__ import annotations

import argparse
import asyncio
import os
import runpy
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench import artifacts, compare, launch
from bench.load import LoadSpec
from bench.report import get
from bench.run import Plan, run_plan
from bench.summary import DEFINITIONS, parse_slos
from bench.sweep import sweep_concurrency, sweep_rate
from bench.workload import WorkloadSpec

T = TypeVar("T")
COMMANDS = ("run", "sweep", "compare", "overhead")
DESCRIPTION = """Load-test OpenAI-compatible servers, and the gateway in front of them: the same seeded workload
against each --target in turn, side by side (TTFT, time to first content token, ITL, TPOT, e2e, tokens/s,
goodput, errors by kind), with a Chaperone target's own per-plugin time from its /metrics."""
EXAMPLES = """examples:
  chaperone bench run --target http://127.0.0.1:8000/v1 --model m --concurrency 8 --requests 500
  chaperone bench run --target direct=http://127.0.0.1:8001/v1 --target chaperone=http://127.0.0.1:8080/v1 \\
      --model m --rate 20 --burstiness 0.5 --duration 60 --goodput ttft:500,tpot:50 --out out/
  chaperone bench sweep --target http://127.0.0.1:8000/v1 --model m --mode rate --duration 30
  chaperone bench compare before/ after/ --fail-if 'p99_ttft>+10%' --fail-if 'output_tokens_per_s<-5%'
  chaperone bench overhead --quick        # the proxy-overhead harness (benchmarks/harness.py)"""


def _targets(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, value in enumerate(values):
        name, sep, url = value.partition("=")
        if not sep or "://" in name:
            name, url = (f"target{i + 1}" if len(values) > 1 else "target"), value
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--target {value!r}: the URL must start with http:// or https://")
        if name in out:
            raise ValueError(f"--target: the name {name!r} is used twice")
        out[name] = url
    return out


def _add_load_options(p: argparse.ArgumentParser, sweep: bool = False) -> None:
    p.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="[NAME=]URL",
        help="an OpenAI-compatible base URL (…/v1); repeat to run the same workload on several",
    )
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="bearer key (default $OPENAI_API_KEY)")
    p.add_argument(
        "--metrics-key", default=os.environ.get("CHAPERONE_ADMIN_KEY"),
        help="admin key for a Chaperone target's /metrics when its policy asks for one (default $CHAPERONE_ADMIN_KEY)",
    )  # fmt: skip
    p.add_argument("--model", required=True, help="model name sent in every request")
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat", help="API (default chat)")
    p.add_argument("--no-stream", action="store_true", help="whole answers instead of streams")
    if not sweep:
        loop = p.add_mutually_exclusive_group(required=True)
        loop.add_argument("--concurrency", type=int, help="closed loop: N clients, each sends when answered")
        loop.add_argument("--rate", type=float, help="open loop: mean arrivals per second")
    p.add_argument("--burstiness", type=float, default=1.0, help="gamma shape of arrivals: 1 Poisson, <1 burstier")
    p.add_argument("--max-concurrency", type=int, help="open loop: cap on requests in flight (sweep: the search limit)")
    p.add_argument("--requests", type=int, help="requests per target (per level for a sweep)")
    p.add_argument("--duration", type=float, help="seconds per target (per level); in-flight ones finish")
    p.add_argument("--warmup", default="5%", help="excluded at the start: 5%% of the run or 2s (default 5%%)")
    p.add_argument("--cooldown", default="5%", help="excluded at the end, like --warmup (default 5%%)")
    p.add_argument("--seed", type=int, default=0, help="seeds every random choice (default 0)")
    _add_workload_options(p)
    p.add_argument("--goodput", metavar="SLOS", help="SLOs in ms, e.g. ttft:500,tpot:50 (ttft ttfc tpot e2e itl)")
    p.add_argument("--baseline", help="target the others are compared with (default the first)")
    p.add_argument("--out", type=Path, help="artifact directory (default bench-results/<time>)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request timeout in seconds (default 300)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument(
        "--launch", metavar="BACKEND", help="start the policy backend's engine first (needs backends.launch)"
    )
    p.add_argument("--policy", help="with --launch: the policy file holding the backend")


def _add_workload_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-tokens", type=int, default=256, help="mean prompt length in tokens (default 256)")
    p.add_argument("--input-spread", type=float, default=0.0, help="std dev as a fraction of the mean (default 0)")
    p.add_argument("--output-tokens", type=int, default=128, help="max_tokens asked for (default 128)")
    p.add_argument("--output-spread", type=float, default=0.0, help="std dev as a fraction of the mean (default 0)")
    p.add_argument("--dataset", help="JSONL of {prompt|text|messages, output_tokens?} instead of synthetic prompts")
    p.add_argument("--prefix-share", type=float, default=0.0, help="share of prompts starting with one shared prefix")
    p.add_argument("--prefix-tokens", type=int, default=0, help="shared prefix length (default half the input)")
    p.add_argument("--cache-share", type=float, default=0.0, help="share of exact repeats of an earlier request")
    p.add_argument("--pii-share", type=float, default=0.0, help="share of prompts holding a name, e-mail and phone")
    p.add_argument("--injection-share", type=float, default=0.0, help="share of prompt-injection attempts")
    p.add_argument("--temperature", type=float, help="sent when given (0 by default with --cache-share)")
    p.add_argument("--ignore-eos", action="store_true", help="send ignore_eos (vLLM) so answers reach max_tokens")
    p.add_argument("--mock", action="store_true", help="add [[mock:tokens=N]] so the bundled mock answers N tokens")
    p.add_argument("--mock-fault", metavar="SPEC", help="with --mock: a mock fault spec, e.g. latency_ms=50")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaperone bench",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="load one or more targets with one workload",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_load_options(run)
    sw = sub.add_parser("sweep", help="a series of concurrencies or rates up to saturation (the knee)")
    _add_load_options(sw, sweep=True)
    sw.add_argument("--mode", choices=("concurrency", "rate"), default="concurrency", help="what to vary")
    sw.add_argument("--levels", help="explicit comma-separated concurrencies or rates (skips the search)")
    sw.add_argument("--steps", type=int, default=5, help="rate mode: rates up to saturation (default 5)")
    cmp = sub.add_parser("compare", help="two summaries side by side; exit 1 when a --fail-if gate fails")
    cmp.add_argument("a", type=Path, help="summary.json (or its directory): the reference")
    cmp.add_argument("b", type=Path, help="summary.json (or its directory): the candidate")
    cmp.add_argument("--fail-if", action="append", default=[], metavar="GATE", help="e.g. 'p99_ttft>+10%%'")
    cmp.add_argument("--target", help="gate only this target (default every target in both)")
    cmp.add_argument("--tolerance", type=float, default=5.0, help="noise band for rates, %% (default 5)")
    cmp.add_argument("--strict", action="store_true", help="gate on the point estimate, ignoring noise")
    sub.add_parser(
        "overhead", help="the proxy-overhead harness (benchmarks/harness.py; its own options)", add_help=False
    )
    return parser


def _specs(args: argparse.Namespace, load: dict[str, Any]) -> Plan:
    workload = WorkloadSpec(
        model=args.model,
        endpoint=args.endpoint,
        stream=not args.no_stream,
        input_tokens=args.input_tokens,
        input_spread=args.input_spread,
        output_tokens=args.output_tokens,
        output_spread=args.output_spread,
        dataset=args.dataset,
        prefix_share=args.prefix_share,
        prefix_tokens=args.prefix_tokens,
        cache_share=args.cache_share,
        pii_share=args.pii_share,
        injection_share=args.injection_share,
        temperature=args.temperature,
        ignore_eos=args.ignore_eos,
        mock=args.mock or bool(args.mock_fault),
        mock_fault=args.mock_fault,
        seed=args.seed,
    )
    spec = LoadSpec(
        burstiness=args.burstiness,
        max_concurrency=args.max_concurrency,
        requests=args.requests,
        duration_s=args.duration,
        warmup=args.warmup,
        cooldown=args.cooldown,
        seed=args.seed,
        **load,
    )
    spec.check()
    workload.check()
    targets = _targets(args.target)
    if args.baseline and args.baseline not in targets:
        raise ValueError(f"--baseline {args.baseline!r} is not a target name ({', '.join(targets)})")
    return Plan(
        targets,
        workload,
        spec,
        args.api_key,
        parse_slos(args.goodput),
        args.baseline,
        progress=not args.quiet,
        timeout_s=args.timeout,
        metrics_key=args.metrics_key,
    )


def _guarded(coro: Callable[[asyncio.Event], Awaitable[T]]) -> tuple[T, bool]:
    """Run ``coro(stop)``; the first Ctrl-C sets ``stop`` (finish and write what was measured), a second aborts."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def first() -> None:
            print("\nbench: interrupted: writing what was measured so far (Ctrl-C again to abort)", file=sys.stderr)
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)

        loop.add_signal_handler(signal.SIGINT, first)
        loop.add_signal_handler(signal.SIGTERM, first)
        result = await coro(stop)
        main.stopped = stop.is_set()  # type: ignore[attr-defined]
        return result

    try:
        import uvloop

        result = uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        result = asyncio.run(main())
    return result, bool(getattr(main, "stopped", False))


def _out_dir(args: argparse.Namespace) -> Path:
    return Path(args.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S"))


def _run(args: argparse.Namespace, engine: dict[str, Any] | None = None) -> int:
    plan = _specs(args, {"concurrency": args.concurrency, "rate": args.rate})
    manifest = artifacts.manifest(
        sys.argv[1:],
        plan.targets,
        plan.workload.to_json(),
        {**plan.load.to_json(), "label": plan.load.label},
        args.seed,
    )
    manifest["engine"] = engine
    (summary, records), stopped = _guarded(lambda stop: run_plan(plan, stop))
    manifest["interrupted"] = stopped
    out = _out_dir(args)
    artifacts.write(out, manifest, summary, records)
    print(terminal_table(summary))
    print(f"\nartifacts: {out}/ (report.html, summary.json, results.jsonl, …)")
    return 130 if stopped else 0


def _sweep(args: argparse.Namespace, engine: dict[str, Any] | None = None) -> int:
    first = {"concurrency": 1, "rate": None}
    plan = _specs(args, first)
    levels = [float(x) for x in args.levels.split(",")] if args.levels else None
    manifest = artifacts.manifest(
        sys.argv[1:],
        plan.targets,
        plan.workload.to_json(),
        {**plan.load.to_json(), "label": f"{args.mode} sweep"},
        args.seed,
    )
    manifest["engine"] = engine
    limit = args.max_concurrency or 256

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.mode == "concurrency":
        ints = [int(x) for x in levels] if levels else None
        (result, stopped) = _guarded(lambda stop: sweep_concurrency(plan, stop, ints, limit, say=say))
    else:
        (result, stopped) = _guarded(
            lambda stop: sweep_rate(plan, stop, levels, args.max_concurrency or 64, args.steps, say=say)
        )
    series, records = result
    manifest["interrupted"] = stopped
    last = series[-1]["summary"] if series else {"targets": {}, "definitions": DEFINITIONS}
    for name, rows in records.items():  # the report's CDFs are of the last level
        records[name] = [r for r in rows if r.get("level") == series[-1]["level"]] if series else rows
    out = _out_dir(args)
    artifacts.write(out, manifest, last, records, series)
    print(sweep_table(series))
    print(f"\nartifacts: {out}/ (report.html, sweep.json, …)")
    return 130 if stopped else 0


def _compare(args: argparse.Namespace) -> int:
    a, b = compare.load_summary(args.a), compare.load_summary(args.b)
    gates = [compare.Gate.parse(text) for text in args.fail_if]
    tolerance = args.tolerance / 100
    print(compare.table(compare.compare(a, b, tolerance)))
    failed, lines = compare.gate(a, b, gates, args.target, args.strict, tolerance)
    for line in lines:
        print(line)
    return 1 if failed else 0


def _overhead(argv: list[str]) -> int:
    harness = Path(__file__).resolve().parent.parent / "benchmarks" / "harness.py"
    if not harness.exists():
        print("chaperone bench overhead needs a source checkout (benchmarks/harness.py)", file=sys.stderr)
        return 2
    sys.argv = [str(harness), *argv]
    runpy.run_path(str(harness), run_name="__main__")
    return 0


def terminal_table(summary: dict[str, Any]) -> str:
    """The side-by-side table, the gateway's added latency and each figure's definition."""
    targets = summary["targets"]
    names = list(targets)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for metric in ("ttft_ms", "ttfc_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        for stat in ("mean", "p50", "p90", "p99"):
            lines.append(
                f"| {metric} {stat} | " + " | ".join(_num(get(targets[n], f"{metric}.{stat}")) for n in names) + " |"
            )
    for path in (
        "output_tokens_per_s",
        "requests_per_s",
        "completed",
        "errors",
        "goodput.per_s",
        "tokens.token_drift_pct",
        "send_lag_ms.p99",
        "generator.loop_lag_ms.p99",
        "generator.events_per_cpu_s",
        "gateway.cpu_ms_per_request",
    ):
        lines.append(f"| {path} | " + " | ".join(_num(get(targets[n], path)) for n in names) + " |")
    for name in names:
        kinds = targets[name]["errors_by_kind"]
        if kinds:
            lines.append(f"\n{name}: errors by kind (not in latency figures): {kinds}")
    diff = summary.get("differences")
    if diff:
        for name, row in diff["targets"].items():
            added = ", ".join(
                f"{m.removesuffix('_ms')} p50 {_num(row[f'{m}.p50'], True)} / p99 {_num(row[f'{m}.p99'], True)} ms"
                for m in ("ttft_ms", "ttfc_ms", "itl_ms", "e2e_ms")
            )
            lines.append(f"\n{name} - {diff['baseline']}: added {added}")
    for name in names:
        lines += _gateway_lines(name, targets[name].get("gateway") or {})
    lines.append("\ndefinitions:")
    lines.extend(f"  {k}: {v}" for k, v in DEFINITIONS.items())
    return "\n".join(lines)


def _gateway_lines(name: str, gateway: dict[str, Any]) -> list[str]:
    lines = []
    if gateway.get("cache_lookups"):
        lines.append(f"\n{name}: cache lookups (the proxy's counters): {gateway['cache_lookups']}")
    plugins = gateway.get("plugins_ms_per_request") or {}
    if gateway and not plugins:
        lines.append(f"\n{name}: no per-plugin time: set metrics: {{plugin_timing: true}} in its policy")
    if plugins:
        times = ", ".join(f"{p} {h['total']:.3f} ms" for p, h in plugins.items())
        lines.append(f"\n{name}: plugin time per request (the proxy's own timing): {times}")
    return lines


def sweep_table(series: list[dict[str, Any]]) -> str:
    lines = [
        "| level | target | req/s | output tok/s | p50 TTFC ms | p99 TTFC ms | p50 ITL ms | p99 e2e ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in series:
        for name, s in level["summary"]["targets"].items():
            cells = [
                s.get("requests_per_s"),
                s.get("output_tokens_per_s"),
                get(s, "ttfc_ms.p50"),
                get(s, "ttfc_ms.p99"),
                get(s, "itl_ms.p50"),
                get(s, "e2e_ms.p99"),
                s.get("errors"),
            ]
            lines.append(f"| {level['load']} | {name} | " + " | ".join(_num(c) for c in cells) + " |")
    return "\n".join(lines)


def _num(value: Any, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["overhead"]:
        return _overhead(argv[1:])
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        return _overhead(argv)  # `chaperone bench --quick`: the harness's options, as before `run` existed
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compare":
            return _compare(args)
        with launch.engine(args.policy, args.launch) as engine:
            return _run(args, engine) if args.command == "run" else _sweep(args, engine)
    except ValueError as exc:
        print(f"chaperone bench {args.command}: {exc}", file=sys.stderr)
        return 2
