"""Per-request records and the per-target summary: latency distributions, throughput, errors, goodput, drift.

The measurement window is [first start + warm-up, last end - cool-down]; a request counts when it
started and ended inside it. Failed requests are counted by kind and never enter a latency figure.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import tiktoken

from bench.client import Outcome
from bench.stats import distribution

DEFINITIONS = {
    "ttft_ms": "time to first token: request sent → first SSE event carrying a choice (often the role-only chunk)",
    "ttfc_ms": "time to first content token: request sent → first event with non-empty content/reasoning/tool text",
    "itl_ms": "inter-token latency: gap between consecutive content events of a stream, the first one excluded "
    "(events in one network read share its time); pooled over all measured requests",
    "tpot_ms": "time per output token: (e2e - time to first content token) / (output tokens - 1), per request",
    "e2e_ms": "end-to-end latency: request sent → last byte received",
    "output_tokens_per_s": "output tokens of measured requests / measurement window (server usage, else tiktoken)",
    "output_tokens_per_s_per_request": "one request's output tokens / its e2e",
    "requests_per_s": "measured completed requests / measurement window",
    "goodput_per_s": "measured requests that completed within every SLO / measurement window",
    "token_drift_pct": "(client tiktoken count - server usage.completion_tokens) / server count (requests with both)",
    "send_lag_ms": "open loop: actual send time - scheduled arrival time (the load generator's own timing error)",
}
LATENCIES = ("ttft_ms", "ttfc_ms", "itl_ms", "tpot_ms", "e2e_ms")
SLO_KEYS = {"ttft": "ttft_ms", "ttfc": "ttfc_ms", "tpot": "tpot_ms", "e2e": "e2e_ms", "itl": "max_itl_ms"}


def parse_slos(text: str | None) -> dict[str, float]:
    """``"ttft:500,tpot:50"`` (milliseconds) → ``{"ttft_ms": 500.0, "tpot_ms": 50.0}``."""
    slos: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, _, value = item.partition(":")
        key = key.strip().lower()
        if key not in SLO_KEYS:
            raise ValueError(f"--goodput: unknown metric {key!r} (known: {', '.join(SLO_KEYS)})")
        try:
            slos[SLO_KEYS[key]] = float(value)
        except ValueError:
            raise ValueError(f"--goodput: {key} needs a number of milliseconds, got {value!r}") from None
    return slos


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def record(outcome: Outcome, target: str, enc: tiktoken.Encoding) -> dict[str, Any]:
    """The ``results.jsonl`` line of one request."""
    usage = outcome.usage or {}
    server_out = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else None
    server_in = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else None
    client_out = len(enc.encode_ordinary("".join(outcome.text))) if outcome.text else 0
    tokens = server_out if server_out is not None else client_out
    ok = outcome.error is None
    first = outcome.ttfc
    tpot = (outcome.e2e - first) / (tokens - 1) if ok and first is not None and tokens > 1 else None
    return {
        "target": target,
        "index": outcome.index,
        "kind": outcome.kind,
        "ok": ok,
        "error": outcome.error,
        "status": outcome.status,
        "start_s": round(outcome.start, 6),
        "end_s": round(outcome.end, 6),
        "scheduled_s": None if outcome.scheduled is None else round(outcome.scheduled, 6),
        "lag_ms": None if outcome.scheduled is None else _ms(outcome.start - outcome.scheduled),
        "ttft_ms": _ms(outcome.ttft),
        "ttfc_ms": _ms(outcome.ttfc),
        "e2e_ms": _ms(outcome.e2e),
        "tpot_ms": _ms(tpot),
        "itl_ms": [round(g * 1e3, 3) for g in outcome.itls],
        "events": outcome.events,
        "output_tokens": tokens,
        "output_tokens_server": server_out,
        "output_tokens_client": client_out,
        "input_tokens_client": outcome.input_tokens,
        "input_tokens_server": server_in,
        "max_tokens": outcome.max_tokens,
        "detail": outcome.detail,
        "measured": False,
    }


def mark_window(records: list[dict[str, Any]], warmup_s: float, cooldown_s: float) -> dict[str, Any]:
    """Set ``measured`` on the records inside the window; return the window's description."""
    if not records:
        return {"start_s": 0.0, "end_s": 0.0, "seconds": 0.0, "excluded": 0, "note": "no requests finished"}
    first = min(r["start_s"] for r in records)
    last = max(r["end_s"] for r in records)
    lo, hi = first + warmup_s, last - cooldown_s
    note = ""
    if hi <= lo:
        lo, hi, note = first, last, "window empty after warm-up/cool-down: every request measured"
    for r in records:
        r["measured"] = r["start_s"] >= lo and r["end_s"] <= hi
    excluded = sum(not r["measured"] for r in records)
    return {
        "start_s": round(lo, 3),
        "end_s": round(hi, 3),
        "seconds": round(hi - lo, 3),
        "excluded": excluded,
        "note": note,
    }


