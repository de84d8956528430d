"""The backend interface the core depends on, the header rules shared by every backend, and the wiring.

The dependency runs one way: ``backends/`` imports this module, never the reverse. The core
(runtime, handlers, realtime) talks to upstreams only through ``Backend``; which concrete backends
exist, which innermost step routes to them (``make_terminal``) and which bundled servers can be
started (``builtin: mock``) is handed in from the edge as one ``Wiring`` (``backends.wiring.default``,
passed by ``proxy.server.create_app``). A new engine or provider adapter registers a factory there
under its ``type:`` name and touches ``backends/`` alone.

The contract a backend implements (``Backend``):

- ``send(exchange, request)``: one attempt at ``request`` (default ``exchange.request``), an
  ``ApiRequest`` whose ``endpoint`` is ``chat``, ``completions``, ``embeddings``, ``responses`` or
  ``messages``. Return an ``ApiResponse`` with ``raw``/``body`` (whole) or ``stream`` (SSE bytes, cut
  anywhere) in the shape of the request's own API; raise ``proxy.errors.UpstreamError`` (or a
  subclass) on failure, and append one ``Attempt`` to ``exchange.attempts``. Transport exceptions
  (aiohttp's) never leave the backend.
- ``speaks(endpoint)``: whether ``send`` takes that endpoint as it is. The chat-only adapters
  (Responses, Messages) translate to ``chat`` for a backend that does not speak theirs.
- ``forward``: any other ``/v1`` request unchanged (the pass-through rules); ``probe``: ``/readyz``.
- ``open_websocket``: the upstream side of a Realtime session; a backend that cannot carry one
  raises ``UpstreamError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from multidict import MultiDict
from yarl import URL

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web
    from opentelemetry.trace import Tracer

    from proxy.chain import Terminal
    from proxy.circuit import Circuits
    from proxy.conversations import Conversations
    from proxy.exchange import ApiRequest, ApiResponse, Exchange
    from proxy.policyfile import BackendConfig

__all__ = [
    "CLIENT_ONLY",
    "HOP_BY_HOP",
    "UPSTREAM_ONLY",
    "Backend",
    "BackendFactory",
    "RawResponse",
    "TerminalFactory",
    "WebSocketOptions",
    "Wiring",
    "request_headers",
    "response_headers",
    "unknown_types",
    "websocket_url",
]

# RFC 9110 §7.6.1 hop-by-hop headers, plus those the client library recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
        "accept-encoding",
    }
)
# Never sent upstream from the client: credentials are the backend's own (or, open, re-added on purpose).
CLIENT_ONLY = HOP_BY_HOP | {"authorization", "x-api-key", "x-request-id", "cookie", "expect"}
# Never passed back from the upstream: we set our own.
UPSTREAM_ONLY = HOP_BY_HOP | {"x-request-id", "date", "server", "set-cookie", "alt-svc"}


def request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers that may travel upstream (lower-cased names)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in CLIENT_ONLY}


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream's headers that may travel back to the client; its request id is kept under a new name."""
    out = {k.lower(): v for k, v in headers.items() if k.lower() not in UPSTREAM_ONLY}
    upstream_id = headers.get("x-request-id") or headers.get("request-id")  # Anthropic's is "request-id"
    if upstream_id:
        out["x-upstream-request-id"] = upstream_id
    return out


def websocket_url(base_url: str, query: Mapping[str, str], upstream_model: str | None) -> URL:
    """An OpenAI-style ``…/v1`` as ``ws(s)://…/v1/realtime``, with the client's query and the upstream model name."""
    url = URL(base_url + "/realtime")
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    params = MultiDict(query)
    if upstream_model:
        params["model"] = upstream_model
    return url.with_scheme(scheme).with_query(params)


@dataclass(slots=True)
class RawResponse:
    """A pass-through answer: status, headers and the body as bytes, streamed."""

    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """How to open the upstream side of a Realtime session (``GET /v1/realtime``)."""

    query: Mapping[str, str]  # the client's query; ``model`` is replaced by the route's upstream name
    upstream_model: str | None
    headers: Mapping[str, str]  # the client's headers worth passing (``openai-beta``) and ``x-request-id``
    authorization: str | None  # the caller's own, used only when the backend has no key (open mode)
    protocols: tuple[str, ...]  # subprotocols to offer (the insecure-key one already removed)
    max_msg_size: int
    close_timeout_s: float


class Backend(Protocol):
    """An upstream: the only thing the core knows about where requests go (see the module docstring)."""

    name: str

    async def start(self) -> None:
        """Open the connection pool (called once, before the first request)."""
        ...

    async def close(self) -> None:
        """Close the pool; in-flight calls are over by then."""
        ...

    def speaks(self, endpoint: str) -> bool:
        """Whether ``send`` takes requests of ``endpoint`` as they are (else an adapter translates to chat)."""
        ...

    async def send(self, exchange: Exchange, request: ApiRequest | None = None) -> ApiResponse:
        """Send ``request`` (default ``exchange.request``) to the route's model; ``UpstreamError`` on failure."""
        ...

    async def forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, *, authorization: str | None
    ) -> RawResponse:
        """Send any other request unchanged (``/v1/*`` pass-through)."""
        ...

    async def probe(self, timeout_s: float) -> str | None:
        """None when the backend answers HTTP at all, else why not (for ``/readyz``)."""
        ...

    async def open_websocket(self, options: WebSocketOptions) -> aiohttp.ClientWebSocketResponse[Literal[False]]:
        """The upstream's Realtime socket; ``UpstreamError`` when it refuses or cannot carry one."""
        ...


BackendFactory = Callable[[str, "BackendConfig", "str | None"], Backend]
"""Builds one backend from its policy name, its config and its URL (a started builtin's, else ``config.url``)."""

TerminalFactory = Callable[
    [Mapping[str, Backend], "Tracer | None", "Conversations | None", "Circuits | None"], "Terminal"
]
"""Builds the innermost chain step (one upstream attempt) over a policy's backends."""


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the edge gives the core: backend factories by ``type:``, the terminal, the bundled servers."""

    factories: Mapping[str, BackendFactory]
    terminal: TerminalFactory
    builtins: Mapping[str, Callable[[], web.Application]] = field(default_factory=dict)
    launch: BackendFactory | None = None  # a backend with a ``launch:`` block: its engines, started and kept
    close: Callable[[], Awaitable[None]] | None = None  # at shutdown: stop what ``launch`` started

    def types(self) -> list[str]:
        """The backend ``type:`` names a policy may use, sorted."""
        return sorted(self.factories)

    def build(self, name: str, config: BackendConfig, url: str | None) -> Backend:
        """The backend for ``config.type`` (checked against ``types()`` before activation), or its launched engine."""
        if config.launch is not None:
            if self.launch is None:
                raise RuntimeError(f"backends.{name}.launch: no engine launcher is wired in")
            return self.launch(name, config, url)
        return self.factories[config.type](name, config, url)

    async def shutdown(self) -> None:
        if self.close is not None:
            await self.close()


def unknown_types(configs: Mapping[str, BackendConfig], wiring: Wiring) -> list[str]:
    """Problems with each backend whose ``type:`` no factory builds, as ``backends.<name>.type: …`` lines."""
    known = wiring.types()
    return [
        f"backends.{name}.type: unknown backend type {config.type!r}; known: {', '.join(known)}"
        for name, config in sorted(configs.items())
        if config.type not in wiring.factories
    ]
