"""Routing to backends: the innermost step of every chain (one upstream attempt) and the fallback walk.

``make_terminal`` builds the step the chain's call hooks wrap. Each attempt goes to
``exchange.route.backend``; when that backend has a circuit breaker (``proxy.circuit``) an open
circuit refuses the attempt at once (``CircuitOpen``, recorded in ``exchange.attempts``) and the
outcome of every other attempt is counted. The answer says which backend gave it
(``x-chaperone-backend``).

Fallback works with or without the ``retry`` plugin. Without it, a route with a ``fallback:`` list is
walked here: the primary once, then each fallback route once, moving on after a failure that another
backend may not have (no connection, a timeout, a 408/409/429/5xx, an open circuit), never after
another 4xx. The ``retry`` plugin, when in the chain, takes the walk over (``LOOP`` in the stash):
it retries each route with backoff before moving on, and adds ``context_window``/``content_filter``
fallback. Either way a streamed answer is only committed once its first bytes arrived, so a stream
that fails before that is retried or falls back; after that, a failure ends the stream with an SSE
error event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

from backends import adapters, canary
from proxy.circuit import CircuitOpen, Circuits
from proxy.errors import (
    ChaperoneError,
    InvalidRequest,
    ResponseRejected,
    UpstreamError,
    UpstreamStatus,
    UpstreamTimeout,
)
from proxy.exchange import OWN_LOOP, ApiResponse, Attempt

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from backends.base import Backend
    from backends.canary import Split
    from proxy.chain import Terminal
    from proxy.conversations import Conversations
    from proxy.exchange import Exchange
    from proxy.policy import Route
    from proxy.splits import SplitSpec

LOOP = OWN_LOOP
"""Set by a call hook that walks retries and fallbacks itself (the ``retry`` plugin): one attempt per call."""
BACKEND_HEADER = "x-chaperone-backend"
DEADLINE_HEADER = "x-chaperone-deadline-ms"
RETRYABLE_STATUS = frozenset({408, 409, 429})


def fails_over(exc: BaseException) -> bool:
    """Whether another attempt (or backend) may succeed where this one failed: never for other 4xx."""
    if isinstance(exc, UpstreamStatus):
        status = exc.upstream_status
        return status >= 500 or status in RETRYABLE_STATUS
    return isinstance(exc, UpstreamError) and not isinstance(exc, ResponseRejected) and exc.retryable is not False


def client_deadline(exchange: Exchange) -> float | None:
    """The deadline the client asked for with ``x-chaperone-deadline-ms`` (monotonic), or None; 400 if malformed."""
    raw = exchange.request.headers.get(DEADLINE_HEADER)
    if raw is None:
        return None
    try:
        ms = float(raw)
    except ValueError:
        ms = -1.0
    if not 0 < ms < 1e9:
        raise InvalidRequest(f"{DEADLINE_HEADER} must be a positive number of milliseconds, got {raw!r}")
    return exchange.started + ms / 1000


def candidates(exchange: Exchange) -> list[Route]:
    """The primary route, then its ``fallback`` routes, each sending its own upstream model name."""
    route = exchange.route
    routes = exchange.policy.routes
    out = [route]
    for name in route.fallback:
        other = routes.get(name)
        if other is not None:
            out.append(other if other.upstream_model else dataclasses.replace(other, upstream_model=other.name))
    return out


def make_terminal(
    backends: Mapping[str, Backend],
    tracer: Tracer | None,
    conversations: Conversations | None = None,
    circuits: Circuits | None = None,
) -> Terminal:
    """The innermost step of every chain: one upstream attempt, or the fallback walk (see the module doc).

    Responses and Messages requests go through their adapter (``backends.adapters``), which forwards
    or translates them per backend and keeps stored responses in ``conversations``.
    """

    splits: dict[int, tuple[SplitSpec, Split]] = {}  # [balance] one live split per compiled route of this policy

    def via_split(call: Terminal) -> Terminal:
        """A split or spread route picks this attempt's variant first (``backends.canary``), then ``call``."""

        async def step(ex: Exchange) -> ApiResponse:
            spec = ex.route.split
            if spec is None:
                return await call(ex)
            held = splits.get(id(spec))
            if held is None or held[0] is not spec:
                held = splits[id(spec)] = (spec, canary.from_spec(spec))
            return await held[1].send(ex, step)

        return step

    inflight = dict.fromkeys(backends, 0)  # [console2] attempts under way per backend (a stream until it ends)

    async def attempt(ex: Exchange) -> ApiResponse:
        name = ex.route.backend
        backend = backends[name]
        endpoint = ex.request.endpoint
        inflight[name] += 1  # [console2]
        try:
            if endpoint == "responses":
                response = await adapters.send_responses(backend, ex, conversations)
            elif endpoint == "messages":
                response = await adapters.send_messages(backend, ex)
            else:
                response = await backend.send(ex)
        except BaseException:
            inflight[name] -= 1
            raise
        if response.stream is None:
            inflight[name] -= 1
        else:
            response.stream = _Counted(response.stream, inflight, name)
        return response

    async def traced(ex: Exchange) -> ApiResponse:
        assert tracer is not None
        name = ex.route.backend
        attrs = {"gen_ai.request.model": ex.route.upstream_model or ex.request.model, "chaperone.backend": name}
        with tracer.start_as_current_span(f"upstream {name}", kind=trace.SpanKind.CLIENT, attributes=attrs) as span:
            try:
                response = await attempt(ex)
            except ChaperoneError as exc:
                span.set_attribute("error.type", exc.code or type(exc).__name__)
                span.set_attribute("http.response.status_code", exc.http_status)
                raise
            span.set_attribute("http.response.status_code", response.status)
            return response

    call_upstream = attempt if tracer is None else traced
    breakers = circuits.breakers if circuits is not None else {}

    async def guarded(ex: Exchange) -> ApiResponse:
        """One attempt under the backend's breaker and the attempt's deadline; streams committed at first bytes."""
        name = ex.route.backend
        breaker = breakers.get(name)
        if breaker is not None and not await breaker.admit():
            now = time.monotonic()
            model = ex.route.upstream_model or ex.request.model
            ex.attempts.append(Attempt(name, model, now, now, error="circuit_open"))
            wait = str(max(1, math.ceil(breaker.until - breaker.clock())))
            raise CircuitOpen(f"backend {name!r} is failing; its circuit is open", headers={"retry-after": wait})
        try:
            async with asyncio.timeout(max(0.001, ex.remaining_s())):
                response = await call_upstream(ex)
                if response.stream is not None:
                    response.stream = await _committed(response.stream)
        except TimeoutError:
            timeout = UpstreamTimeout(f"backend {name!r} did not answer in time", code="upstream_timeout")
            if breaker is not None:
                await breaker.failure(timeout)
            raise timeout from None
        except UpstreamError as exc:
            if breaker is not None:
                await breaker.failure(exc)
            raise
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            await breaker.success()
        response.headers[BACKEND_HEADER] = name
        return response

    async def plain(ex: Exchange) -> ApiResponse:
        response = await call_upstream(ex)  # nothing configured: one plain attempt
        response.headers[BACKEND_HEADER] = ex.route.backend
        return response

    guarded_step, plain_step = via_split(guarded), via_split(plain)

    async def terminal(ex: Exchange) -> ApiResponse:
        route = ex.route
        if route.fallback and LOOP not in ex.stash:
            return await walk(ex, guarded_step)
        if LOOP in ex.stash or (breakers and (route.backend in breakers or route.split is not None)):
            return await guarded_step(ex)
        if route.split is not None:
            return await plain_step(ex)
        response = await call_upstream(ex)  # the common case: one plain attempt, no extra frames
        response.headers[BACKEND_HEADER] = route.backend
        return response

    terminal.inflight = inflight  # type: ignore[attr-defined]  # [console2] read by GET /chaperone/backends
    return terminal


