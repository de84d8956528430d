"""Metrics pieces without sockets: usage found in raw answers, per-plugin timing compiled in or not, policy sections."""

from __future__ import annotations

import time
import types
from typing import Any, ClassVar

import orjson
import pytest
from pydantic import BaseModel, ConfigDict

from proxy import ApiResponse, CallNext, Exchange, hookimpl
from proxy import chain as chain_module
from proxy.accesslog import AccessLogConfig
from proxy.chain import HOOK_TIMES, compile_chain
from proxy.exchange import ApiRequest, Attempt, Usage
from proxy.metrics import FIRST_EVENT, Metrics, MetricsConfig, fast_usage, usage_from_raw
from proxy.metrics_otel import provider_from_env
from proxy.policy import Caller, PolicyError, Route
from proxy.realtime import RealtimeStats
from proxy.registry import PluginRegistry
from tests.chain_helpers import StubBackend, compile_chain_policy


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}, (7, 3, 0)),
        (
            {
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}},
                "system_fingerprint": "fp",
            },
            (9, 2, 4),
        ),
        ({"usage": {"input_tokens": 5, "output_tokens": 6}}, (5, 6, 0)),  # Anthropic / Responses names
    ],
)
@pytest.mark.parametrize("padding", [0, 20000])  # short answers are parsed whole, long ones searched
def test_usage_is_found_in_raw_answers(body: dict[str, Any], expected: tuple[int, int, int], padding: int) -> None:
    body = {"id": "x" * padding, **body, "choices": [{"message": {"content": '"usage": {"prompt_tokens": 99}'}}]}
    usage = usage_from_raw(orjson.dumps(body))
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == expected
    assert usage == usage_from_raw(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    assert usage == Usage.from_openai(body["usage"])


@pytest.mark.parametrize("padding", [0, 20000])
def test_a_nested_usage_after_the_answers_own_is_never_taken_for_it(padding: int) -> None:
    own = {"prompt_tokens": 9, "completion_tokens": 2}
    body = {"id": "x" * padding, "usage": own, "tool_trace": [{"step": {"usage": {"prompt_tokens": 99}}}]}
    assert usage_from_raw(orjson.dumps(body)) == Usage.from_openai(own)
    body = {"id": "x" * padding, "usage": own, "meta": {"usage": {"prompt_tokens": 99, "completion_tokens": 1}}}
    assert usage_from_raw(orjson.dumps(body)) == Usage.from_openai(own)
    nested_only: dict[str, Any] = {"id": "x" * padding, "meta": {"usage": {"prompt_tokens": 99}}}
    assert usage_from_raw(orjson.dumps(nested_only)) is None  # no usage of its own
    assert usage_from_raw(b'{"usage" : {"prompt_tokens": 3, "completion_tokens": 1}}') == Usage(3, 1, 4, 0, 0)


@pytest.mark.parametrize(
    "raw", [None, b"", b'{"usage": null}', b'{"choices": []}', b'{"usage": {"prompt_tokens": 1', b"not json", b"[]"]
)
def test_no_usage_is_none(raw: bytes | None) -> None:
    assert usage_from_raw(raw) is None
    if raw:
        assert usage_from_raw(b" " * 10000 + raw) is None


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 30}},
        {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 3}},
        {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": None}},
        {"input_tokens": 4, "output_tokens": 2, "cache_read_input_tokens": 3},
        {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": -2}},
    ],
)
def test_the_quick_path_agrees_with_usage_from_openai(usage: dict[str, Any]) -> None:
    assert fast_usage(usage) == Usage.from_openai(usage)


def test_counts_that_are_not_numbers_are_no_usage() -> None:
    assert fast_usage({"prompt_tokens": "10", "completion_tokens": 5}) is None


