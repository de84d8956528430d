"""The OpenAI-compatible upstream client (OpenAI, vLLM, TGI, Ollama, llama.cpp server, …).

Transport details stop here: transport errors become ``proxy.errors`` types in ``map_errors``, and
every call carries timeouts derived from the backend's limits and the request's deadline. Each
backend has two pools, opened in ``start`` and closed in ``close``: the API calls on the hot path
(``send``: chat, completions, embeddings, responses) go through ``backends/http1.py``'s lean
HTTP/1.1 client, which costs half the CPU per request of aiohttp's; pass-through routes, probes and
WebSockets go through an aiohttp ``ClientSession``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import aiohttp
import orjson
from yarl import URL

from backends import http1
from backends.credentials import ROTATE_ON, KeyPool
from proxy.backend import RawResponse, WebSocketOptions, request_headers, response_headers, websocket_url
from proxy.errors import UpstreamError, UpstreamStatus, UpstreamTimeout
from proxy.exchange import ApiRequest, ApiResponse, Attempt, Exchange

if TYPE_CHECKING:
    from proxy.policyfile import BackendConfig

_NATIVE = frozenset({"chat", "completions", "embeddings"})


_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, http1.ConnectFailed, http1.Disconnected, http1.BadResponse)


class map_errors:
    """Turn aiohttp and timeout errors into the proxy's upstream errors (504, 502).

    A class rather than a ``@contextmanager`` generator: it is entered on every upstream call.
    """

    __slots__ = ("backend",)

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or not isinstance(exc, _TRANSPORT_ERRORS):
            return
        backend = self.backend
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"backend {backend!r} did not answer in time", code="upstream_timeout") from None
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise UpstreamError(
                f"backend {backend!r} is unreachable: {exc.os_error}", code="upstream_unreachable"
            ) from None
        if isinstance(exc, http1.ConnectFailed):
            raise UpstreamError(f"backend {backend!r} is unreachable: {exc}", code="upstream_unreachable") from None
        if isinstance(
            exc,
            aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError | http1.Disconnected,
        ):
            raise UpstreamError(f"backend {backend!r} closed the connection", code="upstream_disconnected") from None
        if isinstance(exc, http1.BadResponse):
            message = f"backend {backend!r} sent an answer that is not HTTP: {exc}"
            raise UpstreamError(message, code="upstream_failed") from None
        raise UpstreamError(f"backend {backend!r} failed: {type(exc).__name__}", code="upstream_failed") from None


class OpenAIBackend:
    """One upstream base URL, with its own connection pool, key, headers and timeouts."""

    def __init__(self, name: str, config: BackendConfig, url: str | None = None) -> None:
        self.name = name
        self.config = config
        self.base_url = (url or config.url or "").rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._http: http1.Http1Client | None = None
        self._auth = f"Bearer {config.api_key}" if config.api_key else None
        self.keys = KeyPool(config.api_keys, config.key_rest_s) if config.api_keys else None  # [reliability]
        # [launcher] llama-cpp-python's server answers 400 to an x-request-id that is not a UUID4: off for it.
        self.send_request_id = True
        # Built once. ``timeout_s`` bounds each wait for the upstream's next bytes: the whole answer
        # of a non-stream call, the first byte and every gap of a stream (which may run long).
        # No ``total`` here: aiohttp would arm one more timer per request for it.
        self._timeout_obj = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout_s, sock_read=config.timeout_s
        )

    def speaks(self, endpoint: str) -> bool:
        """Chat, completions and embeddings; the Responses API when the config says so; never Messages."""
        return endpoint in _NATIVE or (endpoint == "responses" and self.config.speaks_responses)

    async def start(self) -> None:
        self._http = http1.Http1Client(self.base_url, limit=self.config.max_connections, keepalive_s=30)
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30)
        # No Accept-Encoding: compressed SSE would have to be inflated here before passing it on.
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout_obj, skip_auto_headers=("User-Agent", "Accept-Encoding")
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"backend {self.name!r} is not started")
        return self._session

    def _headers(
        self, client_headers: Mapping[str, str], authorization: str | None, key: int | None = None
    ) -> dict[str, str]:
        headers = dict(client_headers)
        headers.update(self.config.headers)
        auth = self.keys.headers[key] if self.keys is not None and key is not None else self._auth or authorization
        if auth:
            headers["authorization"] = auth
        return headers

    def _total_s(self, exchange: Exchange, stream: bool) -> float | None:
        """No overall limit (``timeout_s`` bounds each wait), unless a whole answer's retry has less
        than ``timeout_s`` left of its request's deadline."""
        if not stream:
            remaining = exchange.remaining_s()
            if remaining < self.config.timeout_s - 0.001:
                return max(0.001, remaining)
        return None

    @property
    def http(self) -> http1.Http1Client:
        if self._http is None:
            raise RuntimeError(f"backend {self.name!r} is not started")
        return self._http

    async def send(self, exchange: Exchange, request: ApiRequest | None = None, key: int | None = None) -> ApiResponse:
        """Send ``request`` (default: ``exchange.request``) to the route's model; an adapter passes its translation.

        ``key`` picks one of the backend's ``api_keys`` (internal: the rotation below passes it).
        """
        if key is None and self.keys is not None:
            return await self._rotate(exchange, request, self.keys)
        request = request or exchange.request
        body = request.body
        data = request.raw
        upstream_model = exchange.route.upstream_model
        if upstream_model and body.get("model") != upstream_model:
            body = {**body, "model": upstream_model}
            data = None
        if data is None:
            data = orjson.dumps(body)
        headers = self._headers(request.headers, exchange.caller.authorization, key)
        headers["content-type"] = "application/json"
        if self.send_request_id:  # [launcher]
            headers["x-request-id"] = exchange.request_id  # vLLM and TGI log it: one id end to end
        stream = request.stream
        attempt = Attempt(self.name, str(body.get("model", "")), time.monotonic())
        exchange.attempts.append(attempt)
        config = self.config
        try:
            with map_errors(self.name):
                resp = await self.http.post(  # redirects are never followed: a POST is not replayed elsewhere
                    request.path,
                    data,
                    headers,
                    connect_s=config.connect_timeout_s,
                    read_s=config.timeout_s,
                    total_s=self._total_s(exchange, stream),
                )
                attempt.status = resp.status
                if resp.status >= 400:
                    raise await _status_error(resp)
                out_headers = response_headers(resp.headers)
                if stream and resp.content_type == "text/event-stream":
                    return ApiResponse(resp.status, stream=self._iter(resp, attempt), headers=out_headers)
                raw = await resp.read()
                attempt.ended = time.monotonic()
                return ApiResponse(resp.status, raw=raw, headers=out_headers)
        except BaseException as exc:
            attempt.ended = time.monotonic()
            attempt.error = getattr(exc, "code", None) or type(exc).__name__
            raise

    async def _rotate(self, exchange: Exchange, request: ApiRequest | None, keys: KeyPool) -> ApiResponse:
        """[reliability] Several keys: a 401/429 rests that key and the request goes again with the next one."""
        tried: frozenset[int] = frozenset()
        key = keys.pick()
        while True:
            assert key is not None
            try:
                return await self.send(exchange, request, key)
            except UpstreamStatus as exc:
                exc.upstream_body = keys.scrub_bytes(exc.upstream_body)
                exc.message = keys.scrub(exc.message)
                if exc.upstream_status not in ROTATE_ON:
                    raise
                keys.rest(key)
                tried |= {key}
                key = keys.pick(tried)
                if key is None:
                    raise

    async def _iter(self, resp: http1.Response, attempt: Attempt) -> AsyncIterator[bytes]:
        finished = False
        try:
            with map_errors(self.name):
                async for data in resp.iter_any():
                    yield data
            finished = True
        except BaseException as exc:
            attempt.error = getattr(exc, "code", None) or type(exc).__name__
            raise
        finally:
            attempt.ended = time.monotonic()
            if finished:
                resp.release()
            else:
                resp.close()  # the client went away or the stream broke: drop the upstream connection

    async def forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, *, authorization: str | None
    ) -> RawResponse:
        url = self.base_url + path + (f"?{query}" if query else "")
        with map_errors(self.name):
            resp = await self.session.request(
                method,
                url,
                data=body or None,
                headers=self._headers(request_headers(headers), authorization, self._any_key()),
                allow_redirects=False,
            )
        return RawResponse(resp.status, response_headers(resp.headers), self._iter_raw(resp))

    async def _iter_raw(self, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            with map_errors(self.name):
                async for data in resp.content.iter_any():
                    yield data
        finally:
            resp.close()

    def _any_key(self) -> int | None:
        return None if self.keys is None else self.keys.pick()

    def status(self) -> dict[str, object]:
        """For ``GET /chaperone/backends``: the base URL (never credentials) and the keys' rotation state."""
        out: dict[str, object] = {"url": _without_credentials(self.base_url)}
        if self.keys is not None:
            out["api_keys"] = self.keys.status()
        return out

    async def probe(self, timeout_s: float) -> str | None:
        try:
            async with self.session.get(
                self.base_url + "/models",
                headers=self._headers({}, None, self._any_key()),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                await resp.read()
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def open_websocket(self, options: WebSocketOptions) -> aiohttp.ClientWebSocketResponse[Literal[False]]:
        """``…/v1/realtime`` upstream, with the same credentials rule as HTTP (the backend's key, else the caller's)."""
        headers = dict(options.headers)
        headers.update(self.config.headers)
        auth = self._auth or options.authorization
        if auth:
            headers["authorization"] = auth
        url = websocket_url(self.base_url, options.query, options.upstream_model)
        with map_errors(self.name):
            try:
                async with asyncio.timeout(self.config.connect_timeout_s):
                    return await self.session.ws_connect(
                        url,
                        headers=headers,
                        protocols=options.protocols,
                        max_msg_size=options.max_msg_size,
                        decode_text=False,  # text frames pass as bytes: no decoding and encoding again
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=options.close_timeout_s),
                    )
            except aiohttp.WSServerHandshakeError as exc:
                raise UpstreamError(
                    f"backend {self.name!r} refused the WebSocket upgrade (HTTP {exc.status})",
                    code="upstream_refused_websocket",
                ) from None


def _without_credentials(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_user(None)) if parsed.user or parsed.password else url


async def _status_error(resp: http1.Response) -> UpstreamStatus:
    body = await resp.read()
    headers = {}
    retry_after = resp.headers.get("retry-after")
    if retry_after:
        headers["retry-after"] = retry_after
    for name, value in resp.headers.items():
        if name.lower().startswith("x-ratelimit-"):
            headers[name.lower()] = value
    return UpstreamStatus(resp.status, body, headers)
