"""Read-only views of the fine-tuning loop's files: the capture store and ``chaperone eval run --out`` directories.

Capture: the ``capture`` steps of the policy in force name their SQLite file; the page opens it read-only
and shows counts, feedback totals and the newest records' metadata (never their text), each query under
a deadline and a ``LIMIT``. Evals: ``CHAPERONE_EVAL_RUNS`` (default ``CHAPERONE_HOME/evals``) holds one
directory per run; the page lists the newest ``RUNS_MAX`` that have a ``summary.json`` (at most 1 MB each).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from proxy.policy import Policy
from proxy.requestlog import QueryTimeout

RECENT_MAX = 50
RUNS_MAX = 50
SCAN_MAX = 1000  # directory entries looked at under the runs directory
SUMMARY_MAX_BYTES = 1 << 20
EVAL_RUNS_ENV = "CHAPERONE_EVAL_RUNS"


def capture_paths(policy: Policy) -> list[Path]:
    """The files the policy's ``capture`` steps write (each once)."""
    seen: list[Path] = []
    for chain in policy.chains.values():
        for step in chain.steps:
            path = getattr(step.plugin, "path", None) if step.name == "capture" else None
            if isinstance(path, Path) and path not in seen:
                seen.append(path)
    return seen


def capture_summary(path: Path, timeout_s: float = 2.0, now: float | None = None) -> dict[str, Any]:
    """Counts, feedback totals and the newest records' metadata (no text columns) of one capture store."""
    if not path.exists():
        return {"path": str(path), "missing": True}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    conn.row_factory = sqlite3.Row
    since = (now or time.time()) - 86400
    try:
        total = conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
        day = conn.execute("SELECT count(*) FROM exchanges WHERE ts >= ?", (since,)).fetchone()[0]
        fb = conn.execute(
            "SELECT count(*) AS n, sum(good = 1) AS good, sum(good = 0) AS bad, avg(score) AS score,"
            " sum(correction IS NOT NULL) AS corrections FROM feedback"
        ).fetchone()
        recent = conn.execute(
            "SELECT e.request_id, e.ts, e.model, e.key, e.status, e.retention, e.tags, e.judge_score, e.masked_by,"
            " f.good AS fb_good, f.score AS fb_score FROM exchanges e INDEXED BY exchanges_ts"
            " LEFT JOIN feedback f USING (request_id) ORDER BY e.ts DESC LIMIT ?",
            (RECENT_MAX,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise QueryTimeout(str(path)) from None
        return {"path": str(path), "missing": False, "error": f"not a readable capture store: {exc}"}
    finally:
        conn.close()
    rows = [{**dict(r), "tags": _tags(r["tags"])} for r in recent]
    return {"path": str(path), "missing": False, "total": total, "day": day, "feedback": dict(fb), "recent": rows}


def _tags(raw: str | None) -> list[str]:
    try:
        found = orjson.loads(raw or "[]")
    except orjson.JSONDecodeError:
        return []
    return [str(t) for t in found][:10] if isinstance(found, list) else []


def runs_dir(env: Mapping[str, str], home: Path) -> Path:
    return Path(env.get(EVAL_RUNS_ENV) or home / "evals").expanduser()


def eval_runs(root: Path) -> list[dict[str, Any]]:
    """The newest runs under ``root`` (by summary.json's time), each with its gate and per-model figures."""
    found: list[tuple[float, Path]] = []
    try:
        with os.scandir(root) as entries:
            for i, entry in enumerate(entries):
                if i >= SCAN_MAX:
                    break
                summary = Path(entry.path) / "summary.json"
                if entry.is_dir() and summary.is_file():
                    found.append((summary.stat().st_mtime, summary))
    except OSError:
        return []
    runs = []
    for mtime, summary in sorted(found, reverse=True)[:RUNS_MAX]:
        runs.append({"name": summary.parent.name, "time": mtime, **_summary(summary)})
    return runs


def _summary(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > SUMMARY_MAX_BYTES:
            return {"error": "summary.json is larger than 1 MB"}
        data = orjson.loads(path.read_bytes())
        gate, models = data.get("gate") or {}, data.get("models") or {}
        return {
            "passed": bool(gate.get("passed")),
            "cutoffs": dict(gate.get("cutoffs") or {}),
            "min_pass_rate": gate.get("min_pass_rate"),
            "rows": (data.get("data") or {}).get("rows"),
            "models": {
                str(name): {
                    "gate": m.get("gate"),
                    "pass_rate": m.get("pass_rate"),
                    "errors": m.get("errors"),
                    "scores": dict(m.get("scores") or {}),
                }
                for name, m in list(models.items())[:20]
                if isinstance(m, dict)
            },
        }
    except (OSError, orjson.JSONDecodeError, AttributeError, TypeError) as exc:
        return {"error": f"unreadable summary.json: {exc}"}
