"""``bench sweep``: find where throughput stops growing, then measure a series of loads up to it.

Concurrency mode doubles the concurrency (1, 2, 4, …) until no target's throughput grew by at
least ``gain`` over its best so far (saturation) or ``max_concurrency`` is reached; explicit
``levels`` skip the search. Rate mode first measures the saturation throughput (closed loop at
``max_concurrency``, baseline target), then runs ``steps`` open-loop rates evenly up to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.load import LoadSpec
from bench.run import Plan, run_plan

Level = dict[str, Any]


async def _level(plan: Plan, load: LoadSpec, stop: asyncio.Event, value: float, records: dict[str, Any]) -> Level:
    summary, rows = await run_plan(replace(plan, load=load), stop)
    for name, target_rows in rows.items():
        for row in target_rows:
            row["level"] = value
        records.setdefault(name, []).extend(target_rows)
    return {"level": value, "load": load.label, "summary": summary}


def _throughputs(level: Level) -> dict[str, float]:
    return {n: s.get("requests_per_s") or 0.0 for n, s in level["summary"]["targets"].items()}


async def sweep_concurrency(
    plan: Plan,
    stop: asyncio.Event,
    levels: list[int] | None,
    max_concurrency: int,
    gain: float = 0.1,
    say: Callable[[str], None] = print,
) -> tuple[list[Level], dict[str, Any]]:
    """The levels run (with their summaries) and every request record, tagged with its level."""
    out: list[Level] = []
    records: dict[str, Any] = {}
    best: dict[str, float] = {}
    series = levels or [c for c in (2**i for i in range(16)) if c <= max_concurrency]
    for concurrency in series:
        if stop.is_set():
            break
        load = replace(plan.load, concurrency=concurrency, rate=None)
        level = await _level(plan, load, stop, concurrency, records)
        out.append(level)
        now = _throughputs(level)
        say("sweep: concurrency " + str(concurrency) + ": " + ", ".join(f"{n} {v:.1f} req/s" for n, v in now.items()))
        growing = [n for n, v in now.items() if v >= best.get(n, 0.0) * (1 + gain)]
        best = {n: max(v, best.get(n, 0.0)) for n, v in now.items()}
        if levels is None and not growing:
            say(f"sweep: saturated at concurrency {concurrency} (no target gained {gain:.0%})")
            break
    return out, records


async def sweep_rate(
    plan: Plan,
    stop: asyncio.Event,
    rates: list[float] | None,
    max_concurrency: int,
    steps: int,
    say: Callable[[str], None] = print,
) -> tuple[list[Level], dict[str, Any]]:
    out: list[Level] = []
    records: dict[str, Any] = {}
    if rates is None:
        baseline = plan.baseline or next(iter(plan.targets))
        probe = replace(plan, targets={baseline: plan.targets[baseline]})
        level = await _level(probe, replace(plan.load, concurrency=max_concurrency, rate=None), stop, 0, {})
        saturation = _throughputs(level).get(baseline) or 0.0
        if saturation <= 0:
            raise RuntimeError(f"saturation probe of {baseline} completed no request")
        say(f"sweep: saturation of {baseline} at concurrency {max_concurrency}: {saturation:.1f} req/s")
        rates = [round(saturation * (i + 1) / steps, 3) for i in range(steps)]
    for rate in rates:
        if stop.is_set():
            break
        level = await _level(plan, replace(plan.load, rate=rate, concurrency=None), stop, rate, records)
        out.append(level)
        say(f"sweep: rate {rate:g}/s: " + ", ".join(f"{n} {v:.1f} req/s" for n, v in _throughputs(level).items()))
    return out, records
