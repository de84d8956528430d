"""The chain runner: the only caller of request-time hooks.

A chain is compiled once per policy: each step's hookimpls are found through pluggy (which also
checks their signatures against ``proxy.hookspecs``) and bound into plain tuples, so a request
costs a loop over prebound callables. Request hooks run in policy order; response, chunk and
complete hooks run in reverse (an onion), and only for the steps the request entered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pluggy

from proxy import hookspecs, sse, wholeanswer
from proxy.errors import ChaperoneError
from proxy.exchange import ApiResponse, Exchange, StashKey
from proxy.pricing import CLIENT_ASKED_USAGE
from proxy.streamrun import StreamRun, seen_block

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

Terminal = Callable[[Exchange], Awaitable[ApiResponse]]
# [metrics] (plugin name, hook) → seconds spent in it for this request, when the policy's metrics.plugin_timing is on
HOOK_TIMES = StashKey[dict[tuple[str, str], float]]()
_SPEC_ARGS = {
    "on_request": ("exchange",),
    "wrap_call": ("exchange", "call_next"),
    "on_response": ("exchange",),
    "on_chunk": ("exchange", "chunk"),
    "observe_chunk": ("exchange", "chunk"),
    "observe_bytes": ("exchange", "data"),
    "on_stream_end": ("exchange",),
    "on_complete": ("exchange",),
    "on_startup": ("resources",),
    "on_shutdown": (),
}


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    name: str
    plugin: Any


class Chain:
    """An immutable, compiled chain of plugin steps."""

    __slots__ = (
        "_bytes",
        "_chunk",
        "_complete",
        "_end",
        "_observe",
        "_request",
        "_response",
        "_shutdown",
        "_startup",
        "_whole",
        "_wraps",
        "name",
        "steps",
    )

    def __init__(
        self, name: str, steps: Sequence[Step], hooks: dict[str, list[tuple[int, Callable[..., Any]]]]
    ) -> None:
        self.name = name
        self.steps = tuple(steps)
        self._request = tuple(hooks["on_request"])
        self._wraps = tuple(fn for _, fn in hooks["wrap_call"])
        self._response = tuple(reversed(hooks["on_response"]))
        self._chunk = tuple(reversed(hooks["on_chunk"]))
        self._observe = tuple(reversed(hooks["observe_chunk"]))
        self._bytes = tuple(reversed(hooks["observe_bytes"]))
        self._end = tuple(reversed(hooks["on_stream_end"]))
        self._complete = tuple(reversed(hooks["on_complete"]))
        self._startup = tuple(fn for _, fn in hooks["on_startup"])
        self._shutdown = tuple(fn for _, fn in reversed(hooks["on_shutdown"]))
        # some step must see a streamed answer whole (``buffers_response``, proxy.wholeanswer): decided here, once
        self._whole = any(getattr(step.plugin, "buffers_response", False) is True for step in self.steps)

    @property
    def buffers_response(self) -> bool:
        """Whether a streamed answer is collected, given whole to the steps, then replayed (``proxy.wholeanswer``)."""
        return self._whole

    @property
    def parses_chunks(self) -> bool:
        return bool(self._chunk or self._observe or self._end)

    def parses_chunks_for(self, exchange: Exchange) -> bool:
        """Whether this request's stream must be parsed: some entered step hooks chunks and did not opt out, or
        a plugin asked for usage the client did not (``proxy.pricing.ask_stream_usage``: the chain drops it)."""
        if exchange.stash.get(CLIENT_ASKED_USAGE) is False:
            return True
        if not (self._chunk or self._observe or self._end):
            return False
        return any(self._wants(exchange, index) for index, _ in (*self._chunk, *self._observe, *self._end))

    def byte_observers_for(self, exchange: Exchange) -> tuple[Callable[[Exchange, bytes], None], ...]:
        """The ``observe_bytes`` hooks of the entered steps that did not opt out of this request's stream."""
        if not self._bytes:
            return ()
        return tuple(hook for index, hook in self._bytes if self._wants(exchange, index))

    def _wants(self, exchange: Exchange, index: int) -> bool:
        return index < exchange.entered and id(self.steps[index].plugin) not in exchange.stream_idle

    @property
    def observes_completion(self) -> bool:
        """Whether any step hooks ``on_complete`` (and so needs usage and the final outcome)."""
        return bool(self._complete)

    def __repr__(self) -> str:
        return f"<Chain {self.name}: {' → '.join(step.name for step in self.steps) or '(empty)'}>"

    async def run(self, exchange: Exchange, terminal: Terminal) -> ApiResponse:
        """Run request hooks, the wrapped upstream call, then response hooks (reverse order)."""
        response: ApiResponse | None = None
        exchange.entered = len(self.steps)
        whole = self._whole and exchange.request.stream
        if whole:
            terminal = wholeanswer.collecting(terminal)
        if self._request or self._wraps:
            exchange.request.raw = None  # a plugin may edit the body: serialise it again upstream
        for index, hook in self._request:
            exchange.entered = index + 1
            response = await hook(exchange)
            if response is not None:
                break
        else:
            exchange.entered = len(self.steps)
            response = await self._call(exchange, terminal)
        exchange.response = response
        for index, hook in self._response:
            if index < exchange.entered:
                await hook(exchange)
        if whole and exchange.response.stream is None and exchange.response.status == 200:
            exchange.response = wholeanswer.replay(exchange, exchange.response)
        return exchange.response

    async def _call(self, exchange: Exchange, terminal: Terminal) -> ApiResponse:
        call = terminal
        for wrap in reversed(self._wraps):
            call = _bind_next(wrap, call)
        return await call(exchange)

    async def process_stream(self, exchange: Exchange, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Parse SSE events, pass each through the chunk hooks (reverse order), re-encode them.

        Works one upstream read at a time and yields one block per read, so parsing adds no
        writes: the client gets the events of a read together, as it would have without plugins.
        The ``on_stream_end`` hooks run once, before ``[DONE]``, at the end, or before a failure.
        """
        chunk_hooks = [(index, hook, False) for index, hook in self._chunk if self._wants(exchange, index)]
        observers = [(index, hook, True) for index, hook in self._observe if self._wants(exchange, index)]
        run = StreamRun(
            exchange,
            sorted((*chunk_hooks, *observers), key=lambda h: (-h[0], h[2])),  # reverse order; on_chunk first
            [(index, hook) for index, hook in self._end if self._wants(exchange, index)],
            strip_usage=exchange.stash.get(CLIENT_ASKED_USAGE) is False,
        )
        cutter = sse.EventCutter()
        out: list[bytes] = []
        seen = self.byte_observers_for(exchange)
        try:
            if run.passthrough:  # observers only: no coroutine per block, the events' own bytes go on
                async for data in stream:
                    block = cutter.feed(data)
                    if block:
                        run.observe(block, out)
                        if out:
                            yield seen_block(exchange, seen, out)
            else:
                async for data in stream:
                    block = cutter.feed(data)
                    if block:
                        await run.block(block, out)
                        if out:
                            yield seen_block(exchange, seen, out)
            rest = cutter.rest()
            if rest:
                await run.block(rest, out)
            await run.end(out)
        except ChaperoneError:
            await run.end(out)
            if out:  # the events before the failure still reach the client
                yield seen_block(exchange, seen, out)
            raise
        if out:
            yield seen_block(exchange, seen, out)

    async def complete(self, exchange: Exchange) -> None:
        """Run ``on_complete`` for every entered step; failures are logged, never raised."""
        for index, hook in self._complete:
            if index >= exchange.entered:
                continue
            try:
                await hook(exchange)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("on_complete of %s failed (request_id=%s)", self.steps[index].name, exchange.request_id)

    async def startup(self, resources: Any) -> None:
        for hook in self._startup:
            await hook(resources)

    async def shutdown(self) -> None:
        for hook in self._shutdown:
            try:
                await hook()
            except Exception:
                log.exception("on_shutdown failed in chain %s", self.name)


def compile_chain(
    name: str, plugins: Sequence[tuple[str, Any]], *, tracer: Tracer | None = None, timed: bool = False
) -> Chain:
    """Bind each step's hookimpls, in policy order. Raises TypeError for an impl that breaks the spec.

    ``timed`` wraps every request-time hook with a timer (into ``HOOK_TIMES``); off, nothing is wrapped.
    """
    pm = pluggy.PluginManager("chaperone")
    pm.add_hookspecs(hookspecs)
    steps = [Step(i, step_name, plugin) for i, (step_name, plugin) in enumerate(plugins)]
    for step in steps:
        try:
            pm.register(step.plugin, name=f"{step.index}:{step.name}")
            pm.check_pending()  # per step, so an unknown hook name is blamed on its step
        except pluggy.PluginValidationError as exc:
            raise TypeError(f"plugin {step.name!r}: {' '.join(str(exc).split())}") from None  # one line per error
    hooks: dict[str, list[tuple[int, Callable[..., Any]]]] = {}
    for hook_name, spec_args in _SPEC_ARGS.items():
        caller = getattr(pm.hook, hook_name)
        by_plugin = {id(impl.plugin): impl for impl in caller.get_hookimpls()}
        bound: list[tuple[int, Callable[..., Any]]] = []
        for step in steps:
            impl = by_plugin.get(id(step.plugin))
            if impl is None:
                continue
            sync = hook_name in hookspecs.HOOKS_SYNC
            if asyncio.iscoroutinefunction(impl.function) == sync:
                kind = "a plain 'def'" if sync else "'async def'"
                raise TypeError(f"plugin {step.name!r}: hook {hook_name} must be {kind}")
            if sync:
                fn = _adapt(impl.function, tuple(impl.argnames), spec_args, sync=True)
                bound.append((step.index, _timed_sync(fn, (step.name, hook_name)) if timed else fn))
                continue
            fn = _adapt(impl.function, tuple(impl.argnames), spec_args)
            if tracer is not None and hook_name != "on_chunk":
                fn = _traced(fn, tracer, f"chaperone.plugin {step.name}.{hook_name}", step.name)
            if timed and hook_name not in ("on_startup", "on_shutdown"):  # [metrics]
                fn = (_timed_wrap if hook_name == "wrap_call" else _timed)(fn, (step.name, hook_name))
            bound.append((step.index, fn))
        hooks[hook_name] = bound
    return Chain(name, steps, hooks)


def _bind_next(wrap: Callable[..., Awaitable[ApiResponse]], call_next: Terminal) -> Terminal:
    async def step(exchange: Exchange) -> ApiResponse:
        return await wrap(exchange, call_next)

    return step


def _adapt(
    fn: Callable[..., Any], argnames: tuple[str, ...], spec_args: tuple[str, ...], *, sync: bool = False
) -> Callable[..., Any]:
    """Let an impl take fewer arguments than its spec (as pluggy allows), at compile time, not per call."""
    if argnames == spec_args:
        return fn
    picks = [spec_args.index(a) for a in argnames]

    def adapted_sync(*args: Any) -> Any:
        return fn(*(args[i] for i in picks))

    async def adapted(*args: Any) -> Any:
        return await fn(*(args[i] for i in picks))

    return adapted_sync if sync else adapted


def _traced(fn: Callable[..., Any], tracer: Tracer, span_name: str, plugin: str) -> Callable[..., Any]:
    async def traced(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(span_name, attributes={"chaperone.plugin": plugin}) as span:
            try:
                return await fn(*args, **kwargs)
            except ChaperoneError as exc:
                span.set_attribute("error.type", exc.code or type(exc).__name__)
                raise

    return traced


# [metrics] per-plugin timing, compiled in only when the policy asks (metrics.plugin_timing)


def _add_time(exchange: Exchange, key: tuple[str, str], seconds: float) -> None:
    times = exchange.stash.get(HOOK_TIMES)
    if times is None:
        times = exchange.stash[HOOK_TIMES] = {}
    times[key] = times.get(key, 0.0) + seconds


def _timed(fn: Callable[..., Any], key: tuple[str, str]) -> Callable[..., Any]:
    async def timed(exchange: Exchange, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(exchange, *args)
        finally:
            _add_time(exchange, key, time.perf_counter() - start)

    return timed


def _timed_sync(fn: Callable[..., Any], key: tuple[str, str]) -> Callable[..., Any]:
    def timed(exchange: Exchange, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(exchange, *args)
        finally:
            _add_time(exchange, key, time.perf_counter() - start)

    return timed


def _timed_wrap(fn: Callable[..., Any], key: tuple[str, str]) -> Callable[..., Any]:
    """Time a ``wrap_call`` without the call it wraps (the upstream and the inner wrappers)."""

    async def timed(exchange: Exchange, call_next: Terminal) -> ApiResponse:
        inner = 0.0

        async def timed_next(ex: Exchange) -> ApiResponse:
            nonlocal inner
            start_inner = time.perf_counter()
            try:
                return await call_next(ex)
            finally:
                inner += time.perf_counter() - start_inner

        start = time.perf_counter()
        try:
            return cast(ApiResponse, await fn(exchange, timed_next))
        finally:
            _add_time(exchange, key, time.perf_counter() - start - inner)

    return timed
