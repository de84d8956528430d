"""Errors reach the openai SDK as its typed exceptions, with the status codes it maps."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.chain_helpers import closed_port_url
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

try:  # openai ≥ 3 ships on httpx2, earlier releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


class CorruptBody(httpx.AsyncBaseTransport):
    """Sends whatever the SDK built, but with a truncated JSON body, over a real socket."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        broken = httpx.Request(request.method, request.url, headers=headers, content=b'{"model": "mock-gpt", "mess')
        return await self.inner.handle_async_request(broken)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_malformed_json_is_bad_request(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url)))
    async with httpx.AsyncClient(transport=CorruptBody()) as http, proxy.client(http_client=http) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert err.value.code == "invalid_json"
    assert await mock_upstream.requests() == []


KEYED = """
keys:
  - {name: app1, key: "sha256:%s", models: [mock-gpt]}
  - {name: app2, key: "${APP2_KEY:-plain-key-2}"}
"""


async def test_keys_authenticate_and_limit_models(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    digest = hashlib.sha256(b"key-one").hexdigest()
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=KEYED % digest)))
    async with proxy.client("wrong") as c:
        with pytest.raises(openai.AuthenticationError):
            await c.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    async with proxy.client("key-one") as c:
        ok = await c.chat.completions.create(model="mock-gpt", messages=MESSAGES)
        assert ok.choices[0].message.content
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await c.chat.completions.create(model="aliased", messages=MESSAGES)
        assert denied.value.code == "model_not_allowed"
        assert [m.id for m in (await c.models.list()).data] == ["mock-gpt"]
    async with proxy.client("plain-key-2") as c:
        assert await c.chat.completions.create(model="aliased", messages=MESSAGES)
    headers = {k.lower(): v for k, v in (await mock_upstream.requests())[-1]["headers"].items()}
    assert "authorization" not in headers  # a Chaperone key never travels upstream


async def test_unknown_model_is_not_found(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    policy = f"""
    backends: {{mock: {{url: "{mock_upstream.url}"}}}}
    models: {{mock-gpt: {{backend: mock}}}}
    """
    proxy = await start_proxy(write_policy(policy))
    async with proxy.client() as c:
        with pytest.raises(openai.NotFoundError) as err:
            await c.chat.completions.create(model="gpt-unknown", messages=MESSAGES)
    assert err.value.code == "model_not_found"


async def test_dead_upstream_is_502(start_proxy: ProxyFactory, write_policy: Callable[[str], Path]) -> None:
    proxy = await start_proxy(write_policy(simple_policy(closed_port_url())))
    async with proxy.client() as c:
        with pytest.raises(openai.APIStatusError) as err:
            await c.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert err.value.status_code == 502
    assert err.value.code == "upstream_unreachable"


async def test_hanging_upstream_is_504(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, timeout_s=0.3)))
    async with proxy.client() as c:
        with pytest.raises(openai.APIStatusError) as err:
            await c.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "[[mock:hang]]"}])
        assert err.value.status_code == 504
        with pytest.raises(openai.APIStatusError) as err:  # a stream that never sends its first byte
            await c.chat.completions.create(
                model="mock-gpt", messages=[{"role": "user", "content": "[[mock:hang]]"}], stream=True
            )
        assert err.value.status_code == 504
    await mock_upstream.wait_for(lambda log: sum(r["outcome"] == "client_disconnected" for r in log) == 2)


async def test_upstream_errors_pass_through_with_their_status(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "[[mock:status=429,retry_after=7]]"}]
        )
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "[[mock:status=500]]"}]
        )


async def test_upstream_dying_mid_stream_gives_an_error_event(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "[[mock:tokens=20,drop_after=4]]"}], stream=True
    )
    received = 0
    with pytest.raises(openai.APIError) as err:
        async for _ in stream:
            received += 1
    assert received == 4  # everything before the failure arrived
    assert "closed the connection" in err.value.message


async def test_oversized_body_is_413(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra="limits: {max_body_bytes: 2048}")))
    async with proxy.client() as c:
        with pytest.raises(openai.APIStatusError) as err:
            await c.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x" * 5000}])
        assert err.value.status_code == 413
        assert await c.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert len(await mock_upstream.requests()) == 1


async def test_wrong_method_on_an_api_path_is_405(proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/chat/completions") as r:
        assert r.status == 405
        assert (await r.json())["error"]["code"] == "method_not_allowed"
    assert await mock_upstream.requests() == []


async def test_nan_in_a_passed_through_field_is_rejected(proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    body = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "vendor": NaN}'
    async with aiohttp.ClientSession() as s, s.post(proxy.url + "/chat/completions", data=body) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "invalid_json"
    assert await mock_upstream.requests() == []


async def test_pass_through_never_climbs_above_the_backend_base_path(proxy: RunningProxy) -> None:
    host, port = proxy.url.removeprefix("http://").removesuffix("/v1").split(":")
    # Raw requests: HTTP clients would normalise the dot segments away before sending.
    for path in ("/v1/files/%2e%2e/%2e%2e/_mock/requests", "/v1/files/../../_mock/requests", "/v1/%2E%2E/_mock/health"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 404"), (path, answer[:200])
        assert b'"unknown_url"' in answer


async def test_a_stream_ending_without_its_last_blank_line_is_delivered_whole(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    """Some servers end with ``data: [DONE]\\n``; the client must still get every event."""
    from aiohttp import web

    from tests.conftest import start_site

    async def sloppy(request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}  # fmt: skip
        await out.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await out.write(b"data: [DONE]\n")
        await out.write_eof()
        return out

    app = web.Application()
    app.router.add_post("/v1/chat/completions", sloppy)
    runner, base = await start_site(app)
    try:
        proxy = await start_proxy(write_policy(simple_policy(base + "/v1")))
        async with aiohttp.ClientSession() as s:
            body = {"model": "m", "messages": MESSAGES, "stream": True}
            async with s.post(proxy.url + "/chat/completions", json=body) as r:
                raw = await r.read()
        assert raw.endswith(b"data: [DONE]\n\n")
        assert b'"content": "hi"' in raw or b'"content":"hi"' in raw
    finally:
        await runner.cleanup()
