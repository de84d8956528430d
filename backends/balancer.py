"""Choosing among interchangeable targets: strategies, in-flight and latency bookkeeping, passive ejection.

A ``Balancer`` knows nothing about HTTP: it hands out indexes into a list of targets (the replicas of
one backend in ``backends.pool``, or the backends of a model route in ``backends.canary``) and is told
how each request went. Picks are deterministic for a given history (no random numbers), so tests
can assert exact distributions.

Strategies:

- ``round_robin``: in turn.
- ``weighted``: smooth weighted round robin (nginx's), so weights 3:1 give ``a a b a`` and never bursts.
- ``least_outstanding``: the target with the fewest requests in flight; ties go in turn.
- ``ewma``: the lowest ``latency EWMA x (in flight + 1)``; a target without a sample yet goes first.

Passive health: ``eject_after`` consecutive failures eject a target for ``eject_s``; once back, one more
failure ejects it again (it is on probation until a success). When every target is out, all are tried
anyway (panic mode) rather than failing requests that might succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.policyfile import BalanceConfig


@dataclass(slots=True)
class Target:
    """One target's counters (what ``status()`` reports)."""

    label: str
    weight: float = 1.0
    outstanding: int = 0
    ewma_s: float | None = None
    failures: int = 0  # consecutive
    ejected_until: float = 0.0
    down: bool = False  # the active health check failed
    requests: int = 0
    errors: int = 0
    ejections: int = 0
    current: float = 0.0  # smooth weighted round robin state

    def available(self, now: float) -> bool:
        return not self.down and self.ejected_until <= now


class Balancer:
    """Picks a target index per request and keeps each target's health; one per pool or route."""

    def __init__(
        self, labels: Sequence[str], config: BalanceConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not labels:
            raise ValueError("a balancer needs at least one target")
        weights = config.weights or [1.0] * len(labels)
        self.targets = [Target(label, weight) for label, weight in zip(labels, weights, strict=True)]
        self.config = config
        self.clock = clock
        self._next = 0  # round-robin cursor, also breaks ties for the other strategies

    def pick(self, exclude: Collection[int] = ()) -> int:
        """The index of the target for the next request, avoiding ``exclude`` when anything else is left."""
        targets = self.targets
        n = len(targets)
        start = self._next
        now = self.clock()
        candidates = []
        for k in range(n):
            i = start + k - n if start + k >= n else start + k
            target = targets[i]
            if not target.down and target.ejected_until <= now and i not in exclude:
                candidates.append(i)
        if not candidates:  # panic: everything is out; try them all in turn rather than fail
            order = [(start + k) % n for k in range(n)]
            candidates = [i for i in order if i not in exclude] or order
        strategy = self.config.strategy
        if strategy == "round_robin":
            chosen = candidates[0]
        elif strategy == "weighted":
            chosen = self._weighted(candidates)
        elif strategy == "least_outstanding":
            chosen = min(candidates, key=lambda i: targets[i].outstanding)
        else:
            chosen = min(candidates, key=lambda i: (targets[i].ewma_s or 0.0) * (targets[i].outstanding + 1))
        self._next = chosen + 1 if chosen + 1 < n else 0
        return chosen

    def _weighted(self, candidates: list[int]) -> int:
        targets = self.targets
        total = sum(targets[i].weight for i in candidates)
        if total <= 0:
            return candidates[0]
        for i in candidates:
            targets[i].current += targets[i].weight
        chosen = max(sorted(candidates), key=lambda i: targets[i].current)  # ties: the lower index, as nginx
        targets[chosen].current -= total
        return chosen

    # ---- what happened ---------------------------------------------------------------------

    def begin(self, i: int) -> None:
        target = self.targets[i]
        target.outstanding += 1
        target.requests += 1

    def finish(self, i: int) -> None:
        """The request left the target (answer read, stream closed, or given up)."""
        self.targets[i].outstanding -= 1

    def succeeded(self, i: int, latency_s: float | None) -> None:
        target = self.targets[i]
        target.failures = 0
        if latency_s is not None:
            alpha = self.config.ewma_alpha
            target.ewma_s = latency_s if target.ewma_s is None else alpha * latency_s + (1 - alpha) * target.ewma_s

    def failed(self, i: int) -> None:
        """The target failed in a way that says it is unhealthy (not the client's fault, not a cancel)."""
        target = self.targets[i]
        target.errors += 1
        target.failures += 1
        if target.failures >= self.config.eject_after:
            target.ejected_until = self.clock() + self.config.eject_s
            target.ejections += 1
            target.failures = self.config.eject_after - 1  # on probation: one more failure ejects it again

    def set_down(self, i: int, down: bool) -> None:
        """The active health check's verdict; a passing check also ends a passive ejection."""
        target = self.targets[i]
        target.down = down
        if not down:
            target.ejected_until = 0.0
            target.failures = 0

    def status(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [
            {
                "url": t.label,
                "healthy": t.available(now),
                "down": t.down,
                "ejected_for_s": round(max(0.0, t.ejected_until - now), 3),
                "outstanding": t.outstanding,
                "ewma_ms": None if t.ewma_s is None else round(t.ewma_s * 1000, 3),
                "weight": t.weight,
                "requests": t.requests,
                "errors": t.errors,
                "ejections": t.ejections,
            }
            for t in self.targets
        ]
