"""``chaperone mock-backend``: run the mock backend from the command line until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from .app import create_app
from .config import MockConfig
from .faults import KNOWN_KEYS, FaultSpecError

SHUTDOWN_TIMEOUT = 2.0
BACKLOG = 4096
_EPILOG = f"""\
examples:
  chaperone mock-backend --port 8001
  chaperone mock-backend --port 0                              # a free port; the URL is printed
  chaperone mock-backend --latency-ms 200 --chunk-delay-ms 20  # slow first byte, 50 chunks/s
  chaperone mock-backend --fault status=429,retry_after=2,fail_times=1
  chaperone mock-backend --fault drop_after=5                  # every stream breaks after 5 chunks

per-request faults (same syntax as --fault):
  in the last user message:  "hello [[mock:status=503,retry_after=1]]"
  as a header:               x-mock-fault: latency_ms=500,tokens=100   (or x-mock-tokens: 100)
  fault keys: {", ".join(KNOWN_KEYS)}
introspection: GET /_mock/requests, DELETE /_mock/requests, GET /_mock/health
"""


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``mock-backend`` subcommand; its ``func`` runs the server and returns an exit code."""
    parser = subparsers.add_parser(
        "mock-backend",
        help="run a deterministic OpenAI-compatible mock upstream",
        description="Serve a deterministic OpenAI-compatible API (chat, completions, embeddings, models, "
        "moderations) with optional latency and fault injection.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8001, help="port, 0 for any free port (default: %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay before each response (default: 0)")
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="delay between stream chunks (default: 0)")
    parser.add_argument("--fault", default=None, help="fault spec applied to every inference request, e.g. status=500")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM; 0 on a clean stop, 1 if the port cannot be bound, 2 on a bad fault."""
    config = MockConfig(latency_ms=args.latency_ms, chunk_delay_ms=args.chunk_delay_ms, fault=args.fault)
    try:
        app = create_app(config)
    except FaultSpecError as exc:
        print(f"mock-backend: invalid --fault: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve(app, args.host, args.port))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(app: web.Application, host: str, port: int) -> int:
    """Serve ``app`` with handler cancellation (a disconnect cancels its handler) until a stop signal."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            print(f"mock-backend: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            return 1
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        print(f"mock backend listening on http://{shown_host}:{bound_port}/v1", flush=True)
        await _wait_for_stop_signal()
        return 0
    finally:
        await runner.cleanup()


async def _wait_for_stop_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows: Ctrl+C raises instead
            pass
    try:
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
