"""Provider adapters: upstreams that speak another API than OpenAI's, behind the same ``Backend``.

A provider adapter is one ``Dialect`` (what differs) given to ``ProviderBackend`` (what does not: the
pooled session, timeouts and deadlines, attempts, transport-error mapping, streaming). The core sends
it OpenAI chat requests (and Responses requests, which ``backends.adapters`` translates to chat first);
endpoints listed in ``Dialect.native`` (Anthropic: ``messages``) pass through as they are. To add one
(Gemini, Bedrock…):

1. write its ``Dialect`` in ``backends/<provider>.py`` (translations under ``backends/_<provider>/``):

   - ``name``, ``default_url`` (the API root), ``native`` (endpoints it takes unchanged);
   - ``path(endpoint, body)``: where a request goes below the root (may depend on the model and ``stream``);
   - ``headers(api_key, client)``: the credential and version headers (``api_key`` is the backend's
     key, or in open mode the caller's own bearer token);
   - ``to_provider(chat)`` → the provider's request body, raising ``proxy.errors.InvalidRequest`` for
     what it cannot carry; ``to_chat(answer)`` → a ``chat.completion``;
   - ``chat_stream(chat)`` → an object with ``feed(event) -> list[chunk]`` and ``finish()`` turning
     the provider's SSE events (parsed ``data:`` objects) into chat chunks, ending with ``DONE``;
   - ``native_stream(endpoint)`` → the same shape of object for a native stream (or None to pass bytes);
   - ``error(status, body, headers)`` → the ``UpstreamError`` to raise for an error answer, OpenAI-shaped;
2. register ``lambda name, config, url: ProviderBackend(name, config, url, MY_DIALECT)`` (or a subclass)
   under its ``type:`` in ``backends/wiring.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
import orjson

from backends import http1
from backends.adapters import Translator, translate_stream
from backends.openai import OpenAIBackend, map_errors
from proxy import sse
from proxy.backend import WebSocketOptions, response_headers
from proxy.errors import InvalidRequest, UpstreamError
from proxy.exchange import ApiRequest, ApiResponse, Attempt, Exchange
from proxy.policyfile import bearer

if TYPE_CHECKING:
    from proxy.policyfile import BackendConfig

__all__ = ["DONE", "Dialect", "ProviderBackend", "encode_chunk"]

DONE: dict[str, Any] = {"object": "[DONE]"}
"""What a chat stream translator returns last; ``encode_chunk`` writes it as ``data: [DONE]``."""

Encoder = Callable[[dict[str, Any]], bytes]


class Dialect(Protocol):
    """What one provider's API needs from its adapter (see the module docstring)."""

    name: str
    default_url: str
    native: frozenset[str]

    def path(self, endpoint: str, body: dict[str, Any]) -> str: ...

    def headers(self, api_key: str | None, client: Mapping[str, str]) -> dict[str, str]: ...

    def to_provider(self, chat: dict[str, Any]) -> dict[str, Any]: ...

    def to_chat(self, answer: dict[str, Any]) -> dict[str, Any]: ...

    def chat_stream(self, chat: dict[str, Any], backend: str) -> Translator: ...

    def native_stream(self, endpoint: str) -> tuple[Translator, Encoder] | None: ...

    def error(self, status: int, body: bytes, headers: Mapping[str, str], *, native: bool) -> UpstreamError: ...


def encode_chunk(chunk: dict[str, Any]) -> bytes:
    """One chat chunk as SSE; the ``DONE`` sentinel as ``data: [DONE]``."""
    return sse.DONE if chunk is DONE else sse.encode_data(chunk)


