"""/readyz tells an orchestrator the truth: backends and the state store must answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.chain_helpers import closed_port_url
from tests.conftest import MockUpstream, ProxyFactory, simple_policy


async def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(url.removesuffix("/v1") + "/readyz") as r:
        return r.status, await r.json()


async def test_ready_with_a_redis_store(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], redis_url: str
) -> None:
    policy = simple_policy(mock_upstream.url, extra=f"store: {{backend: redis, url: '{redis_url}'}}\n")
    proxy = await start_proxy(write_policy(policy))
    status, body = await _readyz(proxy.url)
    assert status == 200, body
    async with proxy.client() as c:
        assert await c.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])


async def test_not_ready_when_the_store_or_a_backend_is_down(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    dead = closed_port_url()  # http://127.0.0.1:PORT/v1, nothing listening
    redis = dead.replace("http://", "redis://").replace("/v1", "/0")
    policy = simple_policy(dead, extra=f"store: {{backend: redis, url: '{redis}'}}\n")
    proxy = await start_proxy(write_policy(policy))
    async with aiohttp.ClientSession() as s, s.get(proxy.url.removesuffix("/v1") + "/healthz") as r:
        assert r.status == 200  # alive, just not ready
    status, body = await _readyz(proxy.url)
    assert status == 503
    problems = " ".join(body["problems"])
    assert "backend mock" in problems and "store" in problems
