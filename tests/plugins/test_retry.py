"""The retry plugin through the real chain, against an in-process stub terminal and a fake sleep."""

from __future__ import annotations

import copy
import json
import textwrap
from typing import Any

import pytest

from plugins.retry import Retry
from proxy.errors import InvalidRequest, UpstreamError, UpstreamStatus
from proxy.exchange import ApiResponse, Exchange
from proxy.policy import Policy, PolicyError, compile_policy_text
from proxy.registry import PluginRegistry
from tests.chain_helpers import CHAT_OK, StubBackend, make_exchange


def retry_policy(registry: PluginRegistry, config: str = "{}", fallback: str = "[spare]") -> Policy:
    text = f"""
    backends:
      main: {{url: "http://127.0.0.1:9/v1", timeout_s: 5}}
      other: {{url: "http://127.0.0.1:9/v1"}}
    models:
      gpt: {{backend: main, model: up-main, fallback: {fallback}}}
      spare: {{backend: other}}
      small: {{backend: other, model: gpt-4}}
    chains:
      default: [{{retry: {config}}}]
    """
    return compile_policy_text(textwrap.dedent(text), registry, env={})


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def plugin_of(policy: Policy) -> Retry:
    step = policy.default_chain.steps[0].plugin
    assert isinstance(step, Retry)
    step.sleeps = Sleeps()  # type: ignore[attr-defined]
    step.sleep = step.sleeps  # type: ignore[attr-defined]
    return step


def scripted(*outcomes: Any) -> StubBackend:
    """A stub whose n-th call raises or returns the n-th outcome; records which backend/model each call hit."""
    queue = list(outcomes)
    seen: list[tuple[str, str | None]] = []

    def handler(exchange: Exchange) -> ApiResponse | dict[str, Any]:
        seen.append((exchange.route.backend, exchange.route.upstream_model))
        outcome = queue.pop(0) if queue else copy.deepcopy(CHAT_OK)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    stub = StubBackend(handler)
    stub.seen = seen  # type: ignore[attr-defined]
    return stub


def status(code: int, headers: dict[str, str] | None = None, error_code: str | None = None) -> UpstreamStatus:
    body = {"error": {"message": f"upstream {code}", "type": "x", "param": None, "code": error_code}}
    return UpstreamStatus(code, json.dumps(body).encode(), headers)


async def run(policy: Policy, stub: StubBackend, **kwargs: Any) -> ApiResponse:
    exchange = make_exchange(policy, {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}, **kwargs)
    return await policy.default_chain.run(exchange, stub)


async def test_5xx_is_retried_with_jittered_backoff_then_succeeds(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{attempts: 3, backoff_s: 0.1, max_backoff_s: 1}")
    plugin = plugin_of(policy)
    stub = scripted(status(500), status(503))
    response = await run(policy, stub)
    assert response.status == 200
    assert stub.seen == [("main", "up-main")] * 3  # type: ignore[attr-defined]
    assert len(plugin.sleeps) == 2 and 0 <= plugin.sleeps[0] <= 0.1 and 0 <= plugin.sleeps[1] <= 0.2  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
async def test_other_4xx_are_never_retried_nor_fall_back(registry: PluginRegistry, code: int) -> None:
    policy = retry_policy(registry)
    stub = scripted(status(code))
    with pytest.raises(UpstreamStatus) as info:
        await run(policy, stub)
    assert info.value.upstream_status == code
    assert len(stub.calls) == 1


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504])
async def test_retryable_statuses_use_every_attempt_then_fall_back(registry: PluginRegistry, code: int) -> None:
    policy = retry_policy(registry, "{attempts: 2, backoff_s: 0}")
    stub = scripted(status(code), status(code))
    response = await run(policy, stub)
    assert response.status == 200
    assert stub.seen == [("main", "up-main"), ("main", "up-main"), ("other", "spare")]  # type: ignore[attr-defined]