class ProviderBackend(OpenAIBackend):
    """A provider's API behind the ``Backend`` interface: OpenAI chat in and out, its native endpoints as they are."""

    def __init__(self, name: str, config: BackendConfig, url: str | None, dialect: Dialect) -> None:
        super().__init__(name, config, (url or config.url or dialect.default_url).rstrip("/"))
        self.dialect = dialect
        self._auth = None  # the credential travels in the dialect's own header

    def speaks(self, endpoint: str) -> bool:
        return endpoint == "chat" or endpoint in self.dialect.native

    def _headers(
        self, client_headers: Mapping[str, str], authorization: str | None, key: int | None = None
    ) -> dict[str, str]:
        own = self.keys.key(key) if self.keys is not None and key is not None else self.config.api_key
        headers = self.dialect.headers(own or bearer(authorization), client_headers)
        headers.update(self.config.headers)
        return headers

    async def send(self, exchange: Exchange, request: ApiRequest | None = None, key: int | None = None) -> ApiResponse:
        if key is None and self.keys is not None:  # [reliability] several api_keys: rotate (OpenAIBackend._rotate)
            return await self._rotate(exchange, request, self.keys)
        request = request or exchange.request
        endpoint = request.endpoint
        body = request.body
        upstream_model = exchange.route.upstream_model
        if upstream_model and body.get("model") != upstream_model:
            body = {**body, "model": upstream_model}
        if endpoint in self.dialect.native:
            return await self._native(exchange, request, body, key)
        if endpoint != "chat":
            raise InvalidRequest(
                f"backend {self.name!r} speaks the {self.dialect.name} API: /v1{request.path} is not available on it",
                code="unsupported_endpoint",
            )
        payload = self.dialect.to_provider(body)
        path = self.dialect.path("chat", payload)
        resp, attempt = await self._post(exchange, path, payload, request, native=False, key=key)
        headers = response_headers(resp.headers)
        if request.stream and resp.content_type == "text/event-stream":
            translator = self.dialect.chat_stream(body, self.name)
            stream = translate_stream(self._iter(resp, attempt), translator, encode_chunk)
            return ApiResponse(resp.status, stream=stream, headers=headers)
        answer = await self._read(resp, attempt)
        return ApiResponse(resp.status, body=self.dialect.to_chat(answer), headers=headers)

    async def _native(
        self, exchange: Exchange, request: ApiRequest, body: dict[str, Any], key: int | None
    ) -> ApiResponse:
        resp, attempt = await self._post(
            exchange, self.dialect.path(request.endpoint, body), body, request, native=True, key=key
        )
        headers = response_headers(resp.headers)
        if request.stream and resp.content_type == "text/event-stream":
            stream = self._iter(resp, attempt)
            wrap = self.dialect.native_stream(request.endpoint)
            if wrap is not None:
                stream = translate_stream(stream, wrap[0], wrap[1])
            return ApiResponse(resp.status, stream=stream, headers=headers)
        with map_errors(self.name):
            raw = await resp.read()
        attempt.ended = time.monotonic()
        return ApiResponse(resp.status, raw=raw, headers=headers)

    async def _post(
        self,
        exchange: Exchange,
        path: str,
        body: dict[str, Any],
        request: ApiRequest,
        *,
        native: bool,
        key: int | None = None,
    ) -> tuple[http1.Response, Attempt]:
        """One POST, recorded as an attempt; an error status raises the dialect's error."""
        headers = self._headers(request.headers, exchange.caller.authorization, key)
        headers["content-type"] = "application/json"
        headers["x-request-id"] = exchange.request_id
        attempt = Attempt(self.name, str(body.get("model", "")), time.monotonic())
        exchange.attempts.append(attempt)
        config = self.config
        try:
            with map_errors(self.name):
                resp = await self.http.post(
                    path,
                    orjson.dumps(body),
                    headers,
                    connect_s=config.connect_timeout_s,
                    read_s=config.timeout_s,
                    total_s=self._total_s(exchange, request.stream),
                )
                attempt.status = resp.status
                if resp.status >= 400:
                    data = await resp.read()
                    raise self.dialect.error(resp.status, data, resp.headers, native=native)
            return resp, attempt
        except BaseException as exc:
            attempt.ended = time.monotonic()
            attempt.error = getattr(exc, "code", None) or type(exc).__name__
            raise

    async def _read(self, resp: http1.Response, attempt: Attempt) -> dict[str, Any]:
        try:
            with map_errors(self.name):
                raw = await resp.read()
        finally:
            attempt.ended = time.monotonic()
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamError(f"backend {self.name!r} answered with something that is not JSON", code="bad_upstream")
        return answer

    async def open_websocket(self, options: WebSocketOptions) -> aiohttp.ClientWebSocketResponse[Literal[False]]:
        raise UpstreamError(
            f"backend {self.name!r} speaks the {self.dialect.name} API and cannot carry Realtime sessions",
            code="upstream_failed",
        )
