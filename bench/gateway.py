"""What a Chaperone target says about itself: its ``/metrics`` before and after a run, subtracted.

From Chaperone's own timing: server-side latency and TTFT (``chaperone_request_duration_seconds``,
``chaperone_time_to_first_token_seconds``), per-plugin hook time (``chaperone_plugin_hook_duration_seconds``,
recorded when the policy has ``metrics: {plugin_timing: true}``) and the process's CPU time
(``process_cpu_seconds_total``). Every figure is a mean over the requests the proxy finished in
between (warm-up and cool-down included: the counters cannot tell them apart). A target without
``/metrics`` (an engine, or metrics off) gets ``None``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]
_WANTED = (
    "chaperone_request_duration_seconds",
    "chaperone_time_to_first_token_seconds",
    "chaperone_plugin_hook_duration_seconds",
    "process_cpu_seconds",
    "chaperone_cache_lookups",
)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"


async def scrape(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Sample | None:
    """The wanted samples of ``ORIGIN/metrics``, or None when the target has none."""
    try:
        async with session.get(origin(url) + "/metrics", headers=headers) as resp:
            if resp.status != 200 or "text/plain" not in resp.headers.get("content-type", ""):
                return None
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    if "chaperone_" not in text:
        return None
    samples: Sample = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(_WANTED):
            continue
        for s in family.samples:
            if s.name.endswith(("_sum", "_count", "_total")) or s.name == "process_cpu_seconds":
                samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return samples


async def scrape_after(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], before: Sample | None, sent: int
) -> Sample | None:
    """The scrape after a run, once the proxy has recorded every request sent (it records after answering)."""
    after = await scrape(session, url, headers)
    for _ in range(20):
        if before is None or after is None or _requests(before, after) >= sent:
            break
        await asyncio.sleep(0.05)
        after = await scrape(session, url, headers)
    return after


def _requests(before: Sample, after: Sample) -> float:
    name = "chaperone_request_duration_seconds_count"
    return _total(after, name) - _total(before, name)


def _total(delta: Sample, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in delta.items() if n == name and all((k, m) in labels for k, m in match.items()))


def attribute(before: Sample | None, after: Sample | None) -> dict[str, Any] | None:
    """Mean server-side latency, TTFT, CPU per request and per-plugin ms per request between two scrapes."""
    if before is None or after is None:
        return None
    delta = {key: value - before.get(key, 0.0) for key, value in after.items()}
    requests = _total(delta, "chaperone_request_duration_seconds_count")
    if requests <= 0:
        return None
    streams = _total(delta, "chaperone_time_to_first_token_seconds_count")
    cpu = _total(delta, "process_cpu_seconds_total") or _total(delta, "process_cpu_seconds")
    plugins: dict[str, dict[str, float]] = defaultdict(dict)
    for (name, labels), value in delta.items():
        if name == "chaperone_plugin_hook_duration_seconds_sum" and value > 0:
            label = dict(labels)
            plugins[label.get("plugin", "?")][label.get("hook", "?")] = round(value * 1e3 / requests, 4)
    return {
        "requests": int(requests),
        "server_latency_ms_mean": round(_total(delta, "chaperone_request_duration_seconds_sum") * 1e3 / requests, 3),
        "server_ttft_ms_mean": round(_total(delta, "chaperone_time_to_first_token_seconds_sum") * 1e3 / streams, 3)
        if streams
        else None,
        "cpu_ms_per_request": round(cpu * 1e3 / requests, 4),
        "plugins_ms_per_request": {
            p: {**hooks, "total": round(sum(hooks.values()), 4)} for p, hooks in plugins.items()
        },
        "plugin_timing": bool(plugins),
        "cache_lookups": {
            dict(labels).get("outcome", "?"): int(v)
            for (n, labels), v in delta.items()
            if n == "chaperone_cache_lookups_total" and v > 0
        },
    }
