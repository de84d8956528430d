"""The backend interface and header rules, as ``backends/`` modules import them (defined in ``proxy.backend``)."""

from __future__ import annotations

from proxy.backend import (
    CLIENT_ONLY,
    HOP_BY_HOP,
    UPSTREAM_ONLY,
    Backend,
    RawResponse,
    WebSocketOptions,
    request_headers,
    response_headers,
)

__all__ = [
    "CLIENT_ONLY",
    "HOP_BY_HOP",
    "UPSTREAM_ONLY",
    "Backend",
    "RawResponse",
    "WebSocketOptions",
    "request_headers",
    "response_headers",
]
