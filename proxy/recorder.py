"""What the handlers call once per request: metrics, the JSON access log and the request log behind one object.

``Recorder.finished`` runs after a request's answer was sent (its usage, status and error known);
``Recorder.refused`` for a request refused before it had an exchange (bad JSON, no key). Each sink
is optional; a failing sink is logged, never raised into the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from proxy.accesslog import AccessLog
    from proxy.exchange import Exchange
    from proxy.metrics import Metrics
    from proxy.requestlog import RequestLog

log = logging.getLogger(__name__)


class Recorder:
    """Metrics and the access log behind one call per request; the handlers' only contact with either."""

    __slots__ = ("access", "always", "metrics", "requests")

    def __init__(
        self,
        metrics: Metrics | None,
        access: AccessLog | None,
        requests: RequestLog | None = None,
        *,
        always: bool = False,
    ) -> None:
        self.metrics = metrics
        self.access = access
        self.requests = requests  # [console] the request log the console reads
        self.always = always  # [console] record every request (CHAPERONE_REQUEST_LOG named a file), else per policy

    def _logs(self, exchange: Exchange) -> bool:
        return self.requests is not None and (self.always or exchange.policy.records_requests)

    def wants(self, exchange: Exchange) -> bool:
        """Whether this request's usage must be read (metrics on in its policy, an access log, a request log)."""
        return (
            self.access is not None
            or self._logs(exchange)
            or (self.metrics is not None and exchange.policy.metrics.enabled)
        )

    def finished(self, exchange: Exchange, error: BaseException | None, status: int) -> None:
        """One finished request: ``status`` as sent, or 0 when the error (if any) is yet to be answered."""
        now = time.monotonic()
        code = _error_code(error)
        status = status or error_status(error)
        try:
            if self.metrics is not None and exchange.policy.metrics.enabled:
                self.metrics.record(exchange, status, code, now)
            if self.access is not None:
                self.access.write(exchange, status, code, now)
            if self._logs(exchange):  # [console]
                assert self.requests is not None
                self.requests.record(exchange, status, code, now)
        except Exception:
            log.exception("recording metrics failed (request_id=%s)", exchange.request_id)

    def refused(self, request_id: str, endpoint: str, exc: BaseException, started: float) -> None:
        status = error_status(exc)
        code = _error_code(exc)
        seconds = time.monotonic() - started
        try:
            if self.metrics is not None:
                self.metrics.refused(endpoint, status, code, seconds)
            if self.access is not None:
                self.access.refused(request_id, endpoint, status, code, seconds)
            if self.requests is not None:  # [console]
                self.requests.refused(request_id, endpoint, status, code, seconds)
        except Exception:
            log.exception("recording metrics failed (request_id=%s)", request_id)


RECORDER = web.AppKey("recorder", Recorder)


def error_status(exc: BaseException | None) -> int:
    """The status a client got (or would have got) for ``exc``; 499 when it went away."""
    if exc is None:
        return 200
    if isinstance(exc, asyncio.CancelledError | ConnectionResetError):
        return 499
    status = getattr(exc, "http_status", None)
    return status if isinstance(status, int) else 500


def _error_code(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    if isinstance(exc, asyncio.CancelledError | ConnectionResetError):
        return "client_closed"
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else type(exc).__name__
