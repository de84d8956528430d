"""The lean upstream HTTP/1.1 client (``backends/http1.py``) against real sockets.

Each test runs a raw asyncio server that writes exactly the bytes a case needs (keep-alive, chunked,
read-until-close, a death mid-body, silence, garbage), so the client's handling of each is pinned down.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from backends import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Upstream"], Awaitable[None]]


@dataclass
class Upstream:
    """A raw HTTP server on a free loopback port; counts connections, keeps each request's head."""

    handler: Handler
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        """One request off the connection (head and Content-Length body); the head is kept."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        return await reader.readexactly(length)

    def client(self, **kwargs: object) -> http1.Http1Client:
        return http1.Http1Client(f"http://127.0.0.1:{self.port}/v1", limit=int(kwargs.get("limit", 8)))  # type: ignore[call-overload]


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[Handler], Awaitable[Upstream]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Upstream:
        up = Upstream(handler)
        server = await asyncio.start_server(up.serve, "127.0.0.1", 0)
        up.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return up

    yield start
    for server in servers:
        server.close()


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``predicate()`` until true (bounded: fails the test after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.01)


async def post(client: http1.Http1Client, body: bytes = b'{"x": 1}', **kwargs: float) -> http1.Response:
    kwargs.setdefault("connect_s", 5.0)
    kwargs.setdefault("read_s", 5.0)
    return await client.post("/chat/completions", body, {"content-type": "application/json"}, **kwargs)  # type: ignore[arg-type]


def answer(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in ("HTTP/1.1 200 OK", "Content-Type: application/json", *extra))
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def gated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
    """Echo each request once ``up.release`` is set (so requests can be held in flight together)."""
    while True:
        body = await up.request(reader)
        await up.release.wait()
        writer.write(answer(body))
        await writer.drain()


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
    while True:
        body = await up.request(reader)
        writer.write(answer(body, "X-Request-Id: up-1"))
        await writer.drain()


async def test_whole_answers_reuse_one_connection(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    up = await upstream(echo_forever)
    client = up.client()
    for n in range(3):
        resp = await post(client, b'{"n": %d}' % n)
        assert (resp.status, resp.content_type, await resp.read()) == (200, "application/json", b'{"n": %d}' % n)
        assert resp.headers["x-request-id"] == "up-1"  # names come lower-cased
    assert up.connections == 1
    head = up.heads[0].decode()
    assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{up.port}\r\n" in head and "Content-Length: 8\r\n" in head
    await client.close()


async def test_a_chunked_stream_arrives_piece_by_piece(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"9\r\ndata: a\n\n\r\n")
        await writer.drain()
        await up.release.wait()  # the test has seen the first event before the second is sent
        writer.write(b"9\r\ndata: b\n\n\r\n0\r\n\r\n")
        await writer.drain()
        await up.request(reader)  # the connection stays open for the next request
        writer.write(answer(b"{}"))

    up = await upstream(chunked)
    client = up.client()
    resp = await post(client)
    assert resp.content_type == "text/event-stream"
    pieces = resp.iter_any()
    assert await anext(pieces) == b"data: a\n\n"
    up.release.set()
    assert [p async for p in pieces] == [b"data: b\n\n"]
    assert await (await post(client)).read() == b"{}"
    assert up.connections == 1
    await client.close()


async def test_a_body_that_runs_to_the_close_is_whole(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        writer.write(b'{"part": 1,')
        await writer.drain()
        writer.write(b' "part2": 2}')

    up = await upstream(until_close)
    client = up.client()
    assert await (await post(client)).read() == b'{"part": 1, "part2": 2}'
    assert await (await post(client)).read() == b'{"part": 1, "part2": 2}'  # a new connection: that one closed
    assert up.connections == 2
    await client.close()


async def test_an_upstream_that_dies_mid_body_is_a_disconnect(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    up = await upstream(dies)
    client = up.client(limit=1)
    resp = await post(client)
    with pytest.raises(http1.Disconnected):
        await resp.read()
    resp = await post(client)  # the slot came back: limit=1 does not hang
    with pytest.raises(http1.Disconnected):
        await resp.read()
    await client.close()


async def test_silence_is_a_read_timeout_and_frees_the_slot(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    async def silent_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        body = await up.request(reader)
        if up.connections == 1:
            await asyncio.Event().wait()  # never answers
        writer.write(answer(body))
        await writer.drain()

    up = await upstream(silent_once)
    client = up.client(limit=1)
    with pytest.raises(http1.ReadTimeout):
        await post(client, read_s=0.2)
    assert await (await post(client, b"{}")).read() == b"{}"
    await client.close()


async def test_an_overall_deadline_cuts_a_trickle(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):  # a byte every 20 ms: never silent for read_s, but never done either
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.02)

    up = await upstream(trickle)
    client = up.client()
    resp = await post(client, read_s=5.0, total_s=0.3)
    with pytest.raises(http1.ReadTimeout):
        await resp.read()
    await client.close()


async def test_a_closed_port_is_a_connect_failure() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = http1.Http1Client(f"http://127.0.0.1:{port}/v1", limit=1)
    with pytest.raises(http1.ConnectFailed, match="cannot connect"):
        await post(client)
    with pytest.raises(http1.ConnectFailed):  # the slot of the failed connect came back
        await post(client)
    await client.close()


async def test_the_pool_limit_queues_requests(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    up = await upstream(gated)
    client = up.client(limit=1)
    first = asyncio.create_task(post(client, b"[1]"))
    second = asyncio.create_task(post(client, b"[2]"))
    await until(lambda: bool(up.heads))
    assert len(up.heads) == 1 and not second.done()  # the second waits for the one connection
    up.release.set()
    assert await (await first).read() == b"[1]"
    assert await (await second).read() == b"[2]"
    assert up.connections == 1
    await client.close()


async def test_an_abandoned_answer_is_not_reused(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        while True:
            await up.request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 100\r\n\r\n")
            writer.write(b"data: 1\n\n")
            await writer.drain()

    up = await upstream(big)
    client = up.client(limit=1)
    resp = await post(client)
    pieces = resp.iter_any()
    assert await anext(pieces) == b"data: 1\n\n"
    await pieces.aclose()  # the reader went away: the rest of that answer would be read into the next
    resp = await post(client)
    assert await anext(resp.iter_any()) == b"data: 1\n\n"
    assert up.connections == 2
    await client.close()


async def test_a_cancelled_request_frees_its_slot(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    async def slow_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        body = await up.request(reader)
        if up.connections == 1:
            await asyncio.Event().wait()
        writer.write(answer(body))

    up = await upstream(slow_first)
    client = up.client(limit=1)
    task = asyncio.create_task(post(client))
    await until(lambda: bool(up.heads))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await (await post(client, b"[]")).read() == b"[]"
    await client.close()


async def test_an_idle_connection_the_upstream_closed_is_replaced(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    async def one_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        body = await up.request(reader)
        writer.write(answer(body))  # says keep-alive, then closes anyway (an upstream's idle timeout)
        await writer.drain()

    up = await upstream(one_each)
    client = up.client()
    assert await (await post(client, b"[1]")).read() == b"[1]"
    await until(lambda: all(conn.closed for conn in client._idle))
    assert await (await post(client, b"[2]")).read() == b"[2]"
    assert up.connections == 2
    await client.close()


async def test_informational_answers_are_skipped_and_headers_kept(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    async def early_hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        body = await up.request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        writer.write(answer(body, "X-Ratelimit-Remaining-Requests: 9", "Vary: a", "Vary: b"))
        await writer.drain()

    up = await upstream(early_hints)
    client = up.client()
    resp = await post(client)
    assert resp.status == 200 and await resp.read() == b'{"x": 1}'
    assert resp.headers["x-ratelimit-remaining-requests"] == "9"
    assert resp.headers["vary"] == "a, b"
    await client.close()


async def test_garbage_is_a_bad_response(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    up = await upstream(garbage)
    with pytest.raises(http1.BadResponse, match=r"not valid HTTP/1\.1"):
        await post(up.client())


async def test_header_injection_is_refused(upstream: Callable[[Handler], Awaitable[Upstream]]) -> None:
    up = await upstream(echo_forever)
    client = up.client()
    with pytest.raises(ValueError, match="x-evil"):
        await client.post("/chat/completions", b"{}", {"x-evil": "a\r\nHost: elsewhere"}, connect_s=1, read_s=1)
    assert up.connections == 0
    # the client's own framing headers are its own, whatever the caller passes
    resp = await client.post("/chat/completions", b"{}", {"Content-Length": "999", "Host": "x"}, connect_s=1, read_s=1)
    assert await resp.read() == b"{}"
    assert b"999" not in up.heads[0] and b"Host: x" not in up.heads[0]
    await client.close()


async def test_a_slow_reader_pauses_the_socket_and_loses_nothing(
    upstream: Callable[[Handler], Awaitable[Upstream]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "HIGH_WATER", 4096)
    monkeypatch.setattr(http1, "LOW_WATER", 1024)
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        await writer.drain()

    up = await upstream(flood)
    client = up.client()
    resp = await post(client)
    await until(lambda: resp._conn.paused)  # nothing is read yet: the socket stops once HIGH_WATER bytes wait
    assert resp._body.size < len(payload)
    got = b"".join([piece async for piece in resp.iter_any()])
    assert got == payload
    await client.close()


async def test_a_whole_answer_larger_than_the_pause_mark_is_read_whole(
    upstream: Callable[[Handler], Awaitable[Upstream]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big JSON answer (a batch of embeddings) paused for a reader that wants it all would never end."""
    monkeypatch.setattr(http1, "HIGH_WATER", 4096)
    monkeypatch.setattr(http1, "LOW_WATER", 1024)
    payload = b'{"data": "' + b"e" * (1 << 20) + b'"}'

    async def big_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        while True:
            await up.request(reader)
            writer.write(answer(payload))
            await writer.drain()

    up = await upstream(big_json)
    client = up.client()
    resp = await post(client)
    await until(lambda: resp._conn.paused)  # more came than a streaming reader is let pile up
    assert await resp.read() == payload
    assert await (await post(client)).read() == payload  # and the connection is still good
    assert up.connections == 1
    await client.close()


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    up = await upstream(echo_forever)
    client = http1.Http1Client(f"http://ann:s3cret@127.0.0.1:{up.port}/v1", limit=1)
    await (await post(client)).read()
    assert b"Authorization: Basic YW5uOnMzY3JldA==\r\n" in up.heads[0]  # base64 of ann:s3cret
    await (await client.post("/chat/completions", b"{}", {"authorization": "Bearer k"}, connect_s=1, read_s=1)).read()
    assert b"Basic" not in up.heads[1] and b"authorization: Bearer k\r\n" in up.heads[1]  # the call's own wins
    await client.close()