class _Empty(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Busy:
    """Spends measurable time in its own code in each hook, around an upstream call it wraps."""

    name = "busy"
    Config: ClassVar[type[BaseModel]] = _Empty

    def __init__(self, config: _Empty | None = None) -> None:
        pass

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        return None

    @hookimpl
    async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
        return await call_next(exchange)


def _exchange(chain: Any) -> Exchange:
    request = ApiRequest("chat", "/chat/completions", {"model": "m", "messages": []})
    return Exchange("id", None, chain, None, request, None, time.monotonic() + 60)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_timed_chain_records_each_hook_and_excludes_the_wrapped_call(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]  # a fake clock: each reading advances 1 ms; the upstream call takes 5 s of it
    monkeypatch.setattr(
        chain_module, "time", types.SimpleNamespace(perf_counter=lambda: now.__setitem__(0, now[0] + 0.001) or now[0])
    )
    chain = compile_chain("c", [("busy", Busy())], timed=True)

    async def slow_terminal(exchange: Exchange) -> ApiResponse:
        now[0] += 5.0
        return ApiResponse(200, raw=b"{}")

    exchange = _exchange(chain)
    await chain.run(exchange, slow_terminal)
    times = exchange.stash[HOOK_TIMES]
    assert set(times) == {("busy", "on_request"), ("busy", "wrap_call")}
    assert times[("busy", "on_request")] == pytest.approx(0.001)
    assert times[("busy", "wrap_call")] == pytest.approx(0.002)  # its own readings, not the 5 s upstream


@pytest.mark.asyncio
async def test_untimed_chain_binds_the_plugin_hooks_themselves() -> None:
    plugin = Busy()
    chain = compile_chain("c", [("busy", plugin)])
    exchange = _exchange(chain)
    await chain.run(exchange, StubBackend())
    assert HOOK_TIMES not in exchange.stash
    assert chain._request[0][1] == plugin.on_request  # no wrapper: zero cost when timing is off


def test_policy_sections_are_validated(registry: PluginRegistry) -> None:
    policy = compile_chain_policy("[]", registry, extra="metrics: {plugin_timing: true}\naccess_log: {}\n")
    assert policy.metrics.plugin_timing and policy.metrics.enabled and not policy.access_log.include_prompts
    with pytest.raises(PolicyError) as error:
        compile_chain_policy("[]", registry, extra="metrics: {timing: true}\n")
    assert error.value.errors[0].startswith("metrics.timing:")
    with pytest.raises(PolicyError) as error:
        compile_chain_policy("[]", registry, extra="metrics: {require_admin_key: true}\n")
    assert error.value.errors[0].startswith("metrics.require_admin_key:")
    with pytest.raises(PolicyError) as error:
        compile_chain_policy("[]", registry, extra="access_log: {include_prompts: maybe}\n")
    assert error.value.errors[0].startswith("access_log.include_prompts:")


# ---- sampled gauges, OpenTelemetry ---------------------------------------------------------------


class _Runtime:
    def __init__(self) -> None:
        self.current = None
        self.streams: set[object] = set()


def _finished_exchange() -> Exchange:
    chain = compile_chain("default", [])
    policy = types.SimpleNamespace(
        metrics=MetricsConfig(), access_log=AccessLogConfig(), backends={"up": types.SimpleNamespace(type="anthropic")}
    )
    request = ApiRequest("chat", "/chat/completions", {"model": "gpt-x", "messages": []})
    exchange = Exchange(
        "id",
        policy,  # type: ignore[arg-type]
        chain,
        Route("gpt-x", "up", None),
        request,
        Caller("team", chain, None),
        time.monotonic() + 60,
    )
    exchange.usage = Usage(12, 5, 17, cached_tokens=2)
    exchange.attempts.append(Attempt("up", "gpt-x", exchange.started, None, 200))
    exchange.verdicts["cost"] = "priced"
    exchange.cost_usd = 0.5
    return exchange


def test_realtime_counters_advance_by_what_the_stats_gained() -> None:
    stats = RealtimeStats()
    metrics = Metrics(_Runtime(), stats)  # type: ignore[arg-type]
    stats.opened, stats.active, stats.frames_up = 3, 1, 10
    stats.closed[1000] += 2
    metrics.sample()
    stats.opened, stats.active, stats.frames_up = 4, 0, 15
    body, _ = metrics.exposition(None)
    text = body.decode()
    assert 'chaperone_realtime_sessions_total{event="opened"} 4.0' in text
    assert 'chaperone_realtime_frames_total{direction="up"} 15.0' in text
    assert 'chaperone_realtime_closed_total{code="1000"} 2.0' in text
    assert "chaperone_realtime_sessions_active 0.0" in text


def _otel_points(reader: Any) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    return points


def test_the_same_request_reaches_opentelemetry_under_the_genai_names() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics = Metrics(_Runtime(), RealtimeStats(), meter_provider=MeterProvider(metric_readers=[reader]))  # type: ignore[arg-type]
    exchange = _finished_exchange()
    exchange.stash[FIRST_EVENT] = exchange.started + 0.05  # a stream: its first event after 50 ms
    metrics.record(exchange, 200, None, exchange.started + 0.25)
    failed = _finished_exchange()
    failed.usage = None
    metrics.record(failed, 429, "rate_limit_exceeded", failed.started + 0.01)
    points = _otel_points(reader)
    genai = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "gpt-x",
        "chaperone.endpoint": "chat",
    }
    by_status = {p.attributes["http.response.status_code"]: p for p in points["gen_ai.server.request.duration"]}
    ok, refused = by_status[200], by_status[429]
    assert dict(ok.attributes) == {**genai, "http.response.status_code": 200}
    assert ok.count == 1 and ok.sum == pytest.approx(0.25)
    assert dict(refused.attributes) == {**genai, "http.response.status_code": 429, "error.type": "rate_limit_exceeded"}
    assert list(ok.explicit_bounds)[:3] == [0.01, 0.02, 0.04]  # the conventions' advised buckets
    (ttft,) = points["gen_ai.server.time_to_first_token"]  # successful answers only
    assert dict(ttft.attributes) == genai and ttft.sum == pytest.approx(0.05)
    (tpot,) = points["gen_ai.server.time_per_output_token"]  # 0.2 s for the 4 tokens after the first
    assert tpot.sum == pytest.approx(0.05)
    usage = {p.attributes["gen_ai.token.type"]: p for p in points["gen_ai.client.token.usage"]}
    assert {kind: (p.count, p.sum) for kind, p in usage.items()} == {"input": (1, 12), "output": (1, 5)}
    assert dict(usage["input"].attributes) == {**genai, "gen_ai.token.type": "input"}
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points["chaperone.tokens"]}
    assert tokens == {"input": 12, "output": 5, "cached": 2}  # per key, as Prometheus has them
    assert {p.attributes["chaperone.key"] for p in points["chaperone.tokens"]} == {"team"}
    assert points["chaperone.cost"][0].value == pytest.approx(1.0)  # both requests cost 0.5
    prom = metrics.exposition(None)[0].decode()
    assert 'chaperone_tokens_total{key="team",model="gpt-x",type="cached"} 2.0' in prom
    assert 'chaperone_upstream_attempts_total{backend="up",outcome="ok"} 2.0' in prom


def test_exporter_choice_from_the_environment() -> None:
    assert provider_from_env({}) is None
    assert provider_from_env({"OTEL_METRICS_EXPORTER": "none"}) is None
    assert provider_from_env({"OTEL_METRICS_EXPORTER": "carrier-pigeon"}) is None
    provider = provider_from_env({"OTEL_METRICS_EXPORTER": "console"})
    assert provider is not None
    provider.shutdown()  # type: ignore[attr-defined]
