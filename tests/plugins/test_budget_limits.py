"""Rate limits and budgets of the budget plugin on the diskcache store, through the real proxy and the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from backends.mock.content import chat_prompt_tokens
from plugins.budget import Budget
from proxy.registry import DEFAULT_PLUGINS, PluginRegistry, build_registry
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

MODULES = tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.budget")))
KEYS = """
keys:
  - {name: a, key: sk-a, limits: {rpm: 3}}
  - {name: b, key: sk-b}
"""
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
SLOW: list[Any] = [{"role": "user", "content": "hello [[mock:latency_ms=300]]"}]  # all admitted before any settles


@pytest.fixture
def registry() -> PluginRegistry:
    return build_registry(entry_points=False, modules=MODULES)


async def start(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], budget: str
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, f"[{{budget: {budget}}}]", KEYS)))


async def burst(proxy: RunningProxy, key: str, n: int, messages: list[Any] = HELLO, **kwargs: Any) -> list[Any]:
    """``n`` concurrent chat requests; each result is the raw response or the SDK's error."""
    async with proxy.client(api_key=key) as client:

        async def one() -> Any:
            try:
                return await client.chat.completions.with_raw_response.create(messages=messages, **kwargs)
            except openai.APIStatusError as exc:
                return exc

        return list(await asyncio.gather(*(one() for _ in range(n))))


async def counter(proxy: RunningProxy, key: str, window_s: float | None = 86400) -> float:
    active = proxy.runtime.current
    assert active is not None
    return await active.store.counter(key, window_s=window_s)


def plugin(proxy: RunningProxy) -> Budget:
    active = proxy.runtime.current
    assert active is not None
    return next(s.plugin for s in active.policy.default_chain.steps if isinstance(s.plugin, Budget))


def used(proxy: RunningProxy, meter: str) -> float:
    """What the proxy admitted on ``meter`` so far (its lease's use; the store counts the leased chunks)."""
    leases = plugin(proxy).leases
    assert leases is not None
    return leases.used(meter)


async def test_rpm_per_key_override_admits_exactly_the_limit_and_answers_429_with_headers(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start(start_proxy, mock_upstream, write_policy, "{per_key: {rpm: 5}}")
    results = await burst(proxy, "sk-a", 6, model="mock-gpt")
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(ok) == 3 and len(refused) == 3  # key a's own rpm (3) replaces per_key's 5
    for r in ok:
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in ok) == ["0", "1", "2"]
    for exc in refused:
        assert exc.code == "rate_limit_exceeded"
        assert 1 <= int(exc.response.headers["retry-after"]) <= 60
        assert exc.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert exc.response.headers["x-chaperone-budget"] == "rejected:rpm"
    results_b = await burst(proxy, "sk-b", 6, model="mock-gpt")
    assert sum(not isinstance(r, Exception) for r in results_b) == 5  # key b: per_key's rpm, its own counter


async def test_tpm_per_model_reserves_input_plus_max_output(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    # Each reserves its input tokens (o200k estimate) + max_tokens 21; all in flight at once (SLOW), so exactly
    # 100 // that fit (a settled request would give its unused tokens back to the lease).
    proxy = await start(start_proxy, mock_upstream, write_policy, "{per_model: {mock-gpt: {tpm: 100}}}")
    results = await burst(proxy, "sk-b", 5, SLOW, model="mock-gpt", max_tokens=21)
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    each = int(ok[0].headers["x-chaperone-budget"].split("input_tokens=")[1].split()[0]) + 21
    assert len(ok) == 100 // each and len(refused) == 5 - len(ok) and len(refused) >= 1
    assert {r.headers["x-ratelimit-limit-tokens"] for r in ok} == {"100"}
    assert "rate limit" in refused[0].message.lower() and "tokens per minute" in refused[0].message
    other = await burst(proxy, "sk-b", 1, model="aliased", max_tokens=21)  # another model: its own meter (none)
    assert not isinstance(other[0], Exception)


async def test_usd_budget_reserves_the_estimate_then_settles_to_the_actual_cost(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    # gpt-4o: $2.50 in / $10 out per 1M. Estimate: 9 in + 100 out = $0.0010225; actual ~10 out, ~$0.00012.
    proxy = await start(start_proxy, mock_upstream, write_policy, "{per_key: {usd_per_day: 0.0025}}")
    results = await burst(proxy, "sk-b", 3, SLOW, model="gpt-4o", max_tokens=100)
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], openai.RateLimitError)
    assert refused[0].code == "budget_exceeded"
    assert refused[0].response.headers["x-should-retry"] == "false"
    key = "budget:key:b:usd_per_day"
    assert await counter(proxy, key) <= 0.0025 + 1e-12  # the leased chunks never pass the limit
    for _ in range(200):  # settling runs after the answers were sent
        spent = used(proxy, key)
        if spent < 0.001:
            break
        await asyncio.sleep(0.01)
    usage = [r.parse().usage for r in results if not isinstance(r, Exception)]
    actual = sum(u.prompt_tokens * 2.5 + u.completion_tokens * 10.0 for u in usage) / 1e6
    assert spent == pytest.approx(actual)
    again = await burst(proxy, "sk-b", 1, model="gpt-4o", max_tokens=100)  # room again once settled
    assert not isinstance(again[0], Exception)
    actual += again[0].parse().usage.prompt_tokens * 2.5e-6 + again[0].parse().usage.completion_tokens * 1e-5
    for _ in range(200):
        if used(proxy, key) < 0.001:
            break
        await asyncio.sleep(0.01)
    await plugin(proxy).on_shutdown()  # gives the unused lease back: the store then holds what was spent
    assert await counter(proxy, key) == pytest.approx(actual)


