"""One running proxy (with the mock upstream) per module, on its own event loop thread, and ways to hit it.

The corpus tests are synchronous (hypothesis drives one of them): requests run on the proxy's loop
through ``EdgeProxy.send`` / ``send_all``, over real loopback sockets, ``concurrency`` at a time.
``Http`` cases go through an aiohttp client; ``Wire`` cases write raw bytes to a socket.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from backends.mock import MockConfig, create_app
from proxy.server import create_app as create_proxy_app
from proxy.settings import Settings
from tests.conftest import simple_policy, start_site

MAX_BODY = 64 * 1024  # the corpus policy's limits.max_body_bytes: bombs and big bodies stay cheap
EXTRA = f"""
limits: {{max_body_bytes: {MAX_BODY}}}
"""


@dataclass(frozen=True)
class Http:
    """A request sent with aiohttp: the body as bytes (sent as is) or chunks (sent chunked).

    Expectations beyond "no 5xx, every error OpenAI JSON": ``expect`` the statuses allowed (empty: any
    below 500), ``code`` the error code, ``top`` the first name of the error's ``param`` when it has one.
    """

    method: str
    path: str
    body: bytes | list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    label: str = ""
    expect: tuple[int, ...] = ()
    code: str | None = None
    top: str | None = None


@dataclass(frozen=True)
class Wire:
    """Raw bytes written to a fresh connection; ``may_close``: the client then hangs up (half-close), and
    the proxy may close without an answer."""

    data: bytes
    label: str = ""
    may_close: bool = False


@dataclass
class Result:
    case: Http | Wire
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]
    body: bytes


@dataclass
class EdgeProxy:
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    session: aiohttp.ClientSession
    mock_url: str  # the mock upstream, without /v1

    def upstream_requests(self, *, clear: bool = False) -> int:
        """How many requests the mock upstream has logged (it keeps the last 200); ``clear`` empties the log."""

        async def count() -> int:
            if clear:
                async with self.session.delete(self.mock_url + "/_mock/requests"):
                    pass
            async with self.session.get(self.mock_url + "/_mock/requests") as resp:
                return len(await resp.json())

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(timeout=10)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def send(self, case: Http | Wire) -> Result:
        return self.send_all([case])[0]

    def send_all(self, cases: Sequence[Http | Wire], concurrency: int = 16) -> list[Result]:
        future = asyncio.run_coroutine_threadsafe(self._send_all(cases, concurrency), self.loop)
        return future.result(timeout=120)

    async def _send_all(self, cases: Sequence[Http | Wire], concurrency: int) -> list[Result]:
        gate = asyncio.Semaphore(concurrency)

        async def one(case: Http | Wire) -> Result:
            async with gate:
                return await (self._http(case) if isinstance(case, Http) else self._wire(case))

        return list(await asyncio.gather(*(one(case) for case in cases)))

    async def _http(self, case: Http) -> Result:
        data: bytes | AsyncIterator[bytes] | None = _chunks(case.body) if isinstance(case.body, list) else case.body
        async with self.session.request(
            case.method, self.base + case.path, data=data, headers={"Authorization": "Bearer sk-edge", **case.headers},
            skip_auto_headers=("Content-Type",) if "Content-Type" not in case.headers else (),
        ) as resp:  # fmt: skip
            return Result(case, resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())

    async def _wire(self, case: Wire) -> Result:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(case.data)
            if case.may_close:
                writer.write_eof()
            await writer.drain()
            raw = await asyncio.wait_for(_first_response(reader), 5)
        except ConnectionResetError:
            raw = b""
        except TimeoutError:
            return Result(case, None, {"timeout": "no answer in 5 s"}, b"")
        finally:
            writer.close()
        return parse_response(case, raw)


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _first_response(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the end of the first response (by its length or chunked end), or to EOF."""
    raw = b""
    while data := await reader.read(65536):
        raw += data
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            continue
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if (length and len(rest) >= int(length[1])) or rest.endswith(b"0\r\n\r\n"):
            break
    return raw


def parse_response(case: Http | Wire, raw: bytes) -> Result:
    """The first HTTP/1.1 response in ``raw`` (status, lower-cased headers, de-chunked body)."""
    if not raw:
        return Result(case, None, {}, b"")
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
        return Result(case, status, headers, bytes(body))
    return Result(case, status, headers, rest[: int(headers.get("content-length", len(rest)))])


@pytest.fixture(scope="module")
def edge_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProxy]:
    """The proxy (open, empty chain, 64 KiB body limit, no admin section) before the mock upstream."""
    home = tmp_path_factory.mktemp("edge")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="edge-proxy", daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    policy = home / "policy.yaml"

    async def start() -> EdgeProxy:
        mock, mock_url = await start_site(create_app(MockConfig()))
        runners.append(mock)
        await asyncio.to_thread(policy.write_text, simple_policy(mock_url + "/v1", extra=EXTRA))
        proxy, url = await start_site(
            create_proxy_app(Settings(policy_path=policy, home=home / "home", reload_interval_s=0))
        )
        runners.append(proxy)
        host, port = url.removeprefix("http://").split(":")
        session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=20))
        return EdgeProxy(host, int(port), loop, session, mock_url)

    async def stop(edge: EdgeProxy) -> None:
        await edge.session.close()
        for runner in reversed(runners):
            await runner.cleanup()

    edge = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        yield edge
    finally:
        asyncio.run_coroutine_threadsafe(stop(edge), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def no_crash_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if the proxy logged an unhandled error (its own 500s) while it ran."""
    caplog.set_level(logging.WARNING)
    yield
    crashes = [
        r for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith(("proxy", "aiohttp.server", "aiohttp.web"))
    ]  # fmt: skip
    assert not crashes, [f"{r.name}: {r.getMessage()}" for r in crashes[:5]]
