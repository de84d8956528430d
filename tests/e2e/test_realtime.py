"""The Realtime API's WebSocket through the proxy, over real sockets: refusals, the relay, limits, close codes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from proxy.policy import PolicyError, compile_policy_text
from proxy.realtime import STATS, upstream_url
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, serve_process, simple_policy

WS_RULE = "passthrough: {allow: ['GET /*', 'WS /realtime']}\n"
SMALL = "realtime: {max_frame_bytes: 2048, idle_timeout_s: 30}\n"
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
}


def keyed_policy(upstream_url: str, extra: str = "") -> str:
    """Two client keys (one without the WS rule, one limited to mock-gpt) and a backend key."""
    return textwrap.dedent(f"""
    backends:
      mock: {{url: "{upstream_url}", api_key: sk-backend}}
    models:
      mock-gpt: {{backend: mock}}
      aliased: {{backend: mock, model: upstream-name}}
    keys:
      - {{name: alice, key: sk-alice}}
      - {{name: bob, key: sk-bob, passthrough: ["GET /*"]}}
      - {{name: carol, key: sk-carol, models: [mock-gpt]}}
    {WS_RULE}
    """) + textwrap.dedent(extra)


def ws_url(proxy: RunningProxy, model: str = "mock-gpt", query: str = "") -> str:
    return proxy.url.replace("http://", "ws://", 1) + f"/realtime?model={model}{query}"


async def refusal(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of an upgrade request the proxy refuses (the 101 never comes)."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json()


async def receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), 5)


async def session_created(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await receive(ws)
    assert msg.type is WSMsgType.TEXT, msg
    event: dict[str, Any] = json.loads(msg.data)
    assert event["type"] == "session.created"
    return event


async def settled(proxy: RunningProxy) -> None:
    """Wait (bounded) until the proxy ended every session, then check that none left a task behind."""
    stats = proxy.app[STATS]
    for _ in range(250):
        if stats.active == 0:
            break
        await asyncio.sleep(0.02)
    assert stats.active == 0
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("chaperone-realtime")]
    assert not leftovers


async def realtime_log(mock: MockUpstream) -> list[dict[str, Any]]:
    """The mock's records of finished realtime sessions."""
    return [r for r in await mock.requests() if r["path"] == "/v1/realtime" and r["body"]]


@pytest.fixture
async def open_proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=WS_RULE + SMALL)))


@pytest.fixture
async def keyed_proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(keyed_policy(mock_upstream.url)))


# ---- the relay -----------------------------------------------------------------------------------


async def test_text_and_binary_frames_echo_through_the_proxy(open_proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(open_proxy)) as ws:
        assert (await session_created(ws))["session"]["model"] == "mock-gpt"
        await ws.send_str(json.dumps({"type": "input_audio_buffer.append", "audio": "AAAA"}))
        await ws.send_bytes(b"\x00\x01binary\xff")
        await ws.send_str("not json")
        echoes = [await receive(ws) for _ in range(3)]
        assert json.loads(echoes[0].data) == {
            "type": "echo",
            "data": {"type": "input_audio_buffer.append", "audio": "AAAA"},
        }
        assert echoes[1].type is WSMsgType.BINARY and echoes[1].data == b"\x00\x01binary\xff"
        assert json.loads(echoes[2].data) == {"type": "echo", "data": "not json"}
    await settled(open_proxy)
    stats = open_proxy.app[STATS]
    assert (stats.opened, stats.frames_up, stats.frames_down) == (1, 3, 4)  # session.created + 3 echoes
    assert stats.bytes_up == len(b'{"type": "input_audio_buffer.append", "audio": "AAAA"}') + 9 + 8
    assert stats.closed[1000] == 1


