"""Eight plugins that do nothing, one or more per request-time hook, to measure what the chain itself costs.

Load with ``CHAPERONE_PLUGINS=benchmarks.noop_plugins`` (the repository root on ``sys.path``) and list
them in a chain. Together they exercise every request-time hook: ``on_request`` (x2), ``wrap_call``,
``on_response`` (x2), ``on_chunk`` and ``on_complete`` (x2). ``noop_chunk`` makes the chain parse
stream chunks, so on streams its cost includes SSE parsing and re-encoding, not just a call.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from proxy import ApiResponse, CallNext, Exchange, PluginRegistry, hookimpl


class NoopConfig(BaseModel):
    """No settings: ``- noop_request: {}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _Noop:
    name: ClassVar[str]
    Config = NoopConfig

    def __init__(self, config: NoopConfig) -> None:
        self.config = config


class NoopRequest(_Noop):
    name = "noop_request"

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        return None


class NoopRequest2(NoopRequest):
    name = "noop_request2"


class NoopWrap(_Noop):
    name = "noop_wrap"

    @hookimpl
    async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
        return await call_next(exchange)


class NoopResponse(_Noop):
    name = "noop_response"

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        return None


class NoopResponse2(NoopResponse):
    name = "noop_response2"


class NoopChunk(_Noop):
    name = "noop_chunk"

    @hookimpl
    async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | None:
        return chunk


class NoopComplete(_Noop):
    name = "noop_complete"

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        return None


class NoopComplete2(NoopComplete):
    name = "noop_complete2"


NOOP_PLUGINS: tuple[type[_Noop], ...] = (
    NoopRequest,
    NoopWrap,
    NoopResponse,
    NoopChunk,
    NoopComplete,
    NoopRequest2,
    NoopResponse2,
    NoopComplete2,
)
"""In the order the ``chaperone-noop8`` benchmark chain lists them."""


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    for cls in NOOP_PLUGINS:
        register(cls)
