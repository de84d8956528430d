"""The OpenAI-compatible upstream client (OpenAI, vLLM, TGI, Ollama, llama.cpp server, …).

aiohttp details stop here: transport errors become ``proxy.errors`` types in ``map_errors``,
and every call carries a ``ClientTimeout`` derived from the backend's limits and the request's
deadline. One pooled ``ClientSession`` per backend, opened in ``start`` and closed in ``close``.
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

from backends.credentials import ROTATE_ON, KeyPool
from proxy.backend import RawResponse, WebSocketOptions, request_headers, response_headers, websocket_url
from proxy.errors import UpstreamError, UpstreamStatus, UpstreamTimeout
from proxy.exchange import ApiRequest, ApiResponse, Attempt, Exchange

if TYPE_CHECKING:
    from proxy.policyfile import BackendConfig

_NATIVE = frozenset({"chat", "completions", "embeddings"})


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
        if exc is None or not isinstance(exc, aiohttp.ClientError | TimeoutError):
            return
        backend = self.backend
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"backend {backend!r} did not answer in time", code="upstream_timeout") from None
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise UpstreamError(
                f"backend {backend!r} is unreachable: {exc.os_error}", code="upstream_unreachable"
            ) from None
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError):
            raise UpstreamError(f"backend {backend!r} closed the connection", code="upstream_disconnected") from None
        raise UpstreamError(f"backend {backend!r} failed: {type(exc).__name__}", code="upstream_failed") from None


class OpenAIBackend:
    """One upstream base URL, with its own connection pool, key, headers and timeouts."""

    def __init__(self, name: str, config: BackendConfig, url: str | None = None) -> None:
        self.name = name
        self.config = config
        self.base_url = (url or config.url or "").rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
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
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30)
        # No Accept-Encoding: compressed SSE would have to be inflated here before passing it on.
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout_obj, skip_auto_headers=("User-Agent", "Accept-Encoding")
        )

    async def close(self) -> None:
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

    def _timeout(self, exchange: Exchange, stream: bool) -> aiohttp.ClientTimeout:
        """The prebuilt limits, unless a retry has less than ``timeout_s`` left of its request's deadline."""
        if not stream:
            remaining = exchange.remaining_s()
            if remaining < self.config.timeout_s - 0.001:
                return aiohttp.ClientTimeout(total=max(0.001, remaining), sock_connect=self.config.connect_timeout_s)
        return self._timeout_obj

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        return url

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
        try:
            with map_errors(self.name):
                resp = await self.session.post(
                    self._url(request.path),
                    data=data,
                    headers=headers,
                    timeout=self._timeout(exchange, stream),
                    allow_redirects=False,  # a POST is never silently replayed elsewhere
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

    async def _iter(self, resp: aiohttp.ClientResponse, attempt: Attempt) -> AsyncIterator[bytes]:
        finished = False
        try:
            with map_errors(self.name):
                async for data in resp.content.iter_any():
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


async def _status_error(resp: aiohttp.ClientResponse) -> UpstreamStatus:
    body = await resp.read()
    resp.release()
    headers = {}
    retry_after = resp.headers.get("retry-after")
    if retry_after:
        headers["retry-after"] = retry_after
    for name, value in resp.headers.items():
        if name.lower().startswith("x-ratelimit-"):
            headers[name.lower()] = value
    return UpstreamStatus(resp.status, body, headers)
