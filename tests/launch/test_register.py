"""``chaperone launch … --register URL`` and the proxy's ``/chaperone/engines`` admin API.

The launcher runs as its own process with the STAND-IN ``vllm`` on PATH (tests/launch/standins: not
vLLM, a program that takes its flags and serves the mock backend); the proxy is the real app on a
loopback port. Chat through the proxy with the openai SDK by the served name, the route gone once the
launcher stops, a reload that keeps the registration, a proxy that forgot it getting it back, clear
launcher errors for a wrong key or an unreachable proxy, and 409 for a name the policy already has.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from backends.launch.engine import free_port
from proxy.workers import WORKER_ENV
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy

pytestmark = pytest.mark.usefixtures("standins")

ROOT = Path(__file__).parents[2]
ADMIN = "admin-key-0123456789"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def policy(upstream: str, extra_model: str = "") -> str:
    return textwrap.dedent(f"""
    backends:
      mock: {{url: "{upstream}", timeout_s: 10}}
    models:
      mock-gpt: {{backend: mock}}
      {extra_model}
    chains:
      default: []
    admin: {{key: {ADMIN}}}
    keys:
      - {{name: app, key: sk-app}}
    """)


@pytest.fixture
async def proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(policy(mock_upstream.url)))


def root(proxy: RunningProxy) -> str:
    return proxy.url.removesuffix("/v1")


async def admin(proxy: RunningProxy, method: str, path: str, body: Any = None, key: str = ADMIN) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        headers = {"authorization": f"Bearer {key}"}
        async with session.request(method, f"{root(proxy)}/chaperone/{path}", json=body, headers=headers) as resp:
            return resp.status, await resp.json()


class Launcher:
    """``python -m proxy.cli launch vllm …`` with its output read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def wait_for(self, text: str, timeout_s: float = 30) -> str:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
            assert raw, f"launcher ended before {text!r}:\n" + "\n".join(self.lines)
            self.lines.append(raw.decode().rstrip())
            if text in self.lines[-1]:
                return self.lines[-1]

    async def rest(self) -> str:
        assert self.proc.stdout is not None
        self.lines += (await asyncio.wait_for(self.proc.stdout.read(), 30)).decode().splitlines()
        return "\n".join(self.lines)


@pytest.fixture
async def launch() -> AsyncIterator[Callable[..., Any]]:
    started: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> Launcher:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", "launch", "vllm", "meta-llama/Llama-3.1-8B-Instruct",
            "--served-model-name", "tiny", "--api-key", "engine-key", "--ready-timeout-s", "30", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        started.append(proc)
        return Launcher(proc)

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def chat(proxy: RunningProxy, model: str) -> str:
    async with proxy.client("sk-app") as client:
        answer = await client.chat.completions.create(model=model, messages=MESSAGES)
    return answer.model


