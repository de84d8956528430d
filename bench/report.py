"""The offline report: one HTML file (inline CSS and SVG, no script, no URL) and the charts as ``.svg`` files."""

from __future__ import annotations

import json
from html import escape
from typing import Any, NamedTuple

from bench import svg
from bench.stats import cdf_points
from bench.summary import DEFINITIONS, LATENCIES

CSS = """body{font:14px/1.4 sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}caption{text-align:left;font-weight:bold;padding:4px 0}
.worse{color:#b00}.better{color:#070}pre{background:#f6f6f6;padding:8px;overflow:auto}dt{font-weight:bold}"""
ROWS = [(f"{m}.{s}", f"{m.removesuffix('_ms')} {s} ms") for m in LATENCIES for s in ("p50", "p90", "p99", "mean")]
RATES = [
    ("output_tokens_per_s", "output tok/s"),
    ("requests_per_s", "req/s"),
    ("completed", "completed"),
    ("errors", "errors"),
    ("goodput.per_s", "goodput req/s"),
    ("tokens.token_drift_pct", "token drift %"),
]


def get(summary: dict[str, Any], path: str) -> Any:
    value: Any = summary
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return escape(str(value))


class Chart(NamedTuple):
    """One chart's data, drawn by ``svg.chart`` (the report, ``*.svg``) and ``png.write`` (``*.png``)."""

    series: svg.Series
    title: str
    xlabel: str
    ylabel: str
    scatter: bool = False

    def svg(self, standalone: bool = False) -> str:
        return svg.chart(self.series, self.title, self.xlabel, self.ylabel, scatter=self.scatter, standalone=standalone)


def charts(records: dict[str, list[dict[str, Any]]], sweep: list[dict[str, Any]] | None = None) -> dict[str, Chart]:
    """Chart name → its series: latency CDFs, TTFT over time, and throughput vs latency for a sweep."""
    ok = {name: [r for r in rows if r["measured"] and r["ok"]] for name, rows in records.items()}
    out: dict[str, Chart] = {}
    for metric, label in (("ttfc_ms", "time to first content token"), ("e2e_ms", "end-to-end latency")):
        series = {n: cdf_points([r[metric] for r in rows if r[metric] is not None]) for n, rows in ok.items()}
        out[f"cdf_{metric.removesuffix('_ms')}"] = Chart(series, f"CDF of {label}", "ms", "fraction of requests")
    itl = {n: cdf_points([g for r in rows for g in r["itl_ms"]]) for n, rows in ok.items()}
    out["cdf_itl"] = Chart(itl, "CDF of inter-token latency", "ms", "fraction of gaps")
    over = {n: [(r["start_s"], r["ttft_ms"]) for r in rows if r["ttft_ms"] is not None] for n, rows in ok.items()}
    out["ttft_over_time"] = Chart(over, "TTFT over time", "s since start", "TTFT ms", scatter=True)
    if sweep:
        out.update(_knees(sweep))
    return out


def _knees(sweep: list[dict[str, Any]]) -> dict[str, Chart]:
    """Throughput against p50 latency, one point per sweep level, per target."""
    out: dict[str, Chart] = {}
    for metric in ("ttfc_ms", "e2e_ms"):
        knee: svg.Series = {}
        for level in sweep:
            for name, summary in level["summary"]["targets"].items():
                x, y = summary.get("output_tokens_per_s"), get(summary, f"{metric}.p50")
                if x is not None and y is not None:
                    knee.setdefault(name, []).append((x, y))
        short = metric.removesuffix("_ms")
        out[f"knee_{short}"] = Chart(knee, f"throughput vs p50 {short} (sweep)", "output tokens/s", f"p50 {metric}")
    return out


def plots(
    records: dict[str, list[dict[str, Any]]], sweep: list[dict[str, Any]] | None = None, standalone: bool = False
) -> dict[str, str]:
    """Chart name → SVG text, for every chart of ``charts``."""
    return {name: chart.svg(standalone) for name, chart in charts(records, sweep).items()}