def summarize(records: list[dict[str, Any]], window: dict[str, Any], slos: dict[str, float]) -> dict[str, Any]:
    """The figures of one target (see :data:`DEFINITIONS`)."""
    measured = [r for r in records if r["measured"]]
    good = [r for r in measured if r["ok"]]
    seconds = window["seconds"] or math.nan
    out: dict[str, Any] = {
        k: distribution([r[k] for r in good if r[k] is not None]) for k in LATENCIES if k != "itl_ms"
    }
    out["itl_ms"] = distribution([g for r in good for g in r["itl_ms"]])
    out["output_tokens_per_s_per_request"] = distribution(
        [r["output_tokens"] / (r["e2e_ms"] / 1e3) for r in good if r["e2e_ms"]]
    )
    tokens = sum(r["output_tokens"] for r in good)
    errors = Counter(r["error"] for r in measured if not r["ok"])
    out.update(
        {
            "completed": len(good),
            "errors": sum(errors.values()),
            "errors_by_kind": dict(errors.most_common()),
            "sent": len(records),
            "measured": len(measured),
            "output_tokens": tokens,
            "output_tokens_per_s": _rate(tokens, seconds),
            "requests_per_s": _rate(len(good), seconds),
            "error_rate": round(sum(errors.values()) / len(measured), 4) if measured else None,
            "window": window,
            "by_kind": _by_kind(measured),
            "tokens": _drift(good),
            "sample_errors": _samples(measured),
        }
    )
    lags = [r["lag_ms"] for r in records if r["lag_ms"] is not None]
    out["send_lag_ms"] = distribution(lags) if lags else None
    if slos:
        ok = [r for r in good if all((_slo_value(r, k) or 0) <= limit for k, limit in slos.items())]
        out["goodput"] = {
            "slos_ms": slos,
            "good": len(ok),
            "per_s": _rate(len(ok), seconds),
            "share": round(len(ok) / len(measured), 4) if measured else None,
        }
    return out


def _slo_value(r: dict[str, Any], key: str) -> float | None:
    if key == "max_itl_ms":
        return max(r["itl_ms"], default=0.0)
    value: float | None = r[key]
    return value


def _rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 3) if seconds and not math.isnan(seconds) else None


def _by_kind(measured: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for r in measured:
        row = kinds.setdefault(r["kind"], {"sent": 0, "completed": 0, "errors": Counter()})
        row["sent"] += 1
        if r["ok"]:
            row["completed"] += 1
        else:
            row["errors"][r["error"]] += 1
    return {k: {**v, "errors": dict(v["errors"])} for k, v in sorted(kinds.items())}


def _drift(good: list[dict[str, Any]]) -> dict[str, Any]:
    both = [r for r in good if r["output_tokens_server"] is not None]
    server = sum(r["output_tokens_server"] for r in both)
    client = sum(r["output_tokens_client"] for r in both)
    per = [
        abs(r["output_tokens_client"] - r["output_tokens_server"]) / r["output_tokens_server"] * 100
        for r in both
        if r["output_tokens_server"]
    ]
    return {
        "with_server_usage": len(both),
        "without_server_usage": len(good) - len(both),
        "server_output": server,
        "client_output": client,
        "token_drift_pct": round((client - server) / server * 100, 2) if server else None,
        "mean_abs_drift_pct": round(sum(per) / len(per), 2) if per else None,
        "counted_with": "server usage" if len(both) == len(good) else "server usage where present, else tiktoken",
    }


def _samples(measured: list[dict[str, Any]]) -> dict[str, str]:
    samples: dict[str, str] = {}
    for r in measured:
        if not r["ok"] and r["error"] not in samples:
            samples[r["error"]] = r["detail"][:200]
    return samples


def differences(summaries: dict[str, dict[str, Any]], baseline: str) -> dict[str, Any]:
    """Each target's latency percentiles minus the baseline's, and its throughput ratio to the baseline."""
    base = summaries[baseline]
    out: dict[str, Any] = {}
    for name, summary in summaries.items():
        if name == baseline:
            continue
        row: dict[str, Any] = {}
        for metric in LATENCIES:
            for stat in ("p50", "p90", "p99", "mean"):
                mine, theirs = summary[metric].get(stat), base[metric].get(stat)
                row[f"{metric}.{stat}"] = None if mine is None or theirs is None else round(mine - theirs, 3)
        for rate in ("output_tokens_per_s", "requests_per_s"):
            mine, theirs = summary.get(rate), base.get(rate)
            row[f"{rate}.ratio"] = round(mine / theirs, 4) if mine and theirs else None
        out[name] = row
    return {"baseline": baseline, "targets": out}