@pytest.mark.parametrize("client_asks", [True, False])
async def test_stream_settles_to_actual_usage_with_and_without_the_client_asking(
    client_asks: bool, start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start(start_proxy, mock_upstream, write_policy, "{per_key: {tokens_per_day: 100000, tpm: 100000}}")
    options: Any = {"include_usage": True} if client_asks else openai.NOT_GIVEN
    async with proxy.client(api_key="sk-b") as client:
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=HELLO, stream=True, stream_options=options, max_tokens=500
        )
        chunks = [chunk async for chunk in stream]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if client_asks else 0)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Mock reply to: hello")
    sent = (await mock_upstream.requests())[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}
    pieces = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    expected = chat_prompt_tokens(HELLO, None) + pieces  # the mock's own usage: one token per content chunk
    if client_asks:
        assert usage_chunks[0].usage is not None and usage_chunks[0].usage.total_tokens == expected
    for _ in range(200):
        spent = used(proxy, "budget:key:b:tokens_per_day")
        if spent != 9 + 500:
            break
        await asyncio.sleep(0.01)
    assert spent == expected  # the reservation (9 + 500) was settled to the actual usage
    if not client_asks:  # not even the "usage": null the upstream put on every chunk reaches the client
        body = {"model": "mock-gpt", "messages": HELLO, "stream": True}
        headers = {"authorization": "Bearer sk-b"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{proxy.url}/chat/completions", json=body, headers=headers) as r,
        ):
            raw = await r.read()
        assert raw.endswith(b"data: [DONE]\n\n") and b'"usage"' not in raw and raw.count(b'"content"') >= 2


async def test_a_virtual_keys_own_limits_apply(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    admin = "admin-key-0123456789"
    extra = f"admin: {{key: {admin}}}\n"
    policy = simple_policy(mock_upstream.url, "[{budget: {per_key: {rpm: 100}}}]", extra)
    proxy = await start_proxy(write_policy(policy))
    base = proxy.url.removesuffix("/v1")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as session:
        body = {"name": "bot", "limits": {"rpm": 2}}
        async with session.post(f"{base}/chaperone/keys", json=body) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
        assert created["limits"] == {"rpm": 2}
        async with session.post(f"{base}/chaperone/keys", json={"name": "bad", "limits": {"rpm": -1}}) as r:
            assert r.status == 400 and "limits.rpm" in (await r.json())["error"]["param"]
    results = await burst(proxy, created["key"], 4, model="mock-gpt")
    assert sum(not isinstance(r, Exception) for r in results) == 2


async def test_a_request_refused_later_in_the_chain_gives_its_tokens_back(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    chain = "[{budget: {per_key: {tokens_per_day: 150}}}, {params: {forbid: [temperature]}}]"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain, KEYS)))
    results = await burst(proxy, "sk-b", 1, model="mock-gpt", max_tokens=100, temperature=0.5)
    assert isinstance(results[0], openai.BadRequestError)
    for _ in range(200):
        spent = used(proxy, "budget:key:b:tokens_per_day")
        if spent == 0:
            break
        await asyncio.sleep(0.01)
    assert spent == 0  # reserved 9 + 100, refunded: nothing reached the upstream
    admitted = await burst(proxy, "sk-b", 1, model="mock-gpt", max_tokens=100)
    assert not isinstance(admitted[0], Exception)  # 109 more fit in 150 only because the first was refunded


async def test_a_request_refused_by_one_meter_takes_nothing_from_the_others(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start(start_proxy, mock_upstream, write_policy, "{per_key: {rpm: 100, tpm: 100}}")
    results = await burst(proxy, "sk-b", 3, model="mock-gpt", max_tokens=200)  # more tokens than tpm allows
    assert all(isinstance(r, openai.RateLimitError) for r in results)
    assert {r.response.headers["x-chaperone-budget"] for r in results} == {"rejected:tpm"}
    assert used(proxy, "ratelimit:key:b:rpm") == 0 and used(proxy, "ratelimit:key:b:tpm") == 0
    ok = await burst(proxy, "sk-b", 1, model="mock-gpt", max_tokens=20)
    assert not isinstance(ok[0], Exception) and used(proxy, "ratelimit:key:b:rpm") == 1
