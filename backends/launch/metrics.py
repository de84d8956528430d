"""Read an engine's Prometheus ``/metrics`` into the few numbers the router picks replicas by.

vLLM exports ``vllm:num_requests_running``, ``vllm:num_requests_waiting`` and its KV-cache usage
(``vllm:kv_cache_usage_perc``; ``vllm:gpu_cache_usage_perc`` before v1), a fraction 0 to 1. TGI exports
``tgi_batch_current_size`` (running) and ``tgi_queue_size`` (waiting). Series with several label sets
(one per model name) are summed; the KV usage takes the largest.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["load_score", "parse_engine_metrics"]

_SUMMED = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "tgi_batch_current_size": "running",
    "tgi_queue_size": "waiting",
}
_KV = {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}


def parse_engine_metrics(text: str) -> dict[str, float]:
    """``{"running", "waiting", "kv_cache_usage"}`` (those the engine exports) from a Prometheus text page."""
    out: dict[str, float] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return out
    for family in families:
        for sample in family.samples:
            key = _SUMMED.get(sample.name)
            if key is not None:
                out[key] = out.get(key, 0.0) + sample.value
            elif sample.name in _KV:
                out["kv_cache_usage"] = max(out.get("kv_cache_usage", 0.0), sample.value)
    return out


def load_score(metrics: dict[str, float], outstanding: int) -> tuple[float, float]:
    """Smaller is less loaded: queued-or-running work first (the engine's count, or the proxy's own when the
    engine exports none), then KV-cache usage as the tie-break (a fuller cache preempts sooner)."""
    if "running" in metrics or "waiting" in metrics:
        work = metrics.get("running", 0.0) + 2.0 * metrics.get("waiting", 0.0)
        work = max(work, float(outstanding))  # the scrape lags; the proxy's own count does not
    else:
        work = float(outstanding)
    return work, metrics.get("kv_cache_usage", 0.0)