class _Counted:
    """[console2] A stream that takes itself off its backend's in-flight count when it ends, fails or is dropped."""

    __slots__ = ("_counts", "_name", "_open", "_stream")

    def __init__(self, stream: AsyncIterator[bytes], counts: dict[str, int], name: str) -> None:
        self._stream, self._counts, self._name, self._open = stream, counts, name, True

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._stream)
        except BaseException:
            self._done()
            raise

    async def aclose(self) -> None:
        self._done()
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()

    def _done(self) -> None:
        if self._open:
            self._open = False
            self._counts[self._name] -= 1

    def __del__(self) -> None:
        self._done()


async def walk(exchange: Exchange, call: Terminal) -> ApiResponse:
    """The fallback walk without the ``retry`` plugin: each route once, in order, each within its backend's timeout."""
    cap = client_deadline(exchange)
    last: UpstreamError | None = None
    for route in candidates(exchange):
        exchange.route = route
        limit = time.monotonic() + exchange.policy.backends[route.backend].timeout_s
        exchange.deadline = limit if cap is None else min(limit, cap)
        if exchange.remaining_s() <= 0:
            break
        try:
            return await call(exchange)
        except UpstreamError as exc:
            if not fails_over(exc):
                raise
            last = exc
    if last is None:
        raise UpstreamTimeout("the request's deadline passed before any backend was tried", code="deadline_exceeded")
    raise last


async def _committed(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Wait for the stream's first bytes (failures so far are the attempt's), then pass the rest on."""
    first = b""
    while not first:
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            break
    return _prepend(first, stream)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for data in rest:
            yield data
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
