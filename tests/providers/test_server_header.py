"""No response the proxy writes names its software (aiohttp would add ``Server: Python/3.x aiohttp/x``)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import RunningProxy

pytestmark = pytest.mark.asyncio

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/chat/completions", CHAT, 200),
        ("POST", "/v1/chat/completions", {**CHAT, "stream": True}, 200),
        ("POST", "/v1/chat/completions", {"model": "mock-gpt"}, 400),
        ("GET", "/v1/chat/completions", None, 405),
        ("GET", "/v1/models", None, 200),
        ("GET", "/healthz", None, 200),
        ("GET", "/readyz", None, 200),
        ("GET", "/metrics", None, 200),
        ("GET", "/nowhere", None, 404),
        ("GET", "/chaperone/backends", None, 200),  # open mode: the status view is open too
        ("GET", "/v1/realtime?model=mock-gpt", None, 400),
    ],
)
async def test_no_server_header(proxy: RunningProxy, method: str, path: str, body: object, status: int) -> None:
    root = proxy.url.removesuffix("/v1")
    async with aiohttp.ClientSession() as session, session.request(method, root + path, json=body) as resp:
        await resp.read()
        assert resp.status == status
        assert "Server" not in resp.headers, resp.headers["Server"]
        assert resp.headers["x-request-id"]


async def test_no_server_header_on_a_websocket_upgrade(proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # open mode: no 'WS /realtime' rule
            await session.ws_connect(proxy.url + "/realtime?model=mock-gpt")
    assert refused.value.status == 403
    assert refused.value.headers is not None and "Server" not in refused.value.headers


async def test_no_server_header_on_a_malformed_request(proxy: RunningProxy) -> None:
    """aiohttp's protocol layer answers a request it cannot parse (no app hook runs): that answer is unnamed too."""
    url = urlsplit(proxy.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(b"NOT-HTTP\r\n\r\n")
    await writer.drain()
    head = await reader.read(4096)
    writer.close()
    assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n", 1)[0]
    assert b"\r\nserver:" not in head.lower(), head
