"""``GET /metrics`` over real sockets: it parses, its counters move as requests pass, workers add up."""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict

from proxy import ApiResponse, BudgetExceeded, Exchange, hookimpl
from proxy.registry import PluginRegistry
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, serve_process, simple_policy

pytestmark = pytest.mark.asyncio

MESSAGES: list[Any] = [{"role": "user", "content": "Say something about gauges"}]
ADMIN = "admin-key-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class _Empty(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateStub:
    """Refuses requests whose last message says 'over', as the budget plugin would (verdict and 429)."""

    name = "ratestub"
    Config: ClassVar[type[BaseModel]] = _Empty

    def __init__(self, config: _Empty) -> None:
        pass

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        if "over" in str(exchange.request.messages[-1].get("content")):
            exchange.verdicts[self.name] = "rejected:rpm"
            raise BudgetExceeded("Rate limit reached for requests.")
        exchange.verdicts[self.name] = "ok"


class CacheStub:
    """Answers 'cached' prompts itself and says so in the cache verdict; a miss otherwise. Prices every answer."""

    name = "cachestub"
    Config: ClassVar[type[BaseModel]] = _Empty

    def __init__(self, config: _Empty) -> None:
        pass

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        if "cached" in str(exchange.request.messages[-1].get("content")):
            exchange.verdicts["cache"] = "hit"
            return ApiResponse(200, body={"object": "chat.completion", "choices": [], "usage": None})
        exchange.verdicts["cache"] = "miss"
        return None

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        exchange.cost_usd = 0.25


@pytest.fixture
def stub_registry(registry: PluginRegistry) -> PluginRegistry:
    registry(RateStub)
    registry(CacheStub)
    return registry


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels (the Prometheus text parser must accept it)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(value for (n, got), value in samples.items() if n == name and want <= got)


async def scrape(base: str, authorization: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": authorization} if authorization else {}
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics", headers=headers) as response:
        return response.status, await response.text()


def root(proxy: RunningProxy) -> str:
    return proxy.url.removesuffix("/v1")


async def test_counters_move_for_whole_streamed_failed_and_refused_requests(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    stub_registry: PluginRegistry,
) -> None:
    policy = simple_policy(mock_upstream.url, "[ratestub, cachestub]", extra="metrics: {plugin_timing: true}\n")
    proxy = await start_proxy(write_policy(policy), registry_=stub_registry)
    async with proxy.client() as client:
        whole = await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        streamed_usage = None
        async for chunk in stream:
            streamed_usage = chunk.usage or streamed_usage
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "over"}])
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(
                model="mock-gpt", messages=[{"role": "user", "content": "fail [[mock:status=503]]"}]
            )
        await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "cached"}])
    async with aiohttp.ClientSession() as session:  # refused before any chain ran: not JSON
        async with session.post(proxy.url + "/chat/completions", data=b"{") as response:
            assert response.status == 400

    status, text = await scrape(root(proxy))
    assert status == 200
    samples = parse(text)
    latency = "chaperone_request_duration_seconds_count"
    assert total(samples, latency, endpoint="chat", model="mock-gpt", status="200") == 3
    assert total(samples, latency, endpoint="chat", status="429") == 1
    assert total(samples, latency, endpoint="chat", status="503") == 1
    assert total(samples, latency, endpoint="chat", status="400") == 1
    assert total(samples, "chaperone_time_to_first_token_seconds_count", endpoint="chat") == 1
    assert whole.usage is not None and streamed_usage is not None
    expected_in = whole.usage.prompt_tokens + streamed_usage.prompt_tokens
    assert total(samples, "chaperone_tokens_total", model="mock-gpt", type="input") == expected_in
    expected_out = whole.usage.completion_tokens + streamed_usage.completion_tokens
    assert total(samples, "chaperone_tokens_total", model="mock-gpt", type="output") == expected_out
    assert total(samples, "chaperone_rejections_total", plugin="ratestub", reason="rpm") == 1
    assert total(samples, "chaperone_cache_lookups_total", outcome="hit") == 1
    assert total(samples, "chaperone_cache_lookups_total", outcome="miss") == 3  # whole, stream, the 503
    assert total(samples, "chaperone_cost_usd_total") == pytest.approx(0.25 * 4)  # every request cachestub entered
    assert total(samples, "chaperone_upstream_attempts_total", backend="mock", outcome="ok") == 2
    assert total(samples, "chaperone_upstream_attempts_total", backend="mock") == 3
    assert total(samples, "chaperone_errors_total", code="budget_exceeded") == 1
    assert total(samples, "chaperone_errors_total", code="invalid_json") == 1
    hooks = "chaperone_plugin_hook_duration_seconds_count"
    assert total(samples, hooks, plugin="ratestub", hook="on_request") == 5
    assert total(samples, hooks, plugin="cachestub", hook="on_complete") == 4
    assert total(samples, "chaperone_requests_in_flight") == 0
    assert total(samples, "chaperone_realtime_sessions_active") == 0


