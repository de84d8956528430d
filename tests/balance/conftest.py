"""Fixtures for the balance tests: several mock backends on real loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from backends.mock import MockConfig, create_app
from tests.conftest import MockUpstream, start_site

Replicas = Callable[..., Awaitable[list[MockUpstream]]]


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    """``await replicas(cfg1, cfg2, …)``: one running mock backend per ``MockConfig`` (default: a fast one)."""
    runners: list[web.AppRunner] = []

    async def start(*configs: MockConfig) -> list[MockUpstream]:
        upstreams = []
        for config in configs or (MockConfig(),):
            runner, base = await start_site(create_app(config))
            runners.append(runner)
            upstreams.append(MockUpstream(base + "/v1"))
        return upstreams

    yield start
    for runner in runners:
        await runner.cleanup()


async def chat_count(upstream: MockUpstream) -> int:
    """How many chat completions ``upstream`` received."""
    return sum(1 for r in await upstream.requests() if r["path"] == "/v1/chat/completions")
