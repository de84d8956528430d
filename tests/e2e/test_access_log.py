"""The JSON access log over real sockets: one parseable line per request, no prompt text unless opted in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import MockUpstream, ProxyFactory, simple_policy

pytestmark = pytest.mark.asyncio

CANARY = "zebra-canary-4417"
MESSAGES: list[Any] = [{"role": "user", "content": f"Tell me about {CANARY}"}]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def lines_of(path: Path, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The first ``count`` lines of the log once the writer thread wrote them (bounded wait)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        lines = _read(path).splitlines()
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        if loop.time() > end:
            raise AssertionError(f"expected {count} access lines, got {lines}")
        await asyncio.sleep(0.02)


async def test_one_json_line_per_request_without_prompt_text(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_path = tmp_path / "access.log"
    monkeypatch.setenv("CHAPERONE_ACCESS_LOG", str(log_path))
    extra = "keys:\n  - {name: team-a, key: sk-secret-key-aaaa}\n"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=extra)))
    async with proxy.client("sk-secret-key-aaaa") as client:
        whole = await client.chat.completions.create(model="aliased", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass
    async with proxy.client("sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)

    records = await lines_of(log_path, 3)
    raw = _read(log_path)
    assert CANARY not in raw and "sk-secret-key-aaaa" not in raw and "sk-wrong" not in raw
    first, second, refused = records
    assert first["id"] and first["key"] == "team-a" and first["endpoint"] == "chat"
    assert (first["model"], first["route"], first["backend"], first["status"]) == ("aliased", "aliased", "mock", 200)
    assert first["upstream_model"] == "upstream-name"
    assert whole.usage is not None and first["tokens"]["input"] == whole.usage.prompt_tokens
    assert first["latency_ms"] > 0 and first["ttft_ms"] is None and first["error"] is None
    assert second["stream"] is True and second["ttft_ms"] is not None
    assert 0 < second["ttft_ms"] <= second["latency_ms"]
    assert second["tokens"]["output"] > 0
    assert (refused["status"], refused["error"], refused["endpoint"]) == (401, "invalid_api_key", "chat")


async def test_prompts_are_logged_only_when_the_policy_opts_in(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_path = tmp_path / "access.log"
    monkeypatch.setenv("CHAPERONE_ACCESS_LOG", str(log_path))
    policy = simple_policy(mock_upstream.url, extra="access_log: {include_prompts: true}\n")
    proxy = await start_proxy(write_policy(policy))
    async with proxy.client() as client:
        await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    (record,) = await lines_of(log_path, 1)
    assert record["prompts"] == [{"role": "user", "text": MESSAGES[0]["content"]}]


async def test_off_by_default_writes_nothing(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CHAPERONE_ACCESS_LOG", raising=False)
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url)))
    async with aiohttp.ClientSession() as session:
        body = {"model": "mock-gpt", "messages": MESSAGES}
        async with session.post(proxy.url + "/chat/completions", json=body) as response:
            assert response.status == 200
    assert CANARY not in capsys.readouterr().out
