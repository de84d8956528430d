"""The ``chaperone`` command: serve, check, scan, keys, mock-backend, bench, eval, rollout, dataset."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from backends.launch.engine import EngineFailed  # [launcher]
from proxy import gctune
from proxy.policy import Policy, PolicyError, load_policy
from proxy.registry import PluginRegistry, build_registry, extra_modules_from_env
from proxy.settings import DEFAULT_POLICY, Settings
from proxy.workers import WORKER_ENV, Supervisor, announce_ready, die_with_parent, reserve_port, worker_ready_fd

log = logging.getLogger("chaperone")

SERVE_EXAMPLES = """examples:
  chaperone serve                                  # the embedded default policy on 127.0.0.1:8080
  chaperone serve --policy my.yaml --port 9000
  chaperone serve --workers 4                      # 4 processes on one port; SIGHUP reloads all, SIGTERM drains all
  OPENAI_BASE_URL=http://127.0.0.1:8080/v1 python app.py   # point an app at it

environment: CHAPERONE_POLICY, CHAPERONE_HOST, CHAPERONE_PORT, CHAPERONE_HOME (state, default ~/.chaperone),
CHAPERONE_RELOAD_INTERVAL_S, CHAPERONE_SHUTDOWN_TIMEOUT_S, CHAPERONE_WORKERS, CHAPERONE_PLUGINS (extra plugin modules),
OTEL_TRACES_EXPORTER=console|otlp"""

CHECK_EXAMPLES = """examples:
  chaperone check my-policy.yaml
  chaperone check policies/*.yaml       # exit status 1 if any file has errors"""

SCAN_EXAMPLES = """input: one JSON object per line, {"id": …, "text": "…"} (one user message) or
{"id": …, "messages": [{"role": "user", "content": "…"}, …]} (a chat as-is); blank lines are skipped.

examples:
  chaperone scan --policy my.yaml prompts.jsonl > report.jsonl
  chaperone scan --policy my.yaml --chain strict --fail-on block prompts.jsonl   # exit 1 if any would be blocked
  jq -c '{id: .request_id, messages: .body.messages}' traffic.jsonl | chaperone scan --policy my.yaml -
  chaperone scan --policy my.yaml --summary-json summary.json --out report.jsonl prompts.jsonl

output: one line per input, in input order: {"id", "line", "steps": {STEP: report or null}}, or
{"id", "line", "error"} for a bad line. Only steps whose plugin implements scan are run (the rest are
listed as "not scanned"); every step's on_startup/on_shutdown runs; nothing is sent to a backend.
A summary goes to stderr at the end. Exit status: 0; 1 when a --fail-on condition held; 2 when the
scan could not run (policy errors, unknown chain, missing input file); 141 when the output was closed
(`| head`); 130 on Ctrl-C.
environment: CHAPERONE_HOME (the store of the policy lives there), CHAPERONE_PLUGINS"""


def _env_settings() -> Settings | None:
    """Settings from CHAPERONE_* variables; None (after saying which is wrong) when one is malformed."""
    try:
        return Settings.from_env()
    except ValueError as exc:
        print(f"chaperone: bad CHAPERONE_* environment setting: {exc}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from proxy.tracing import provider_from_env

    base = _env_settings()
    if base is None:
        return 2
    settings = Settings(
        policy_path=Path(args.policy) if args.policy else base.policy_path,
        host=args.host or base.host,
        port=args.port if args.port is not None else base.port,
        home=base.home,
        reload_interval_s=base.reload_interval_s,
        shutdown_timeout_s=base.shutdown_timeout_s,
        tracer_provider=provider_from_env(),
        workers=args.workers if args.workers is not None else base.workers,
    )
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"chaperone: cannot create the state directory {settings.home}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    registry = _registry()
    if registry is None:
        return 2
    try:  # fail before binding the port, with the same messages as `chaperone check`
        policy = load_policy(settings.policy_path, registry)
    except PolicyError as exc:
        print(exc.report(), file=sys.stderr)
        print("chaperone: not started: the policy has errors", file=sys.stderr)
        return 2
    ready_fd = worker_ready_fd()
    if ready_fd is None and settings.workers > 1:
        return _serve_workers(args, settings, policy)
    if ready_fd is not None:
        die_with_parent()
    return _serve_one(settings, registry, ready_fd)


def _serve_one(settings: Settings, registry: PluginRegistry, ready_fd: int | None) -> int:
    """One serving process: the whole server, or one worker of a ``--workers`` parent (``ready_fd`` set)."""
    from proxy.server import create_app

    app = create_app(settings, registry=registry)
    loop = _new_loop()
    try:
        loop.run_until_complete(_run(app, settings, ready_fd))
    except PolicyError as exc:  # the file changed between the check above and the start
        print(exc.report(), file=sys.stderr)
        return 2
    except EngineFailed as exc:  # [launcher] a launch: backend's engine did not start
        print(f"chaperone: not started: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"chaperone: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings, policy: Policy) -> int:
    """The ``--workers N`` parent: reserve the port, run N workers on it (SO_REUSEPORT), supervise them."""
    if not sys.platform.startswith("linux"):
        print("chaperone: --workers needs Linux (SO_REUSEPORT balancing, PR_SET_PDEATHSIG); run one process "
              "per port behind a load balancer instead", file=sys.stderr)  # fmt: skip
        return 2
    try:
        placeholder, port = reserve_port(settings.host, settings.port)
    except OSError as exc:
        print(f"chaperone: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    launched = sorted({r.backend for r in policy.routes.values() if policy.backends[r.backend].launch is not None})
    if launched:  # [launcher] each worker would start its own copy of the engine
        placeholder.close()
        print(f"chaperone: --workers {settings.workers} with launched engines ({', '.join(launched)}) would start "
              "one engine per worker; serve with one worker, or run `chaperone launch` once and name its url: "
              "in the policy (CHAPERONE_LOCAL_MODEL=off for the default policy's mock)", file=sys.stderr)  # fmt: skip
        return 2
    host = placeholder.getsockname()[0]
    argv = [
        sys.executable, "-m", "proxy.cli", *(["--verbose"] if args.verbose else []), "serve",
        "--policy", str(settings.policy_path), "--host", settings.host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    supervisor = Supervisor(argv, settings.workers, settings.home, settings.shutdown_timeout_s)

    def banner(pids: list[int]) -> str:
        url = f"http://{host}:{port}/v1"
        used = {route.backend for route in policy.routes.values()}
        lines = _banner_lines(policy, used, {}, url, settings)
        lines.append(f"  workers: {len(pids)} processes on one port (SO_REUSEPORT), pids " + ", ".join(map(str, pids)))
        return "\n".join(lines)

    try:
        return asyncio.run(supervisor.run(banner))
    finally:
        placeholder.close()


async def _run(app: web.Application, settings: Settings, ready_fd: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and let in-flight requests finish (bounded).

    As a worker (``ready_fd`` set) the socket shares its port with the other workers and, once it
    listens, the worker tells its parent (which prints the banner) instead of printing one.
    """
    from proxy.protocol import ProxyRunner

    runner = ProxyRunner(  # JSON errors even for requests aiohttp cannot parse
        app, handler_cancellation=True, access_log=None, shutdown_timeout=settings.shutdown_timeout_s
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=2048, reuse_port=ready_fd is not None)
        await site.start()
        if ready_fd is not None:
            announce_ready(ready_fd)
        else:
            host, port = runner.addresses[0][:2]
            print(_banner(app, f"http://{host}:{port}/v1", settings), flush=True)
        gctune.tune()  # after startup, so what it allocated is never scanned again
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: no new connections; in-flight requests get up to %ss", settings.shutdown_timeout_s)
    finally:
        await runner.cleanup()


def _banner(app: web.Application, url: str, settings: Settings) -> str:
    from proxy.runtime import RUNTIME

    runtime = app[RUNTIME]
    active = runtime.current
    assert active is not None
    urls = runtime.builtin_urls()
    for backend in active.backends.values():  # [launcher] where each launched engine listens
        group = getattr(backend, "group", None)
        if group is not None:
            urls[f"launch:{group.name}"] = ", ".join(engine.base_url for engine in group.engines)
    return "\n".join(_banner_lines(active.policy, set(active.backends), urls, url, settings))


def _banner_lines(policy: Policy, used: set[str], builtin: dict[str, str], url: str, settings: Settings) -> list[str]:
    """What the start-up banner says; ``builtin`` is empty when each worker runs its own bundled backends."""
    lines = [f"chaperone listening on {url}", f"  policy: {policy.source}"]
    for name, backend in policy.backends.items():
        if name not in used:
            continue
        if backend.builtin == "mock":
            where = f"at {builtin['mock']}" if "mock" in builtin else "(one per worker, each on its own loopback port)"
            lines.append(f"  backend {name}: the bundled MOCK backend {where} (a test double, not an LLM)")
        elif backend.launch is not None:  # [launcher]
            launch = backend.launch
            where = f" at {builtin[f'launch:{name}']}" if f"launch:{name}" in builtin else ""
            lines.append(f"  backend {name}: {launch.engine} engine started by the proxy{where}, "
                         f"serving {', '.join(launch.names)}")  # fmt: skip
        else:
            lines.append(f"  backend {name}: {backend.url}")
    for name, backend in policy.backends.items():  # [launcher] an optional engine that is not installed
        if backend.enabled and backend.launch is not None and name not in used and (why := backend.launch.missing()):
            lines.append(f"  backend {name} not started: {why}")
    lines.append("  models: " + ", ".join(f"{m} → {r.backend}" for m, r in policy.routes.items()))
    if policy.open:
        lines.append("  keys: none — running OPEN: any client that can reach this address may use it")
        if settings.host not in ("127.0.0.1", "localhost", "::1"):
            lines.append(f"  WARNING: open and listening on {settings.host}: add keys unless the network is private")
    else:
        virtual = " + virtual keys (admin API at /chaperone/keys)" if policy.admin is not None else ""
        lines.append(f"  keys: {len(policy.keys or {})} configured{virtual}")
    lines.append(f"  state: {settings.home}")
    return lines


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.new_event_loop()


def _registry() -> PluginRegistry | None:
    """Built-in, entry-point and CHAPERONE_PLUGINS plugins; None (after saying why) if one cannot load."""
    try:
        return build_registry(extra=extra_modules_from_env(os.environ.get("CHAPERONE_PLUGINS")))
    except (ImportError, TypeError, ValueError) as exc:
        print(f"chaperone: cannot load plugins: {exc}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    registry = _registry()
    if registry is None:
        return 2
    failed = 0
    for path in args.files:
        try:
            policy = load_policy(path, registry)
        except PolicyError as exc:
            print(exc.report(), file=sys.stderr)
            failed += 1
            continue
        chains = ", ".join(repr(chain) for chain in policy.chains.values())
        print(f"{path}: ok ({len(policy.routes)} models, chains: {chains})")
        for warning in _passthrough_warnings(policy):
            print(f"{path}: warning: {warning}", file=sys.stderr)
    return 1 if failed else 0


def _passthrough_warnings(policy: Policy) -> list[str]:
    """Passthrough rules that let a prompt-carrying path skip guards some chain has (steps that can ``scan``)."""
    from proxy.passthrough import risky_rules

    guarded = [
        f"{chain.name}: {step.name}" for chain in policy.chains.values() for step in chain.steps
        if callable(getattr(step.plugin, "scan", None))
    ]  # fmt: skip
    if not guarded:
        return []
    rules = [policy.passthrough, *(entry[3] for entry in (policy.keys or {}).values() if entry[3] is not None)]
    return [f"{line} without the guards of the chain ({', '.join(guarded)})" for line in risky_rules(rules)]


def _scan(args: argparse.Namespace) -> int:
    from proxy.scan import ScanOptions, run

    base = _env_settings()
    if base is None:
        return 2
    registry = _registry()
    if registry is None:
        return 2
    options = ScanOptions(
        policy=Path(args.policy) if args.policy else base.policy_path,
        input=args.input,
        home=base.home,
        chain=args.chain,
        model=args.model,
        out=Path(args.out) if args.out else None,
        concurrency=args.concurrency,
        summary_json=Path(args.summary_json) if args.summary_json else None,
        fail_on=frozenset(args.fail_on or ()),
        progress="none" if args.quiet else "auto",
        progress_interval_s=args.progress_interval,
    )
    return run(options, registry, loop_factory=_new_loop)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _add_scan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from proxy.scan import FAIL_ON

    scan = sub.add_parser(
        "scan",
        help="dry-run a policy's request-side guards over a JSONL file of prompts",
        description="Run the scan of every guard in a chain over a file of prompts and report what each "
        "would find or do, without calling any backend.",
        epilog=SCAN_EXAMPLES,
        formatter_class=_Raw,
    )
    scan.add_argument("input", help="JSONL file of prompts, or - for stdin")
    scan.add_argument("--policy", help=f"policy file (default: $CHAPERONE_POLICY or {DEFAULT_POLICY.name})")
    scan.add_argument("--chain", help="chain to scan with (default: the policy's default_chain)")
    scan.add_argument("--model", help="model name put in each request (default: the policy's first model route)")
    scan.add_argument("--out", metavar="FILE", help="write the result lines here instead of stdout")
    scan.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON")
    scan.add_argument(
        "--fail-on", action="append", choices=FAIL_ON,
        help="exit 1 if any input would be blocked (block), was flagged (flag), or a line or scan failed "
        "(error); repeatable",
    )  # fmt: skip
    scan.add_argument("--concurrency", type=_positive_int, default=8, help="inputs scanned at once (default 8)")
    scan.add_argument("-q", "--quiet", action="store_true", help="no progress (the summary is still printed)")
    scan.add_argument(
        "--progress-interval", type=float, default=10.0, metavar="S",
        help="seconds between progress lines when stderr is not a terminal (default 10)",
    )  # fmt: skip
    scan.set_defaults(func=_scan)


def _bench(args: argparse.Namespace) -> int:
    # [bench] `chaperone bench run|sweep|compare|overhead` lives in the bench package (bench/cli.py)
    from bench.cli import main as bench_main

    return bench_main(args.rest)


def _delegate(command: str, rest: list[str]) -> int:
    # [evals] `chaperone eval run|compare|plugins` and `chaperone rollout` live in the evals package (evals/cli.py)
    from evals.cli import main as eval_main
    from evals.cli import rollout_main

    return eval_main(rest) if command == "eval" else rollout_main(rest)


def _dataset(args: argparse.Namespace) -> int:
    # [loop] `chaperone dataset list|show|export` lives in the dataset package (dataset/cli.py)
    try:
        from dataset.cli import main as dataset_main
    except ImportError as exc:  # the `dataset` extra (datasketch, langdetect) is not installed
        print(f"chaperone dataset: {exc}; install it with: pip install 'chaperone[dataset]'", file=sys.stderr)
        return 2
    return dataset_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaperone", description="An OpenAI-compatible LLM gateway with a plugin chain."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the proxy", epilog=SERVE_EXAMPLES, formatter_class=_Raw)
    serve.add_argument("--policy", help=f"policy file (default: $CHAPERONE_POLICY or {DEFAULT_POLICY.name})")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument(
        "--workers", type=_positive_int, metavar="N",
        help="worker processes sharing the port, to use N cores (default 1, or $CHAPERONE_WORKERS)",
    )  # fmt: skip
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check", help="validate policy files", epilog=CHECK_EXAMPLES, formatter_class=_Raw)
    check.add_argument("files", nargs="+", help="policy files")
    check.set_defaults(func=_check)

    _add_scan(sub)

    from backends.mock import register_cli
    from proxy.keys_cli import register_cli as register_keys_cli

    register_cli(sub)
    register_keys_cli(sub)
    from backends.launch.cli import register_cli as register_launch_cli  # [launcher]

    register_launch_cli(sub)
    from proxy.usage_cli import register_cli as register_usage_cli

    register_usage_cli(sub)

    bench = sub.add_parser("bench", help="load tests: run, sweep, compare, overhead", add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_bench)
    for name, text in (("eval", "evaluate models: run, compare, plugins"), ("rollout", "move a canary's weights")):
        sub.add_parser(name, help=text, add_help=False)  # [evals] parsed by evals/cli.py (main() delegates)
    dataset = sub.add_parser("dataset", help="captured traffic as fine-tuning files", add_help=False)  # [loop]
    dataset.add_argument("rest", nargs=argparse.REMAINDER)
    dataset.set_defaults(func=_dataset)
    return parser


class _Raw(argparse.RawDescriptionHelpFormatter):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # every option after `bench` belongs to bench/cli.py, --help included
        return _bench(argparse.Namespace(rest=argv[1:]))
    if argv[:1] in (["eval"], ["rollout"]):  # [evals] every option after the command belongs to evals/cli.py
        return _delegate(argv[0], argv[1:])
    if argv[:1] == ["dataset"]:  # [loop] every option after `dataset` belongs to dataset/cli.py
        return _dataset(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    level = (
        logging.DEBUG if args.verbose else getattr(logging, os.environ.get("CHAPERONE_LOG_LEVEL", "INFO").upper(), 20)
    )
    worker = os.environ.get(WORKER_ENV)
    tag = f"worker {worker} " if worker else ""
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)  # chatty at INFO, and per match at DEBUG
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
