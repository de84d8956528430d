"""Launched engines' lifecycle, against STAND-IN `vllm`, `text-generation-launcher` and `docker` on PATH.

The stand-ins (tests/launch/standins/) accept the real programs' documented flags and serve the mock
backend; they are not the engines. Through the proxy: start, ready, chat with the openai SDK
(streamed and not), crash and restart, bounded restarts, a clear error for an engine that never
becomes ready or dies at start, SIGTERM then SIGKILL, no orphans, a reload that keeps the engine.
"""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from pydantic import TypeAdapter

from backends.launch.backend import EngineGroup, LaunchedBackend
from backends.launch.engine import EngineFailed
from proxy.launchconfig import EngineConfig
from tests.conftest import ProxyFactory, RunningProxy
from tests.launch.conftest import alive, gone, until

pytestmark = pytest.mark.usefixtures("standins")


def policy(launch: str, chain: str = "[]") -> str:
    return textwrap.dedent(f"""
    backends:
      gpu:
        timeout_s: 20
        launch: {launch}
    models:
      llama: {{backend: gpu}}
      "*": {{backend: gpu}}
    chains:
      default: {chain}
    """)


VLLM = ("{engine: vllm, model: meta-llama/Llama-3.1-8B-Instruct, served_model_name: [llama], "
        "tensor_parallel_size: 1, enable_prefix_caching: true, api_key: engine-key, ready_timeout_s: 30, "
        "metrics_interval_s: 0.1, restart: {backoff_s: 0.05, max_restarts: %d}}")  # fmt: skip


def backend(proxy: RunningProxy, name: str = "gpu") -> LaunchedBackend:
    active = proxy.runtime.current
    assert active is not None
    found = active.backends[name]
    assert isinstance(found, LaunchedBackend)
    return found


async def standin_info(url: str, key: str | None = "engine-key") -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session, session.get(url.removesuffix("/v1") + "/_standin",
                                                               headers=headers) as resp:  # fmt: skip
        data: dict[str, Any] = await resp.json()
        return data


async def test_the_proxy_starts_vllm_routes_chat_to_it_and_stops_it(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(VLLM % 3)))
    engine = backend(proxy).group.engines[0]
    assert engine.ready and engine.pid is not None
    info = await standin_info(engine.base_url)
    assert info["argv"][:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "--enable-prefix-caching" in info["argv"] and "--api-key" in info["argv"]
    async with proxy.client() as client:
        reply = await client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        stream = await client.chat.completions.create(
            model="llama", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
        assert pieces
        listed = [m.id for m in (await client.models.list()).data]
        assert "llama" in listed and "meta-llama/Llama-3.1-8B-Instruct" not in listed  # the engine says "llama"
    await until(lambda: "kv_cache_usage" in engine.metrics)
    status = backend(proxy).status()["launch"]
    assert status["engine"] == "vllm" and status["replicas"][0]["pid"] == engine.pid
    assert status["replicas"][0]["state"] == "ready" and status["replicas"][0]["metrics"]["kv_cache_usage"] == 0.1
    pid = engine.pid
    await proxy.runner.cleanup()
    assert await gone(pid)
    assert engine.state == "stopped"


async def test_a_crashed_engine_is_restarted_and_serves_again(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(VLLM % 2)))
    engine = backend(proxy).group.engines[0]
    first = engine.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: engine.pid != first and engine.ready)
    assert engine.restarts == 1 and engine.last_exit == -signal.SIGKILL
    async with proxy.client() as client:
        reply = await client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "again"}])
        assert reply.choices[0].message.content


async def test_restarts_are_bounded_then_requests_get_a_503_naming_the_engine(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(VLLM % 1)))
    engine = backend(proxy).group.engines[0]
    for _ in range(2):
        pid = engine.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await until(lambda pid=pid: engine.pid != pid or engine.state == "failed")  # type: ignore[misc]
        await until(lambda: engine.state in ("ready", "failed"))
    assert engine.state == "failed" and engine.restarts == 1
    assert await backend(proxy).probe(1.0) == "no engine is ready (gpu: failed)"
    async with proxy.client() as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503 and "no engine is ready (gpu: failed)" in str(info.value)


def engine_config(**options: Any) -> EngineConfig:
    base = {"engine": "vllm", "model": "m", "ready_timeout_s": 30, "stop_timeout_s": 0.5, "metrics_interval_s": 0}
    return TypeAdapter(EngineConfig).validate_python({**base, **options})


async def test_an_engine_that_never_gets_ready_fails_naming_its_last_log_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STANDIN_NEVER_READY", "1")
    group = EngineGroup("gpu", engine_config(ready_timeout_s=1.5))
    with pytest.raises(EngineFailed) as info:
        await group.start()
    message = str(info.value)
    assert message.startswith("engine gpu not ready after 1.5 s (GET /health: HTTP 503); its last log lines:")
    assert "stand-in vllm: serving ['m']" in message
    assert group.engines[0].state == "stopped"


