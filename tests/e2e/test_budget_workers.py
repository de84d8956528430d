"""Rate limits hold across ``chaperone serve --workers 2`` processes sharing one diskcache store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from proxy.registry import DEFAULT_PLUGINS
from tests.conftest import MockUpstream, serve_process, simple_policy

PLUGIN_ENV = {} if "plugins.budget" in DEFAULT_PLUGINS else {"CHAPERONE_PLUGINS": "plugins.budget"}
PREFIX = 12  # hex characters of the per-process request-id prefix: which worker answered


async def _burst(url: str, n: int) -> list[tuple[str, int]]:
    """``n`` concurrent chat requests, each on its own connection: (worker prefix, status) of each."""
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi [[mock:latency_ms=200]]"}]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0)) as session:

        async def one() -> tuple[str, int]:
            async with session.post(url + "/chat/completions", json=body) as r:
                await r.read()
                return r.headers["x-request-id"][:PREFIX], r.status

        return list(await asyncio.gather(*(one() for _ in range(n))))


@pytest.mark.parametrize(("fraction", "lowest"), [(1 / 32, 10), (0.3, 6)])
async def test_rpm_holds_across_two_workers_on_diskcache(
    fraction: float, lowest: int, tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    """rpm 10, 40 requests. Leases of 1 (1/32 of 10): exactly 10. Leases of 3 (0.3): at most one unused
    lease (< 3) per worker at the end, so 10 - 2 * 2 = 6 <= admitted <= 10."""
    chain = f"[{{budget: {{per_key: {{rpm: 10}}, lease_fraction: {fraction}}}}}]"
    policy = write_policy(simple_policy(mock_upstream.url, chain=chain))
    async with serve_process(tmp_path / "home", "--policy", str(policy), "--workers", "2", **PLUGIN_ENV) as (_, url):
        results = await _burst(url, 40)
    admitted = [prefix for prefix, status in results if status == 200]
    assert {status for _, status in results} <= {200, 429}
    assert lowest <= len(admitted) <= 10
    assert len({prefix for prefix, _ in results}) == 2  # both workers answered (40 connections: 2^-39 odds)
