"""Summaries from records: the measurement window, token drift, and the proxy's counters subtracted."""

from __future__ import annotations

from typing import Any

from bench.client import Outcome
from bench.gateway import Sample, attribute
from bench.summary import mark_window, record, summarize
from proxy.tokens import get_encoding

ENC = get_encoding("o200k_base")


def outcome(start: float, end: float, **kw: Any) -> Outcome:
    o = Outcome(0, "plain", start=start, end=end, ttfc=0.01, ttft=0.005, **kw)
    o.text = o.text or ["hello", " world"]
    return o


def test_warm_up_and_cool_down_are_left_out() -> None:
    rows = [record(outcome(t, t + 1.0), "t", ENC) for t in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)]
    window = mark_window(rows, warmup_s=1.5, cooldown_s=1.5)  # span 0 → 10 s: measured 1.5 → 8.5
    assert [r["start_s"] for r in rows if r["measured"]] == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert window["excluded"] == 4 and window["seconds"] == 7.0
    summary = summarize(rows, window, {})
    assert summary["completed"] == 6 and summary["requests_per_s"] == round(6 / 7, 3)


def test_a_window_emptied_by_warm_up_measures_everything_and_says_so() -> None:
    rows = [record(outcome(0.0, 1.0), "t", ENC)]
    window = mark_window(rows, warmup_s=5, cooldown_s=5)
    assert rows[0]["measured"] and "every request measured" in window["note"]


def test_server_usage_wins_and_the_drift_from_tiktoken_is_shown() -> None:
    rows = [
        record(outcome(0, 1, usage={"completion_tokens": 4, "prompt_tokens": 9}), "t", ENC),  # tiktoken says 2
        record(outcome(0, 1), "t", ENC),  # no usage: tiktoken's count is used
    ]
    assert [r["output_tokens"] for r in rows] == [4, 2]
    assert rows[0]["output_tokens_client"] == 2 and rows[0]["input_tokens_server"] == 9
    summary = summarize(rows, mark_window(rows, 0, 0), {})
    tokens = summary["tokens"]
    assert tokens["token_drift_pct"] == -50.0 and tokens["with_server_usage"] == 1
    assert tokens["without_server_usage"] == 1 and "tiktoken" in tokens["counted_with"]
    assert rows[0]["tpot_ms"] == round((1 - 0.01) / 3 * 1e3, 3)  # (e2e - first content) / (tokens - 1)


def sample(latency: float, count: float, hooks: dict[tuple[str, str], float], cpu: float) -> Sample:
    out: Sample = {
        ("chaperone_request_duration_seconds_sum", (("endpoint", "chat"),)): latency,
        ("chaperone_request_duration_seconds_count", (("endpoint", "chat"),)): count,
        ("process_cpu_seconds_total", ()): cpu,
    }
    for (plugin, hook), seconds in hooks.items():
        out[("chaperone_plugin_hook_duration_seconds_sum", (("hook", hook), ("plugin", plugin)))] = seconds
    return out


def test_the_proxys_counters_are_subtracted_and_divided_per_request() -> None:
    before = sample(1.0, 10, {("pii", "on_request"): 0.1}, 2.0)
    after = sample(3.0, 110, {("pii", "on_request"): 0.3, ("pii", "on_chunk"): 0.05}, 2.5)
    gw = attribute(before, after)
    assert gw is not None
    assert gw["requests"] == 100 and gw["server_latency_ms_mean"] == 20.0 and gw["cpu_ms_per_request"] == 5.0
    assert gw["plugins_ms_per_request"] == {"pii": {"on_request": 2.0, "on_chunk": 0.5, "total": 2.5}}
    assert attribute(None, after) is None and attribute(after, after) is None  # nothing to attribute
