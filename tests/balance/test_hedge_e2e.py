"""Hedging over real sockets: the fast replica answers, the slow one is cancelled, nothing leaks."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from backends.mock import MockConfig
from backends.pool import ReplicaPool
from tests.balance.conftest import Replicas, chat_count
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
SLOW = MockConfig(latency_ms=5000)


def hedge_policy(urls: list[str], after_ms: float = 50) -> str:
    quoted = ", ".join(f'"{u}"' for u in urls)
    return textwrap.dedent(f"""
    backends:
      pool: {{urls: [{quoted}], timeout_s: 10}}
    models:
      "*": {{backend: pool, hedge: {{after_ms: {after_ms}}}}}
    chains:
      default: []
    """)


def pool_of(proxy: RunningProxy) -> ReplicaPool:
    active = proxy.runtime.current
    assert active is not None
    backend = active.backends["pool"]
    assert isinstance(backend, ReplicaPool)
    return backend


def disconnected(log: list[dict[str, object]]) -> bool:
    return any(r["outcome"] == "client_disconnected" for r in log)


async def settle() -> list[str]:
    """The tasks left once cancelled handlers have finished, bar the servers' idle keep-alive connections."""
    for _ in range(5):
        await asyncio.sleep(0)
    names = [getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks()]
    return sorted(name for name in names if name != "RequestHandler.start")


async def hedged_proxy(
    replicas: Replicas,
    start_proxy: ProxyFactory,
    write_policy: Callable[[str], Path],
    *configs: MockConfig,
    after_ms: float = 50,
) -> tuple[RunningProxy, list[MockUpstream]]:
    ups = await replicas(*configs)
    return await start_proxy(write_policy(hedge_policy([u.url for u in ups], after_ms))), ups


async def test_the_fast_replica_answers_and_the_slow_one_is_cancelled(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    # The warm-up's model listing asks the upstream through replica 0 (round robin), so the chat's first
    # attempt goes to replica 1: the slow one.
    proxy, (fast, slow) = await hedged_proxy(replicas, start_proxy, write_policy, MockConfig(), SLOW)
    async with proxy.client() as client:
        await client.models.list()  # warm up: the baseline below has the client's connection open
        baseline = await settle()
        answer = await client.chat.completions.create(model="m", messages=MESSAGES)
        assert answer.choices[0].message.content
        await slow.wait_for(disconnected)  # the loser's upstream connection was closed, not left hanging
        assert await chat_count(fast) == 1
        assert [r["outstanding"] for r in pool_of(proxy).status()["replicas"]] == [0, 0]
        assert await settle() == baseline


async def test_a_stream_is_hedged_before_its_first_byte(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    proxy, (slow, fast) = await hedged_proxy(replicas, start_proxy, write_policy, SLOW, MockConfig())
    async with proxy.client() as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    await slow.wait_for(disconnected)
    assert await chat_count(fast) == 1
    assert [r["outstanding"] for r in pool_of(proxy).status()["replicas"]] == [0, 0]


async def test_a_stream_that_started_is_never_hedged(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    trickle = MockConfig(chunk_delay_ms=400, fault="tokens=3")  # first byte at once, the rest after the threshold
    proxy, (first, other) = await hedged_proxy(replicas, start_proxy, write_policy, trickle, MockConfig(), after_ms=700)
    async with proxy.client() as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        assert [c async for c in stream]
    assert await chat_count(first) == 1
    assert await chat_count(other) == 0


async def test_no_hedge_when_the_first_answer_is_fast_or_fails_fast(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    failing = MockConfig(fault="status=500")
    proxy, (bad, good) = await hedged_proxy(
        replicas, start_proxy, write_policy, failing, MockConfig(), after_ms=2000
    )  # a generous threshold: the fast answers come well before it, even on a loaded machine
    async with proxy.client() as client:
        try:
            await client.chat.completions.create(model="m", messages=MESSAGES)
            raise AssertionError("the primary's error should reach the client (retries are the retry plugin's)")
        except openai.InternalServerError:
            pass
        await client.chat.completions.create(model="m", messages=MESSAGES)  # round robin: the good one, fast
    assert await chat_count(bad) == 1
    assert await chat_count(good) == 1


async def test_the_client_going_away_cancels_both_attempts(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    proxy, (one, two) = await hedged_proxy(replicas, start_proxy, write_policy, SLOW, SLOW)
    async with proxy.client(timeout=0.5) as client:
        try:
            await client.chat.completions.create(model="m", messages=MESSAGES)
            raise AssertionError("both replicas hang: the client should time out")
        except openai.APITimeoutError:
            pass
    await one.wait_for(disconnected)
    await two.wait_for(disconnected)
    assert [r["outstanding"] for r in pool_of(proxy).status()["replicas"]] == [0, 0]


async def test_traces_show_variant_replica_and_hedge(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    slow, fast = await replicas(SLOW, MockConfig())
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    policy = textwrap.dedent(f"""
    backends:
      pool: {{urls: ["{slow.url}", "{fast.url}"], timeout_s: 10}}
    models:
      gpt:
        backend: pool
        hedge: {{after_ms: 50}}
        split: [{{model: v1, weight: 0}}, {{model: v2, weight: 1, name: canary}}]
    chains:
      default: []
    """)
    proxy = await start_proxy(write_policy(policy), tracer_provider=provider)
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    assert raw.headers["x-chaperone-variant"] == "canary"
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert dict(spans["chat gpt"].attributes or {})["chaperone.variant"] == "canary"
    upstream = dict(spans["upstream pool"].attributes or {})
    assert upstream["gen_ai.request.model"] == "v2"
    assert upstream["chaperone.hedge"] == "hedge"
    assert upstream["chaperone.replica"] == fast.url
    provider.shutdown()