def _side_by_side(summary: dict[str, Any]) -> str:
    targets = summary["targets"]
    diff = summary.get("differences") or {}
    others = list((diff.get("targets") or {}).keys())
    head = "".join(f"<th>{escape(n)}</th>" for n in targets)
    head += "".join(f"<th>{escape(n)} - {escape(diff['baseline'])}</th>" for n in others)
    lines = [f"<table><caption>Side by side</caption><tr><th>metric</th>{head}</tr>"]
    for path, label in ROWS + RATES:
        cells = "".join(f"<td>{_cell(get(s, path))}</td>" for s in targets.values())
        for name in others:
            cells += _diff_cell(path, diff["targets"][name])
        lines.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _diff_cell(path: str, diffs: dict[str, Any]) -> str:
    """A latency difference in ms (positive is worse) or a throughput ratio (below 1 is worse)."""
    if path.split(".")[0] in LATENCIES:
        d = diffs.get(path)
        if d is None:
            return "<td>-</td>"
        return f"<td class='{'worse' if d > 0 else 'better'}'>{d:+,.2f}</td>"
    ratio = diffs.get(f"{path}.ratio")
    if ratio is None:
        return "<td></td>"
    return f"<td class='{'worse' if ratio < 1 else 'better'}'>{ratio:.3f}x</td>"


def _gateway(summary: dict[str, Any]) -> str:
    parts: list[str] = []
    for name, s in summary["targets"].items():
        gw = s.get("gateway")
        if not gw:
            continue
        rows = "".join(
            f"<tr><td>{escape(k)}</td><td>{_cell(v if not isinstance(v, dict) else json.dumps(v))}</td></tr>"
            for k, v in gw.items()
            if k != "plugins_ms_per_request"
        )
        parts.append(f"<table><caption>{escape(name)}: the proxy's own timing (/metrics)</caption>{rows}</table>")
        plugins = gw.get("plugins_ms_per_request") or {}
        if plugins:
            bars = [(p, h["total"]) for p, h in sorted(plugins.items(), key=lambda kv: -kv[1]["total"])]
            parts.append(svg.bars(bars, f"{name}: plugin time per request", "ms"))
            detail = "".join(
                f"<tr><td>{escape(p)}</td><td>{escape(json.dumps(h))}</td></tr>" for p, h in plugins.items()
            )
            parts.append(f"<table><caption>per plugin and hook, ms per request</caption>{detail}</table>")
    return "\n".join(parts)


def _errors(summary: dict[str, Any]) -> str:
    rows = ""
    for name, s in summary["targets"].items():
        for kind, count in s["errors_by_kind"].items():
            sample = escape(s.get("sample_errors", {}).get(kind, ""))
            rows += f"<tr><td>{escape(name)}</td><td>{escape(kind)}</td><td>{count}</td><td>{sample}</td></tr>"
        for kind, row in s["by_kind"].items():
            rows += (
                f"<tr><td>{escape(name)}</td><td>prompt kind {escape(kind)}</td><td>{row['completed']}/"
                f"{row['sent']} ok</td><td>{escape(json.dumps(row['errors']))}</td></tr>"
            )
    return f"<table><caption>Errors (never in latency figures) and prompt kinds</caption>{rows}</table>" if rows else ""


def render(
    manifest: dict[str, Any],
    summary: dict[str, Any],
    records: dict[str, list[dict[str, Any]]],
    sweep: list[dict[str, Any]] | None = None,
) -> str:
    """The whole report as one HTML document."""
    title = "chaperone bench" + (" sweep" if sweep else "")
    state = " (interrupted: partial results)" if manifest.get("interrupted") else ""
    charts = "\n".join(f"<figure>{chart}</figure>" for chart in plots(records, sweep).values())
    definitions = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in DEFINITIONS.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{CSS}</style></head>
<body><h1>{escape(title)}{escape(state)}</h1>
<p>{escape(manifest.get("started", ""))} · {escape(manifest.get("load", {}).get("label", ""))} ·
seed {escape(str(manifest.get("seed")))}</p>
<h2>Results</h2>{_side_by_side(summary)}
<h2>Gateway</h2>{_gateway(summary) or "<p>No target exposed Chaperone's /metrics.</p>"}
{_errors(summary)}
<h2>Charts</h2>{charts}
<h2>Definitions</h2><dl>{definitions}</dl>
<h2>Manifest</h2><pre>{escape(json.dumps(manifest, indent=2))}</pre>
</body></html>
"""
