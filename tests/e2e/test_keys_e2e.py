"""Virtual keys over real sockets: the admin API, the openai SDK using the keys, two replicas on one Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import redis.asyncio

from proxy.keys import hash_secret
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy
from tests.proxy.store.test_store import T0, FakeClock

ADMIN = "admin-key-0123456789"
ADMIN_SECTION = f"admin: {{key: '{ADMIN}'}}\n"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


async def admin(
    proxy: RunningProxy, method: str, path: str, *, key: str | None = ADMIN, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """Call ``/chaperone/<path>``; returns the status and the decoded JSON answer."""
    url = proxy.url.removesuffix("/v1") + "/chaperone/" + path
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, json=body, data=raw) as response,
    ):
        return response.status, await response.json()


async def chat(proxy: RunningProxy, secret: str, model: str = "mock-gpt") -> str:
    async with proxy.client(secret) as client:
        answer = await client.chat.completions.create(model=model, messages=MESSAGES)
    return answer.choices[0].message.content or ""


async def refused(proxy: RunningProxy, secret: str) -> str:
    """The message of the 401 the proxy answers for ``secret``."""
    with pytest.raises(openai.AuthenticationError) as caught:
        await chat(proxy, secret)
    assert caught.value.code == "invalid_api_key"
    return caught.value.message


@pytest.fixture
async def keyed(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=ADMIN_SECTION)))


# ---- the admin API's guard -----------------------------------------------------------------------------


async def test_without_an_admin_section_every_admin_path_is_refused(proxy: RunningProxy) -> None:
    for method, path in (("GET", "keys"), ("POST", "keys"), ("POST", "keys/0123456789abcdef/rotate"), ("GET", "x")):
        status, body = await admin(proxy, method, path)
        assert (status, body["error"]["code"]) == (403, "admin_disabled"), (method, path)


async def test_the_admin_key_is_required(keyed: RunningProxy) -> None:
    for key in (None, "wrong-admin-key-000000", ADMIN + "x"):
        status, body = await admin(keyed, "GET", "keys", key=key)
        assert (status, body["error"]["type"]) == (401, "authentication_error")
    status, body = await admin(keyed, "POST", "keys", key="nope", body={"name": "x"})
    assert status == 401
    assert await admin(keyed, "GET", "keys") == (200, {"object": "list", "data": []})
    status, body = await admin(keyed, "GET", "nothing-here")
    assert (status, body["error"]["code"]) == (404, "unknown_url")


async def test_the_admin_key_is_not_an_api_key(keyed: RunningProxy) -> None:
    await refused(keyed, ADMIN)


# ---- create, use, revoke -------------------------------------------------------------------------------


async def test_create_use_revoke(keyed: RunningProxy, mock_upstream: MockUpstream) -> None:
    spec = {"name": "bot", "models": ["mock-gpt"], "metadata": {"team": "t1", "user": "ana"}}
    status, created = await admin(keyed, "POST", "keys", body=spec)
    assert status == 201, created
    secret = created.pop("key")
    assert secret.startswith("sk-chp-" + created["id"])
    assert created["status"] == "active" and created["metadata"] == {"team": "t1", "user": "ana"}
    assert "hello" in await chat(keyed, secret)
    async with keyed.client(secret) as client:
        assert [m.id for m in (await client.models.list()).data] == ["mock-gpt"]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await client.chat.completions.create(model="aliased", messages=MESSAGES)
        assert denied.value.code == "model_not_allowed"
    last = (await mock_upstream.requests())[-1]
    assert "authorization" not in {k.lower() for k in last["headers"]}  # a virtual key never travels upstream

    status, listing = await admin(keyed, "GET", "keys")
    assert [k["id"] for k in listing["data"]] == [created["id"]]
    assert secret not in str(listing) and hash_secret(secret) not in str(listing) and "sha256" not in str(listing)
    assert (await admin(keyed, "GET", f"keys/{created['id']}"))[1]["name"] == "bot"

    status, revoked = await admin(keyed, "POST", f"keys/{created['id']}/revoke")
    assert (status, revoked["status"]) == (200, "revoked") and "key" not in revoked
    assert "revoked" in await refused(keyed, secret)  # this replica forgets its cached record at once
    assert (await admin(keyed, "DELETE", f"keys/{created['id']}"))[1]["status"] == "revoked"  # idempotent


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "chain": "nope"}, "chain"),
        ({"name": "x", "models": ["mock-gpt", "gpt-9"]}, "models"),
        ({"name": "x", "models": "mock-gpt"}, "models"),
        ({"name": "x", "expires": "soon"}, "expires"),
        ({"name": "x", "expires": "2001-01-01T00:00:00Z"}, "expires"),
        ({"name": "x", "metadata": {"team": 1}}, "metadata.team"),
        ({"name": "x", "colour": "blue"}, "colour"),
    ],
)
async def test_create_validates_its_body(keyed: RunningProxy, body: dict[str, Any], param: str) -> None:
    status, answer = await admin(keyed, "POST", "keys", body=body)
    assert (status, answer["error"]["param"]) == (400, param), answer


async def test_bad_admin_requests(keyed: RunningProxy) -> None:
    status, answer = await admin(keyed, "POST", "keys", raw=b"[1, 2")
    assert (status, answer["error"]["code"]) == (400, "invalid_json")
    status, answer = await admin(keyed, "POST", "keys/0123456789abcdef/rotate")
    assert (status, answer["error"]["code"]) == (404, "key_not_found")
    _, created = await admin(keyed, "POST", "keys", body={"name": "bot"})
    status, answer = await admin(keyed, "POST", f"keys/{created['id']}/rotate", body={"overlap_s": "1h"})
    assert (status, answer["error"]["param"]) == (400, "overlap_s")
    await admin(keyed, "DELETE", f"keys/{created['id']}/revoke")
    status, answer = await admin(keyed, "POST", f"keys/{created['id']}/rotate")
    assert (status, answer["error"]["code"]) == (400, "key_not_active")


# ---- time: rotation overlap and expiry, on an injected clock -------------------------------------------


async def test_rotation_overlap_then_expiry(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    clock = FakeClock(T0)
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=ADMIN_SECTION)), clock=clock)
    _, created = await admin(proxy, "POST", "keys", body={"name": "bot", "expires": "2h"})
    old = created["key"]
    status, rotated = await admin(proxy, "POST", f"keys/{created['id']}/rotate", body={"overlap_s": 60})
    assert status == 200 and rotated["key"] != old
    assert [s["not_after"] for s in rotated["secrets"]] == [int(T0) + 60, None]
    clock.advance(59)
    assert await chat(proxy, old) and await chat(proxy, rotated["key"])  # inside the window both work
    clock.advance(1)
    assert "rotated" in await refused(proxy, old)
    assert await chat(proxy, rotated["key"])
    clock.advance(7200 - 60)
    assert "expired" in await refused(proxy, rotated["key"])
    assert (await admin(proxy, "GET", "keys"))[1]["data"][0]["status"] == "expired"


# ---- replicas ------------------------------------------------------------------------------------------


async def test_a_revocation_reaches_a_second_proxy_on_the_same_redis_within_a_second(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    clean_redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = f"store: {{backend: redis, url: '{clean_redis_url}'}}\n"
    path = write_policy(simple_policy(mock_upstream.url, extra=ADMIN_SECTION + store))
    first, second = await start_proxy(path), await start_proxy(path)
    _, created = await admin(first, "POST", "keys", body={"name": "canary-bot", "metadata": {"team": "t1"}})
    secret = created["key"]
    assert await chat(second, secret)  # the second replica knows the key, and now has it cached
    await admin(first, "POST", f"keys/{created['id']}/revoke")
    revoked_at = time.monotonic()
    while True:
        try:
            await chat(second, secret)
        except openai.AuthenticationError as exc:
            assert "revoked" in exc.message
            break
        assert time.monotonic() - revoked_at < 1.0, "the second replica still accepts a revoked key"
        await asyncio.sleep(0.05)
    assert time.monotonic() - revoked_at < 1.0

    client = redis.asyncio.Redis.from_url(clean_redis_url)
    try:
        keys = [key async for key in client.scan_iter("*") if await client.type(key) == b"string"]
        values = [str(await client.get(key)) for key in keys]
    finally:
        await client.aclose()
    assert values and all(secret not in value for value in values)
    assert created["id"] in caplog.text  # logs name the key by id …
    assert secret not in caplog.text and hash_secret(secret) not in caplog.text  # … never by secret or hash


async def test_the_upstream_key_never_reaches_clients_or_logs(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "sk-upstream-canary-7f3a9c"
    extra = ADMIN_SECTION + 'passthrough: {allow: ["POST /moderations"]}\n'
    policy = simple_policy(mock_upstream.url, extra=extra).replace(
        f'url: "{mock_upstream.url}"', f'url: "{mock_upstream.url}", api_key: "{canary}"'
    )
    proxy = await start_proxy(write_policy(policy))
    _, created = await admin(proxy, "POST", "keys", body={"name": "bot"})
    seen: list[str] = [str(created), str(await admin(proxy, "GET", "keys"))]
    async with proxy.client(created["key"]) as client:
        answer = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=MESSAGES)
        seen += [answer.text, str(answer.headers)]
        listed = await client.models.with_raw_response.list()
        seen += [listed.text, str(listed.headers)]
        moderated = await client.moderations.with_raw_response.create(input="hi", model="mock-gpt")
        seen += [moderated.text, str(moderated.headers)]
    sent = (await mock_upstream.requests())[0]["headers"]
    assert {k.lower(): v for k, v in sent.items()}["authorization"] == f"Bearer {canary}"  # it does go upstream …
    assert all(canary not in text for text in seen)  # … and never back to the client
    assert canary not in caplog.text


async def test_a_virtual_keys_passthrough_rules_replace_the_policys(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=ADMIN_SECTION)))
    status, bad = await admin(proxy, "POST", "keys", body={"name": "x", "passthrough": ["FETCH /x"]})
    assert status == 400 and "unknown method" in bad["error"]["message"]
    _, moderator = await admin(proxy, "POST", "keys", body={"name": "mod", "passthrough": ["POST /moderations"]})
    _, plain = await admin(proxy, "POST", "keys", body={"name": "plain"})
    assert moderator["passthrough"] == ["POST /moderations"] and plain["passthrough"] is None
    async with proxy.client(moderator["key"]) as allowed, proxy.client(plain["key"]) as refused:
        assert (await allowed.moderations.create(input="hello")).results
        with pytest.raises(openai.PermissionDeniedError, match=r"passthrough\.allow"):
            await refused.moderations.create(input="hello")
        with pytest.raises(openai.PermissionDeniedError, match=f"virtual key {moderator['id']}"):
            await allowed.files.list()  # its own list replaces the policy's GET default
