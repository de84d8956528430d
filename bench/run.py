"""Run the same workload against each target in turn and summarise: the engine behind ``bench run`` and ``sweep``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench import gateway
from bench.client import HEADERS, new_session
from bench.load import Drive, LoadSpec, parse_window
from bench.progress import Progress
from bench.stats import distribution
from bench.summary import DEFINITIONS, differences, mark_window, record, summarize
from bench.workload import Workload, WorkloadSpec
from proxy.tokens import encoding_for


class Health:
    """The load generator's own health during one target's run: event-loop lag and CPU per streamed event.

    A task asks to wake every ``tick_s``; how late it wakes is the delay any timestamp taken on this
    loop may carry (the generator's timing error). CPU is this process's, over the run.
    """

    def __init__(self, tick_s: float = 0.005) -> None:
        self.tick_s = tick_s
        self.lags: list[float] = []

    async def watch(self) -> None:
        while True:  # perf_counter, not loop.time(): uvloop's clock has millisecond steps
            due = time.perf_counter() + self.tick_s
            await asyncio.sleep(self.tick_s)
            self.lags.append(max(0.0, time.perf_counter() - due))

    def report(self, cpu_s: float, wall_s: float, events: int) -> dict[str, Any]:
        return {
            "loop_lag_ms": distribution([lag * 1e3 for lag in self.lags]),
            "client_cpu_s": round(cpu_s, 3),
            "client_cpu_pct": round(100 * cpu_s / wall_s, 1) if wall_s else None,
            "events": events,
            "events_per_cpu_s": round(events / cpu_s) if cpu_s else None,
        }


@dataclass
class Plan:
    """Everything one ``bench run`` needs, targets in order (the first is the baseline unless named)."""

    targets: dict[str, str]
    workload: WorkloadSpec
    load: LoadSpec
    api_key: str | None = None
    slos: dict[str, float] = field(default_factory=dict)
    baseline: str | None = None
    progress: bool = True
    timeout_s: float = 300.0
    metrics_key: str | None = None  # bearer key for a Chaperone target's /metrics (its admin key), if it asks


def endpoint_url(base: str, endpoint: str) -> str:
    base = base.rstrip("/")
    path = "/chat/completions" if endpoint == "chat" else "/completions"
    return base if base.endswith(path) else base + path


async def run_plan(plan: Plan, stop: asyncio.Event) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The summary (``{"targets": {NAME: figures}, "differences", …}``) and every target's request records."""
    headers = dict(HEADERS)
    if plan.api_key:
        headers["authorization"] = f"Bearer {plan.api_key}"
    scrape_headers = {"authorization": f"Bearer {plan.metrics_key}"} if plan.metrics_key else headers
    enc = encoding_for(plan.workload.model)[0]
    workload = Workload(plan.workload)
    summaries: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    async with new_session(plan.timeout_s) as session:
        for name, base in plan.targets.items():
            if stop.is_set():
                break
            url = endpoint_url(base, plan.workload.endpoint)
            before = await gateway.scrape(session, url, scrape_headers)
            progress = Progress(f"{name} ({plan.load.label})", plan.load.requests, enabled=plan.progress)
            health = Health()
            watcher = asyncio.ensure_future(health.watch())
            cpu0, wall0 = time.process_time(), time.perf_counter()
            try:
                outcomes = await Drive(session, url, headers, plan.load, workload, stop, progress).run()
            finally:
                watcher.cancel()
                progress.close()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            after = await gateway.scrape_after(session, url, scrape_headers, before, len(outcomes))
            rows = [record(o, name, enc) for o in outcomes]
            span = max((r["end_s"] for r in rows), default=0.0) - min((r["start_s"] for r in rows), default=0.0)
            window = mark_window(rows, parse_window(plan.load.warmup, span), parse_window(plan.load.cooldown, span))
            summary = summarize(rows, window, plan.slos)
            summary["gateway"] = gateway.attribute(before, after)
            summary["load"] = plan.load.label
            summary["generator"] = health.report(cpu, wall, sum(o.events for o in outcomes))
            summaries[name], records[name] = summary, rows
    out: dict[str, Any] = {"targets": summaries, "definitions": DEFINITIONS, "interrupted": stop.is_set()}
    baseline = plan.baseline or next(iter(plan.targets))
    if len(summaries) > 1 and baseline in summaries:
        out["differences"] = differences(summaries, baseline)
    return out, records
