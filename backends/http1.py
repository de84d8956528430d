"""A lean HTTP/1.1 client for the upstream calls on the hot path: chat, completions, embeddings, responses.

aiohttp's ``ClientSession`` costs more CPU per call than everything else a relay does: a relay whose
upstream calls go through this client costs 0.49x the CPU per request of the same relay on
``ClientSession`` (c=64, whole answers, this machine), and ``chaperone serve`` with the empty chain
went from 176 to 90 µs a request. Request objects, header multidicts, payload registries, cookie
jars, trace signals and a timer re-armed on every read are the difference; none of them is needed to
POST a JSON body and read back JSON or SSE.

What this client does:

- **Keep-alive connections**, pooled per backend: at most ``limit`` open, the most recently used
  taken first, one idle longer than ``keepalive_s`` closed (when it would be reused, or when a newer
  one goes back to the pool), one the upstream closed dropped as soon as it goes. A request whose
  kept-alive connection closes before a byte of its answer (the upstream's idle timeout ending as it
  was written) is sent once more, on a new connection. A new connection tries the host's addresses
  in turn; they are looked up once per ``DNS_TTL_S``, one lookup shared by a burst of new connections.
- **One write a request** (head and body), ``Content-Length`` always set; header names and values
  with CR or LF are refused (no header injection from a policy's ``headers``).
- **Responses parsed by httptools** (llhttp, the parser Node.js uses): ``Content-Length``, chunked,
  or read-until-close bodies; 1xx answers skipped. Body bytes are handed on as they arrive, and the
  socket stops being read while more than ``HIGH_WATER`` bytes wait for a slow reader.
- **Timeouts**: opening a connection (``connect_s``), every wait for the upstream's next bytes
  (``read_s``, also the wait for the head), and an optional overall deadline (``total_s``). One timer
  a request, re-armed only when it fires.

What it does not do: redirects (never followed: a POST is not replayed elsewhere), proxies from the
environment, cookies, compression (no ``Accept-Encoding`` is sent), HTTP/2. Pass-through routes,
probes and WebSockets stay on aiohttp.

Errors are this module's own (``ConnectFailed``, ``Disconnected``, ``BadResponse``, ``ReadTimeout``);
``backends/openai.py``'s ``map_errors`` turns them into the proxy's upstream errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping

import httptools
from yarl import URL

HIGH_WATER = 1 << 20  # bytes read but not yet taken, above which the socket is paused
LOW_WATER = HIGH_WATER // 4
DNS_TTL_S = 300.0  # how long a host's looked-up addresses are reused for new connections
# Names this client writes itself, or that describe the client's own connection.
_OWN = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "upgrade"})


class ConnectFailed(OSError):
    """The upstream could not be reached (refused, unresolvable, TLS handshake failed)."""


class Disconnected(ConnectionError):
    """The upstream closed the connection before its answer ended."""


class BadResponse(Exception):
    """The upstream's bytes are not HTTP/1.1."""


class ReadTimeout(TimeoutError):
    """The upstream sent nothing for ``read_s``, or the answer overran ``total_s``."""


