"""The files of an eval run under ``--out DIR``: ``results.jsonl``, ``summary.json``, ``report.md``, ``report.html``.

``report.md`` is short enough for a pull-request comment (a table per model, the gate, the first
failing rows). ``report.html`` is one file with its CSS inline and nothing fetched: it opens offline.
Every file is written to a temporary name and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import orjson

_MAX_FAILED_SHOWN = 20


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_reports(out: Path, summary: dict[str, Any], results: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "results.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in results))
    _write(out / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    _write(out / "report.md", markdown(summary, results).encode())
    _write(out / "report.html", html_report(summary, results).encode())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def _failed_rows(results: list[dict[str, Any]], model: str) -> list[tuple[str, str]]:
    rows = []
    for r in results:
        if r["model"] == model and not r["passed"]:
            why = r.get("error") or "; ".join(r.get("failed", []))
            rows.append((str(r["id"]), why))
    return rows


def markdown(summary: dict[str, Any], results: list[dict[str, Any]]) -> str:
    gate = summary["gate"]
    verdict = "✅ pass" if gate["passed"] else "❌ fail"
    cutoffs = ", ".join(f"`{k}={v}`" for k, v in gate["cutoffs"].items()) or "none"
    lines = [
        f"### Eval: {verdict}",
        "",
        f"{summary['data']['rows']} rows from `{summary['data']['path']}`; cutoffs {cutoffs}; "
        f"min pass rate {gate['min_pass_rate']}. Calls: {summary['calls']['upstream']} upstream, "
        f"{summary['calls']['cached']} from cache.",
        "",
    ]
    names = sorted({n for m in summary["models"].values() for n in m["scores"]})
    lines.append("| model | gate | pass rate | errors | " + " | ".join(names) + " |")
    lines.append("|---" * (4 + len(names)) + "|")
    for model, s in summary["models"].items():
        cells = [f"`{model}`", s["gate"], f"{s['pass_rate']:.1%}", str(s["errors"])]
        lines.append("| " + " | ".join(cells + [_fmt(s["scores"].get(n)) for n in names]) + " |")
    for model in summary["models"]:
        failed = _failed_rows(results, model)
        if failed:
            lines += ["", f"<details><summary>{len(failed)} failing rows for <code>{html.escape(model)}</code>"
                      "</summary>", ""]  # fmt: skip
            lines += [f"- `{ident}`: {why}" for ident, why in failed[:_MAX_FAILED_SHOWN]]
            if len(failed) > _MAX_FAILED_SHOWN:
                lines.append(f"- … and {len(failed) - _MAX_FAILED_SHOWN} more (see results.jsonl)")
            lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.pass{color:#0a7a0a;font-weight:600}.fail{color:#b00020;font-weight:600}pre{white-space:pre-wrap;margin:0;max-width:60em}
.bar{display:inline-block;height:10px;background:#4a7bd0;vertical-align:middle;margin-right:6px}"""


def _bar(value: float | None) -> str:
    if value is None or not 0 <= value <= 1:
        return _fmt(value)
    return f'<span class="bar" style="width:{value * 80:.0f}px"></span>{value:.3f}'


def html_report(summary: dict[str, Any], results: list[dict[str, Any]]) -> str:
    e = html.escape
    gate = summary["gate"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>chaperone eval</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Eval <span class='{'pass' if gate['passed'] else 'fail'}'>"
        f"{'pass' if gate['passed'] else 'fail'}</span></h1>",
        f"<p>{summary['data']['rows']} rows from <code>{e(summary['data']['path'])}</code> "
        f"(sha256 {summary['data']['sha256'][:12]}…); cutoffs {e(str(gate['cutoffs']))}; "
        f"min pass rate {gate['min_pass_rate']}; {summary['calls']['upstream']} upstream calls, "
        f"{summary['calls']['cached']} cached.</p>",
    ]
    for model, s in summary["models"].items():
        head = f"{e(model)} — <span class='{s['gate']}'>{s['gate']}</span>, pass rate {s['pass_rate']:.1%}"
        parts.append(f"<h2>{head}, {s['errors']} errors</h2><table><tr><th>scorer</th><th>mean</th><th>rows</th></tr>")
        for name, value in sorted(s["scores"].items()):
            parts.append(f"<tr><td>{e(name)}</td><td>{_bar(value)}</td><td>{s['scored_rows'][name]}</td></tr>")
        parts.append("</table><table><tr><th>id</th><th>result</th><th>answer</th><th>scores</th></tr>")
        for r in (r for r in results if r["model"] == model):
            status = "pass" if r["passed"] else "fail"
            why = r.get("error") or "; ".join(r.get("failed", []))
            scores = ", ".join(f"{k}={_fmt(v)}" for k, v in (r.get("scores") or {}).items())
            parts.append(f"<tr><td>{e(str(r['id']))}</td><td class='{status}'>{status} {e(why)}</td>"
                         f"<td><pre>{e(str(r.get('answer', '')))}</pre></td><td>{e(scores)}</td></tr>")  # fmt: skip
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