async def test_retry_after_under_the_cap_is_waited_for(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{attempts: 2, retry_after_cap_s: 5}")
    plugin = plugin_of(policy)
    stub = scripted(status(429, {"retry-after": "3"}))
    assert (await run(policy, stub)).status == 200
    assert plugin.sleeps == [3.0]  # type: ignore[attr-defined]
    assert len(stub.calls) == 2


async def test_a_longer_ask_skips_to_the_fallback_at_once(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{attempts: 3, retry_after_cap_s: 5}")
    plugin = plugin_of(policy)
    stub = scripted(status(429, {"x-ratelimit-reset-requests": "1m0s", "x-ratelimit-remaining-requests": "0"}))
    assert (await run(policy, stub)).status == 200
    assert plugin.sleeps == []  # type: ignore[attr-defined]
    assert stub.seen == [("main", "up-main"), ("other", "spare")]  # type: ignore[attr-defined]


async def test_without_a_fallback_the_429_and_its_retry_after_reach_the_client(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{attempts: 3, retry_after_cap_s: 5}", fallback="[]")
    stub = scripted(status(429, {"retry-after": "60"}))
    with pytest.raises(UpstreamStatus) as info:
        await run(policy, stub)
    assert info.value.http_status == 429 and info.value.headers()["retry-after"] == "60"
    assert len(stub.calls) == 1


async def test_every_route_failing_raises_the_last_error(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{attempts: 2, backoff_s: 0}")
    down = UpstreamError("down", code="upstream_unreachable")
    stub = scripted(down, down, down, status(502))
    with pytest.raises(UpstreamStatus) as info:
        await run(policy, stub)
    assert info.value.upstream_status == 502 and len(stub.calls) == 4


async def test_fallback_on_error_can_be_turned_off(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{attempts: 1, fallback_on: [content_filter]}")
    with pytest.raises(UpstreamStatus):
        await run(policy, scripted(status(500)))


async def test_content_filter_falls_back_for_a_refusal_and_a_filtered_answer(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{attempts: 3}")
    stub = scripted(status(400, error_code="content_filter"))
    assert (await run(policy, stub)).status == 200
    assert [b for b, _ in stub.seen] == ["main", "other"]  # type: ignore[attr-defined]
    filtered = copy.deepcopy(CHAT_OK)
    filtered["choices"][0]["finish_reason"] = "content_filter"
    stub = scripted(ApiResponse(200, raw=json.dumps(filtered).encode()))
    response = await run(policy, stub)
    assert [b for b, _ in stub.seen] == ["main", "other"]  # type: ignore[attr-defined]
    assert response.json()["choices"][0]["finish_reason"] == "stop"


async def test_a_request_too_long_for_the_primary_goes_to_a_window_that_fits(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{context_windows: {up-main: 2000}}", fallback="[small, spare]")
    stub = scripted()
    long_text = "word " * 3000  # ~3000 tokens: over up-main's 2000, under gpt-4's 8192
    exchange = make_exchange(policy, {"model": "gpt", "messages": [{"role": "user", "content": long_text}]})
    await policy.default_chain.run(exchange, stub)
    assert stub.seen == [("other", "gpt-4")]  # type: ignore[attr-defined]
    stub = scripted()
    exchange = make_exchange(policy, {"model": "gpt", "messages": [{"role": "user", "content": "word " * 9000}]})
    await policy.default_chain.run(exchange, stub)
    assert stub.seen == [("other", "spare")]  # type: ignore[attr-defined]  # unknown window: assumed to fit


async def test_an_upstream_context_error_moves_to_the_next_fallback(registry: PluginRegistry) -> None:
    policy = retry_policy(registry)
    stub = scripted(status(400, error_code="context_length_exceeded"))
    assert (await run(policy, stub)).status == 200
    assert [b for b, _ in stub.seen] == ["main", "other"]  # type: ignore[attr-defined]


async def test_the_client_deadline_header_shortens_and_is_checked(registry: PluginRegistry) -> None:
    policy = retry_policy(registry, "{deadline_s: 30, attempts: 5, backoff_s: 1, max_backoff_s: 1}", fallback="[]")
    plugin = plugin_of(policy)
    plugin.random.uniform = lambda a, b: b  # type: ignore[method-assign]  # always the longest wait
    stub = scripted(*[status(500)] * 5)
    exchange = make_exchange(
        policy,
        {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-chaperone-deadline-ms": "500"},
    )
    with pytest.raises(UpstreamStatus):
        await policy.default_chain.run(exchange, stub)
    assert len(stub.calls) == 1 and plugin.sleeps == []  # type: ignore[attr-defined]  # a 1 s wait would pass the deadline
    assert exchange.deadline <= exchange.started + 0.5
    exchange = make_exchange(policy, {"model": "gpt", "messages": []}, headers={"x-chaperone-deadline-ms": "soon"})
    with pytest.raises(InvalidRequest):
        await policy.default_chain.run(exchange, scripted())


def test_config_is_checked_with_its_yaml_path(registry: PluginRegistry) -> None:
    with pytest.raises(PolicyError) as info:
        retry_policy(registry, "{attempts: 0, fallback_on: [weather]}")
    text = info.value.report()
    assert "chains.default[0].retry.attempts" in text and "chains.default[0].retry.fallback_on" in text
