"""In-process micro-benchmark of routing decisions: what a replica pick, a split pick and the router cost.

The end-to-end harness cannot see tens of nanoseconds through its machine noise; this times, in a
tight loop and without sockets, (1) the router's terminal for a plain single-url route with a stub
backend (the path every request takes; the split check is one attribute read), (2) a ``Balancer``
pick plus its bookkeeping for each strategy over three replicas, (3) a canary ``Split`` pick (hash of
the sticky identity). Figures are ns per request.

    python benchmarks/balance_micro.py [--iterations 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.balancer import Balancer
from backends.canary import Split
from backends.router import make_terminal
from proxy.exchange import ApiRequest, ApiResponse
from proxy.policy import Caller, Route
from proxy.policyfile import BalanceConfig

ANSWER = ApiResponse(200, raw=b"{}")


class StubBackend:
    name = "b"

    async def send(self, exchange: Any, request: Any = None) -> ApiResponse:
        return ANSWER


class StubExchange:
    """Only what the router and ``Split.pick`` read."""

    def __init__(self, route: Route, user: str) -> None:
        self.route = route
        self.request = ApiRequest("chat", "/chat/completions", {"model": "m", "user": user})
        self.caller = Caller("app", None, None)  # type: ignore[arg-type]
        self.request_id = "req"
        self.stash: dict[Any, Any] = {}  # [console2] the router reads it (LOOP)


def ns_per(iterations: int, started: float) -> float:
    return (time.perf_counter() - started) / iterations * 1e9


async def router_ns(iterations: int) -> float:
    terminal = make_terminal({"b": StubBackend()}, None)  # type: ignore[dict-item]
    exchange: Any = StubExchange(Route("m", "b", None), "u")
    started = time.perf_counter()
    for _ in range(iterations):
        await terminal(exchange)
    return ns_per(iterations, started)


def balancer_ns(strategy: str, iterations: int) -> float:
    weights = [3.0, 2.0, 1.0] if strategy == "weighted" else None
    balancer = Balancer(["a", "b", "c"], BalanceConfig(strategy=strategy, weights=weights))  # type: ignore[arg-type]
    started = time.perf_counter()
    for _ in range(iterations):
        i = balancer.pick()
        balancer.begin(i)
        balancer.succeeded(i, 0.01)
        balancer.finish(i)
    return ns_per(iterations, started)


def split_ns(iterations: int) -> float:
    variants = (Route("m", "b", "v1", variant="v1"), Route("m", "b", "v2", variant="v2"))
    split = Split("m", variants, (95.0, 5.0), "user")
    exchanges: list[Any] = [StubExchange(Route("m", "b", None), f"user-{i}") for i in range(1000)]
    started = time.perf_counter()
    for k in range(iterations):
        split.pick(exchanges[k % 1000])
    return ns_per(iterations, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200_000)
    n = parser.parse_args().iterations
    print("| what | ns/request |\n|---|---:|")
    print(f"| router terminal, single-url route (stub backend) | {asyncio.run(router_ns(n)):.0f} |")
    for strategy in ("round_robin", "weighted", "least_outstanding", "ewma"):
        print(f"| balancer {strategy}, 3 replicas (pick + bookkeeping) | {balancer_ns(strategy, n):.0f} |")
    print(f"| canary split pick (blake2b of the user) | {split_ns(n):.0f} |")


if __name__ == "__main__":
    main()
