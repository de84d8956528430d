"""Routing to backends: the innermost step of every chain, one upstream attempt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

from backends import adapters, canary
from proxy.errors import ChaperoneError

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from backends.base import Backend
    from backends.canary import Split
    from proxy.chain import Terminal
    from proxy.conversations import Conversations
    from proxy.exchange import ApiResponse, Exchange
    from proxy.splits import SplitSpec


def make_terminal(
    backends: Mapping[str, Backend], tracer: Tracer | None, conversations: Conversations | None = None
) -> Terminal:
    """The innermost step of every chain: one upstream attempt (traced when tracing is on).

    Responses and Messages requests go through their adapter (``backends.adapters``), which forwards
    or translates them per backend and keeps stored responses in ``conversations``.
    """

    splits: dict[int, tuple[SplitSpec, Split]] = {}  # one live split per compiled route of this policy

    def split_for(spec: SplitSpec) -> Split:
        held = splits.get(id(spec))
        if held is None or held[0] is not spec:
            held = splits[id(spec)] = (spec, canary.from_spec(spec))
        return held[1]

    async def attempt(backend: Backend, ex: Exchange) -> ApiResponse:
        endpoint = ex.request.endpoint
        if endpoint == "responses":
            return await adapters.send_responses(backend, ex, conversations)
        if endpoint == "messages":
            return await adapters.send_messages(backend, ex)
        return await backend.send(ex)

    if tracer is None:

        async def send(ex: Exchange) -> ApiResponse:
            if ex.route.split is not None:  # [balance] a split or spread route: this attempt's variant
                return await split_for(ex.route.split).send(ex, send)
            return await attempt(backends[ex.route.backend], ex)

        return send

    async def call_upstream(ex: Exchange) -> ApiResponse:
        if ex.route.split is not None:  # [balance] a split or spread route: this attempt's variant
            return await split_for(ex.route.split).send(ex, call_upstream)
        backend = backends[ex.route.backend]
        attrs = {"gen_ai.request.model": ex.route.upstream_model or ex.request.model, "chaperone.backend": backend.name}
        with tracer.start_as_current_span(
            f"upstream {backend.name}", kind=trace.SpanKind.CLIENT, attributes=attrs
        ) as span:
            try:
                response = await attempt(backend, ex)
            except ChaperoneError as exc:
                span.set_attribute("error.type", exc.code or type(exc).__name__)
                span.set_attribute("http.response.status_code", exc.http_status)
                raise
            span.set_attribute("http.response.status_code", response.status)
            return response

    return call_upstream
