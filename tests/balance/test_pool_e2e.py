"""Replicas of one backend over real sockets: distribution, ejection and recovery, active health checks."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from backends.mock import MockConfig, create_app
from backends.pool import ReplicaPool, public_url
from tests.balance.conftest import Replicas, chat_count
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def pool_policy(urls: list[str], balance: str = "{}", health: str = "null") -> str:
    quoted = ", ".join(f'"{u}"' for u in urls)
    return textwrap.dedent(f"""
    backends:
      pool: {{urls: [{quoted}], timeout_s: 5, balance: {balance}, health: {health}}}
    models:
      "*": {{backend: pool}}
    chains:
      default: []
    """)


def pool_of(proxy: RunningProxy) -> ReplicaPool:
    active = proxy.runtime.current
    assert active is not None
    backend = active.backends["pool"]
    assert isinstance(backend, ReplicaPool)
    return backend


async def counts(upstreams: list[MockUpstream]) -> list[int]:
    return [await chat_count(u) for u in upstreams]


async def test_round_robin_spreads_evenly_streams_included(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    ups = await replicas(MockConfig(), MockConfig(), MockConfig())
    proxy = await start_proxy(write_policy(pool_policy([u.url for u in ups])))
    async with proxy.client() as client:
        for i in range(6):
            if i % 2:
                stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
                assert [c async for c in stream]
            else:
                answer = await client.chat.completions.create(model="m", messages=MESSAGES)
                assert answer.choices[0].message.content
    assert await counts(ups) == [2, 2, 2]
    assert [r["outstanding"] for r in pool_of(proxy).status()["replicas"]] == [0, 0, 0]


async def test_weighted_follows_the_weights(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    ups = await replicas(MockConfig(), MockConfig())
    policy = pool_policy([u.url for u in ups], balance="{strategy: weighted, weights: [3, 1]}")
    proxy = await start_proxy(write_policy(policy))
    async with proxy.client() as client:
        for _ in range(8):
            await client.chat.completions.create(model="m", messages=MESSAGES)
    assert await counts(ups) == [6, 2]


async def test_least_outstanding_counts_open_streams(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    slow = MockConfig(chunk_delay_ms=50)
    ups = await replicas(slow, slow)
    proxy = await start_proxy(write_policy(pool_policy([u.url for u in ups], "{strategy: least_outstanding}")))
    async with proxy.client() as client:
        first = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True, max_tokens=50)
        second = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True, max_tokens=50)
        await anext(aiter(first))
        await anext(aiter(second))
        assert [r["outstanding"] for r in pool_of(proxy).status()["replicas"]] == [1, 1]
        await second.close()
        await ups[1].wait_for(lambda log: any(r["outcome"] == "client_disconnected" for r in log))
        target = pool_of(proxy).balancer.targets[1]
        await _until(lambda: target.outstanding == 0)  # the proxy notices the closed stream soon after
        await client.chat.completions.create(model="m", messages=MESSAGES)  # round robin would pick 0 here
        await first.close()
    assert await counts(ups) == [1, 2]


async def test_failing_replica_is_ejected_then_recovers(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    ups = await replicas(MockConfig(), MockConfig(fault="status=500,fail_times=2"), MockConfig())
    policy = pool_policy([u.url for u in ups], balance="{eject_after: 2, eject_s: 60}")
    proxy = await start_proxy(write_policy(policy))
    errors = 0
    async with proxy.client() as client:
        for _ in range(9):
            try:
                await client.chat.completions.create(model="m", messages=MESSAGES)
            except openai.InternalServerError:
                errors += 1
        assert errors == 2  # no retry plugin here: each failure reaches the client, then the replica is out
        assert await counts(ups) == [4, 2, 3]
        status = pool_of(proxy).status()["replicas"][1]
        assert status["healthy"] is False and status["ejections"] == 1 and status["errors"] == 2
        pool_of(proxy).balancer.clock = lambda: time.monotonic() + 61  # the ejection is over
        for _ in range(3):
            await client.chat.completions.create(model="m", messages=MESSAGES)
    assert await counts(ups) == [5, 3, 4]
    assert pool_of(proxy).status()["replicas"][1]["healthy"] is True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.02)


async def test_active_health_check_takes_a_dead_replica_out_and_back(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    (up,) = await replicas(MockConfig())
    port = _free_port()
    dead = f"http://127.0.0.1:{port}/v1"
    policy = pool_policy([up.url, dead], health="{interval_s: 0.05, timeout_s: 1}")
    proxy = await start_proxy(write_policy(policy))
    pool = pool_of(proxy)
    await _until(lambda: pool.balancer.targets[1].down)
    async with proxy.client() as client:
        for _ in range(4):
            await client.chat.completions.create(model="m", messages=MESSAGES)
        assert await chat_count(up) == 4
        assert pool.status()["replicas"][1]["requests"] == 0
        runner = web.AppRunner(create_app(MockConfig()), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await _until(lambda: not pool.balancer.targets[1].down)
            for _ in range(4):
                await client.chat.completions.create(model="m", messages=MESSAGES)
            assert await chat_count(MockUpstream(dead)) == 2
        finally:
            await runner.cleanup()
    health_task = pool._health
    assert health_task is not None and not health_task.done()
    await proxy.runtime.stop()  # the background checks stop with the runtime
    assert health_task.done()


async def test_probe_is_ready_while_one_replica_answers(replicas: Replicas) -> None:
    from proxy.policyfile import BackendConfig

    (up,) = await replicas(MockConfig())
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    pool = ReplicaPool("p", BackendConfig(urls=[up.url, dead]), [up.url, dead])
    await pool.start()
    try:
        assert await pool.probe(1.0) is None
        solo = ReplicaPool("q", BackendConfig(urls=[dead, dead]), [dead, dead])
        await solo.start()
        try:
            problem = await solo.probe(1.0)
            assert problem is not None and problem.startswith(public_url(dead))
        finally:
            await solo.close()
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secret@10.0.0.1:8000/v1?key=abc", "http://10.0.0.1:8000/v1"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
    ],
)
def test_status_urls_carry_no_credentials(url: str, shown: str) -> None:
    assert public_url(url) == shown


async def test_a_hanging_replica_times_out_once_then_is_ejected(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    ups = await replicas(MockConfig(fault="hang"), MockConfig())
    text = pool_policy([u.url for u in ups], balance="{eject_after: 1, eject_s: 60}").replace(
        "timeout_s: 5", "timeout_s: 0.3"
    )
    proxy = await start_proxy(write_policy(text))
    async with proxy.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="m", messages=MESSAGES)
        assert info.value.status_code == 504
        for _ in range(4):
            await client.chat.completions.create(model="m", messages=MESSAGES)
    assert await counts(ups) == [1, 4]
