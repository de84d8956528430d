"""LoRA routing on a launched vLLM backend with two replicas (STAND-IN `vllm` on PATH, not the engine).

Client-facing model names map to an adapter by the route's ``model:``; ``lora_modules`` are loaded on
every replica at start (``--lora-modules``), ``adapters`` on first use onto the least loaded replica
(``POST /v1/load_lora_adapter``). A request for an adapter goes to a replica that has it loaded, even
when another replica is less busy; a reload that adds an adapter keeps the engines.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backends.launch.backend import LaunchedBackend
from tests.conftest import ProxyFactory, RunningProxy

pytestmark = pytest.mark.usefixtures("standins")


def policy(adapters: str) -> str:
    return textwrap.dedent(f"""
    backends:
      gpu:
        launch:
          engine: vllm
          model: base-model
          replicas: 2
          lora_modules: {{sql: /adapters/sql}}
          adapters: {adapters}
          enable_lora: true
          metrics_interval_s: 0
    models:
      base: {{backend: gpu, model: base-model}}
      sql-bot: {{backend: gpu, model: sql}}
      chat-bot: {{backend: gpu, model: chat}}
      code-bot: {{backend: gpu, model: code}}
    """)


def launched(proxy: RunningProxy) -> LaunchedBackend:
    assert proxy.runtime.current is not None
    backend = proxy.runtime.current.backends["gpu"]
    assert isinstance(backend, LaunchedBackend)
    return backend


async def served_models(url: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(url + "/models") as resp:
        return [item["id"] for item in (await resp.json())["data"]]


async def models_seen(url: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(url.removesuffix("/v1") + "/_mock/requests") as resp:
        log: list[dict[str, Any]] = await resp.json()
    return [entry["body"]["model"] for entry in log if entry.get("path") == "/v1/chat/completions"]


async def ask(proxy: RunningProxy, model: str) -> None:
    async with proxy.client() as client:
        reply = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


async def test_adapter_requests_go_to_a_replica_that_has_it(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy("{chat: /adapters/chat, code: /adapters/code}")))
    first, second = launched(proxy).group.engines
    assert await served_models(first.base_url) == ["base-model", "sql"]  # --lora-modules on both at start
    assert await served_models(second.base_url) == ["base-model", "sql"]

    await ask(proxy, "chat-bot")  # nobody has it: loaded onto the least loaded replica (a tie: the first)
    assert "chat" in await served_models(first.base_url) and "chat" not in await served_models(second.base_url)

    first.outstanding = 5  # the first replica is now the busier one
    try:
        await ask(proxy, "base")  # the base model goes to the less loaded replica
        await ask(proxy, "chat-bot")  # the adapter stays where it is loaded
        await ask(proxy, "code-bot")  # a new adapter goes onto the less loaded replica
    finally:
        first.outstanding = 0
    assert await models_seen(first.base_url) == ["chat", "chat"]
    assert await models_seen(second.base_url) == ["base-model", "code"]
    assert "code" in await served_models(second.base_url) and "code" not in await served_models(first.base_url)
    replicas = launched(proxy).status()["launch"]["replicas"]
    assert [r["adapters"] for r in replicas] == [["chat", "sql"], ["code", "sql"]]


async def test_an_adapter_added_to_the_policy_later_loads_without_a_restart(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    path = write_policy(policy("{}"))
    proxy = await start_proxy(path)
    pids = [engine.pid for engine in launched(proxy).group.engines]
    with pytest.raises(Exception, match="404"):  # the engine has no such adapter yet: its own 404 passes through
        await ask(proxy, "chat-bot")
    write_policy(policy("{chat: /adapters/chat}"))
    assert await proxy.runtime.reload()
    assert [engine.pid for engine in launched(proxy).group.engines] == pids
    await ask(proxy, "chat-bot")
    assert "chat" in await served_models(launched(proxy).group.engines[0].base_url)
