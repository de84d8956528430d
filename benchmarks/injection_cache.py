"""Micro-benchmark of the injection plugin's verdict cache: µs per cached hit, and per miss for scale.

A chat resends its history on every turn, so most texts the plugin scores were scored before. Each
call here scores a fresh copy of the text (a new ``str``, as a parsed request body would hold, so
no hash is reused from an earlier call), at a few lengths up to the cache's limit.

    python benchmarks/injection_cache.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.injection import Injection, InjectionConfig

SENTENCE = "Please summarise the attached meeting notes and list the action items by owner. "


def per_call_us(plugin: Injection, text: str, iterations: int) -> float:
    plugin._verdict(text, "user")  # the one miss: later calls are hits
    elapsed = 0.0
    for _ in range(iterations // 1000):
        copies = [(text + "x")[:-1] for _ in range(1000)]  # distinct str objects, equal text
        started = time.perf_counter()
        for copy in copies:
            plugin._verdict(copy, "user")
        elapsed += time.perf_counter() - started
    return elapsed / (iterations // 1000 * 1000) * 1e6


def miss_us(plugin: Injection, text: str, iterations: int) -> float:
    started = time.perf_counter()
    for i in range(iterations):
        plugin.detector.scan(f"{i} {text}", "user")
    return (time.perf_counter() - started) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    plugin = Injection(InjectionConfig())
    print(f"{'chars':>6} {'hit µs':>8} {'miss µs':>9}")
    for chars in (80, 1000, 4000):
        text = (SENTENCE * (chars // len(SENTENCE) + 1))[:chars]
        hit = per_call_us(plugin, text, args.iterations)
        miss = miss_us(plugin, text, max(args.iterations // 200, 20))
        print(f"{chars:>6} {hit:>8.2f} {miss:>9.0f}")


if __name__ == "__main__":
    main()
