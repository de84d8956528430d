"""In-process micro-benchmark of the diskcache store's cost per exact-cache miss: a ``get`` then a ``set``.

An exact-cache miss costs one store read (is the answer there?) and one write (keep it). This runs
``--concurrency`` coroutines on uvloop, each doing read-then-write pairs of unique keys with a 2 KB
value on a fresh ``DiskStore``, twice per round: with every read sent to the store's thread pool (as
the store did before reads ran on the loop) and with reads on the event loop (today's store). It
reports process CPU µs per pair, the median over ``--rounds``, and the ratio of the two (same run).

    python benchmarks/store_micro.py [--pairs 4000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from proxy.store.disk import DiskStore

VALUE = os.urandom(1024).hex().encode()


async def pairs(n: int, concurrency: int, reads_on_loop: bool) -> float:
    """CPU µs per get+set pair on a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        store = DiskStore(Path(tmp), prefix="bench:", clock=time.time)
        await store.set("warm", b"x")
        if not reads_on_loop:
            pool_only: Any = lambda key, default: (False, None)  # noqa: E731 — every read takes the pool
            store._read_here = pool_only  # type: ignore[method-assign]

        async def worker(w: int) -> None:
            for i in range(n // concurrency):
                key = f"k{w}-{i}"
                await store.get(key)
                await store.set(key, VALUE, ttl_s=3600)

        start = time.process_time()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        cpu = time.process_time() - start
        await store.close()
    return cpu / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    pool, loop = [], []
    for rnd in range(1, args.rounds + 1):
        pool.append(uvloop.run(pairs(args.pairs, args.concurrency, reads_on_loop=False)))
        loop.append(uvloop.run(pairs(args.pairs, args.concurrency, reads_on_loop=True)))
        line = f"round {rnd}/{args.rounds}: reads on the pool {pool[-1]:.0f} µs/pair, on the loop {loop[-1]:.0f}"
        print(line, file=sys.stderr)
    p, q = statistics.median(pool), statistics.median(loop)
    print(f"get+set pair, CPU µs (median of {args.rounds}): reads on the pool {p:.0f}, on the loop {q:.0f}; "
          f"ratio {q / p:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