async def test_the_backend_key_and_upstream_model_name_reach_the_upstream(
    keyed_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    headers = {"Authorization": "Bearer sk-alice", "OpenAI-Beta": "realtime=v1"}
    url = ws_url(keyed_proxy, "aliased", "&voice=alloy")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=headers, protocols=["realtime"]) as ws,
    ):
        assert (await session_created(ws))["session"]["model"] == "upstream-name"
        assert ws.protocol == "realtime"
    (record,) = await mock_upstream.wait_for(lambda log: any(r["path"] == "/v1/realtime" for r in log))
    assert record["query"] == "model=upstream-name&voice=alloy"
    assert record["headers"]["authorization"] == "Bearer sk-backend"
    assert record["headers"]["openai-beta"] == "realtime=v1"
    assert record["headers"]["sec-websocket-protocol"] == "realtime"
    assert "sk-alice" not in json.dumps(record)
    await settled(keyed_proxy)


async def test_the_key_may_come_as_a_subprotocol_and_is_not_passed_upstream(
    keyed_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    protocols = ["realtime", "openai-insecure-api-key.sk-alice", "openai-beta.realtime-v1"]
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(keyed_proxy), protocols=protocols) as ws:
        await session_created(ws)
        assert ws.protocol == "realtime"
    (record,) = await mock_upstream.wait_for(lambda log: any(r["path"] == "/v1/realtime" for r in log))
    assert record["headers"]["sec-websocket-protocol"] == "realtime,openai-beta.realtime-v1"
    assert record["headers"]["authorization"] == "Bearer sk-backend"
    assert "sk-alice" not in json.dumps(record)
    await settled(keyed_proxy)


async def test_open_mode_sends_the_clients_own_key_upstream(
    open_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    protocols = ["realtime", "openai-insecure-api-key.sk-users-own"]
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(open_proxy), protocols=protocols) as ws:
        await session_created(ws)
    (record,) = await mock_upstream.wait_for(lambda log: any(r["path"] == "/v1/realtime" for r in log))
    assert record["headers"]["authorization"] == "Bearer sk-users-own"
    assert record["headers"]["sec-websocket-protocol"] == "realtime"
    await settled(open_proxy)


# ---- refusals before the upgrade -----------------------------------------------------------------


async def test_a_bad_key_is_refused_with_a_401_before_the_upgrade(
    keyed_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    status, body = await refusal(ws_url(keyed_proxy), {**UPGRADE, "Authorization": "Bearer sk-wrong"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    headers = {**UPGRADE, "Sec-WebSocket-Protocol": "realtime, openai-insecure-api-key.sk-wrong"}
    status, _ = await refusal(ws_url(keyed_proxy), headers)
    assert status == 401
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(ws_url(keyed_proxy))  # no key at all
    assert caught.value.status == 401
    assert not [r for r in await mock_upstream.requests() if r["path"] == "/v1/realtime"]
    assert keyed_proxy.app[STATS].refused == 3


async def test_a_key_without_a_ws_rule_gets_a_403_naming_its_setting(keyed_proxy: RunningProxy) -> None:
    status, body = await refusal(ws_url(keyed_proxy), {**UPGRADE, "Authorization": "Bearer sk-bob"})
    assert status == 403
    assert body["error"]["code"] == "passthrough_refused"
    assert "keys[1].passthrough" in body["error"]["message"] and "WS /realtime" in body["error"]["message"]


async def test_the_default_policy_refuses_realtime_sessions(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url)))
    status, body = await refusal(ws_url(proxy), UPGRADE)
    assert status == 403 and body["error"]["code"] == "passthrough_refused"
    assert "passthrough.allow" in body["error"]["message"]
    assert not [r for r in await mock_upstream.requests() if r["path"] == "/v1/realtime"]


async def test_a_model_the_key_may_not_use_gets_a_403(keyed_proxy: RunningProxy) -> None:
    headers = {**UPGRADE, "Authorization": "Bearer sk-carol"}
    status, body = await refusal(ws_url(keyed_proxy, "aliased"), headers)
    assert status == 403 and body["error"]["param"] == "model"
    status, body = await refusal(ws_url(keyed_proxy, "no-such-model"), headers)
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, body = await refusal(keyed_proxy.url.replace("http", "ws") + "/realtime", headers)
    assert status == 400 and body["error"]["code"] == "missing_model"


async def test_a_plain_get_is_told_to_use_a_websocket(open_proxy: RunningProxy) -> None:
    status, body = await refusal(ws_url(open_proxy).replace("ws://", "http://"), {})
    assert status == 400
    assert body["error"]["code"] == "websocket_required"
    assert "WebSocket" in body["error"]["message"]


async def test_an_unreachable_upstream_is_a_502_before_the_upgrade(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], unused_tcp_port: int
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(f"http://127.0.0.1:{unused_tcp_port}/v1", extra=WS_RULE)))
    status, body = await refusal(ws_url(proxy), UPGRADE)
    assert status == 502 and body["error"]["code"] == "upstream_unreachable"


