"""Micro-benchmark of PII restoration on the stream path: µs per ``StreamRestorer.feed`` for typical pieces.

A streamed answer arrives as 5-20 character content deltas and every one goes through ``feed``; this times it
when the request issued no reversible placeholder (the identity fast path), when it issued some but the piece has
no ``<``, and for an answer that echoes placeholders (split so some pieces cut a placeholder), next to the cost
of calling a Python function that returns its argument. Each timing includes creating one restorer per 5 pieces.

    python benchmarks/pii_restore_micro.py [--iterations 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins._pii.restore import PlaceholderMap, Span

PLAIN = ["The meeting ", "is moved to ", "Thursday at ", "ten, in the ", "usual room."]
ECHOING = ["Dear <PERS", "ON_1>, your ", "mail <EMAIL_", "ADDRESS_1> ", "is <PERSON_2>'s."]


def best_us(fn: Callable[[], None], calls_per_run: int, iterations: int) -> float:
    """Best of five timings, in µs per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(iterations // calls_per_run):
            fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e6 / (iterations // calls_per_run * calls_per_run)


def feeding(placeholders: PlaceholderMap, pieces: list[str]) -> Callable[[], None]:
    def run() -> None:
        restorer = placeholders.restorer()
        for piece in pieces:
            restorer.feed(piece)

    return run


def issued_map(count: int) -> PlaceholderMap:
    placeholders = PlaceholderMap()
    for n in range(count):
        name = f"Person {n}"
        placeholders.apply(name, [Span("PERSON", 0, len(name), "pseudonymize")])
    placeholders.apply("ann@example.com", [Span("EMAIL_ADDRESS", 0, 15, "pseudonymize")])
    return placeholders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000, help="feed calls per timing")
    iterations = parser.parse_args().iterations
    empty, some, many = PlaceholderMap(), issued_map(3), issued_map(200)
    restorer = some.restorer()
    assert "".join(map(restorer.feed, ECHOING)) == "Dear Person 0, your mail ann@example.com is Person 1's."

    def identity(piece: str) -> str:
        return piece

    def reference() -> None:
        for piece in PLAIN:
            identity(piece)

    rows = [
        ("a Python function returning its argument (reference)", reference, len(PLAIN)),
        ("no placeholder issued", feeding(empty, PLAIN), len(PLAIN)),
        ("no placeholder issued, pieces with placeholders", feeding(empty, ECHOING), len(ECHOING)),
        ("4 issued, plain pieces", feeding(some, PLAIN), len(PLAIN)),
        ("4 issued, pieces echoing and cutting placeholders", feeding(some, ECHOING), len(ECHOING)),
        ("201 issued, pieces echoing and cutting placeholders", feeding(many, ECHOING), len(ECHOING)),
    ]
    print(f"| case | µs per feed ({iterations} calls, best of 5) |\n|---|---|")
    for name, fn, calls in rows:
        print(f"| {name} | {best_us(fn, calls, iterations):.3f} |")


if __name__ == "__main__":
    main()
