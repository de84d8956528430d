"""The cache plugin through the proxy: the openai SDK in front, the mock upstream behind, diskcache and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from plugins._cache import shared
from proxy.registry import PluginRegistry, build_registry
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

KEYS = """
keys:
  - {name: alice, key: sk-alice}
  - {name: bob, key: sk-bob}
"""


@pytest.fixture
def registry() -> PluginRegistry:
    return build_registry(entry_points=False)


def ask(text: str, system: str = "You are terse.", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    return {"model": "mock-gpt", "messages": messages, "temperature": 0, **extra}


async def chat_calls(mock: MockUpstream) -> int:
    return sum(1 for r in await mock.requests() if r.get("path", "").endswith("/chat/completions"))


async def raw_chat(client: openai.AsyncOpenAI, body: dict[str, Any], **headers: str) -> tuple[str, dict[str, str]]:
    response = await client.chat.completions.with_raw_response.create(**body, extra_headers=headers)
    completion = response.parse()
    return completion.choices[0].message.content or "", dict(response.headers)


async def stored(proxy: RunningProxy, count: int) -> None:
    """Wait until the cache has stored ``count`` answers (stores run after the answer was sent)."""
    plugin = next(s.plugin for s in proxy.runtime.in_force().policy.chains["default"].steps if s.name == "cache")
    for _ in range(500):
        if plugin.stored >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {plugin.stored} answers stored, expected {count}")


async def start(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock: MockUpstream, config: str,
    store: str = "", keys: str = KEYS,
) -> RunningProxy:  # fmt: skip
    chain = f"[{{cache: {config}}}]"
    return await start_proxy(write_policy(simple_policy(mock.url, chain, extra=store + keys)))


@pytest.fixture(params=["diskcache", "redis"])
def store_extra(request: pytest.FixtureRequest) -> str:
    if request.param == "diskcache":
        return ""
    url = request.getfixturevalue("clean_redis_url")
    return f"store: {{backend: redis, url: '{url}'}}\n"


async def test_exact_hit_and_partition_by_key(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream, store_extra: str
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: exact}", store_extra)
    async with proxy.client("sk-alice") as alice, proxy.client("sk-bob") as bob:
        first, h1 = await raw_chat(alice, ask("What is the capital of France?"))
        await stored(proxy, 1)
        again, h2 = await raw_chat(alice, ask("What is the capital of France?"))
        assert (h1["x-chaperone-cache"], h2["x-chaperone-cache"]) == ("miss", "hit")
        assert again == first
        _, h3 = await raw_chat(bob, ask("What is the capital of France?"))  # another tenant
        assert h3["x-chaperone-cache"] == "miss"
        _, h4 = await raw_chat(alice, ask("What is the capital of France?", system="You are verbose."))
        assert h4["x-chaperone-cache"] == "miss"
        _, h5 = await raw_chat(alice, ask("What is the capital of France?", seed=7))
        assert h5["x-chaperone-cache"] == "miss"
    assert await chat_calls(mock_upstream) == 4


async def test_semantic_hit_isolation_and_vetoes(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: semantic}")
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    async with proxy.client("sk-alice") as alice, proxy.client("sk-bob") as bob:
        kept, _ = await raw_chat(alice, ask("How do I enable 2FA on my account?"))
        await raw_chat(alice, ask("How do I boil an egg for 6 minutes?"))
        await raw_chat(alice, ask("What is the capital of France?"))
        await stored(proxy, 3)
        text, hit = await raw_chat(alice, ask("How can I enable 2FA for my account?"))
        assert hit["x-chaperone-cache"] == "hit" and text == kept
        assert 0.7 < float(hit["x-chaperone-cache-similarity"]) < 1.0
        misses = [
            (alice, ask("How do I disable 2FA on my account?")),  # negation
            (alice, ask("How do I boil an egg for 10 minutes?")),  # number
            (alice, ask("What is the capital of Germany?")),  # entity
            (bob, ask("How can I enable 2FA for my account?")),  # another key
            (alice, ask("How can I enable 2FA for my account?", system="Answer in French.")),  # system prompt
            (alice, ask("How can I enable 2FA for my account?", tools=tools)),  # tools
        ]
        for client, body in misses:
            _, headers = await raw_chat(client, body)
            assert headers["x-chaperone-cache"] == "miss", body


async def test_shadow_mode_serves_nothing_from_cache(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: semantic, shadow: true}")
    async with proxy.client("sk-alice") as alice:
        await raw_chat(alice, ask("How do I reset my password?"))
        await stored(proxy, 1)
        _, headers = await raw_chat(alice, ask("What are the steps to reset my password?"))
        assert headers["x-chaperone-cache"] == "shadow-hit"
        assert float(headers["x-chaperone-cache-similarity"]) >= 0.7
        _, exact = await raw_chat(alice, ask("How do I reset my password?"))
        assert exact["x-chaperone-cache"] == "shadow-hit"
    assert await chat_calls(mock_upstream) == 3  # every request reached the upstream


async def test_streamed_hit_replays_a_valid_stream(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: exact}")
    body = ask("Write a haiku about autumn leaves.")
    async with proxy.client("sk-alice") as alice:
        first = await alice.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
        parts = [c async for c in first]
        original = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
        await stored(proxy, 1)  # the stream is stored once it ended (on_complete, after the last byte)
        response = await alice.chat.completions.with_raw_response.create(
            **body, stream=True, stream_options={"include_usage": True}
        )
        assert response.headers["x-chaperone-cache"] == "hit"
        chunks = [c async for c in response.parse()]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == original
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == parts[-1].usage.total_tokens
        assert chunks[-2].choices[0].finish_reason == "stop"
        whole, headers = await raw_chat(alice, body)  # the assembled stream answers a whole request too
        assert headers["x-chaperone-cache"] == "hit" and whole == original
        plain = [c async for c in await alice.chat.completions.create(**body, stream=True)]  # no usage asked
        assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"
        assert "".join(c.choices[0].delta.content or "" for c in plain if c.choices) == original
    assert await chat_calls(mock_upstream) == 1


async def test_coalesces_identical_concurrent_requests(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: exact}")
    body = ask("Tell me a joke about cats.")
    fault = {"x-mock-fault": "latency_ms=200"}

    async def streamed(client: openai.AsyncOpenAI) -> tuple[str, dict[str, str]]:
        response = await client.chat.completions.with_raw_response.create(**body, stream=True, extra_headers=fault)
        text = "".join([c.choices[0].delta.content or "" async for c in response.parse() if c.choices])
        return text, dict(response.headers)

    async with proxy.client("sk-alice") as alice:
        results = await asyncio.gather(*(raw_chat(alice, body, **fault) for _ in range(10)))
        assert len({text for text, _ in results}) == 1
        assert sorted(h["x-chaperone-cache"] for _, h in results) == ["hit"] * 9 + ["miss"]
        assert await chat_calls(mock_upstream) == 1
        other = ask("Tell me a joke about dogs.")  # streamed and whole requests wait for one another
        body = other
        mixed = await asyncio.gather(
            *(streamed(alice) for _ in range(5)), *(raw_chat(alice, other, **fault) for _ in range(5))
        )
    assert len({text for text, _ in mixed}) == 1
    assert sorted(h["x-chaperone-cache"] for _, h in mixed) == ["hit"] * 9 + ["miss"]
    assert await chat_calls(mock_upstream) == 2


async def test_coalesces_across_replicas_on_redis(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream, clean_redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(shared, "WRITE_DELAY_S", 30.0)  # the leader's answer is written before its lock goes, not later
    store = f"store: {{backend: redis, url: '{clean_redis_url}'}}\n"
    config = "{mode: exact, coalesce_across_processes: true}"
    one = await start(start_proxy, write_policy, mock_upstream, config, store)
    two = await start(start_proxy, write_policy, mock_upstream, config, store)
    body = ask("Name a prime number.")
    fault = {"x-mock-fault": "latency_ms=300"}
    async with one.client("sk-alice") as a, two.client("sk-alice") as b:
        results = await asyncio.gather(*(raw_chat(c, body, **fault) for c in (a, b) * 5))
    assert len({text for text, _ in results}) == 1
    assert sorted(h["x-chaperone-cache"] for _, h in results) == ["hit"] * 9 + ["miss"]
    assert await chat_calls(mock_upstream) == 1


async def test_header_controls_and_bypass(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: exact}")
    body = ask("What is inflation?")
    async with proxy.client("sk-alice") as alice:
        _, h = await raw_chat(alice, body, **{"x-chaperone-cache": "no-store"})
        assert h["x-chaperone-cache"] == "miss"
        long, h = await raw_chat(alice, body)
        assert h["x-chaperone-cache"] == "miss"  # the no-store answer was not kept; this one is
        await stored(proxy, 1)
        _, h = await raw_chat(alice, body, **{"x-chaperone-cache": "no-cache"})
        assert h["x-chaperone-cache"] == "bypass"
        short, h = await raw_chat(alice, body, **{"x-chaperone-cache": "refresh", "x-mock-tokens": "2"})
        assert h["x-chaperone-cache"] == "miss" and short != long
        await stored(proxy, 2)
        again, h = await raw_chat(alice, body, **{"x-chaperone-cache": "no-store"})
        assert h["x-chaperone-cache"] == "hit" and again == short  # refresh replaced the stored answer
        with pytest.raises(openai.BadRequestError, match="no-cache, no-store, refresh"):
            await raw_chat(alice, body, **{"x-chaperone-cache": "sometimes"})
        hot = {**body, "temperature": 0.9}
        _, h = await raw_chat(alice, hot)
        assert h["x-chaperone-cache"] == "bypass"
        default = {k: v for k, v in body.items() if k != "temperature"}  # the API default, 1.0
        _, h = await raw_chat(alice, default)
        assert h["x-chaperone-cache"] == "bypass"
    log = await mock_upstream.requests()
    assert all("x-chaperone-cache" not in {k.lower() for k in r.get("headers", {})} for r in log)
    assert await chat_calls(mock_upstream) == 6


async def test_cut_and_failed_answers_are_not_stored(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: exact}")
    async with proxy.client("sk-alice") as alice:
        cut = ask("Describe the water cycle.", max_tokens=3)
        assert (await alice.chat.completions.create(**cut)).choices[0].finish_reason == "length"
        with pytest.raises(openai.InternalServerError):
            await raw_chat(alice, ask("What causes earthquakes?"), **{"x-mock-fault": "status=500"})
        for body in (cut, ask("What causes earthquakes?")):
            _, h = await raw_chat(alice, body)
            assert h["x-chaperone-cache"] == "miss", body
    assert await chat_calls(mock_upstream) == 4


async def test_a_stream_stored_without_its_usage_chunk_still_carries_its_usage(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    # cost asks the upstream for usage and the chain drops that chunk (the client did not ask): the
    # stored answer keeps the usage it cost, so a later hit reports it (and cost books what it saved).
    chain = "[{cost: {}}, {cache: {mode: exact}}]"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain, extra=KEYS)))
    body = ask("Name three rivers.")
    async with proxy.client("sk-alice") as alice:
        first = [c async for c in await alice.chat.completions.create(**body, stream=True)]
        assert all(c.usage is None for c in first)
        await stored(proxy, 1)
        hit = await alice.chat.completions.with_raw_response.create(**body)
        assert hit.headers["x-chaperone-cache"] == "hit"
        usage = hit.parse().usage
        assert usage is not None and usage.completion_tokens > 0 and usage.total_tokens > usage.completion_tokens
    assert await chat_calls(mock_upstream) == 1


@pytest.mark.parametrize("backend", ["diskcache", "redis"])
async def test_an_answer_one_replica_stored_is_a_hit_on_another(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream,
    tmp_path: Path, request: pytest.FixtureRequest, backend: str,
) -> None:  # fmt: skip
    if backend == "redis":
        store = f"store: {{backend: redis, url: '{request.getfixturevalue('clean_redis_url')}'}}\n"
    else:
        store = f"store: {{backend: diskcache, path: '{tmp_path / 'shared-store'}'}}\n"
    config = "{mode: exact, sync_interval_s: 0}"  # the other replica reads the log before each lookup
    one = await start(start_proxy, write_policy, mock_upstream, config, store)
    two = await start(start_proxy, write_policy, mock_upstream, config, store)
    async with one.client("sk-alice") as a, two.client("sk-alice") as b, two.client("sk-bob") as other:
        first, headers = await raw_chat(a, ask("Name a colour."))
        assert headers["x-chaperone-cache"] == "miss"
        await stored(one, 1)
        plugin = next(s.plugin for s in one.runtime.in_force().policy.chains["default"].steps if s.name == "cache")
        await plugin.shared.flush()  # written now, not after the write delay
        again, headers = await raw_chat(b, ask("Name a colour."))
        assert (again, headers["x-chaperone-cache"]) == (first, "hit")
        _, headers = await raw_chat(other, ask("Name a colour."))  # another key: its own partition
        assert headers["x-chaperone-cache"] == "miss"
    assert await chat_calls(mock_upstream) == 2
