"""Fixtures for the mock backend tests: a real-socket server on a random port and an openai SDK client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from backends.mock import MockConfig, create_app

POLL_INTERVAL = 0.01
POLL_LIMIT = 200  # x POLL_INTERVAL (plus round trips): about 2 s


@dataclass
class MockServer:
    """A running mock backend and a raw HTTP session for the introspection endpoints."""

    url: str
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An SDK client for this server (no retries unless asked)."""
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 5.0)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key="x", **kwargs)

    async def requests(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.url}/_mock/requests") as response:
            assert response.status == 200
            records: list[dict[str, Any]] = await response.json()
            return records

    async def wait_for_outcome(self, outcome: str) -> list[dict[str, Any]]:
        """Poll ``/_mock/requests`` until the last request has ``outcome`` (bounded, about 2 s)."""
        records: list[dict[str, Any]] = []
        for _ in range(POLL_LIMIT):
            records = await self.requests()
            if records and records[-1]["outcome"] == outcome:
                return records
            await asyncio.sleep(POLL_INTERVAL)
        raise AssertionError(f"last request never reached outcome {outcome!r}: {records}")


StartMock = Callable[..., Awaitable[MockServer]]


@pytest.fixture
async def start_mock() -> AsyncIterator[StartMock]:
    """Start mock servers on 127.0.0.1:0; all are stopped at teardown."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(config: MockConfig | None = None, *, handler_cancellation: bool = True) -> MockServer:
        app = create_app(config)
        runner = web.AppRunner(app, handler_cancellation=handler_cancellation, shutdown_timeout=0.2)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        session = aiohttp.ClientSession()
        sessions.append(session)
        return MockServer(f"http://{host}:{port}", app, session)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def mock_server(start_mock: StartMock) -> MockServer:
    return await start_mock()


@pytest.fixture
async def client(mock_server: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with mock_server.client() as sdk_client:
        yield sdk_client
