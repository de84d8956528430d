"""The files of a run in ``--out DIR``: results.jsonl, summary.json, summary.csv, manifest.json, report.html,
the charts as ``*.svg`` and, with matplotlib installed (the ``bench`` extra), as ``*.png``."""

from __future__ import annotations

import csv
import io
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from bench import png, report
from bench.summary import LATENCIES


def tool_version() -> str:
    try:
        return metadata.version("chaperone")
    except metadata.PackageNotFoundError:
        return "unknown"


def safe_url(url: str) -> str:
    """``url`` without any user:password part."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def machine() -> dict[str, Any]:
    """CPU count, memory, load and GPUs (``nvidia-smi -L`` when it exists) of the machine that ran the load."""
    memory = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=5).stdout
            gpus = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
        "gpus": gpus,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
    }


def manifest(
    argv: list[str], targets: dict[str, str], workload: dict[str, Any], load: dict[str, Any], seed: int
) -> dict[str, Any]:
    command = [_redact(prev, a) for prev, a in zip(["", *argv], argv, strict=False)]
    return {
        "tool": "chaperone bench",
        "version": tool_version(),
        "command": [Path(sys.argv[0]).name, *command],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "targets": {n: safe_url(u) for n, u in targets.items()},
        "workload": workload,
        "load": load,
        "seed": seed,
        "machine": machine(),
        "engine": None,
        "interrupted": False,
    }


def _redact(previous: str, arg: str) -> str:
    """Hide the value of ``--api-key`` and ``--metrics-key`` (either form) from the manifest."""
    for secret in ("--api-key", "--metrics-key"):
        if arg.startswith(secret + "="):
            return secret + "=***"
        if previous == secret:
            return "***"
    return arg


def _dump(path: Path, value: Any) -> None:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")


def csv_text(summary: dict[str, Any]) -> str:
    """One row per target: the latency percentiles and the rates."""
    columns = [f"{m}.{s}" for m in LATENCIES for s in ("mean", "p50", "p90", "p99", "max")]
    columns += [
        "output_tokens_per_s",
        "requests_per_s",
        "completed",
        "errors",
        "error_rate",
        "goodput.per_s",
        "tokens.token_drift_pct",
    ]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["target", *columns])
    for name, s in summary["targets"].items():
        writer.writerow([name, *("" if (v := report.get(s, c)) is None else v for c in columns)])
    return buf.getvalue()


def write(
    out: Path,
    manifest_: dict[str, Any],
    summary: dict[str, Any],
    records: dict[str, list[dict[str, Any]]],
    sweep: list[dict[str, Any]] | None = None,
) -> None:
    """Write every artifact; called at the end of a run and on Ctrl-C (with what was measured so far)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("wb") as f:
        for rows in records.values():
            for row in rows:
                f.write(orjson.dumps(row) + b"\n")
    _dump(out / "summary.json", summary)
    (out / "summary.csv").write_text(csv_text(summary))
    if sweep is not None:
        _dump(out / "sweep.json", sweep)
    charts = report.charts(records, sweep)
    for name, chart in charts.items():
        (out / f"{name}.svg").write_text(chart.svg(standalone=True))
    pngs = png.write(out, charts)
    if pngs is None:
        print(f"bench: {png.MISSING}", file=sys.stderr)
    manifest_["png"] = {"written": pngs or [], "skipped": None if pngs is not None else png.MISSING}
    _dump(out / "manifest.json", manifest_)
    (out / "report.html").write_text(report.render(manifest_, summary, records, sweep))
