"""The request metrics through OpenTelemetry: a meter provider from the environment, and the instruments.

``OTEL_METRICS_EXPORTER=console|otlp`` (like ``OTEL_TRACES_EXPORTER`` for traces) switches it on;
unset or ``none``, no provider exists and recording costs nothing. GenAI names where the semantic
conventions have one (``gen_ai.token.type``, ``gen_ai.request.model``), ``chaperone.*`` otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from proxy.chain import HOOK_TIMES

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from proxy.exchange import Exchange
    from proxy.runtime import Runtime

log = logging.getLogger(__name__)


def outcome(status: int | None, error: str | None) -> str:
    """An upstream attempt's outcome label: ``ok``, the error code, or ``http_<status>``."""
    if error is not None:
        return error
    return "ok" if status is not None and status < 400 else f"http_{status}"


def provider_from_env(env: Mapping[str, str] | None = None) -> MeterProvider | None:
    """A meter provider when OTEL_METRICS_EXPORTER=console|otlp, else None (the default: no cost)."""
    env = os.environ if env is None else env
    name = env.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if name in ("", "none"):
        return None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    exporter: MetricExporter
    if name == "console":
        exporter = ConsoleMetricExporter()
    elif name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[import-not-found]
                OTLPMetricExporter,
            )
        except ImportError:
            log.warning("OTEL_METRICS_EXPORTER=otlp needs 'pip install opentelemetry-exporter-otlp-proto-http'")
            return None
        exporter = OTLPMetricExporter()
    else:
        log.warning("unknown OTEL_METRICS_EXPORTER %r; OpenTelemetry metrics stay off", name)
        return None
    interval = float(env.get("OTEL_METRIC_EXPORT_INTERVAL") or 60000)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval)
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "chaperone")})
    return MeterProvider(metric_readers=[reader], resource=resource)


class OtelMetrics:
    """The same request metrics as OpenTelemetry instruments (GenAI names where the conventions have one)."""

    def __init__(self, provider: MeterProvider, runtime: Runtime) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        self.provider = provider
        meter = provider.get_meter("chaperone")
        self.latency = meter.create_histogram("chaperone.request.duration", unit="s", description="Request latency.")
        self.ttft = meter.create_histogram("gen_ai.server.time_to_first_token", unit="s", description="Streams' TTFT.")
        self.tokens = meter.create_counter("chaperone.tokens", unit="{token}", description="Tokens by type.")
        self.cost = meter.create_counter("chaperone.cost", unit="USD", description="Spend.")
        self.verdicts = meter.create_counter("chaperone.plugin.verdicts", description="Plugin outcomes.")
        self.attempts = meter.create_counter("chaperone.upstream.attempts", description="Upstream calls.")
        self.hooks = meter.create_histogram("chaperone.plugin.hook.duration", unit="s", description="Time in hooks.")

        def inflight(options: CallbackOptions) -> list[Observation]:
            current = runtime.current
            return [Observation(current.inflight if current is not None else 0)]

        meter.create_observable_up_down_counter("chaperone.requests.in_flight", [inflight])

    def record(self, exchange: Exchange, status: int, code: str | None, now: float, first: float | None) -> None:
        base = {"chaperone.endpoint": exchange.request.endpoint, "gen_ai.request.model": exchange.route.name}
        self.latency.record(now - exchange.started, {**base, "http.response.status_code": status})
        if first is not None:
            self.ttft.record(first - exchange.started, base)
        keyed = {**base, "chaperone.key": exchange.caller.name or ""}
        usage = exchange.usage
        if usage is not None:
            self.tokens.add(usage.prompt_tokens, {**keyed, "gen_ai.token.type": "input"})
            self.tokens.add(usage.completion_tokens, {**keyed, "gen_ai.token.type": "output"})
        if exchange.cost_usd:
            self.cost.add(exchange.cost_usd, keyed)
        for plugin, verdict in exchange.verdicts.items():
            self.verdicts.add(1, {"chaperone.plugin": plugin, "chaperone.verdict": verdict})
        for attempt in exchange.attempts:
            label = outcome(attempt.status, attempt.error)
            self.attempts.add(1, {"chaperone.backend": attempt.backend, "chaperone.outcome": label})
        for (plugin, hook), seconds in (exchange.stash.get(HOOK_TIMES) or {}).items():
            self.hooks.record(seconds, {"chaperone.plugin": plugin, "chaperone.hook": hook})

    def shutdown(self) -> None:
        shutdown: Callable[[], object] | None = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()