async def test_a_registered_engine_serves_through_the_proxy_until_the_launcher_stops(
    proxy: RunningProxy, launch: Callable[..., Any], write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    launcher = await launch("--register", proxy.url, "--register-key", ADMIN, "--register-interval-s", "0.2")
    assert "with " + root(proxy) in await launcher.wait_for("registered vllm-tiny (tiny)")
    assert await chat(proxy, "tiny")  # the stand-in checks --api-key: the proxy sends the engine's key
    async with proxy.client("sk-app") as client:
        assert "tiny" in [m.id for m in (await client.models.list()).data]
    status, listed = await admin(proxy, "GET", "backends")
    assert status == 200
    (entry,) = [b for b in listed["data"] if b["name"] == "vllm-tiny"]
    assert entry["registered"] is True and entry["url"].startswith("http://127.0.0.1:")

    write_policy(policy(mock_upstream.url, extra_model="other: {backend: mock}"))
    assert await proxy.runtime.reload()  # a hot reload keeps the registration
    assert await chat(proxy, "tiny") and await chat(proxy, "other")

    assert await proxy.runtime.unregister("vllm-tiny")  # as a restarted proxy: it forgot the engine
    await launcher.wait_for("registered vllm-tiny (tiny) with")  # ... and the launcher registers it again
    assert await chat(proxy, "tiny")

    launcher.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(launcher.proc.wait(), 20) == 0
    assert "unregistered vllm-tiny from " + root(proxy) in await launcher.rest()
    with pytest.raises(openai.NotFoundError) as caught:
        await chat(proxy, "tiny")
    assert caught.value.code == "model_not_found"
    assert (await admin(proxy, "GET", "engines"))[1]["data"] == []


async def test_a_wrong_admin_key_is_a_clear_launcher_error(proxy: RunningProxy, launch: Callable[..., Any]) -> None:
    launcher = await launch("--register", root(proxy), "--register-key", "not-the-admin-key")
    assert await asyncio.wait_for(launcher.proc.wait(), 20) == 2
    out = await launcher.rest()
    assert f"chaperone launch: --register {root(proxy)}:" in out and "401" in out and "--register-key" in out
    assert "Traceback" not in out and "ready:" not in out  # refused before the engine started


async def test_an_unreachable_proxy_is_a_clear_launcher_error(launch: Callable[..., Any]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    launcher = await launch("--register", url, "--register-key", ADMIN)
    assert await asyncio.wait_for(launcher.proc.wait(), 20) == 2
    out = await launcher.rest()
    assert f"cannot reach the proxy at {url}" in out and "Traceback" not in out


async def test_the_engines_api_refuses_clashes_bad_bodies_and_wrong_keys(
    proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = {"name": "gpu", "url": "http://127.0.0.1:9/v1", "models": ["tiny"]}
    status, body = await admin(proxy, "POST", "engines", {**engine, "name": "mock"})
    assert status == 409 and body["error"]["code"] == "engine_clash" and "'mock'" in body["error"]["message"]
    status, body = await admin(proxy, "POST", "engines", {**engine, "models": ["tiny", "mock-gpt"]})
    assert status == 409 and "'mock-gpt'" in body["error"]["message"]
    assert (await admin(proxy, "POST", "engines", engine))[0] == 201
    assert (await admin(proxy, "POST", "engines", engine))[0] == 200  # the same again: unchanged
    status, body = await admin(proxy, "POST", "engines", {**engine, "name": "gpu2"})
    assert status == 409 and "routes to backend 'gpu'" in body["error"]["message"]
    status, body = await admin(proxy, "POST", "engines", {**engine, "models": [], "name": "x"})
    assert status == 400 and body["error"]["param"] == "models"
    assert (await admin(proxy, "POST", "engines", engine, key="wrong-key"))[0] == 401
    assert (await admin(proxy, "GET", "engines/gpu"))[1]["api_key"] is False
    assert (await admin(proxy, "DELETE", "engines/gpu"))[0] == 200
    assert (await admin(proxy, "DELETE", "engines/gpu"))[1]["error"]["code"] == "engine_not_found"
    monkeypatch.setenv(WORKER_ENV, "0")  # as one worker of `serve --workers N`
    status, body = await admin(proxy, "POST", "engines", engine)
    assert status == 409 and body["error"]["code"] == "engines_need_one_process"


async def test_a_reloaded_policy_that_takes_the_engines_model_wins(
    proxy: RunningProxy, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    engine = {"name": "gpu", "url": "http://127.0.0.1:9/v1", "models": ["tiny"]}
    assert (await admin(proxy, "POST", "engines", engine))[0] == 201
    write_policy(policy(mock_upstream.url, extra_model="tiny: {backend: mock}"))
    assert await proxy.runtime.reload()
    assert await chat(proxy, "tiny")  # the policy's route (the mock), not the unreachable engine
    assert "gpu" not in (proxy.runtime.current.engines if proxy.runtime.current else {})


async def test_a_proxy_gone_at_stop_is_one_clear_line(proxy: RunningProxy, launch: Callable[..., Any]) -> None:
    launcher = await launch("--register", root(proxy), "--register-key", ADMIN, "--register-interval-s", "60")
    await launcher.wait_for("registered vllm-tiny")
    await proxy.runner.cleanup()  # the proxy stops first
    launcher.proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(launcher.proc.wait(), 20) == 0  # the engine still stopped cleanly
    out = await launcher.rest()
    assert f"could not unregister vllm-tiny from {root(proxy)}" in out and "Traceback" not in out