async def test_plugin_timing_is_off_by_default(proxy: RunningProxy, client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    samples = parse((await scrape(root(proxy)))[1])
    assert total(samples, "chaperone_request_duration_seconds_count") == 1
    assert total(samples, "chaperone_plugin_hook_duration_seconds_count") == 0
    assert total(samples, "process_cpu_seconds_total") > 0  # the process collector, as a scraper expects


async def test_metrics_need_the_admin_key_when_the_policy_has_one(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=f"admin: {{key: '{ADMIN}'}}\n")))
    assert (await scrape(root(proxy)))[0] == 401
    assert (await scrape(root(proxy), "Bearer wrong-key-0123456789"))[0] == 401
    status, text = await scrape(root(proxy), f"Bearer {ADMIN}")
    assert status == 200 and "chaperone_request_duration_seconds" in text


async def test_an_open_scrape_can_be_allowed_and_metrics_switched_off(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    extra = f"admin: {{key: '{ADMIN}'}}\nmetrics: {{require_admin_key: false}}\n"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=extra)))
    assert (await scrape(root(proxy)))[0] == 200
    off = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra="metrics: {enabled: false}\n")))
    assert (await scrape(root(off)))[0] == 404


async def test_two_processes_on_one_multiprocess_dir_add_up(tmp_path: Path) -> None:
    """What ``serve --workers N`` relies on: any process's /metrics shows the sum over all of them."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        textwrap.dedent("""
        backends:
          mock: {builtin: mock}
        models:
          "*": {backend: mock}
        """)
    )
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    async with (
        serve_process(tmp_path / "a", "--policy", str(policy), **env) as (_, url_a),
        serve_process(tmp_path / "b", "--policy", str(policy), **env) as (_, url_b),
    ):
        for url, count in ((url_a, 1), (url_b, 2)):
            async with openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0) as client:
                for _ in range(count):
                    await client.chat.completions.create(model="any", messages=MESSAGES)
        for url in (url_a, url_b):
            status, text = await scrape(url.removesuffix("/v1"))
            assert status == 200
            samples = parse(text)
            assert total(samples, "chaperone_request_duration_seconds_count", status="200") == 3
            assert total(samples, "chaperone_upstream_attempts_total", outcome="ok") == 3


def _exported(text: str) -> dict[str, list[dict[str, Any]]]:
    """The data points of every metric the console exporter printed (JSON documents among the log lines)."""
    decoder = json.JSONDecoder()
    points: dict[str, list[dict[str, Any]]] = {}
    start = text.find("\n{")
    while start >= 0:
        document, end = decoder.raw_decode(text, start + 1)
        for resource in document["resource_metrics"]:
            for scope in resource["scope_metrics"]:
                for metric in scope["metrics"]:
                    points.setdefault(metric["name"], []).extend(metric["data"]["data_points"])
        start = text.find("\n{", end)
    return points


async def test_opentelemetry_metrics_carry_the_genai_names(tmp_path: Path) -> None:
    """``OTEL_METRICS_EXPORTER=console``: a streamed request shows up under the GenAI conventions' metrics."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('backends:\n  mock: {builtin: mock}\nmodels:\n  "*": {backend: mock}\n')
    env = {"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "600000"}  # exported at shutdown
    async with serve_process(tmp_path / "home", "--policy", str(policy), **env) as (proc, url):
        async with openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="any", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            usage = [chunk.usage async for chunk in stream if chunk.usage is not None]
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout is not None
        output = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
        assert await proc.wait() == 0
    points = _exported(output)
    (duration,) = points["gen_ai.server.request.duration"]
    assert duration["attributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "*",
        "chaperone.endpoint": "chat",
        "http.response.status_code": 200,
    }
    assert duration["count"] == 1
    assert points["gen_ai.server.time_to_first_token"][0]["count"] == 1
    tokens = {p["attributes"]["gen_ai.token.type"]: p["sum"] for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": usage[0].prompt_tokens, "output": usage[0].completion_tokens}
