"""Percentiles, distribution summaries and distribution-free confidence intervals for them.

Percentiles are nearest-rank (a value that was measured, never an interpolation). The 95 %
interval of a percentile comes from the binomial distribution of the rank (normal approximation):
it needs no assumption about the latency distribution, which is what makes ``compare``'s "within
noise" verdict honest for tail percentiles on few samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PERCENTILES = (50, 90, 99)
Z95 = 1.959964


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def pct_interval(values: Sequence[float], p: float) -> tuple[float, float]:
    """A ~95 % confidence interval of the ``p``-th percentile of sorted ``values`` (order statistics)."""
    n = len(values)
    if not n:
        return (math.nan, math.nan)
    q = p / 100
    half = Z95 * math.sqrt(n * q * (1 - q))
    lo = max(0, math.floor(n * q - half) - 1)
    hi = min(n - 1, math.ceil(n * q + half))
    return (values[lo], values[hi])


def distribution(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """``{"n", "mean", "p50", "p90", "p99", "max", "ci95": {"p50": [lo, hi], …}}``; figures None when empty."""
    ordered = sorted(v for v in values if v is not None and not math.isnan(v))
    out: dict[str, Any] = {"n": len(ordered)}
    if not ordered:
        out.update({"mean": None, "max": None, **{f"p{p}": None for p in PERCENTILES}, "ci95": {}})
        return out
    out["mean"] = round(sum(ordered) / len(ordered), digits)
    for p in PERCENTILES:
        out[f"p{p}"] = round(pct(ordered, p), digits)
    out["max"] = round(ordered[-1], digits)
    out["ci95"] = {f"p{p}": [round(x, digits) for x in pct_interval(ordered, p)] for p in PERCENTILES}
    return out


def cdf_points(values: Sequence[float], points: int = 200) -> list[tuple[float, float]]:
    """At most ``points`` (value, cumulative fraction) pairs of the empirical CDF, for plotting."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return []
    step = max(1, n // points)
    pairs = [(ordered[i], (i + 1) / n) for i in range(0, n, step)]
    if pairs[-1][1] < 1.0:
        pairs.append((ordered[-1], 1.0))
    return pairs