async def test_a_burst_of_new_connections_shares_one_lookup(
    upstream: Callable[[Handler], Awaitable[Upstream]], monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await upstream(echo_forever)
    client = http1.Http1Client(f"http://localhost:{up.port}/v1", limit=16)
    lookups = []
    real = client._lookup

    async def counted(loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        lookups.append(1)
        return [a for a in await real(loop) if a[1][0] == "127.0.0.1"]  # the server listens on IPv4 only

    monkeypatch.setattr(client, "_lookup", counted)
    answers = await asyncio.gather(*(post(client, b"[%d]" % n) for n in range(16)))
    assert [await a.read() for a in answers] == [b"[%d]" % n for n in range(16)]
    assert up.connections == 16 and len(lookups) == 1
    await client.close()


async def test_a_new_connection_tries_the_next_address(
    upstream: Callable[[Handler], Awaitable[Upstream]], monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await upstream(echo_forever)
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    dead = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = up.client()

    async def two(loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        return [(socket.AF_INET, ("127.0.0.1", dead)), (socket.AF_INET, ("127.0.0.1", up.port))]

    monkeypatch.setattr(client, "_lookup", two)
    assert await (await post(client)).read() == b'{"x": 1}'
    await client.close()


async def test_when_no_address_answers_the_host_is_looked_up_again(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    dead = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = http1.Http1Client(f"http://upstream.internal:{dead}/v1", limit=1)
    lookups = []

    async def moved(loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        lookups.append(1)
        return [(socket.AF_INET, ("127.0.0.1", dead))]

    monkeypatch.setattr(client, "_lookup", moved)
    for _ in range(2):
        with pytest.raises(http1.ConnectFailed):
            await post(client)
    assert len(lookups) == 2  # a cached address that refused is not trusted for the next 5 minutes
    await client.close()


async def test_an_answer_dropped_unread_gives_its_slot_back(
    upstream: Callable[[Handler], Awaitable[Upstream]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "HIGH_WATER", 4096)

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)
        if up.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:  # far more than HIGH_WATER: the client pauses the socket
                writer.write(b"9\r\ndata: x\n\n\r\n" * 100)
                await writer.drain()
        writer.write(answer(b"{}"))
        await writer.drain()

    up = await upstream(endless)
    client = up.client(limit=1)
    resp = await post(client)
    conn = resp._conn
    await until(lambda: conn.paused)
    del resp  # nobody reads it, nobody closes it
    gc.collect()
    assert await (await post(client)).read() == b"{}"
    await client.close()


async def test_a_kept_alive_connection_closed_as_the_request_goes_out_is_sent_again(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    """The race of an upstream's idle timeout: it closes the connection just as a request is written."""

    async def then_idle_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        body = await up.request(reader)
        writer.write(answer(body))
        await writer.drain()
        if up.connections == 1:
            await up.request(reader)  # the next request arrives as the server's idle timeout ends
            return  # closed without a byte of an answer
        while True:
            body = await up.request(reader)
            writer.write(answer(body))
            await writer.drain()

    up = await upstream(then_idle_close)
    client = up.client()
    assert await (await post(client, b"[1]")).read() == b"[1]"
    assert await (await post(client, b"[2]")).read() == b"[2]"  # not a 502 for the client
    assert up.connections == 2
    assert len(up.heads) == 3  # sent once more, on the new connection
    assert await (await post(client, b"[3]")).read() == b"[3]"  # and that one is kept
    assert up.connections == 2
    assert client._busy == 0
    await client.close()


async def test_a_new_connection_closed_without_an_answer_is_not_sent_again(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        await up.request(reader)

    up = await upstream(never_answer)
    client = up.client()
    with pytest.raises(http1.Disconnected):
        await post(client)
    assert (up.connections, len(up.heads)) == (1, 1)
    assert client._busy == 0
    await client.close()


async def test_a_kept_alive_connection_that_dies_mid_answer_is_not_sent_again(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    async def half_a_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream) -> None:
        body = await up.request(reader)
        writer.write(answer(body))
        await up.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-")  # the upstream took it and died answering
        await writer.drain()

    up = await upstream(half_a_head)
    client = up.client()
    assert await (await post(client, b"[1]")).read() == b"[1]"
    with pytest.raises(http1.Disconnected):
        await post(client, b"[2]")
    assert (up.connections, len(up.heads)) == (1, 2)
    assert client._busy == 0
    await client.close()


async def test_a_bursts_connections_are_closed_once_idle_too_long(
    upstream: Callable[[Handler], Awaitable[Upstream]],
) -> None:
    """After a burst, one request at a time reuses the newest connection; the others must not stay open for good."""

    up = await upstream(gated)
    client = up.client()
    burst = [asyncio.create_task(post(client, f"[{i}]".encode())) for i in range(4)]
    await until(lambda: len(up.heads) == 4)
    up.release.set()
    for task in burst:
        await (await task).read()
    assert (up.connections, len(client._idle)) == (4, 4)
    *older, newest = client._idle
    for conn in older:
        conn.idle_since -= client.keepalive_s + 1  # as if the traffic after the burst kept using only the newest
    assert await (await post(client, b"[5]")).read() == b"[5]"  # reuses the newest, then sweeps the rest
    assert up.connections == 4
    assert len(client._idle) == 1
    assert client._idle[0] is newest
    await until(lambda: all(conn.closed for conn in older))
    await client.close()
