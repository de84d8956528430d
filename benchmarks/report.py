"""Turn raw samples into the numbers the harness reports: percentiles, ratios, verdicts, tables, JSON."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import pct

REFERENCE = "reference"
REFERENCE_AIOHTTP = "reference-aiohttp"  # the aiohttp-only relay of stops 1-23, for the older figures
REFERENCE_METERED = "reference-metered"  # the reference plus the least a metered gateway does: the floor
DIRECT = "direct"
EMPTY = "chaperone-empty"
NOOP8 = "chaperone-noop8"
MONEY = "chaperone-money"
TARGET_RATIOS = {EMPTY: 1.3, "chaperone-params-headers": 1.6}
CAPACITY_TARGETS = {(EMPTY, "chat c=64"): 1.2, (MONEY, "chat c=64"): 1.8}
"""The cost-and-capacity overhead budget: CPU/request in one scenario (c=64, whole answers) against the
reference. A target run from a baseline (``<target>@REV``, ``harness.py --baseline``) is shown beside it."""
PER_PLUGIN_TARGET_US = 20.0


@dataclass
class Scenario:
    name: str
    stream: bool
    concurrency: int
    requests: int
    tokens: int
    chunk_delay_ms: float = 0.0
    stall_check: bool = False


@dataclass
class Row:
    """Everything measured for one target in one scenario, summed over rounds."""

    target: str
    scenario: str
    attempted: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    max_gaps: list[float] = field(default_factory=list)
    errors: int = 0
    incomplete: int = 0
    sample_error: str = ""
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    proxy_cpu_s: float | None = None
    proxy_cpu_precise_s: float | None = None
    mock_cpu_s: float = 0.0
    runs: list[dict[str, float | None]] = field(default_factory=list)

    def add(
        self, result: dict[str, Any], attempted: int, proxy: float | None, precise: float | None, mock: float
    ) -> None:
        self.attempted += attempted
        self.latencies += result["latencies"]
        self.ttfts += result["ttfts"]
        self.max_gaps += result["max_gaps"]
        self.errors += result["errors"]
        self.incomplete += result["incomplete"]
        self.sample_error = self.sample_error or result["sample_error"]
        self.elapsed_s += result["elapsed_s"]
        self.client_cpu_s += result["client_cpu_s"]
        self.mock_cpu_s += mock
        self.runs.append(
            {
                "rps": len(result["latencies"]) / result["elapsed_s"] if result["elapsed_s"] else None,
                "cpu_us_per_req": proxy * 1e6 / attempted if proxy is not None and attempted else None,
                "cpu_us_per_req_schedstat": precise * 1e6 / attempted if precise is not None and attempted else None,
            }
        )
        if proxy is not None:
            self.proxy_cpu_s = (self.proxy_cpu_s or 0.0) + proxy
        if precise is not None:
            self.proxy_cpu_precise_s = (self.proxy_cpu_precise_s or 0.0) + precise

    def stats(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        per_req = 1e6 / self.attempted if self.attempted else math.nan
        return {
            "target": self.target,
            "scenario": self.scenario,
            "requests": self.attempted,
            "ok": len(lat),
            "errors": self.errors,
            "incomplete": self.incomplete,
            "sample_error": self.sample_error,
            "rps": len(lat) / self.elapsed_s if self.elapsed_s else math.nan,
            "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3,
            "ttft_p50_ms": pct(sorted(self.ttfts), 50) * 1e3 if self.ttfts else None,
            "max_gap_ms": max(self.max_gaps) * 1e3 if self.max_gaps else None,
            "max_gap_p99_ms": pct(sorted(self.max_gaps), 99) * 1e3 if self.max_gaps else None,
            "cpu_us_per_req": self.proxy_cpu_s * per_req if self.proxy_cpu_s is not None else None,
            "cpu_us_per_req_schedstat": self.proxy_cpu_precise_s * per_req
            if self.proxy_cpu_precise_s is not None
            else None,
            "mock_cpu_us_per_req": self.mock_cpu_s * per_req,
            "client_cpu_pct": 100 * self.client_cpu_s / self.elapsed_s if self.elapsed_s else math.nan,
            "runs": self.runs,
        }


def derive(rows: list[dict[str, Any]]) -> None:
    """Add, in place, latency added vs ``direct`` and CPU/request ratios vs ``reference`` (same scenario)."""
    by_key = {(r["scenario"], r["target"]): r for r in rows}
    for row in rows:
        direct = by_key.get((row["scenario"], DIRECT))
        ref = by_key.get((row["scenario"], REFERENCE))
        row["added_p50_ms"] = row["p50_ms"] - direct["p50_ms"] if direct else None
        row["added_p99_ms"] = row["p99_ms"] - direct["p99_ms"] if direct else None
        for key in ("cpu_us_per_req", "cpu_us_per_req_schedstat"):
            mine, base = row.get(key), ref.get(key) if ref else None
            row[key.replace("cpu_us_per_req", "cpu_ratio")] = mine / base if mine is not None and base else None


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def verdicts(rows: list[dict[str, Any]], scenarios: list[Scenario], key: str = "cpu_us_per_req") -> dict[str, Any]:
    """Pass/fail of each CPU-ratio target, over the standard (non-stall) scenarios, and the per-plugin cost."""
    standard = [s.name for s in scenarios if not s.stall_check]
    by_key = {(r["scenario"], r["target"]): r for r in rows}
    out: dict[str, Any] = {"cpu_source": key, "targets": {}, "per_plugin_us": {}}
    ref_mean = _mean(by_key[(s, REFERENCE)][key] for s in standard if (s, REFERENCE) in by_key)
    for target, limit in TARGET_RATIOS.items():
        ratios = {
            s: by_key[(s, target)][key] / by_key[(s, REFERENCE)][key]
            for s in standard
            if (s, target) in by_key and by_key[(s, target)][key] is not None and by_key[(s, REFERENCE)][key]
        }
        if not ratios or not ref_mean:
            continue
        overall = (_mean(by_key[(s, target)][key] for s in standard) or math.nan) / ref_mean
        failed = sorted(s for s, ratio in ratios.items() if ratio > limit)
        out["targets"][target] = {
            "limit": limit,
            "overall_ratio": overall,
            "worst_ratio": max(ratios.values()),
            "worst_scenario": max(ratios, key=lambda s: ratios[s]),
            "failed_scenarios": failed,
            "pass": overall <= limit and not failed,
        }
    out["capacity"] = capacity(rows, key)
    for name in standard:
        noop8, empty = by_key.get((name, NOOP8)), by_key.get((name, EMPTY))
        if noop8 and empty and noop8[key] is not None and empty[key] is not None:
            out["per_plugin_us"][name] = (noop8[key] - empty[key]) / 8
    chat = [v for s, v in out["per_plugin_us"].items() if not s.startswith("stream")]
    stream = [v for s, v in out["per_plugin_us"].items() if s.startswith("stream")]
    out["per_plugin_us_chat"] = _mean(chat)
    out["per_plugin_us_stream"] = _mean(stream)
    out["per_plugin_target_us"] = PER_PLUGIN_TARGET_US
    return out


def _fmt(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown(rows: list[dict[str, Any]], scenarios: list[Scenario]) -> str:
    """The main table (one block per standard scenario) and the stall table."""
    lines = [
        "| scenario | target | req/s | p50 ms | p99 ms | +p50 ms | +p99 ms | TTFT p50 ms | CPU µs/req | xref "
        "| mock µs/req | client CPU% | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if _is_stall(row, scenarios):
            continue
        lines.append(
            f"| {row['scenario']} | {row['target']} | {_fmt(row['rps'], 0)} | {_fmt(row['p50_ms'], 2)} "
            f"| {_fmt(row['p99_ms'], 2)} | {_fmt(row['added_p50_ms'], 2, True)} | {_fmt(row['added_p99_ms'], 2, True)} "
            f"| {_fmt(row['ttft_p50_ms'], 2)} | {_fmt(row['cpu_us_per_req'], 0)} | {_fmt(row['cpu_ratio'], 2)} "
            f"| {_fmt(row['mock_cpu_us_per_req'], 0)} | {_fmt(row['client_cpu_pct'], 0)} "
            f"| {row['errors'] + row['incomplete']} |"
        )
    stall = [r for r in rows if _is_stall(r, scenarios)]
    if stall:
        lines += [
            "",
            f"Stall check ({stall[0]['scenario']}, the mock paces chunks {_pacing(stall[0], scenarios)} ms apart): "
            "every stream must end with [DONE] and carry all its chunks; a gap far above the pacing is a stall.",
            "",
            "| target | complete/total | max gap ms | p99 per-stream max gap ms | p50 ms | p99 ms | TTFT p50 ms "
            "| CPU µs/req | xref | result |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in stall:
            ok = row["ok"] == row["requests"]
            lines.append(
                f"| {row['target']} | {row['ok']}/{row['requests']} | {_fmt(row['max_gap_ms'], 1)} "
                f"| {_fmt(row['max_gap_p99_ms'], 1)} | {_fmt(row['p50_ms'], 1)} | {_fmt(row['p99_ms'], 1)} "
                f"| {_fmt(row['ttft_p50_ms'], 1)} | {_fmt(row['cpu_us_per_req'], 0)} | {_fmt(row['cpu_ratio'], 2)} "
                f"| {'ok' if ok else 'FAIL: ' + row['sample_error'][:60]} |"
            )
    return "\n".join(lines)


def _pacing(row: dict[str, Any], scenarios: list[Scenario]) -> str:
    return next((f"{s.chunk_delay_ms:g}" for s in scenarios if s.name == row["scenario"]), "?")


def _is_stall(row: dict[str, Any], scenarios: list[Scenario]) -> bool:
    return any(s.name == row["scenario"] and s.stall_check for s in scenarios)


def capacity(rows: list[dict[str, Any]], key: str = "cpu_us_per_req") -> list[dict[str, Any]]:
    """Each ``CAPACITY_TARGETS`` row present (and its baselines): its ratio to the reference, and pass/fail."""
    refs = {r["scenario"]: r[key] for r in rows if r["target"] == REFERENCE and r.get(key)}
    olds = {r["scenario"]: r[key] for r in rows if r["target"] == REFERENCE_AIOHTTP and r.get(key)}
    floors = {r["scenario"]: r[key] for r in rows if r["target"] == REFERENCE_METERED and r.get(key)}
    out = []
    for (target, scenario), limit in CAPACITY_TARGETS.items():
        base = refs.get(scenario)
        for row in rows:
            name = row["target"]
            if row["scenario"] != scenario or not (name == target or name.startswith(target + "@")):
                continue
            if base and row.get(key) is not None:
                ratio = row[key] / base
                passed = ratio <= limit
                old, floor = olds.get(scenario), floors.get(scenario)
                out.append(
                    {
                        "target": name,
                        "scenario": scenario,
                        "limit": limit,
                        "ratio": ratio,
                        "pass": passed,
                        "ratio_aiohttp": row[key] / old if old else None,
                        "ratio_metered": row[key] / floor if floor else None,
                        "floor": floor / base if floor else None,
                    }
                )
    return out


def verdict_text(verdict: dict[str, Any], precise: dict[str, Any] | None) -> str:
    lines = ["", "Targets (CPU/request vs the reference proxy, same run; mean over the standard scenarios):"]
    for target, v in verdict["targets"].items():
        state = "PASS" if v["pass"] else "FAIL"
        extra = f", over the limit in: {', '.join(v['failed_scenarios'])}" if v["failed_scenarios"] else ""
        cross = ""
        if precise and target in precise["targets"]:
            cross = f" (schedstat: {precise['targets'][target]['overall_ratio']:.2f}x)"
        lines.append(
            f"- {target}: {v['overall_ratio']:.2f}x (limit {v['limit']}x){cross}; worst {v['worst_ratio']:.2f}x "
            f"in {v['worst_scenario']}{extra} → **{state}**"
        )
    chat, stream = verdict["per_plugin_us_chat"], verdict["per_plugin_us_stream"]
    limit = verdict["per_plugin_target_us"]
    if chat is not None:
        state = "PASS" if chat <= limit else "FAIL"
        lines.append(
            f"- per-plugin chain cost, (noop8 - empty) / 8: {chat:.1f} µs on chat (target ≤ {limit:.0f} µs)"
            f" → **{state}**; {_fmt(stream)} µs on streams (includes SSE parse/re-encode that noop_chunk switches on)"
        )
        per = ", ".join(f"{s} {v:.1f}" for s, v in verdict["per_plugin_us"].items())
        lines.append(f"  per scenario (µs): {per}")
    if verdict.get("capacity"):
        lines.append("Cost-and-capacity budget (one scenario each):")
        for c in verdict["capacity"]:
            state = "PASS" if c["pass"] else "FAIL"
            old, metered = c.get("ratio_aiohttp"), c.get("ratio_metered")
            asides = []
            if metered is not None:
                asides.append(f"{metered:.2f}x {REFERENCE_METERED}, itself {c['floor']:.2f}x the reference")
            if old is not None:
                asides.append(f"{old:.2f}x {REFERENCE_AIOHTTP}, for older figures")
            aside = f" ({'; '.join(asides)})" if asides else ""
            lines.append(
                f"- {c['target']} in {c['scenario']}: {c['ratio']:.2f}x (limit {c['limit']}x) → **{state}**{aside}"
            )
    return "\n".join(lines)