class Http1Client:
    """Pooled keep-alive connections to one origin (scheme, host, port)."""

    def __init__(self, base_url: str, *, limit: int, keepalive_s: float = 30.0) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.raw_host or url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.prefix = url.raw_path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if url.is_default_port() else f"{host}:{self.port}"
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if url.scheme == "https" else None
        # Credentials in the URL (``http://user:pass@host/v1``) are sent as Basic auth, as aiohttp did,
        # unless the call carries its own Authorization.
        userinfo = f"{url.user or ''}:{url.password or ''}".encode() if url.user is not None else None
        self._basic = f"Basic {base64.b64encode(userinfo).decode()}" if userinfo is not None else None
        self.limit = limit
        self.keepalive_s = keepalive_s
        self._idle: deque[_Conn] = deque()  # most recently used on the right, so the oldest on the left
        self._busy = 0  # slots taken: requests between acquire and the end of their answer
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._resolved: tuple[float, list[tuple[int, tuple[str, int]]]] | None = None  # (until, addresses)
        self._resolving: asyncio.Future[list[tuple[int, tuple[str, int]]]] | None = None

    async def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        connect_s: float,
        read_s: float,
        total_s: float | None = None,
    ) -> Response:
        """POST ``body`` to ``prefix + path``; returns once the answer's head is in (its body may still come)."""
        head = self._head(path, headers, len(body))
        loop = asyncio.get_running_loop()
        deadline = None if total_s is None else loop.time() + total_s
        data = head + body
        for fresh_only in (False, True):
            await self._take_slot()
            try:
                conn = None if fresh_only else self._reuse(loop.time())
                reused = conn is not None
                if conn is None:
                    timeout_s = connect_s if deadline is None else min(connect_s, deadline - loop.time())
                    if timeout_s <= 0:
                        raise ReadTimeout("the upstream's answer overran the request's deadline")
                    conn = await self._connect(loop, timeout_s)
            except BaseException:
                self._give_slot()
                raise
            try:
                return await conn.send(data, read_s, deadline)
            except Disconnected:
                if not reused or conn.answering:
                    raise
            # The upstream closed this kept-alive connection as the request went out, before a byte of
            # an answer: what a server does when its idle timeout (uvicorn's, and so vLLM's: 5 s) ends
            # just then, so it most likely never took the request. It is sent once more, on a new
            # connection (as browsers do); a server that dies on the request itself fails that one
            # too, and that error stands.
        raise AssertionError("unreachable: the second try never reuses a connection")

    def _head(self, path: str, headers: Mapping[str, str], length: int) -> bytes:
        lines = [f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"]
        basic = self._basic
        for name, value in headers.items():
            lower = name.lower()
            if lower in _OWN:
                continue
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} has a character HTTP headers cannot hold")
            if lower == "authorization":
                basic = None
            lines.append(f"{name}: {value}\r\n")
        if basic is not None:
            lines.append(f"Authorization: {basic}\r\n")
        lines.append(f"Content-Length: {length}\r\n\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape")

    def _reuse(self, now: float) -> _Conn | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if now - conn.idle_since > self.keepalive_s:
                conn.transport.close()
                continue
            return conn
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> _Conn:
        """A new connection: to each address of the host in turn until one answers, within ``timeout_s``."""
        error: BaseException | None = None
        try:
            async with asyncio.timeout(timeout_s):
                for family, address in await self._addresses(loop):
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Conn(self),
                            address[0],
                            address[1],
                            family=family,
                            ssl=self.ssl,
                            server_hostname=self.host if self.ssl is not None else None,
                        )
                        return conn
                    except OSError as exc:
                        if isinstance(exc, ssl.SSLError):
                            raise  # the next address would present the same certificate
                        error = exc
        except TimeoutError:
            raise ReadTimeout(f"no connection to {self.host_header} within {timeout_s:g}s") from None
        except OSError as exc:  # the lookup failed, or the TLS handshake did
            error = exc
        self._resolved = None  # no address answered: look the host up again next time (it may have moved)
        raise ConnectFailed(f"cannot connect to {self.host_header}: {error}") from None

    async def _addresses(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        """The host's addresses, looked up once per ``DNS_TTL_S`` (a burst of new connections shares one
        lookup, as aiohttp's resolver cache did)."""
        cached = self._resolved
        if cached is not None and loop.time() < cached[0]:
            return cached[1]
        pending = self._resolving
        if pending is None:
            pending = self._resolving = asyncio.ensure_future(self._lookup(loop))
            pending.add_done_callback(self._resolved_done)
        return await asyncio.shield(pending)

    async def _lookup(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        addresses = [(int(family), (str(sockaddr[0]), int(sockaddr[1]))) for family, _, _, _, sockaddr in infos]
        if not addresses:
            raise OSError(f"{self.host} has no address")
        return addresses

    def _resolved_done(self, task: asyncio.Future[list[tuple[int, tuple[str, int]]]]) -> None:
        self._resolving = None
        if not task.cancelled() and task.exception() is None:
            self._resolved = (asyncio.get_running_loop().time() + DNS_TTL_S, task.result())

    async def _take_slot(self) -> None:
        if self._closed:
            raise ConnectFailed("the client is closed")
        if self._busy < self.limit:
            self._busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot of a finished request is handed straight to us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_slot()  # handed over, but we were cancelled before using it
            raise

    def _give_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: ``_busy`` stays
                return
        self._busy -= 1

    def _put_back(self, conn: _Conn, now: float) -> None:
        conn.idle_since = now
        if self._closed:
            conn.transport.close()
            return
        idle = self._idle
        idle.append(conn)
        # The oldest idle connections wait at the left end, where the most-recent-first reuse never
        # reaches while traffic is lower than at its peak: close them once idle too long, so a burst's
        # connections do not hold sockets (here and upstream) for good.
        while idle[0].closed or now - idle[0].idle_since > self.keepalive_s:
            stale = idle.popleft()
            if not stale.closed:
                stale.transport.close()

    async def close(self) -> None:
        """Close idle connections now; busy ones close when their answers end."""
        self._closed = True
        for conn in self._idle:
            conn.transport.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectFailed("the client is closed"))


class Response:
    """An upstream answer: ``status`` and ``headers`` (lower-case names) now, the body as it arrives.

    The connection feeds a ``_Body`` and never holds this handle, so an answer dropped unread (a stream
    nobody iterated: a hedge's loser, a discarded attempt) is collected and closes its connection,
    instead of holding the connection and its pool slot for good once its socket is paused.
    """

    __slots__ = ("_body", "_conn", "headers", "status")

    def __init__(self, conn: _Conn, status: int, headers: dict[str, str], body: _Body) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def read(self) -> bytes:
        """The whole body."""
        body = self._body
        body.whole = True
        self._conn.drained()
        try:
            while not body.done and body.error is None:
                await body.wait()
        except BaseException:  # cancelled mid-body: the connection cannot be reused
            self.close()
            raise
        if body.error is not None:
            raise body.error
        chunks, body.chunks = body.chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, in as few pieces as have piled up."""
        body = self._body
        try:
            while True:
                if body.chunks:
                    chunks, body.chunks = body.chunks, []
                    body.size = 0
                    self._conn.drained()
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                elif body.error is not None:
                    raise body.error
                elif body.done:
                    return
                else:
                    await body.wait()
        finally:
            self.close()  # a no-op once the body is all in

    def release(self) -> None:
        """Done with it: an answer not read to its end closes its connection (the rest is not wanted)."""
        self.close()

    def close(self) -> None:
        body = self._body
        if not body.done:
            body.fail(Disconnected("the answer was abandoned"))
            self._conn.abort()

    def __del__(self) -> None:
        if not self._body.done and not self._conn.closed:
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing left to free
                self._conn.abort()


class _Body:
    """An answer's body as the connection receives it."""

    __slots__ = ("chunks", "done", "error", "size", "waiter", "whole")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.whole = False  # read() wants it all: no pausing, the bytes are kept either way

    async def wait(self) -> None:
        self.waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        self.wake()

    def finish(self) -> None:
        self.done = True
        self.wake()

    def fail(self, error: BaseException) -> None:
        if not self.done and self.error is None:
            self.error = error
            self.wake()


class _Conn(asyncio.Protocol):
    """One connection; at most one request in flight on it."""

    def __init__(self, client: Http1Client) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.closed = False
        self.idle_since = 0.0
        self.busy = False  # holds a slot: from send to the end of the answer
        self.paused = False
        self.last = 0.0  # loop time of the last bytes received
        self.read_s = 0.0
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.head: asyncio.Future[Response] | None = None  # resolves with the answer's head
        self.body: _Body | None = None  # the answer being received
        self.until_close = False  # a body without Content-Length or chunking: it ends when the connection does
        self._names: list[str] = []
        self._values: list[str] = []
        self._informational = False
        self.answering = False  # a byte of the answer to the request in flight has come

    # -- requests -----------------------------------------------------------

    async def send(self, data: bytes, read_s: float, deadline: float | None) -> Response:
        """Write the request (the caller holds a slot for it) and wait for the answer's head."""
        loop = self.loop
        self.busy = True
        self.answering = False
        self.body = None
        head: asyncio.Future[Response] = loop.create_future()
        self.head = head
        self.read_s, self.deadline = read_s, deadline
        self.last = now = loop.time()
        self.timer = loop.call_at(now + read_s if deadline is None else min(now + read_s, deadline), self._on_timer)
        try:
            self.transport.write(data)
            return await head
        except BaseException:  # cancelled, or the write failed: this connection is mid-request, so it goes
            self.abort()
            raise

    def _on_timer(self) -> None:
        self.timer = None
        if not self.busy:
            return
        t = self.loop.time()
        if self.deadline is not None and t >= self.deadline:
            self._fail(ReadTimeout("the upstream's answer overran the request's deadline"))
        elif self.paused or t - self.last < self.read_s:  # bytes came (or we stopped reading): wait on
            due = (t if self.paused else self.last) + self.read_s
            self.timer = self.loop.call_at(due if self.deadline is None else min(due, self.deadline), self._on_timer)
        else:
            self._fail(ReadTimeout(f"the upstream sent nothing for {self.read_s:g}s"))

    def _end(self) -> None:
        """The answer is over (whole, or failed): the slot goes back."""
        if self.busy:
            self.busy = False
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.client._give_slot()

    def _fail(self, error: BaseException) -> None:
        head = self.head
        if head is not None and not head.done():
            head.set_exception(error)
        if self.body is not None:
            self.body.fail(error)
        self._end()
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._end()

    def drained(self) -> None:
        body = self.body
        if self.paused and (body is None or body.whole or body.size < LOW_WATER):
            self.paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"the upstream's answer is not valid HTTP/1.1: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        body = self.body
        if body is not None and not body.done and body.error is None and self.until_close and exc is None:
            body.finish()  # the body ran to the close, as its head said it would
            self._end()
            return
        if self.busy:
            self._fail(Disconnected("the upstream closed the connection before its answer ended"))

    # -- httptools callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        self.answering = True
        self._names, self._values = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._names.append(name.decode("latin-1").lower())
        self._values.append(value.decode("utf-8", "surrogateescape"))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the real answer follows
            self._informational = True
            return
        headers: dict[str, str] = {}
        for name, value in zip(self._names, self._values, strict=True):
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        self.body = body = _Body()
        head, self.head = self.head, None  # the handle is the caller's alone (see ``Response``)
        if head is not None and not head.done():
            head.set_result(Response(self, status, headers, body))

    def on_body(self, data: bytes) -> None:
        body = self.body
        if body is None:
            return
        body.feed(data)
        if body.size > HIGH_WATER and not self.paused and not body.whole:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        body = self.body
        if body is not None:
            body.finish()
        keep = self.parser.should_keep_alive() and not self.closed
        self.head = None
        self._end()
        if keep:
            if self.paused:  # the whole body is in: the next answer may be read
                self.paused = False
                self.transport.resume_reading()
            self.client._put_back(self, self.loop.time())
        else:
            self.closed = True
            self.transport.close()
