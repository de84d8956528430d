"""``bench compare A B``: two summaries side by side, a noise-aware verdict per figure, and CI gates.

A percentile's verdict uses the 95 % intervals stored with it (order statistics, see
:mod:`bench.stats`): when A's and B's intervals overlap the difference is "within noise". Rates
(tokens/s, req/s) have no interval; they are "within noise" inside ``--tolerance`` (default 5 %).
A gate ``--fail-if 'p99_ttft>+10%'`` fails when B is worse than A by more than the threshold *and*
the difference is beyond noise (``--strict`` drops the noise condition). Exit status: 0 all gates
pass, 1 a gate failed, 2 bad input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import get
from bench.summary import LATENCIES

RATE_METRICS = ("output_tokens_per_s", "requests_per_s", "goodput.per_s")
GATE = re.compile(r"^\s*(?P<metric>[a-z0-9_.]+)\s*(?P<op>[<>])\s*(?P<value>[+-]?\d+(?:\.\d+)?)\s*(?P<unit>%|ms)?\s*$")


def load_summary(path: Path) -> dict[str, Any]:
    """A ``summary.json`` (or a run directory holding one); ``ValueError`` with the path when it is not one."""
    file = path / "summary.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file}: not a readable summary ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
        raise ValueError(f"{file}: no 'targets' object: not a chaperone bench summary")
    return data


def metric_path(name: str) -> str:
    """``p99_ttft`` → ``ttft_ms.p99``; rates and dotted paths pass through."""
    m = re.fullmatch(r"(p50|p90|p99|mean|max)_(ttft|ttfc|itl|tpot|e2e)", name)
    if m:
        return f"{m.group(2)}_ms.{m.group(1)}"
    if name in ("tok_s", "throughput"):
        return "output_tokens_per_s"
    if name in ("rps", "req_s"):
        return "requests_per_s"
    return name


def lower_is_better(path: str) -> bool:
    return path.split(".")[0] in LATENCIES or path in ("errors", "error_rate")


def verdict(a: dict[str, Any], b: dict[str, Any], path: str, tolerance: float) -> str:
    va, vb = get(a, path), get(b, path)
    if not isinstance(va, int | float) or not isinstance(vb, int | float):
        return "n/a"
    metric, _, stat = path.partition(".")
    ia, ib = get(a, f"{metric}.ci95.{stat}"), get(b, f"{metric}.ci95.{stat}")
    if ia and ib and None not in (*ia, *ib):
        noise = ia[0] <= ib[1] and ib[0] <= ia[1]
    else:
        noise = abs(vb - va) <= tolerance * max(abs(va), 1e-9)
    if noise or vb == va:
        return "within noise"
    return "better" if (vb < va) == lower_is_better(path) else "worse"


@dataclass(frozen=True)
class Gate:
    text: str
    path: str
    op: str
    value: float
    unit: str

    @classmethod
    def parse(cls, text: str) -> Gate:
        m = GATE.match(text)
        if not m:
            raise ValueError(
                f"--fail-if {text!r}: expected METRIC>+10% or METRIC>+5ms or METRIC>0 (e.g. p99_ttft>+10%)"
            )
        return cls(text, metric_path(m["metric"]), m["op"], float(m["value"]), m["unit"] or "")

    def failed(self, a: dict[str, Any], b: dict[str, Any], strict: bool, tolerance: float) -> tuple[bool, str]:
        va, vb = get(a, self.path), get(b, self.path)
        if not isinstance(va, int | float) or not isinstance(vb, int | float):
            return True, f"{self.text}: {self.path} missing in A or B"
        change = (vb - va) / abs(va) * 100 if self.unit == "%" and va else vb - va if self.unit else vb
        over = change > self.value if self.op == ">" else change < self.value
        noisy = verdict(a, b, self.path, tolerance) == "within noise"
        unit = self.unit or ""
        if over and noisy and not strict:
            return False, f"{self.text}: {change:+.2f}{unit}, past the threshold but within noise → pass"
        return over, f"{self.text}: {change:+.2f}{unit} → {'FAIL' if over else 'pass'}"


def compare(a: dict[str, Any], b: dict[str, Any], tolerance: float = 0.05) -> list[dict[str, Any]]:
    """One row per (target, figure) present in both: A, B, difference, % and verdict."""
    rows = []
    paths = [f"{m}.{s}" for m in LATENCIES for s in ("p50", "p90", "p99", "mean")] + [*RATE_METRICS, "error_rate"]
    for name in a["targets"]:
        if name not in b["targets"]:
            continue
        sa, sb = a["targets"][name], b["targets"][name]
        for path in paths:
            va, vb = get(sa, path), get(sb, path)
            if not isinstance(va, int | float) or not isinstance(vb, int | float):
                continue
            pct = (vb - va) / abs(va) * 100 if va else None
            rows.append(
                {
                    "target": name,
                    "metric": path,
                    "a": va,
                    "b": vb,
                    "diff": round(vb - va, 3),
                    "pct": None if pct is None else round(pct, 2),
                    "verdict": verdict(sa, sb, path, tolerance),
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | metric | A | B | B - A | % | verdict |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        pct = "" if r["pct"] is None else f"{r['pct']:+.1f}%"
        lines.append(
            f"| {r['target']} | {r['metric']} | {r['a']:.3f} | {r['b']:.3f} | {r['diff']:+.3f} | {pct} "
            f"| {r['verdict']} |"
        )
    return "\n".join(lines)


def gate(
    a: dict[str, Any], b: dict[str, Any], gates: list[Gate], target: str | None, strict: bool, tolerance: float
) -> tuple[bool, list[str]]:
    """Whether any gate failed for the chosen target (default: every target present in both), and why."""
    names = [target] if target else [n for n in a["targets"] if n in b["targets"]]
    failed, lines = False, []
    for name in names:
        if name not in a["targets"] or name not in b["targets"]:
            raise ValueError(f"target {name!r} is not in both summaries")
        for g in gates:
            bad, line = g.failed(a["targets"][name], b["targets"][name], strict, tolerance)
            failed |= bad
            lines.append(f"{name}: {line}")
    return failed, lines
