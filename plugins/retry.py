"""Retry failed upstream calls with backoff, then fall back along the route's ``fallback:`` list.

A ``wrap_call`` hook. For each route (the primary, then its fallbacks, each sending its own upstream
model name) it makes up to ``attempts`` attempts. It retries what another attempt may fix (no
connection, a timeout, a dropped connection, 408/409/429/5xx), never another 4xx; waits with
exponential backoff and full jitter, or as long as the upstream asked (``Retry-After``,
``x-ratelimit-reset-*``) when that is under ``retry_after_cap_s``; a longer ask, spent retries or an
open circuit move on to the next fallback at once. Each attempt has its own timeout, the whole request
``deadline_s`` (which the client's ``x-chaperone-deadline-ms`` may shorten). It also falls back when the
request does not fit a model's window (``context_window``) or the upstream refused on content grounds
(``content_filter``). Streams are retried only before their first bytes reached the client (the
terminal, ``backends.router``, commits a stream only then).

Without this plugin, ``backends.router`` still walks ``fallback:`` (each route once) and honours circuits.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from opentelemetry import trace

from backends.router import LOOP, candidates, client_deadline, fails_over
from plugins._retry import delays, fits
from plugins._retry.config import RetryConfig
from proxy import ApiResponse, CallNext, Exchange, PluginRegistry, UpstreamError, UpstreamStatus, hookimpl, tokens
from proxy.circuit import CircuitOpen
from proxy.errors import UpstreamTimeout

log = logging.getLogger(__name__)


class ContentFiltered(UpstreamError):
    """The upstream's answer was cut by its content filter; a fallback is asked instead."""

    code = "content_filter"


class Retry:
    name = "retry"
    Config = RetryConfig

    def __init__(self, config: RetryConfig) -> None:
        self.config = config
        self.on_error = "error" in config.fallback_on
        self.on_context = "context_window" in config.fallback_on
        self.on_filter = "content_filter" in config.fallback_on
        self.windows = {name.lower(): size for name, size in config.context_windows.items()}
        self.random = random.Random()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests put a fake clock here

    @hookimpl
    async def on_startup(self) -> None:
        if self.on_context:  # context-window fallback counts tokens: load the encodings now, off the loop
            for name in ("o200k_base", "cl100k_base"):
                await asyncio.to_thread(tokens.get_encoding, name)

    @hookimpl
    async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
        exchange.stash[LOOP] = True
        deadline = exchange.started + self.config.deadline_s
        cap = client_deadline(exchange)
        if cap is not None:
            deadline = min(deadline, cap)
        routes = candidates(exchange)
        if len(routes) > 1 and self.on_context:
            routes = await fits.fitting(exchange, routes, self.windows)
        last: UpstreamError | None = None
        try:
            for position, route in enumerate(routes):
                if position:
                    _note_fallback(exchange, route.backend, last)
                exchange.route = route
                outcome = await self._route(exchange, call_next, deadline, position + 1 < len(routes))
                if isinstance(outcome, ApiResponse):
                    return outcome
                last = outcome
                if time.monotonic() >= deadline or not self._moves_on(outcome):
                    break
        finally:
            exchange.deadline = deadline  # the rest of a stream runs under the request's own deadline
        assert last is not None
        raise last

    def _moves_on(self, error: UpstreamError) -> bool:
        if isinstance(error, ContentFiltered):
            return True
        if isinstance(error, UpstreamStatus) and not fails_over(error):
            return True  # a context or content refusal _route chose to pass on
        return self.on_error

    async def _route(
        self, exchange: Exchange, call_next: CallNext, deadline: float, more: bool
    ) -> ApiResponse | UpstreamError:
        """Attempts on ``exchange.route``: the response, or the error to fall back from (raises when final)."""
        config = self.config
        limit = config.attempt_timeout_s or exchange.policy.backends[exchange.route.backend].timeout_s
        error: UpstreamError = UpstreamTimeout(
            "the request's deadline passed before this backend was tried", code="deadline_exceeded"
        )
        for attempt in range(config.attempts):
            now = time.monotonic()
            if now >= deadline:
                return error
            exchange.deadline = min(deadline, now + limit)
            try:
                response = await call_next(exchange)
            except UpstreamError as exc:
                error = exc
            else:
                if more and self.on_filter and _filtered(response):
                    return ContentFiltered(f"backend {exchange.route.backend!r} filtered the answer")
                return response
            if isinstance(error, CircuitOpen):
                return error
            if not fails_over(error):
                if more and self._refusal_falls_back(error):
                    return error
                raise error
            if attempt + 1 >= config.attempts:
                return error
            wait = delays.error_hint(error)
            if wait is not None and wait > config.retry_after_cap_s:
                return error  # the upstream asks for longer than we wait: next fallback, or its 429 as is
            if wait is None:
                wait = delays.backoff(attempt, config.backoff_s, config.max_backoff_s, self.random)
            if time.monotonic() + wait >= deadline:
                return error
            _note_retry(exchange, error, wait)
            await self.sleep(wait)
        return error

    def _refusal_falls_back(self, error: UpstreamError) -> bool:
        if not isinstance(error, UpstreamStatus) or error.upstream_status != 400:
            return False
        body = error.body()
        return (self.on_context and fits.context_exceeded(body)) or (self.on_filter and fits.content_refused(body))


def _filtered(response: ApiResponse) -> bool:
    if response.stream is not None:
        return False
    raw = response.raw
    if raw is not None and b"content_filter" not in raw:
        return False  # the common case: nothing to parse
    try:
        return fits.answer_filtered(response.json())
    except ValueError:
        return False


def _note_retry(exchange: Exchange, error: UpstreamError, wait: float) -> None:
    log.info(
        "retrying %s in %.3f s after %s (request_id=%s)",
        exchange.route.backend,
        wait,
        error.code or type(error).__name__,
        exchange.request_id,
    )
    trace.get_current_span().add_event(
        "chaperone.retry", {"chaperone.backend": exchange.route.backend, "chaperone.wait_s": wait}
    )


def _note_fallback(exchange: Exchange, backend: str, error: UpstreamError | None) -> None:
    reason = (error.code or type(error).__name__) if error is not None else "context_window"
    log.info("falling back to %s after %s (request_id=%s)", backend, reason, exchange.request_id)
    trace.get_current_span().add_event("chaperone.fallback", {"chaperone.backend": backend, "error.type": reason})


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Retry)
