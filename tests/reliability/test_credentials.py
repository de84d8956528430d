"""Several upstream API keys on one backend: rotation, moving on after a 401/429, resting a key, no key in output."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import openai
import pytest
from aiohttp import web

from backends.credentials import KeyPool
from tests.conftest import ProxyFactory, RunningProxy, start_site

KEYS = {"K1": "sk-live-aaaa1111", "K2": "sk-live-bbbb2222", "K3": "sk-live-cccc3333"}
OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}


class KeyedUpstream:
    """An upstream that answers per key: ``refuse`` keys get a 401 quoting the key, ``limited`` ones a 429."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.refuse: set[str] = set()
        self.limited: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append(key)
        if key in self.refuse:
            message = f"Incorrect API key provided: {key}. You can find your API key at https://example.invalid."
            error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
            return web.json_response({"error": error}, status=401)
        if key in self.limited:
            error = {"message": f"Rate limit reached for key {key}", "type": "requests", "code": "rate_limit_exceeded"}
            return web.json_response({"error": error}, status=429, headers={"retry-after": "20"})
        return web.json_response(OK)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[KeyedUpstream, str]]:
    keyed = KeyedUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", keyed.handle)
    runner, base = await start_site(app)
    yield keyed, base + "/v1"
    await runner.cleanup()


@pytest.fixture
def keyed_proxy(
    upstream: tuple[KeyedUpstream, str],
    start_proxy: ProxyFactory,
    write_policy: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[], Awaitable[RunningProxy]]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    text = f"""
    backends:
      up: {{url: "{upstream[1]}", api_keys: ["${{K1}}", "${{K2}}", "${{K3}}"], key_rest_s: 600}}
    models:
      "*": {{backend: up}}
    """

    async def start() -> RunningProxy:
        return await start_proxy(write_policy(textwrap.dedent(text)))

    return start


async def ask(proxy: RunningProxy) -> str | None:
    async with proxy.client() as client:
        answer = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        return answer.choices[0].message.content


async def test_keys_are_used_in_turn(
    upstream: tuple[KeyedUpstream, str], keyed_proxy: Callable[[], Awaitable[RunningProxy]]
) -> None:
    proxy = await keyed_proxy()
    for _ in range(6):
        assert await ask(proxy) == "ok"
    keyed = upstream[0]
    assert sorted(keyed.seen) == sorted([*KEYS.values()] * 2)
    assert keyed.seen[:3] != keyed.seen[1:4]  # rotating, not one key


@pytest.mark.parametrize("failure", ["refuse", "limited"])
async def test_a_refused_key_is_skipped_and_rested(
    upstream: tuple[KeyedUpstream, str],
    keyed_proxy: Callable[[], Awaitable[RunningProxy]],
    failure: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keyed = upstream[0]
    getattr(keyed, failure).add(KEYS["K1"])
    proxy = await keyed_proxy()
    caplog.set_level(logging.DEBUG)
    for _ in range(6):
        assert await ask(proxy) == "ok"  # the client never sees the bad key's failure
    assert keyed.seen.count(KEYS["K1"]) == 1  # tried once, then rested
    assert keyed.seen.count(KEYS["K2"]) + keyed.seen.count(KEYS["K3"]) == 6


async def test_when_every_key_fails_the_error_names_no_key(
    upstream: tuple[KeyedUpstream, str],
    keyed_proxy: Callable[[], Awaitable[RunningProxy]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    keyed = upstream[0]
    keyed.refuse.update(KEYS.values())
    proxy = await keyed_proxy()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(openai.AuthenticationError) as info:
        await ask(proxy)
    assert len(keyed.seen) == 3  # each key once, within the one request
    text = info.value.response.text
    assert "Incorrect API key provided: key#" in text
    for key in KEYS.values():
        assert key not in text and key not in caplog.text
    base = proxy.url.removesuffix("/v1")
    async with proxy.client() as client:
        view = await client.get(base + "/chaperone/backends", cast_to=object)
    assert view["data"][0]["api_keys"] == {"keys": 3, "resting": 3}  # type: ignore[index]
    assert not any(key in str(view) for key in KEYS.values())


def test_pool_rotation_resting_and_scrubbing() -> None:
    now = [0.0]
    pool = KeyPool(["a-secret", "b-secret"], rest_s=10, clock=lambda: now[0])
    assert [pool.pick() for _ in range(4)] == [0, 1, 0, 1]
    pool.rest(0)
    assert [pool.pick() for _ in range(3)] == [1, 1, 1]
    assert pool.pick(frozenset({1})) is None  # 0 rests, 1 was tried
    pool.rest(1)
    assert pool.pick() in (0, 1)  # everything rests: the first attempt still goes
    now[0] = 11
    assert pool.resting() == 0
    assert pool.scrub("bad key a-secret, b-secret") == "bad key key#1, key#2"
