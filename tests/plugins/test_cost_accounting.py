"""The cost plugin's accounting in the chain: cache hits, sub-calls, policy prices, shared stream usage, sinks."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import BaseModel, ConfigDict

from plugins._cost.sinks import LineSinks
from plugins.cost import Cost, CostConfig
from proxy import ApiResponse, Exchange, PluginRegistry, hookimpl
from proxy.chain import compile_chain
from proxy.exchange import Usage
from proxy.metrics import usage_from_raw
from proxy.pricing import CLIENT_ASKED_USAGE, Price, ask_stream_usage, take_stream_usage
from proxy.registry import DEFAULT_PLUGINS, build_registry
from proxy.runtime import Resources
from proxy.store import open_store
from proxy.store.config import StoreConfig
from proxy.subcall import SubcallRecord
from proxy.usage import summarize
from proxy.workers import WORKER_ENV
from tests.chain_helpers import CHAT_OK, StubBackend, compile_chain_policy, make_exchange

NOON = datetime.datetime(2026, 11, 5, 12, tzinfo=datetime.UTC)
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


class FakeCache:
    """Answers every request from "cache", as the cache plugin does on a hit."""

    name = "fakecache"

    class Config(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, config: Any) -> None:
        pass

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        exchange.verdicts["cache"] = "hit"
        body = {**CHAT_OK, "model": "gpt-4o", "usage": USAGE}
        return ApiResponse(200, body=body, source="cache")


@pytest.fixture
def registry() -> PluginRegistry:
    reg = build_registry(entry_points=False, modules=tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.cost"))))
    reg(FakeCache)
    return reg


async def run_once(
    exchange: Exchange, plugin: Cost, home: Path, backend: StubBackend | None = None
) -> tuple[ApiResponse, Exchange]:
    store = open_store(StoreConfig(), home)
    try:
        await exchange.chain.startup(Resources(store=store, home=home))
        response = await exchange.chain.run(exchange, backend or StubBackend(lambda e: {**CHAT_OK, "usage": USAGE}))
        exchange.usage = Usage.from_openai((response.body or {}).get("usage"))  # as the server does
        exchange.response_model = (response.body or {}).get("model")
        await exchange.chain.complete(exchange)
        await exchange.chain.shutdown()
        assert plugin.ledger is not None
    finally:
        await store.close()
    return response, exchange


def exchange_for(registry: PluginRegistry, chain: str, model: str = "gpt-4o") -> tuple[Exchange, Cost]:
    policy = compile_chain_policy(chain, registry)
    exchange = make_exchange(policy, {"model": model, "messages": [{"role": "user", "content": "hi"}]})
    plugin = exchange.chain.steps[0].plugin
    assert isinstance(plugin, Cost)
    plugin.clock = NOON.timestamp
    return exchange, plugin


async def usage_rows(home: Path, **kwargs: Any) -> dict[str, Any]:
    store = open_store(StoreConfig(), home)
    try:
        return await summarize(store, NOON.date(), NOON.date(), **kwargs)
    finally:
        await store.close()


async def test_a_cache_hit_costs_nothing_and_records_what_it_saved(registry: PluginRegistry, tmp_path: Path) -> None:
    exchange, plugin = exchange_for(registry, "[{cost: {flush_s: 0}}, fakecache]")
    response, exchange = await run_once(exchange, plugin, tmp_path)
    assert response.headers["x-chaperone-cost"] == "0.000000000"
    assert exchange.cost_usd == 0.0 and exchange.verdicts["cost"] == "priced"
    summary = await usage_rows(tmp_path)
    totals = summary["totals"]
    assert (totals["requests"], totals["cache_hits"], totals["cost_usd"], totals["prompt_tokens"]) == (1, 1, 0.0, 0)
    assert totals["saved_usd"] == pytest.approx((1000 * 2.50 + 100 * 10.00) / 1e6)


async def test_sub_calls_are_added_to_the_requests_cost(registry: PluginRegistry, tmp_path: Path) -> None:
    exchange, plugin = exchange_for(registry, "[{cost: {flush_s: 0}}]")
    sub = Usage(prompt_tokens=2000, completion_tokens=200, total_tokens=2200)
    exchange.subcalls.append(SubcallRecord("gpt-4o-mini", "stub", sub, 0.0, 0.0))
    response, exchange = await run_once(exchange, plugin, tmp_path)
    own = (1000 * 2.50 + 100 * 10.00) / 1e6
    subcall = (2000 * 0.15 + 200 * 0.60) / 1e6
    assert exchange.cost_usd == pytest.approx(own + subcall)
    assert float(response.headers["x-chaperone-cost"]) == pytest.approx(own + subcall)
    totals = (await usage_rows(tmp_path))["totals"]
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (3000, 300)


async def test_policy_prices_win_and_reasoning_can_have_its_own_rate(registry: PluginRegistry, tmp_path: Path) -> None:
    exchange, plugin = exchange_for(registry, "[{cost: {flush_s: 0}}]", model="local-llama")
    prices = {"local-llama": Price(input=1.0, output=2.0, cached_input=0.1, reasoning=4.0)}
    exchange.policy = dataclasses.replace(exchange.policy, prices=prices)
    detailed = {
        **USAGE,
        "prompt_tokens_details": {"cached_tokens": 500},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }
    backend = StubBackend(lambda e: {**CHAT_OK, "model": "local-llama", "usage": detailed})
    _, exchange = await run_once(exchange, plugin, tmp_path, backend)
    assert exchange.cost_usd == pytest.approx((500 * 1.0 + 500 * 0.1 + 50 * 2.0 + 50 * 4.0) / 1e6)


async def test_a_model_without_a_price_is_counted_but_unpriced(registry: PluginRegistry, tmp_path: Path) -> None:
    exchange, plugin = exchange_for(registry, "[{cost: {flush_s: 0}}]", model="my-own-llama")
    backend = StubBackend(lambda e: {**CHAT_OK, "model": "my-own-llama", "usage": USAGE})
    response, exchange = await run_once(exchange, plugin, tmp_path, backend)
    assert "x-chaperone-cost" not in response.headers
    assert (exchange.cost_usd, exchange.verdicts["cost"]) == (None, "unpriced")
    (row,) = (await usage_rows(tmp_path, group_by=("model",)))["data"]
    assert (row["model"], row["unpriced"], row["prompt_tokens"], row["cost_usd"]) == ("my-own-llama", 1, 1000, 0.0)


async def test_an_answer_without_usage_is_counted_and_labelled_estimated(
    registry: PluginRegistry, tmp_path: Path
) -> None:
    exchange, plugin = exchange_for(registry, "[{cost: {flush_s: 0}}]", model="gpt-4o")
    no_usage = {k: v for k, v in CHAT_OK.items() if k != "usage"}
    _, exchange = await run_once(exchange, plugin, tmp_path, StubBackend(lambda e: dict(no_usage)))
    assert exchange.usage is not None and exchange.usage.completion_tokens == 1  # "stub"
    totals = (await usage_rows(tmp_path))["totals"]
    assert totals["estimated"] == 1 and totals["prompt_tokens"] == exchange.usage.prompt_tokens > 0


async def test_a_rejected_request_costs_nothing_and_counts_as_an_error(
    registry: PluginRegistry, tmp_path: Path
) -> None:
    exchange, plugin = exchange_for(registry, "[{cost: {flush_s: 0}}]")
    error = {"error": {"message": "no", "type": "invalid_request_error"}}
    _, exchange = await run_once(exchange, plugin, tmp_path, StubBackend(lambda e: ApiResponse(400, body=error)))
    assert exchange.cost_usd == 0.0
    totals = (await usage_rows(tmp_path))["totals"]
    assert (totals["requests"], totals["errors"], totals["prompt_tokens"]) == (1, 1, 0)


async def test_opentelemetry_counters_get_cost_and_tokens(registry: PluginRegistry, tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    plugin = Cost(CostConfig(flush_s=0, aggregate=False), meter_provider=provider)
    policy = compile_chain_policy("[]", registry)
    chain = compile_chain("default", [("cost", plugin)])
    exchange = make_exchange(policy, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    exchange.chain = chain
    store = open_store(StoreConfig(), tmp_path)
    try:
        await chain.startup(Resources(store=store, home=tmp_path))
        exchange.response = await chain.run(exchange, StubBackend(lambda e: {**CHAT_OK, "usage": USAGE}))
        exchange.usage = Usage.from_openai(USAGE)
        await chain.complete(exchange)
    finally:
        await store.close()
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (metric.name, dict(point.attributes or {}).get("gen_ai.token.type")): point
        for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
        for point in metric.data.data_points
    }  # fmt: skip
    assert points[("chaperone.cost", None)].value == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)  # type: ignore[union-attr]
    assert points[("chaperone.tokens", "input")].value == 1000  # type: ignore[union-attr]
    assert points[("chaperone.tokens", "output")].value == 100  # type: ignore[union-attr]
    provider.shutdown()


async def test_no_opentelemetry_sink_without_a_configured_meter_provider(tmp_path: Path) -> None:
    """``chaperone serve`` sets no global meter provider (its own metrics go to OTEL_METRICS_EXPORTER's): the API's
    default provider would drop every point, so the plugin keeps no sink rather than build attributes for it."""
    assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"  # nothing set in this process
    plugin = Cost(CostConfig(flush_s=0, aggregate=False))
    store = open_store(StoreConfig(), tmp_path)
    try:
        await plugin.on_startup(Resources(store=store, home=tmp_path))
        assert plugin._meter is None
        reader = InMemoryMetricReader()
        given = Cost(CostConfig(flush_s=0, aggregate=False), meter_provider=MeterProvider(metric_readers=[reader]))
        await given.on_startup(Resources(store=store, home=tmp_path))
        assert given._meter is not None  # a provider passed in is always used
    finally:
        await store.close()


# ---- the stream-usage helpers the budget plugin shares ------------------------------------------------------


def test_stream_usage_is_asked_once_and_the_first_asker_remembers_the_client(registry: PluginRegistry) -> None:
    policy = compile_chain_policy("[]", registry)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    exchange = make_exchange(policy, body)
    ask_stream_usage(exchange)
    ask_stream_usage(exchange)  # a second plugin: sees the first one's record, not the injected flag
    assert exchange.request.body["stream_options"] == {"include_usage": True}
    assert exchange.stash[CLIENT_ASKED_USAGE] is False
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": "a"}}], "usage": None}
    assert take_stream_usage(exchange, chunk) == {"choices": [{"index": 0, "delta": {"content": "a"}}]}
    riding = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}
    assert "usage" not in (take_stream_usage(exchange, riding) or {})
    assert take_stream_usage(exchange, {"choices": [], "usage": USAGE}) is None
    assert exchange.usage == Usage(1000, 100, 1100)

    asked = make_exchange(policy, {**body, "stream_options": {"include_usage": True}})
    ask_stream_usage(asked)
    assert take_stream_usage(asked, {"choices": [], "usage": USAGE}) == {"choices": [], "usage": USAGE}
    whole = make_exchange(policy, {"model": "m", "messages": []})
    ask_stream_usage(whole)
    assert "stream_options" not in whole.request.body and CLIENT_ASKED_USAGE not in whole.stash


# ---- the JSON-lines file ------------------------------------------------------------------------------------


def test_the_jsonl_file_rotates_by_size_and_keeps_n_files(tmp_path: Path) -> None:
    sinks = LineSinks(tmp_path / "usage" / "cost.jsonl", max_bytes=2048, keep=2, stdout=False)
    for i in range(200):
        sinks.write({"request_id": f"r{i}", "cost_usd": 0.001, "padding": "x" * 40})
    sinks.close()
    files = sorted(p.name for p in (tmp_path / "usage").iterdir())
    assert files == ["cost.jsonl", "cost.jsonl.1", "cost.jsonl.2"]
    ids = []
    for name in reversed(files):
        lines = (tmp_path / "usage" / name).read_text().splitlines()
        assert (tmp_path / "usage" / name).stat().st_size <= 2048
        ids += [json.loads(line)["request_id"] for line in lines]
    assert ids[-1] == "r199" and ids == [f"r{i}" for i in range(200 - len(ids), 200)]  # newest kept, in order


def test_pid_in_the_path_gives_each_worker_its_own_file(tmp_path: Path) -> None:
    sinks = LineSinks(tmp_path / "cost-{pid}.jsonl", max_bytes=4096, keep=1, stdout=False)
    sinks.write({"a": 1})
    sinks.close()
    (only,) = tmp_path.iterdir()
    assert only.name == f"cost-{os.getpid()}.jsonl" and json.loads(only.read_text()) == {"a": 1}


def test_each_worker_of_serve_workers_writes_its_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKER_ENV, "1")
    for name in ("cost.jsonl", "cost-{worker}.jsonl"):
        sinks = LineSinks(tmp_path / name, max_bytes=4096, keep=1, stdout=False)
        sinks.write({"a": 1})
        sinks.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost-1.jsonl", "cost.w1.jsonl"]


# ---- reading usage from an answer's bytes without parsing it (the metrics' reader) ------------------------------


@pytest.mark.parametrize(
    ("raw", "usage"),
    [
        (
            json.dumps({**CHAT_OK, "model": "gpt-4o-2024-08-06", "usage": USAGE}).encode(),
            Usage(1000, 100, 1100),
        ),
        (
            b'{"model": "o3", "choices": [{"message": {"content": "the \\"usage\\": {} key"}}],'
            b' "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,'
            b' "prompt_tokens_details": {"cached_tokens": 3},'
            b' "completion_tokens_details": {"reasoning_tokens": 1}}}',
            Usage(5, 2, 7, 3, 1),
        ),
        (b'{"model":"m","usage":null,"x":{"prompt_tokens":9}}', None),
        (b'{"object":"list","data":[]}', None),
    ],
    ids=["chat", "details-and-a-decoy-in-text", "null-usage", "none"],
)
def test_usage_is_read_from_the_raw_answer(raw: bytes, usage: Usage | None) -> None:
    assert usage_from_raw(raw) == usage
