"""In-process micro-benchmark of the ``budget`` plugin: µs per request it adds, counting alone and with rpm/tpm.

A typical chat request (a system prompt and a 200-word user message, model gpt-4o) runs through
``Chain.run`` + ``Chain.complete`` with a terminal that answers a prepared response, for an empty
chain, ``budget: {}`` (counting and window check only) and ``budget`` with per-key rpm and tpm on the
real diskcache store (and on Redis when ``--redis URL`` is given): once with limits so high that a
process's first lease lasts the whole run (the steady state: admission and settling in process), once
with ``lease_fraction: 1/1024`` (chunks of ~97 requests and ~9765 tokens, about one store increment per
17 requests). Reported: µs per request, the difference to the empty chain, and store increments per
request. Store calls on diskcache run on its thread pool, so the figure includes the loop hand-offs a
real request pays.

    python benchmarks/budget_micro.py [--iterations 2000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.exchange import ApiRequest, ApiResponse, Attempt, Exchange, Usage
from proxy.policy import Policy, compile_policy_text
from proxy.registry import DEFAULT_PLUGINS, build_registry
from proxy.runtime import Resources
from proxy.store import StoreConfig, open_store

WORDS = ("the quick brown fox jumps over the lazy dog while a careful reader checks every line " * 13).split()[:200]
BODY = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": " ".join(WORDS)},
    ],
    "max_tokens": 256,
}


def policy(chain: str, store: str) -> Policy:
    text = textwrap.dedent(f"""
    backends:
      stub: {{url: "http://127.0.0.1:9/v1"}}
    models:
      "*": {{backend: stub}}
    chains:
      default: {chain}
    store: {store}
    """)
    modules = tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.budget")))
    return compile_policy_text(text, build_registry(entry_points=False, modules=modules), env={})


async def per_request_us(
    pol: Policy, iterations: int, store_config: StoreConfig, home: Path
) -> tuple[float, float, float]:
    """Wall and CPU (all threads of the process) µs per request, best of three runs; store incrs per request."""
    store = open_store(store_config, home)
    incrs = 0
    real_incr = store.incr

    async def counted(key: str, amount: float = 1, *, window_s: float | None = None) -> float:
        nonlocal incrs
        incrs += 1
        return await real_incr(key, amount, window_s=window_s)

    store.incr = counted  # type: ignore[method-assign]
    chain = pol.default_chain
    await chain.startup(Resources(store, home))
    answer = ApiResponse(200, raw=b"{}")

    async def terminal(ex: Exchange) -> ApiResponse:
        ex.attempts.append(Attempt("stub", "gpt-4o", 0.0, 0.0, 200))  # an upstream call: usage is charged
        return answer

    async def one() -> None:
        caller = pol.authenticate(None)
        request = ApiRequest("chat", "/chat/completions", dict(BODY), {})
        ex = Exchange("id", pol, chain, pol.route_for("gpt-4o"), request, caller, time.monotonic() + 60)
        await chain.run(ex, terminal)
        ex.usage = Usage(300, 40, 340)
        await chain.complete(ex)

    for _ in range(50):
        await one()
    incrs = 0
    best = cpu = float("inf")
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(iterations):
            await one()
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    await chain.shutdown()
    await store.close()
    return best * 1e6 / iterations, cpu * 1e6 / iterations, incrs / (3 * iterations)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--redis", help="also measure on this Redis URL (its keys are prefixed bench:<pid>:)")
    args = parser.parse_args()
    limits = "[{budget: {per_key: {rpm: 100000000, tpm: 1000000000}}}]"
    small = "[{budget: {per_key: {rpm: 100000, tpm: 10000000}, lease_fraction: 0.0009765625}}]"
    rows = (("budget counting only", "[{budget: {}}]"), ("budget + rpm + tpm", limits), ("  small leases", small))
    stores = [("diskcache", "{backend: diskcache}", StoreConfig())]
    if args.redis:
        prefix = f"bench:{os.getpid()}:"  # a fresh set of counters per run (limits are per minute)
        stores.append(("redis", f"{{backend: redis, url: '{args.redis}', prefix: '{prefix}'}}",
                       StoreConfig(backend="redis", url=args.redis, prefix=prefix)))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for label, store_yaml, config in stores:
            empty = await per_request_us(policy("[]", store_yaml), args.iterations, config, home)
            print(f"{label}: empty chain {empty[0]:.1f} µs wall, {empty[1]:.1f} µs CPU per request")
            for name, chain in rows:
                wall, cpu, incrs = await per_request_us(policy(chain, store_yaml), args.iterations, config, home)
                added = f"(+{wall - empty[0]:.1f})  CPU {cpu:7.1f} µs (+{cpu - empty[1]:.1f})  incr/req {incrs:.3f}"
                print(f"  {name:<22} wall {wall:7.1f} µs {added}")


if __name__ == "__main__":
    asyncio.run(main())
