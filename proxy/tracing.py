"""OpenTelemetry wiring: one span per request, per plugin hook and per upstream attempt.

Attributes follow the GenAI semantic conventions. With no tracer provider configured nothing is
recorded and the chain is compiled without per-hook wrappers, so tracing costs nothing when off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from proxy.exchange import Attempt, Exchange

log = logging.getLogger(__name__)

# The Responses API and Anthropic Messages are chat in the GenAI conventions' terms.
OPERATION = {
    "chat": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
    "messages": "chat",
}
_REQUEST_ATTRS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


def provider_from_env(env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A tracer provider when the environment asks for one (OTEL_TRACES_EXPORTER=otlp|console), else None."""
    env = os.environ if env is None else env
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not exporter_name and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        exporter_name = "otlp"
    if exporter_name in ("", "none"):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OTEL_TRACES_EXPORTER=otlp needs 'pip install opentelemetry-exporter-otlp-proto-http'")
            return None
        exporter = OTLPSpanExporter()
    else:
        log.warning("unknown OTEL_TRACES_EXPORTER %r; tracing stays off", exporter_name)
        return None
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "chaperone")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def request_attributes(exchange: Exchange) -> dict[str, Any]:
    body = exchange.request.body
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION.get(exchange.request.endpoint, exchange.request.endpoint),
        "gen_ai.request.model": exchange.request.model,
        "chaperone.route.backend": exchange.route.backend,
        "chaperone.chain": exchange.chain.name,
        "chaperone.request_id": exchange.request_id,
        "chaperone.stream": exchange.request.stream,
    }
    if exchange.caller.name:
        attrs["chaperone.key"] = exchange.caller.name
    for field, attr in _REQUEST_ATTRS.items():
        value = body.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[attr] = value
    return attrs


def response_attributes(exchange: Exchange) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if exchange.response_model:
        attrs["gen_ai.response.model"] = exchange.response_model
    if exchange.usage is not None:
        attrs["gen_ai.usage.input_tokens"] = exchange.usage.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = exchange.usage.completion_tokens
    if exchange.finish_reasons:
        attrs["gen_ai.response.finish_reasons"] = list(exchange.finish_reasons)
    if exchange.attempts:  # [reliability] the attempt history: backend and outcome of each upstream call
        attrs["chaperone.attempts"] = len(exchange.attempts)
        attrs["chaperone.attempt.backends"] = [a.backend for a in exchange.attempts]
        attrs["chaperone.attempt.outcomes"] = [_outcome(a) for a in exchange.attempts]
        attrs["chaperone.backend"] = exchange.route.backend
    return attrs


def _outcome(attempt: Attempt) -> str:
    """[reliability] ``500``, ``200``, ``upstream_timeout``, ``circuit_open``, ``200:upstream_disconnected``."""
    if attempt.status is None:
        return attempt.error or "unknown"
    if attempt.error is None or attempt.status >= 400:
        return str(attempt.status)
    return f"{attempt.status}:{attempt.error}"


def get_tracer(provider: trace.TracerProvider | None) -> trace.Tracer | None:
    return provider.get_tracer("chaperone") if provider is not None else None
