"""The one small interface the proxy needs from a backend, and the headers rules shared by all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from proxy.exchange import ApiRequest, ApiResponse, Exchange

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
CLIENT_ONLY = HOP_BY_HOP | {"authorization", "x-request-id", "cookie", "expect"}
# Never passed back from the upstream: we set our own.
UPSTREAM_ONLY = HOP_BY_HOP | {"x-request-id", "date", "server", "set-cookie", "alt-svc"}


def request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers that may travel upstream (lower-cased names)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in CLIENT_ONLY}


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream's headers that may travel back to the client; its request id is kept under a new name."""
    out = {k.lower(): v for k, v in headers.items() if k.lower() not in UPSTREAM_ONLY}
    upstream_id = headers.get("x-request-id")
    if upstream_id:
        out["x-upstream-request-id"] = upstream_id
    return out


@dataclass(slots=True)
class RawResponse:
    """A pass-through answer: status, headers and the body as bytes, streamed."""

    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]


class Backend(Protocol):
    """An upstream that speaks the OpenAI HTTP API."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

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