async def test_an_upstream_that_never_answers_the_upgrade_is_a_504(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # reads nothing, answers nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    policy = f"""
    backends:
      mute: {{url: "http://127.0.0.1:{port}/v1", connect_timeout_s: 0.2}}
    models:
      "*": {{backend: mute}}
    {WS_RULE}
    """
    try:
        proxy = await start_proxy(write_policy(policy))
        status, body = await refusal(ws_url(proxy), UPGRADE)
        assert status == 504 and body["error"]["code"] == "upstream_timeout"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_an_upstream_refusing_the_upgrade_is_a_502(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    base = mock_upstream.url.removesuffix("/v1") + "/nowhere"  # the mock answers 404 there
    proxy = await start_proxy(write_policy(simple_policy(base, extra=WS_RULE)))
    status, body = await refusal(ws_url(proxy), UPGRADE)
    assert status == 502 and body["error"]["code"] == "upstream_refused_websocket"
    assert "HTTP 404" in body["error"]["message"]


# ---- limits and close codes ----------------------------------------------------------------------


async def test_an_oversized_client_frame_closes_both_sides_with_1009(
    open_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(open_proxy)) as ws:
        await session_created(ws)
        await ws.send_bytes(b"a" * 2048)  # at the limit: passes
        assert (await receive(ws)).data == b"a" * 2048
        await ws.send_bytes(b"a" * 2049)
        msg = await receive(ws)
        assert msg.type is WSMsgType.CLOSE and msg.data == 1009
        assert "the client sent a frame over realtime.max_frame_bytes (2048 bytes)" in (msg.extra or "")
    (record,) = await mock_upstream.wait_for(lambda log: any(r["body"] for r in log if r["path"] == "/v1/realtime"))
    assert record["body"]["close_code"] == 1009 and "max_frame_bytes" in record["body"]["close_reason"]
    await settled(open_proxy)


async def test_an_oversized_upstream_frame_closes_the_client_with_1009(open_proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(open_proxy)) as ws:
        await session_created(ws)
        await ws.send_str(json.dumps({"type": "mock.big", "bytes": 2048}))
        assert len((await receive(ws)).data) == 2048
        await ws.send_str(json.dumps({"type": "mock.big", "bytes": 5000}))
        msg = await receive(ws)
        assert msg.type is WSMsgType.CLOSE and msg.data == 1009
        assert "the upstream sent a frame over realtime.max_frame_bytes" in (msg.extra or "")
    await settled(open_proxy)


async def test_the_upstreams_close_code_and_reason_reach_the_client(open_proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(open_proxy)) as ws:
        await session_created(ws)
        await ws.send_str(json.dumps({"type": "mock.close", "code": 4000, "reason": "session expired"}))
        msg = await receive(ws)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4000, "session expired")
    await settled(open_proxy)
    assert open_proxy.app[STATS].closed[4000] == 1


async def test_the_clients_close_code_reaches_the_upstream(
    open_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(open_proxy)) as ws:
        await session_created(ws)
        await ws.close(code=4001, message=b"user hung up")
    (record,) = await mock_upstream.wait_for(lambda log: any(r["body"] for r in log if r["path"] == "/v1/realtime"))
    assert (record["body"]["close_code"], record["body"]["close_reason"]) == (4001, "user hung up")
    await settled(open_proxy)


async def test_an_upstream_that_drops_the_connection_closes_the_client_with_1011(open_proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(open_proxy)) as ws:
        await session_created(ws)
        await ws.send_str(json.dumps({"type": "mock.drop"}))
        msg = await receive(ws)
        assert msg.type is WSMsgType.CLOSE and msg.data == 1011
    await settled(open_proxy)


async def test_a_client_that_drops_the_connection_closes_the_upstream_with_1001(
    open_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    host, port = open_proxy.url.removeprefix("http://").removesuffix("/v1").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = ["GET /v1/realtime?model=mock-gpt HTTP/1.1", f"Host: {host}:{port}"]
    writer.write(("\r\n".join(lines + [f"{k}: {v}" for k, v in UPGRADE.items()]) + "\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101") and b"x-request-id:" in head.lower()
    await asyncio.wait_for(reader.readexactly(2), 5)  # the first frame (session.created) is on its way
    writer.transport.abort()  # no close frame, no FIN handshake
    (record,) = await mock_upstream.wait_for(lambda log: any(r["body"] for r in log if r["path"] == "/v1/realtime"))
    assert (record["body"]["close_code"], record["body"]["close_reason"]) == (1001, "the client went away")
    await settled(open_proxy)


async def test_an_idle_session_is_closed(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    extra = WS_RULE + "realtime: {idle_timeout_s: 0.2}\n"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=extra)))
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(proxy)) as ws:
        await session_created(ws)
        msg = await receive(ws)
        assert msg.type is WSMsgType.CLOSE and msg.data == 1000
        assert "idle for 0.2 s (realtime.idle_timeout_s)" == msg.extra
    (record,) = await mock_upstream.wait_for(lambda log: any(r["body"] for r in log if r["path"] == "/v1/realtime"))
    assert record["body"]["close_code"] == 1000
    await settled(proxy)


async def test_a_shutdown_closes_open_sessions_with_1001(
    tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    policy = write_policy(simple_policy(mock_upstream.url, extra=WS_RULE))
    async with serve_process(tmp_path / "home", "--policy", str(policy), CHAPERONE_SHUTDOWN_TIMEOUT_S="0.5") as (
        proc,
        url,
    ):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url.replace("http://", "ws://") + "/realtime?model=mock-gpt") as ws:
                await session_created(ws)
                proc.send_signal(signal.SIGTERM)
                msg = await asyncio.wait_for(ws.receive(), 10)
                assert msg.type is WSMsgType.CLOSE and msg.data == 1001
                assert "shutting down" in (msg.extra or "")
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert proc.stdout is not None
        output = (await proc.stdout.read()).decode()
    assert "Traceback" not in output


# ---- configuration -------------------------------------------------------------------------------


def test_realtime_limits_are_validated_with_their_yaml_path(registry: Any) -> None:
    text = simple_policy("http://127.0.0.1:9/v1", extra="realtime: {max_frame_bytes: 10, idle: 3}\n")
    with pytest.raises(PolicyError) as caught:
        compile_policy_text(text, registry)
    assert any(e.startswith("realtime.max_frame_bytes:") for e in caught.value.errors)
    assert any(e.startswith("realtime.idle:") for e in caught.value.errors)


def test_the_upstream_url_keeps_the_query_and_names_the_upstream_model() -> None:
    url = upstream_url("https://api.openai.com/v1", {"model": "alias", "x": "1"}, "gpt-realtime")
    assert str(url) == "wss://api.openai.com/v1/realtime?model=gpt-realtime&x=1"
    assert str(upstream_url("http://h:8/v1", {"model": "m"}, None)) == "ws://h:8/v1/realtime?model=m"
