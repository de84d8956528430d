"""In-process micro-benchmark of authentication: static keys, virtual keys from the cache, virtual keys from the store.

Reports µs per ``authenticate`` call for: the sync ``Policy.authenticate`` of a static key (what the
handlers called before virtual keys), ``KeyRing.authenticate`` of the same static key (what they call
now), a virtual key whose record is cached, and a virtual key read from the store on every call
(cache TTL 0: the cost each replica pays at most twice a second per key), on diskcache and, with
``--redis URL``, on Redis.

    python benchmarks/keys_auth.py [--iterations 20000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.keys import KeyManager, KeyRing, KeySpec
from proxy.policy import compile_policy_text
from proxy.registry import build_registry
from proxy.store import Store, StoreConfig, open_store

POLICY = """
backends: {up: {url: "http://127.0.0.1:9/v1"}}
models: {gpt: {backend: up}}
keys: [{name: static-app, key: sk-static}]
admin: {key: admin-key-0123456789}
"""


async def per_call_us(call: Callable[[], Awaitable[object]], iterations: int) -> float:
    for _ in range(min(1000, iterations)):
        await call()
    started = time.perf_counter()
    for _ in range(iterations):
        await call()
    return (time.perf_counter() - started) / iterations * 1e6


async def measure(store: Store, label: str, iterations: int) -> list[tuple[str, float]]:
    policy = compile_policy_text(POLICY, build_registry(entry_points=False))
    _, secret = await KeyManager(store).create(KeySpec(name="bench"))
    cached, uncached = KeyRing(policy, store), KeyRing(policy, store, ttl_s=0)
    static, virtual = "Bearer sk-static", f"Bearer {secret}"

    async def sync_static() -> object:
        return policy.authenticate(static)

    rows = [
        ("static key, Policy.authenticate (before)", await per_call_us(sync_static, iterations)),
        ("static key, KeyRing.authenticate (now)", await per_call_us(lambda: cached.authenticate(static), iterations)),
        ("virtual key, cached record", await per_call_us(lambda: cached.authenticate(virtual), iterations)),
        (f"virtual key, one {label} get", await per_call_us(lambda: uncached.authenticate(virtual), iterations // 10)),
    ]
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--redis", help="also measure a Redis store at this URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        configs = [("diskcache", StoreConfig())]
        if args.redis:
            configs.append(("redis", StoreConfig(backend="redis", url=args.redis, prefix="bench-keys:")))
        print("| path | µs per call |\n| --- | ---: |")
        seen: set[str] = set()
        for label, config in configs:
            store = open_store(config, Path(home))
            try:
                for name, micros in await measure(store, label, args.iterations):
                    if name not in seen:
                        seen.add(name)
                        print(f"| {name} | {micros:.2f} |")
            finally:
                await store.close()


if __name__ == "__main__":
    asyncio.run(main())
