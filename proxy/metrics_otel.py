"""The request metrics through OpenTelemetry: a meter provider from the environment, and the instruments.

``OTEL_METRICS_EXPORTER=console|otlp`` (like ``OTEL_TRACES_EXPORTER`` for traces) switches it on;
unset or ``none``, no provider exists and recording costs nothing.

The GenAI semantic conventions' metrics (development status; names, units, attributes and bucket
boundaries as they give them), seen from the gateway, which is the model server its clients talk to:

- ``gen_ai.server.request.duration``: every request, with ``error.type`` (the OpenAI-style error
  code) when it failed, and ``http.response.status_code``;
- ``gen_ai.server.time_to_first_token`` (streams: to the first event sent) and
  ``gen_ai.server.time_per_output_token`` (streams: the time after the first event over the output
  tokens after the first), for successful answers;
- ``gen_ai.client.token.usage``: a request's input and output tokens (``gen_ai.token.type``).

Each carries ``gen_ai.operation.name`` (``chat``, ``text_completion``, ``embeddings``),
``gen_ai.provider.name`` (the route's backend type: ``openai`` for every OpenAI-compatible backend,
``anthropic``) and ``gen_ai.request.model`` (the policy's route name, which keeps its values bounded),
plus ``chaperone.endpoint``. What the conventions do not cover is ``chaperone.*``: tokens and spend
per key as counters (``chaperone.tokens``, ``chaperone.cost``), plugin verdicts and hook times,
upstream attempts by outcome, requests in flight.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from proxy.chain import HOOK_TIMES
from proxy.tracing import OPERATION

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from proxy.exchange import Exchange
    from proxy.runtime import Runtime

log = logging.getLogger(__name__)


# The conventions' advised bucket boundaries (seconds; tokens).
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, … 67108864


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
        self.latency = meter.create_histogram(
            "gen_ai.server.request.duration",
            unit="s",
            description="GenAI server request duration, to the last byte sent.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token",
            unit="s",
            description="Time to the first event of successful streams.",
            explicit_bucket_boundaries_advisory=_TTFT_BUCKETS,
        )
        self.tpot = meter.create_histogram(
            "gen_ai.server.time_per_output_token",
            unit="s",
            description="Time per output token after the first, for successful streams.",
            explicit_bucket_boundaries_advisory=_TPOT_BUCKETS,
        )
        self.usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Input and output tokens of a request.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.tokens = meter.create_counter("chaperone.tokens", unit="{token}", description="Tokens by key and type.")
        self.cost = meter.create_counter("chaperone.cost", unit="USD", description="Spend.")
        self.verdicts = meter.create_counter("chaperone.plugin.verdicts", description="Plugin outcomes.")
        self.attempts = meter.create_counter("chaperone.upstream.attempts", description="Upstream calls.")
        self.hooks = meter.create_histogram("chaperone.plugin.hook.duration", unit="s", description="Time in hooks.")

        def inflight(options: CallbackOptions) -> list[Observation]:
            current = runtime.current
            return [Observation(current.inflight if current is not None else 0)]

        meter.create_observable_up_down_counter("chaperone.requests.in_flight", [inflight])

    def record(self, exchange: Exchange, status: int, code: str | None, now: float, first: float | None) -> None:
        endpoint = exchange.request.endpoint
        route = exchange.route
        backend = exchange.policy.backends.get(route.backend)
        base = {
            "gen_ai.operation.name": OPERATION.get(endpoint, endpoint),
            "gen_ai.provider.name": backend.type if backend is not None else "openai",
            "gen_ai.request.model": route.name,
            "chaperone.endpoint": endpoint,
        }
        attrs: dict[str, str | int] = {**base, "http.response.status_code": status}
        if code is not None:
            attrs["error.type"] = code
        self.latency.record(now - exchange.started, attrs)
        usage = exchange.usage
        if first is not None and code is None:
            self.ttft.record(first - exchange.started, base)
            if usage is not None and usage.completion_tokens > 1:
                self.tpot.record((now - first) / (usage.completion_tokens - 1), base)
        if usage is not None:
            self.usage.record(usage.prompt_tokens, {**base, "gen_ai.token.type": "input"})
            self.usage.record(usage.completion_tokens, {**base, "gen_ai.token.type": "output"})
        keyed = {
            "chaperone.endpoint": endpoint,
            "gen_ai.request.model": route.name,
            "chaperone.key": exchange.caller.name or "",
        }
        if usage is not None:
            self.tokens.add(usage.prompt_tokens, {**keyed, "gen_ai.token.type": "input"})
            self.tokens.add(usage.completion_tokens, {**keyed, "gen_ai.token.type": "output"})
            if usage.cached_tokens:
                self.tokens.add(usage.cached_tokens, {**keyed, "gen_ai.token.type": "cached"})
            if usage.reasoning_tokens:
                self.tokens.add(usage.reasoning_tokens, {**keyed, "gen_ai.token.type": "reasoning"})
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