async def test_an_engine_that_dies_at_start_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_EXIT", "3")
    with pytest.raises(EngineFailed) as info:
        await EngineGroup("gpu", engine_config()).start()
    assert "engine gpu exited with status 3 before it was ready" in str(info.value)
    assert "CUDA error: no GPU found" in str(info.value)


async def test_a_missing_program_is_a_clear_error() -> None:
    with pytest.raises(EngineFailed, match="engine gpu: cannot run 'no-such-vllm'"):
        await EngineGroup("gpu", engine_config(executable="no-such-vllm")).start()


async def test_stop_sends_sigterm_then_sigkill_and_leaves_no_orphans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_IGNORE_TERM", "1")
    monkeypatch.setenv("STANDIN_CHILD", "1")
    group = EngineGroup("gpu", engine_config())
    await group.start()
    engine = group.engines[0]
    info = await standin_info(engine.base_url, key=None)
    pid, child = info["pid"], info["child"]
    assert alive(pid) and alive(child)
    await group.stop()
    assert "stand-in: ignoring SIGTERM" in engine.last_lines  # it got SIGTERM first
    assert await gone(pid) and await gone(child)  # then SIGKILL, to the whole process group


async def test_a_reload_that_keeps_the_launch_block_keeps_the_engine(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    path = write_policy(policy(VLLM % 3))
    proxy = await start_proxy(path)
    pid = backend(proxy).group.engines[0].pid
    write_policy(policy(VLLM % 3, chain="[{headers: {response: {set: {x-v: '2'}}}}]"))
    assert await proxy.runtime.reload()
    assert backend(proxy).group.engines[0].pid == pid
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="llama", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-v"] == "2"
    assert pid is not None and alive(pid)


async def test_tgi_and_its_metrics(start_proxy: ProxyFactory, write_policy: Callable[[str], Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("STANDIN_RUNNING", "7")
    launch = "{engine: tgi, model: mistralai/Mistral-7B-Instruct-v0.3, num_shard: 1, metrics_interval_s: 0.1}"
    proxy = await start_proxy(write_policy(policy(launch)))
    engine = backend(proxy).group.engines[0]
    assert (await standin_info(engine.base_url, key=None))["argv"][:3] == [
        "tgi", "--model-id", "mistralai/Mistral-7B-Instruct-v0.3"
    ]  # fmt: skip
    await until(lambda: engine.metrics.get("running") == 7.0)
    async with proxy.client() as client:
        reply = await client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


async def test_vllm_in_a_container_through_a_docker_standin(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    launch = "{engine: vllm, model: m, container: {runtime: docker, cache_dir: null}, metrics_interval_s: 0}"
    proxy = await start_proxy(write_policy(policy(launch)))
    engine = backend(proxy).group.engines[0]
    assert engine.command.argv[:2] == ("docker", "run") and engine.command.container
    async with proxy.client() as client:
        reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    pid = engine.pid
    assert pid is not None
    await proxy.runner.cleanup()
    assert await gone(pid)


async def test_chaperone_launch_runs_the_engine_until_sigterm(tmp_path: Path) -> None:
    import asyncio
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "launch", "vllm", "m", "--served-model-name", "m", "--ready-timeout-s", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or " ready: http://127.0.0.1:" not in lines[-1]:
        raw = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert raw, lines
        lines.append(raw.decode().rstrip())
    assert any("[vllm] stand-in vllm: serving ['m']" in line for line in lines)  # the log, prefixed
    url = lines[-1].split(" ready: ")[1].split()[0]
    pid = (await standin_info(url, key=None))["pid"]
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert await gone(pid)


def test_bench_launch_hook_starts_and_stops_the_policys_engine(tmp_path: Path) -> None:
    """``chaperone bench --launch BACKEND`` runs inside ``backends.launch.bench_engine``: up while in it, gone after."""
    import urllib.request

    from backends.launch import bench_engine

    path = tmp_path / "policy.yaml"
    path.write_text(policy(VLLM % 0))
    with bench_engine(path, "gpu") as info:
        assert info["engine"] == "vllm"
        assert "vllm serve meta-llama/Llama-3.1-8B-Instruct" in info["command"] and "engine-key" not in info["command"]
        request = urllib.request.Request(info["url"] + "/models", headers={"authorization": "Bearer engine-key"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(info["url"] + "/models", timeout=2)
    with pytest.raises(ValueError, match="no backend named 'nope'"):
        with bench_engine(path, "nope"):
            pass
