"""The chain-run APIs are served without aiohttp's router under ``ProxyRunner`` (``proxy.protocol.DIRECT``).

What a client sees must not depend on which way a request went: the plain path goes direct, the same
path with a query string or an ``Expect`` header goes through the router and the middleware.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from proxy.handlers import CHAT, MESSAGES
from proxy.protocol import DIRECT
from tests.conftest import RunningProxy

pytestmark = pytest.mark.asyncio

CHAT_BODY = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


async def _post(proxy: RunningProxy, path: str, body: Any, **headers: str) -> tuple[int, dict[str, str], Any]:
    root = proxy.url.removesuffix("/v1")
    data = body if isinstance(body, bytes) else None
    json = None if data is not None else body
    async with (
        aiohttp.ClientSession() as session,
        session.post(root + path, json=json, data=data, headers=headers, expect100="Expect" in headers) as resp,
    ):
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.json(content_type=None)


async def test_the_chain_apis_are_direct(proxy: RunningProxy) -> None:
    direct = proxy.app[DIRECT]
    assert ("POST", "/v1" + CHAT.path) in direct and ("POST", "/v1" + MESSAGES.path) in direct
    assert ("GET", "/v1" + CHAT.path) not in direct  # other methods get the router's 405


@pytest.mark.parametrize("suffix", ["", "?trace=1"])
async def test_an_answer_is_the_same_either_way(proxy: RunningProxy, suffix: str) -> None:
    status, headers, body = await _post(proxy, "/v1/chat/completions" + suffix, CHAT_BODY, **{"x-request-id": "req-1"})
    assert status == 200
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    assert headers["x-request-id"] == "req-1"
    assert headers["content-type"].startswith("application/json")
    assert "server" not in headers


@pytest.mark.parametrize("suffix", ["", "?trace=1"])
async def test_an_error_is_the_same_either_way(proxy: RunningProxy, suffix: str) -> None:
    status, headers, body = await _post(proxy, "/v1/chat/completions" + suffix, b"{not json", **{"x-request-id": "r2"})
    assert status == 400
    assert body["error"]["code"] == "invalid_json" and body["error"]["type"] == "invalid_request_error"
    assert headers["x-request-id"] == "r2"


async def test_a_messages_error_keeps_anthropics_shape_when_direct(proxy: RunningProxy) -> None:
    status, headers, body = await _post(proxy, "/v1/messages", {"model": "mock-gpt"}, **{"x-api-key": "k"})
    assert status == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert headers["x-request-id"]


async def test_expect_100_continue_takes_the_router_and_is_answered(proxy: RunningProxy) -> None:
    status, headers, body = await _post(proxy, "/v1/chat/completions", CHAT_BODY, Expect="100-continue")
    assert status == 200
    assert body["object"] == "chat.completion"
    assert headers["x-request-id"]
