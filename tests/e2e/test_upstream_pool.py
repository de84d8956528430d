"""The upstream connection pool under every way an answer can go wrong: none of them loses a connection.

A backend with ``max_connections: 2`` gets a burst of requests that fail in each way the mock can fail
(reset mid-body, dropped streams, errors, timeouts, streams the client walks away from, streams nobody
reads to the end). Each failure must give its connection's slot back: afterwards plain requests still
go through at once, which they could not if two slots had leaked.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from tests.conftest import MockUpstream, ProxyFactory

FAULTS = ["cut_body", "drop_after=0", "status=500", "status=429,retry_after=9", "latency_ms=900", "hang"]
STREAM_FAULTS = ["drop_after=2", "hang", "status=503,retry_after=0", "chunk_delay_ms=50,tokens=10"]


def policy(url: str) -> str:
    return textwrap.dedent(f"""
    backends:
      only: {{url: "{url}", timeout_s: 0.5, connect_timeout_s: 1, max_connections: 2}}
    models:
      gpt: {{backend: only}}
    """)


async def one(client: openai.AsyncOpenAI, fault: str, stream: bool, walk_away: bool = False) -> str:
    messages: Any = [{"role": "user", "content": f"hello [[mock:{fault}]]"}]
    try:
        if not stream:
            await client.chat.completions.create(model="gpt", messages=messages)
            return "ok"
        chunks = await client.chat.completions.create(model="gpt", messages=messages, stream=True)
        async for _ in chunks:
            if walk_away:
                await chunks.close()  # the client leaves mid-stream
                return "left"
        return "ok"
    except openai.APIError as exc:
        return type(exc).__name__


async def test_no_failure_keeps_a_connection(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(mock_upstream.url)))
    async with proxy.client(timeout=10) as client:
        outcomes = await asyncio.gather(
            *(one(client, fault, False) for fault in FAULTS * 3),
            *(one(client, fault, True) for fault in STREAM_FAULTS * 3),
            *(one(client, "chunk_delay_ms=20,tokens=30", True, walk_away=True) for _ in range(4)),
        )
        assert "ok" in outcomes[-len(STREAM_FAULTS) * 3 - 4 :]  # the slow stream within its limits
        assert outcomes.count("left") == 4
        assert {"InternalServerError", "RateLimitError", "APIError"} <= set(outcomes), outcomes
        pool = proxy.runtime.in_force().backends["only"].http  # type: ignore[attr-defined]
        for _ in range(100):  # a client's departure reaches the upstream call within a few loop turns
            if pool._busy == 0:
                break
            await asyncio.sleep(0.02)
        assert pool._busy == 0, "a failed answer kept its pool slot"
        done = await asyncio.wait_for(asyncio.gather(*(one(client, "tokens=3", s) for s in (False, True) * 4)), 5)
        assert done == ["ok"] * 8
