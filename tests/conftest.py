"""Shared fixtures: a real mock upstream on a loopback port, policies on disk, a running proxy, SDK clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from backends.mock import MockConfig, create_app
from proxy.protocol import ProxyRunner
from proxy.registry import PluginRegistry, build_registry
from proxy.runtime import RUNTIME, Runtime
from proxy.server import create_app as create_proxy_app
from proxy.settings import Settings

pytest_plugins = ["tests.fixtures.redis_server"]


async def start_site(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free loopback port (real sockets); returns the runner and ``http://host:port``."""
    runner = ProxyRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5)  # as `serve` runs it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@dataclass
class MockUpstream:
    """The bundled mock backend, running on a real port, plus its request log."""

    url: str  # base URL ending in /v1

    async def requests(self) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url.removesuffix("/v1") + "/_mock/requests") as r,
        ):
            data: list[dict[str, Any]] = await r.json()
            return data

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 5.0
    ) -> list[dict[str, Any]]:
        """Poll the request log until ``predicate`` holds (bounded; fails the test after ``timeout_s``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            log = await self.requests()
            if predicate(log):
                return log
            if loop.time() > end:
                raise AssertionError(f"mock request log never matched; last: {log[-3:]}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def mock_upstream() -> AsyncIterator[MockUpstream]:
    runner, base = await start_site(create_app(MockConfig()))
    yield MockUpstream(base + "/v1")
    await runner.cleanup()


@pytest.fixture
def registry() -> PluginRegistry:
    """Built-in plugins only: no entry points from the environment."""
    return build_registry(entry_points=False)


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    """Write a policy file (dedented YAML) and return its path; call again to edit it in place."""
    path = tmp_path / "policy.yaml"

    def write(text: str) -> Path:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(textwrap.dedent(text))
        tmp.replace(path)  # atomic, as an editor or a config-map update would do
        return path

    return write


def simple_policy(upstream_url: str, chain: str = "[]", extra: str = "", timeout_s: float = 10) -> str:
    """A policy routing ``mock-gpt``, ``aliased`` (→ upstream-name) and ``*`` to one backend; ``extra`` is appended."""
    return textwrap.dedent(f"""
    backends:
      mock: {{url: "{upstream_url}", timeout_s: {timeout_s}}}
    models:
      mock-gpt: {{backend: mock}}
      aliased: {{backend: mock, model: upstream-name}}
      "*": {{backend: mock}}
    chains:
      default: {chain}
    """) + textwrap.dedent(extra)


@dataclass
class RunningProxy:
    url: str  # base URL ending in /v1
    app: web.Application
    runner: web.AppRunner

    @property
    def runtime(self) -> Runtime:
        return self.app[RUNTIME]

    def client(self, api_key: str = "sk-test", **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key=api_key, max_retries=0, **kwargs)


ProxyFactory = Callable[..., Awaitable[RunningProxy]]


@contextlib.asynccontextmanager
async def serve_process(home: Path, *args: str, **env: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``chaperone serve ARGS --port 0`` as its own process; yields it and its base URL (from the banner).

    ``env`` overrides the environment (OPENAI_* and CHAPERONE_* of the test run are dropped first).
    The process is killed at the end if the test did not stop it.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAPERONE_"))}
    full_env.update({"CHAPERONE_HOME": str(home), "CHAPERONE_RELOAD_INTERVAL_S": "0", **env})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", *args, "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=full_env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert banner.startswith(b"chaperone listening on http://"), banner
        yield proc, banner.split()[-1].decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def start_proxy(tmp_path: Path, registry: PluginRegistry) -> AsyncIterator[ProxyFactory]:
    """Start the real proxy app on a free port for a policy file; stopped at the end of the test."""
    runners: list[web.AppRunner] = []

    async def start(policy_path: Path, *, registry_: PluginRegistry | None = None, **settings: Any) -> RunningProxy:
        settings.setdefault("reload_interval_s", 0)
        app = create_proxy_app(
            Settings(policy_path=policy_path, home=tmp_path / "home", **settings), registry=registry_ or registry
        )
        runner, base = await start_site(app)
        runners.append(runner)
        return RunningProxy(base + "/v1", app, runner)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    """The proxy with an empty chain in front of the mock upstream, running open."""
    return await start_proxy(write_policy(simple_policy(mock_upstream.url)))


@pytest.fixture
async def client(proxy: RunningProxy) -> AsyncIterator[openai.AsyncOpenAI]:
    async with proxy.client() as c:
        yield c
