"""Fault injection end to end: the openai SDK over real sockets, the proxy, and the mock backend's faults.

Each case puts a fault on the primary backend only (the mock reads it from the ``x-mock-fault`` header,
which that backend's ``headers:`` adds), then asserts what the SDK client sees, how many attempts reached
the upstream (the mock's request log, by upstream model name), that the time taken stays within the
policy's limits (generous bounds, no sleeps), and that no socket or asyncio task outlives the case.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.chain_helpers import closed_port_url
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy

RETRY = "{retry: {attempts: 2, backoff_s: 0.01, max_backoff_s: 0.05, attempt_timeout_s: 0.4, retry_after_cap_s: 1}}"
MESSAGES: list[Any] = [{"role": "user", "content": "hello there"}]


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """Requested first, so it checks after every other fixture (proxy, mock) was torn down."""
    sockets, tasks = _sockets(), len(asyncio.all_tasks())
    yield
    for _ in range(100):  # closed transports go away within a few loop turns
        if _sockets() <= sockets and len(asyncio.all_tasks()) <= tasks:
            break
        await asyncio.sleep(0.02)
    assert _sockets() <= sockets, "sockets leaked"
    assert len(asyncio.all_tasks()) <= tasks, [t.get_coro() for t in asyncio.all_tasks()]


def policy(primary_url: str, backup_url: str, fault: str, *, fallback: bool = True, chain: str = f"[{RETRY}]") -> str:
    header = f'headers: {{x-mock-fault: "{fault}"}}, ' if fault else ""
    return textwrap.dedent(f"""
    backends:
      primary: {{url: "{primary_url}", timeout_s: 2, connect_timeout_s: 1, {header}circuit: {{failures: 3}}}}
      backup: {{url: "{backup_url}", timeout_s: 5}}
    models:
      gpt: {{backend: primary, model: up-primary, fallback: [{"spare" if fallback else ""}]}}
      spare: {{backend: backup, model: up-spare}}
    chains:
      default: {chain}
    """)


Start = Callable[..., Any]


@pytest.fixture
def start(
    no_leaks: None, start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> Start:
    async def go(fault: str, *, refused: bool = False, **kwargs: Any) -> RunningProxy:
        primary = closed_port_url() if refused else mock_upstream.url
        return await start_proxy(write_policy(policy(primary, mock_upstream.url, fault, **kwargs)))

    return go


async def attempts(mock: MockUpstream, model: str) -> int:
    return sum(1 for r in await mock.requests() if isinstance(r["body"], dict) and r["body"].get("model") == model)


async def chat(proxy: RunningProxy, **kwargs: Any) -> Any:
    async with proxy.client() as client:
        return await client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES, **kwargs)


FALLBACK_CASES = [
    # fault on the primary, attempts it gets (2 = retried once; 1 = fell back at once or the circuit opened)
    pytest.param("status=429,retry_after=0.05", 2, id="429-retry-after-under-cap"),
    pytest.param("status=429,retry_after=30", 1, id="429-retry-after-over-cap"),
    pytest.param("status=500", 2, id="500"),
    pytest.param("status=503,retry_after=0", 2, id="503"),
    pytest.param("cut_body", 2, id="reset-mid-body"),
    pytest.param("latency_ms=1500", 1, id="read-timeout"),  # the timeout opens the circuit: no second try
    pytest.param("hang", 1, id="hang"),
    pytest.param("drop_after=0", 2, id="non-stream-drop"),
]


@pytest.mark.parametrize(("fault", "expected"), FALLBACK_CASES)
async def test_a_failing_primary_is_invisible_with_a_fallback(
    start: Start, mock_upstream: MockUpstream, fault: str, expected: int
) -> None:
    proxy = await start(fault)
    began = time.monotonic()
    raw = await chat(proxy)
    elapsed = time.monotonic() - began
    assert raw.http_response.status_code == 200
    assert raw.headers["x-chaperone-backend"] == "backup"
    assert raw.parse().choices[0].message.content
    assert await attempts(mock_upstream, "up-primary") == expected
    assert await attempts(mock_upstream, "up-spare") == 1
    assert elapsed < 2 * 0.4 + 1.5  # two attempt timeouts and a capped wait, at most


async def test_a_refused_connection_falls_back(start: Start, mock_upstream: MockUpstream) -> None:
    proxy = await start("", refused=True)
    raw = await chat(proxy)
    assert raw.headers["x-chaperone-backend"] == "backup"
    assert await attempts(mock_upstream, "up-spare") == 1


ERROR_CASES = [
    # fault, what the SDK raises, status, attempts on the primary
    pytest.param("status=429,retry_after=30", openai.RateLimitError, 429, 1, id="429"),
    pytest.param("status=500", openai.InternalServerError, 500, 2, id="500"),
    pytest.param("status=503,retry_after=0", openai.InternalServerError, 503, 2, id="503"),
    pytest.param("cut_body", openai.APIStatusError, 502, 2, id="reset-mid-body"),
    pytest.param("hang", openai.APIStatusError, 504, 2, id="hang"),
    pytest.param("status=400", openai.BadRequestError, 400, 1, id="400-not-retried"),
]


@pytest.mark.parametrize(("fault", "error", "code", "expected"), ERROR_CASES)
async def test_without_a_fallback_the_client_gets_the_right_openai_error(
    start: Start, mock_upstream: MockUpstream, fault: str, error: type[Exception], code: int, expected: int
) -> None:
    proxy = await start(fault, fallback=False)
    began = time.monotonic()
    with pytest.raises(error) as info:
        await chat(proxy)
    assert isinstance(info.value, openai.APIStatusError) and info.value.status_code == code
    body = info.value.response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    if code == 429:
        assert info.value.response.headers["retry-after"] == "30"
    assert await attempts(mock_upstream, "up-primary") == expected
    assert time.monotonic() - began < 2 * 0.4 + 1.5


async def test_a_refused_connection_without_a_fallback_is_a_502(start: Start) -> None:
    proxy = await start("", refused=True, fallback=False)
    with pytest.raises(openai.APIStatusError) as info:
        await chat(proxy)
    assert info.value.status_code == 502 and info.value.body["code"] == "upstream_unreachable"  # type: ignore[index]


async def test_a_stream_that_fails_before_its_first_byte_falls_back(start: Start, mock_upstream: MockUpstream) -> None:
    proxy = await start("drop_after=0")
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES, stream=True)
        assert raw.headers["x-chaperone-backend"] == "backup"
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text
    assert await attempts(mock_upstream, "up-primary") == 2


async def test_a_stream_dropped_after_its_first_bytes_ends_with_an_error_event(
    start: Start, mock_upstream: MockUpstream
) -> None:
    proxy = await start("drop_after=2")
    chunks = []
    async with proxy.client() as client:
        stream = await client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                chunks.append(chunk)
    assert len(chunks) == 2  # what the client already had stays; nothing is replayed
    assert "closed the connection" in str(info.value)
    assert await attempts(mock_upstream, "up-primary") == 1  # never retried once bytes went out
    assert await attempts(mock_upstream, "up-spare") == 0


async def test_a_slow_stream_within_its_limits_comes_from_the_primary(
    start: Start, mock_upstream: MockUpstream
) -> None:
    proxy = await start("chunk_delay_ms=100,tokens=5")
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES, stream=True)
        pieces = [c.choices[0].delta.content async for c in raw.parse() if c.choices and c.choices[0].delta.content]
    assert raw.headers["x-chaperone-backend"] == "primary"
    assert len(pieces) == 5
    assert await attempts(mock_upstream, "up-primary") == 1


async def test_a_hanging_stream_costs_one_attempt_timeout_then_falls_back(
    start: Start, mock_upstream: MockUpstream
) -> None:
    proxy = await start("hang")
    began = time.monotonic()
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES, stream=True)
        assert raw.headers["x-chaperone-backend"] == "backup"
        assert [c async for c in raw.parse()]
    assert 0.35 < time.monotonic() - began < 1.5  # one attempt timeout (0.4 s), no more
    assert await attempts(mock_upstream, "up-primary") == 1


async def test_the_circuit_opens_and_fallback_becomes_immediate(start: Start, mock_upstream: MockUpstream) -> None:
    proxy = await start("status=500", chain="[{retry: {attempts: 1}}]")
    for _ in range(6):
        assert (await chat(proxy)).headers["x-chaperone-backend"] == "backup"
    assert await attempts(mock_upstream, "up-primary") == 3  # circuit: {failures: 3}
    assert await attempts(mock_upstream, "up-spare") == 6
    base = proxy.url.removesuffix("/v1")
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/chaperone/backends") as r:
            view = {b["name"]: b for b in (await r.json())["data"]}
        async with session.get(base + "/readyz") as r:
            ready = await r.json()
    assert view["primary"]["circuit"]["state"] == "open"
    assert view["primary"]["url"] == mock_upstream.url
    assert view["backup"]["circuit"] == {"state": "off"}
    assert ready["circuits"] == {"primary": "open"}


async def test_fallback_works_without_the_retry_plugin(start: Start, mock_upstream: MockUpstream) -> None:
    proxy = await start("status=502", chain="[]")
    raw = await chat(proxy)
    assert raw.headers["x-chaperone-backend"] == "backup"
    assert await attempts(mock_upstream, "up-primary") == 1
    refused = await start("", refused=True, chain="[]")
    assert (await chat(refused)).headers["x-chaperone-backend"] == "backup"


async def test_the_client_deadline_bounds_a_hang(start: Start, mock_upstream: MockUpstream) -> None:
    slow = "{retry: {attempts: 3, attempt_timeout_s: 5}}"
    proxy = await start("hang", chain=f"[{slow}]", fallback=False)
    began = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        await chat(proxy, extra_headers={"x-chaperone-deadline-ms": "300"})
    assert info.value.status_code == 504
    assert time.monotonic() - began < 2.0  # not the 5 s attempt timeout


async def test_an_open_circuit_without_a_fallback_is_a_fast_503_with_retry_after(
    no_leaks: None, start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    text = f"""
    backends:
      primary: {{url: "{mock_upstream.url}", headers: {{x-mock-fault: "status=500"}},
                circuit: {{enabled: true, failures: 2, cooldown_s: 30}}}}
    models:
      gpt: {{backend: primary}}
    """
    proxy = await start_proxy(write_policy(text))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            await chat(proxy)
        assert info.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as info:
        await chat(proxy)
    assert info.value.status_code == 503 and info.value.body["code"] == "circuit_open"  # type: ignore[index]
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 30
    assert len(await mock_upstream.requests()) == 2  # the third never reached the upstream
