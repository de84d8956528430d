"""The plugin contract: every hook a Chaperone plugin may implement, and what each may do.

Request-time hooks are async and are never called through ``pm.hook``: ``proxy.chain`` binds
each step's implementations once, when a policy compiles, and awaits them in the policy's order.
Order therefore comes from the policy; hookimpls take no ``tryfirst``/``trylast``/``wrapper``.

The scan protocol (not a hook)
------------------------------
A plugin class MAY also define::

    async def scan(self, request: ApiRequest) -> dict[str, Any] | None

"What this step would find or do for this request, without changing it and without any network
call." It is never called on a request: only ``chaperone scan`` (``proxy.scan``) calls it, to dry-run
a policy over a file of prompts, after the chain's ``on_startup`` and before its ``on_shutdown``.
It is a plain method, not a hookimpl, so it has no spec here.

``request`` is a chat request of its own (read its texts with ``proxy.textview.request_texts``); the
plugin must not edit it, call a backend or a sub-call, or write shared state. It may be awaited for
several requests at once (``--concurrency``): keep per-request data local, and CPU-heavy work off
the event loop as on requests. Return a JSON-able dict, or None when the step has nothing to say.
Reports are free-form, but the summary understands three keys, so use them: ``action`` (what the
step would do: ``"block"`` means the request would be refused; ``"allow"``, ``"pass"`` and
``"none"`` mean nothing happens; anything else, such as ``"pseudonymize"``, is a flag),
``entities`` (a list of ``{"type", "start", "end", "score", "path"}``: offsets in the text at the
JSON ``path`` of the body) and ``score`` (a number, ideally in [0, 1]); ``"flagged": true`` flags the
input explicitly. For example pii: ``{"entities": [...], "action": "pseudonymize"}``; injection:
``{"score": 0.93, "categories": ["override"], "action": "block"}``. An exception is reported for that
input and step, and the run goes on. Steps without ``scan`` are listed as "not scanned".

Whole-answer plugins (a declaration, not a hook)
------------------------------------------------
A plugin that must see the whole answer before the client sees any of it (schema enforcement, a
judge) declares, as a class or instance attribute read once when the chain compiles::

    buffers_response = True

Only in a chain with such a step, and only for a streamed request, the proxy collects the upstream's
stream (the upstream still streams) into the answer the endpoint returns without ``stream``
(``proxy.wholeanswer``): every step's ``wrap_call`` gets that whole answer from ``call_next`` (``body``
set, ``stream`` None; ``call_next`` may be called again, each answer comes back whole), and every
``on_response`` sees it, so the steps treat it as a non-streamed answer; ``on_chunk`` and
``on_stream_end`` are not called for it. After the last ``on_response``, a 200 answer is replayed to
the client as SSE in the endpoint's own shapes and framing, the usage chunk kept, ``[DONE]`` where the
upstream sent one: the upstream's bytes when no step changed the answer, else events built from the
answer. Errors raised by the steps reach the client as a JSON error (nothing was sent yet). An
instance may set ``buffers_response = False`` in ``__init__`` (e.g. an ``audit`` mode that verifies after
the stream ended); chains without a ``True`` step stream untouched, at no added cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from proxy.exchange import ApiResponse, Exchange
    from proxy.registry import PluginRegistry
    from proxy.runtime import Resources

hookspec = pluggy.HookspecMarker("chaperone")
hookimpl = pluggy.HookimplMarker("chaperone")

CallNext = Callable[["Exchange"], Awaitable["ApiResponse"]]

# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


@hookspec
def register_plugins(register: PluginRegistry) -> None:
    """Make plugin classes known by their policy name.

    Runs: once per process, synchronously, when the registry is built; on built-in modules
    (``proxy.registry.DEFAULT_PLUGINS``) and on modules named in the ``chaperone`` entry-point group.
    May mutate: nothing but calls to ``register``.
    Returns: nothing.

    :param register: call ``register(PluginClass)`` for each class; the class has a ``name``
        (its policy key) and a ``Config`` pydantic model.
    """


# --------------------------------------------------------------------------------------------
# Startup and shutdown (per compiled policy)
# --------------------------------------------------------------------------------------------


@hookspec
async def on_startup(resources: Resources) -> None:
    """Open the plugin's long-lived clients (pools, models, connections).

    Runs: when a policy becomes active (server start, hot reload), before it takes requests;
    in policy order. A failure aborts the activation and the previous policy stays in force.
    May mutate: the plugin instance's own attributes.
    Returns: nothing.

    :param resources: shared resources; ``resources.store`` is the state store.
    """


@hookspec
async def on_shutdown() -> None:
    """Close what ``on_startup`` opened.

    Runs: when the policy is retired (after its last in-flight request) or at server stop;
    in reverse policy order. Exceptions are logged and do not stop other plugins' shutdown.
    May mutate: the plugin instance's own attributes.
    Returns: nothing.
    """


# --------------------------------------------------------------------------------------------
# Request phase
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
async def on_request(exchange: Exchange) -> ApiResponse | None:
    """Inspect or rewrite the request before any backend sees it.

    Runs: once per request, before the call hooks, in policy order.
    May mutate: ``exchange.request`` (body and headers) and this plugin's own ``exchange.stash`` keys.
    Returns: None to continue. A response ends the chain (the first non-None result wins): the
    backend is skipped and the response flows back through the steps already entered
    (their ``on_response``, or ``on_chunk`` for a streamed answer). To refuse, raise a
    ``RequestRejected`` subclass instead.

    :param exchange: the request in flight.
    """


# --------------------------------------------------------------------------------------------
# Call phase
# --------------------------------------------------------------------------------------------


@hookspec
async def wrap_call(exchange: Exchange, call_next: CallNext) -> ApiResponse:
    """Wrap the upstream call: retry it, fall back, time it out, or call it again to repair.

    Runs: once per request that reached the backend, as an onion: the first step in the policy
    is the outermost wrapper, the last is closest to the backend.
    May mutate: ``exchange.request`` and ``exchange.route`` between calls (a fallback points
    ``route`` at another model's route before calling ``call_next`` again). The innermost step
    (``backends.router``) walks the route's ``fallback:`` list itself unless a call hook set
    ``backends.router.LOOP`` in the stash to say it walks retries and fallbacks (the ``retry`` plugin):
    then each ``call_next`` is one attempt on ``exchange.route``, refused at once (``CircuitOpen``)
    when that backend's circuit is open, and limited by ``exchange.deadline``.
    Returns: the response to pass outwards, normally ``await call_next(exchange)``; it may call
    ``call_next`` zero or more times. Raise an ``UpstreamError`` to fail the request.

    :param exchange: the request in flight.
    :param call_next: the rest of the onion down to the backend.
    """


# --------------------------------------------------------------------------------------------
# Response phase
# --------------------------------------------------------------------------------------------


@hookspec
async def on_response(exchange: Exchange) -> None:
    """Inspect or edit the response before the client sees any of it.

    Runs: once per response, in reverse policy order (onion), only for steps the request entered
    (after an early answer, the steps up to the one that answered). For a streamed response it
    runs before the first byte goes out, with ``exchange.response.stream`` set: status and headers
    may change here, the content arrives later through ``on_chunk``.
    May mutate: ``exchange.response`` (status, headers; for a whole answer also the body, via
    ``exchange.response.json()`` which parses it on first use). A step that only reads the answer
    calls ``exchange.response.peek()``: one parse shared by every reader (and the handler), while
    the upstream's bytes still go out unchanged.
    Returns: nothing. Raise a ``ChaperoneError`` (e.g. ``ResponseRejected``) to answer with an error.

    :param exchange: the request in flight, with ``exchange.response`` set.
    """


@hookspec
async def on_chunk(exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]] | None:
    """Inspect or edit one parsed chunk of a streamed response.

    Runs: for every ``data:`` event of a stream (``[DONE]`` excluded), in reverse policy order.
    Chunks are parsed only when at least one step of the chain implements this hook (or
    ``observe_chunk``, ``on_stream_end``) and has not called ``exchange.skip_stream_hooks(self)`` in its ``on_response``
    to say it has nothing to do on this request's stream.
    May mutate: ``chunk`` in place, this plugin's own stash keys (e.g. a carry-over buffer).
    Returns: the chunk to pass on (the same or a new dict), None to drop it (later, outer steps do
    not see a dropped chunk), or a list of chunks to send in its place, in order (each then passes
    the outer steps' ``on_chunk``): how a plugin that held text back releases it before the event
    that ends that text (``proxy.textview.chunk_ends`` / ``delta_chunk``). The chain re-encodes chunks in
    the stream's own framing (``event:`` names kept) and renumbers ``sequence_number`` fields, so
    adding or dropping events keeps a Responses stream's numbering contiguous.

    :param exchange: the request in flight.
    :param chunk: one parsed event: a ``chat.completion.chunk`` or ``text_completion`` object, a
        Responses stream event (``response.output_text.delta`` …) or an Anthropic Messages event
        (``content_block_delta`` …), per ``exchange.request.endpoint``. Read and replace its texts
        through ``proxy.textview``, never by walking the shape.
    """


@hookspec
def observe_chunk(exchange: Exchange, chunk: dict[str, Any]) -> None:
    """See one parsed chunk of a streamed response without changing it: a plain ``def``, not ``async``.

    Runs: where this step's ``on_chunk`` would, for the same events (reverse policy order, entered
    steps that did not call ``exchange.skip_stream_hooks``), on the chunk as the inner steps left it.
    For plugins that only read a stream (counting, assembling, logging). When no step that wants this
    request's stream hooks ``on_chunk`` or ``on_stream_end``, the chain parses each event once for its
    observers and passes the upstream's bytes on unchanged (no re-encoding): about a third of what a
    do-nothing ``on_chunk`` costs per event. A step may implement both hooks; its ``on_chunk`` runs first.
    The usage-only chunk of a stream whose usage a plugin asked for (``proxy.pricing.ask_stream_usage``)
    and the client did not is recorded in ``exchange.usage`` and dropped by the chain before any hook.
    May mutate: this plugin's own stash keys and ``exchange.usage``; never ``chunk`` (its bytes may go
    to the client as they came).
    Returns: nothing.

    :param exchange: the request in flight.
    :param chunk: one parsed event, as for ``on_chunk``.
    """


@hookspec
def observe_bytes(exchange: Exchange, data: bytes) -> None:
    """See a streamed response's bytes as the client gets them, without parsing: a plain ``def``.

    Runs: once per block of whole SSE events on its way out (an upstream read, after the chunk hooks
    and the chain's cut of the usage the client did not ask for), in reverse policy order, for entered
    steps that did not call ``exchange.skip_stream_hooks``. It does not make the chain parse the stream:
    the cheapest way to keep a stream for later (keep the blocks, parse them in ``on_complete`` only if
    needed, e.g. with ``proxy.sse.split_events`` and ``decode_data``). Not called for the error event
    the proxy sends when a stream fails (``exchange.error`` is set then).
    May mutate: this plugin's own stash keys; never ``data``.
    Returns: nothing.

    :param exchange: the request in flight.
    :param data: the bytes of one or more whole events, exactly as they go to the client.
    """


@hookspec
async def on_stream_end(exchange: Exchange) -> list[dict[str, Any]] | None:
    """Release what this plugin held back while a stream ran (text waiting for more chunks).

    Runs: once per streamed response whose chain parses chunks, when the upstream's events are
    over: just before the ``[DONE]`` event is passed on, at the end of a stream that had none, or
    before the error event of a stream that failed; in reverse policy order, for entered steps.
    May mutate: this plugin's own stash keys.
    Returns: chunks to send before the end, in order (each then passes through the ``on_chunk``
    hooks of the outer steps, as if the upstream had sent it), or None for nothing.

    :param exchange: the request in flight, with ``exchange.response`` set.
    """


# --------------------------------------------------------------------------------------------
# Completion phase
# --------------------------------------------------------------------------------------------


@hookspec
async def on_complete(exchange: Exchange) -> None:
    """Observe the finished request: success, error, early answer or client disconnect.

    Runs: exactly once per request that entered the chain (it passed authentication, the OpenAI
    shape checks and model routing), after the last byte was sent or the request failed, in reverse
    policy order, for the steps the request entered; shielded from client-disconnect cancellation
    (``proxy.eager.finish``: it starts in the handler's task and moves to a task of its own only if
    a hook has to wait, so hooks that only count and queue cost no task).
    May mutate: nothing on the exchange; shared state in the store (budget commit, cost).
    Returns: nothing. Exceptions are logged with the request id and never reach the client.

    :param exchange: the finished request; ``exchange.error`` is set when it failed.
    """


HOOKS_REQUEST_TIME = (
    "on_request", "wrap_call", "on_response", "on_chunk", "observe_chunk", "observe_bytes", "on_stream_end",
    "on_complete",
)  # fmt: skip
HOOKS_SYNC = ("register_plugins", "observe_chunk", "observe_bytes")
"""Hooks implemented as plain functions; every other hook is ``async def``."""
HOOKS_LIFECYCLE = ("on_startup", "on_shutdown")
