"""HTTP handlers: turn a request into an ``Exchange``, run its chain, write the answer back.

The streaming path writes upstream bytes as they arrive, cut only at SSE event boundaries; JSON
is parsed only when a plugin hooks ``on_chunk``. A failure after the stream started becomes one
``data: {"error": …}`` event and a clean end, never a hung socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from opentelemetry import trace

from proxy import eager, messages_api, sse, validate
from proxy.backend import request_headers
from proxy.backends_view import circuits_for_readyz
from proxy.conversations import EXPANDED
from proxy.errors import (
    ChaperoneError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ShuttingDown,
    UpstreamError,
)
from proxy.exchange import ApiRequest, ApiResponse, Exchange
from proxy.metrics import FIRST_EVENT, fast_usage, note_usage
from proxy.protocol import Unnamed, UnnamedStream, read_body
from proxy.recorder import RECORDER
from proxy.runtime import RUNTIME, Active, Runtime
from proxy.tracing import request_attributes, response_attributes
from proxy.upstream_models import upstream_models  # [launcher]

log = logging.getLogger(__name__)
REQUEST_ID = web.RequestKey("request_id", str)
_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}


async def post_only(request: web.Request) -> web.StreamResponse:
    raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}; use POST")


@dataclass(frozen=True, slots=True)
class Api:
    """One chain-run endpoint: its shape checks, and how its callers and errors look.

    ``authorization`` reads the credential from the headers (Anthropic clients send ``x-api-key``);
    ``stream_error`` writes a failure after a stream started, in the API's own event shape.
    """

    endpoint: str
    path: str
    check: Callable[[dict[str, Any]], None]
    authorization: Callable[[Mapping[str, str]], str | None] = lambda headers: headers.get("Authorization")
    stream_error: Callable[[ChaperoneError], bytes] = lambda exc: b"data: " + exc.body_bytes() + b"\n\n"


CHAT = Api("chat", "/chat/completions", validate.chat)
COMPLETIONS = Api("completions", "/completions", validate.completions)
EMBEDDINGS = Api("embeddings", "/embeddings", validate.embeddings)
RESPONSES = Api("responses", "/responses", validate.responses)
MESSAGES = Api("messages", "/messages", messages_api.validate, messages_api.api_key_header, messages_api.error_event)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _serve(request, CHAT)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _serve(request, COMPLETIONS)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await _serve(request, EMBEDDINGS)


async def responses(request: web.Request) -> web.StreamResponse:
    return await _serve(request, RESPONSES)


async def messages(request: web.Request) -> web.StreamResponse:
    return await _serve(request, MESSAGES)


# ---- the API path ------------------------------------------------------------------------


_read_body = read_body  # the name api_routes imports


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)  # strict JSON: NaN and Infinity, which no upstream accepts, are refused
    except ValueError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be a valid JSON object.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(body):  # counting is C-fast; walk only then
        raise InvalidRequest(f"The request body nests deeper than {MAX_DEPTH} levels.", code="invalid_json")
    return body


# orjson reads 1024 levels but writes only 254: a deeper body could never be sent on once re-serialised.
MAX_DEPTH = 128


def _too_deep(body: dict[str, Any]) -> bool:
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def direct(api: Api, app: web.Application) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``api``'s handler for a request that has no match info (``proxy.protocol.DIRECT``): ``app`` is given."""
    return functools.partial(_serve, api=api, app=app)


async def _serve(request: web.Request, api: Api, app: web.Application | None = None) -> web.StreamResponse:
    started = time.monotonic()
    if app is None:
        app = request.app
    runtime = app[RUNTIME]
    active = runtime.acquire()
    running = False  # [metrics] once _run runs, it records the request
    try:
        policy = active.policy
        caller = await active.authenticate(api.authorization(request.headers))
        raw = await _read_body(request, policy.limits.max_body_bytes)
        body = _parse_object(raw)
        api.check(body)
        route = policy.route_for(body["model"])
        caller.check_model(body["model"])
        exchange = Exchange(
            request_id=request[REQUEST_ID],
            policy=policy,
            chain=caller.chain,
            route=route,
            request=ApiRequest(api.endpoint, api.path, body, _upstream_headers(api, request), raw, len(raw)),
            caller=caller,
            deadline=time.monotonic() + policy.backends[route.backend].timeout_s,
            subcaller=active.subcaller,
            started=started,
        )
        if api is RESPONSES:
            await _expand(exchange, active)
        running = True
        tracer = runtime.tracer
        if tracer is None:
            return await _run(request, exchange, active, app)
        attrs = request_attributes(exchange)
        name = f"{attrs['gen_ai.operation.name']} {exchange.request.model}"
        with tracer.start_as_current_span(name, kind=trace.SpanKind.SERVER, attributes=attrs) as span:
            try:
                return await _run(request, exchange, active, app)
            finally:
                span.set_attributes(response_attributes(exchange))
                if isinstance(exchange.error, ChaperoneError):
                    span.set_attribute("error.type", exchange.error.code or type(exchange.error).__name__)
    except BaseException as exc:
        if not running:  # [metrics] refused before the chain ran (key, body, model)
            app[RECORDER].refused(request[REQUEST_ID], api.endpoint, exc, started)
        raise
    finally:
        runtime.release(active)


async def _run(request: web.Request, exchange: Exchange, active: Active, app: web.Application) -> web.StreamResponse:
    chain = exchange.chain
    recorder = app[RECORDER]  # [metrics]
    metered = recorder.wants(exchange)
    # Usage, model and finish reasons are read only when someone will look at them.
    observed = chain.observes_completion or active.traced
    status = 0
    try:
        response = await chain.run(exchange, active.terminal)
        status = response.status
        if response.stream is not None:
            return await _write_stream(request, exchange, response, observed or metered, app[RUNTIME])
        if observed:
            _note_result(exchange, response.peek())
        elif metered:  # [metrics] only the usage, found without parsing the whole answer
            note_usage(exchange, response)
        body = response.raw if response.body is None and response.raw is not None else _dumps(response.body or {})
        headers = dict(response.headers)
        headers["content-type"] = "application/json"
        headers["x-request-id"] = exchange.request_id
        out = Unnamed(status=response.status, body=body, headers=headers)
        await out.prepare(request)  # sent before on_complete runs, so accounting never delays the client
        await out.write_eof()
        return out
    except BaseException as exc:
        exchange.error = exc
        raise
    finally:
        try:
            if chain.observes_completion:
                await _complete(exchange)
        finally:
            if metered:  # [metrics] after the answer went out and on_complete ran (cost is known)
                recorder.finished(exchange, exchange.error, status)


async def _complete(exchange: Exchange) -> None:
    await eager.finish(exchange.chain.complete(exchange))  # accounting finishes even when the client went away


async def _write_stream(
    request: web.Request, exchange: Exchange, response: ApiResponse, observed: bool, runtime: Runtime
) -> web.StreamResponse:
    upstream = response.stream
    assert upstream is not None
    headers = {**response.headers, **_SSE_HEADERS, "x-request-id": exchange.request_id}
    out = UnnamedStream(status=response.status, headers=headers)
    chain = exchange.chain
    parsed = chain.process_stream(exchange, upstream) if chain.parses_chunks_for(exchange) else None
    last = prev = b""
    task = asyncio.current_task()
    assert task is not None
    runtime.streams.add(task)
    try:
        await out.prepare(request)
        try:
            if parsed is not None:
                async for data in parsed:
                    await out.write(data)
                    if not last:
                        exchange.stash[FIRST_EVENT] = time.monotonic()  # [metrics] TTFT
                    prev, last = last, data
            else:  # bytes pass through as they come, cut only at event boundaries
                cutter = sse.EventCutter()
                seen = chain.byte_observers_for(exchange)
                async for data in upstream:
                    whole = cutter.feed(data)
                    if whole:
                        for hook in seen:
                            hook(exchange, whole)
                        await out.write(whole)
                        if not last:
                            exchange.stash[FIRST_EVENT] = time.monotonic()  # [metrics] TTFT
                        prev, last = last, whole
                rest = cutter.rest()  # an upstream that ends without the final blank line
                if rest:
                    for hook in seen:
                        hook(exchange, rest)
                    await out.write(rest)
                    prev, last = last, rest
        except ChaperoneError as exc:
            exchange.error = exc
            log.warning("stream failed after it started (request_id=%s): %s", exchange.request_id, exc.message)
            await out.write(_stream_error(exchange, exc))
        except asyncio.CancelledError:
            if runtime.stopping:  # the shutdown grace period ran out: say so, do not just cut
                stop = ShuttingDown("The gateway is shutting down; this stream was cut short. Retry the request.")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(out.write(_stream_error(exchange, stop)), 1.0)
            raise
        if observed:
            _note_result(exchange, sse.find_usage(prev + last))
        await out.write_eof()
    finally:
        runtime.streams.discard(task)
        if parsed is not None:
            await _aclose(parsed)
        await _aclose(upstream)
    return out


def _stream_error(exchange: Exchange, exc: ChaperoneError) -> bytes:
    return (MESSAGES if exchange.request.endpoint == "messages" else CHAT).stream_error(exc)


def _upstream_headers(api: Api, request: web.Request) -> dict[str, str]:
    headers = request_headers(request.headers)
    if api is MESSAGES:  # the Anthropic credential is the gateway's, never the upstream's
        headers.pop("x-api-key", None)
    return headers


async def _expand(exchange: Exchange, active: Active) -> None:
    """Put the stored context of ``previous_response_id`` into the request before the chain sees it.

    An id this caller never stored here goes, unchanged, to a backend that keeps its own responses
    (OpenAI); to a chat-only backend it is a 400.
    """
    conversations = active.conversations
    if conversations is None or "previous_response_id" not in exchange.request.body:
        return
    try:
        expanded = await conversations.expand(exchange.caller, exchange.request.body)
    except InvalidRequest:
        if exchange.policy.backends[exchange.route.backend].speaks_responses:
            return
        raise
    if expanded is not None:
        exchange.stash[EXPANDED] = expanded.own_from
        exchange.request.raw = None  # the body changed: serialise it again upstream


async def _aclose(iterator: AsyncIterator[bytes]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _maybe_json(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _note_result(exchange: Exchange, body: dict[str, Any] | None) -> None:
    """Record usage, model and finish reasons from a response body or the final stream chunk."""
    if body is None:
        return
    if isinstance(body.get("response"), dict):  # a Responses stream's last event carries the response
        body = body["response"]
    exchange.usage = fast_usage(body.get("usage")) or exchange.usage
    model = body.get("model")
    if isinstance(model, str):
        exchange.response_model = model
    choices = body.get("choices")
    if isinstance(choices, list):
        reasons = [str(c["finish_reason"]) for c in choices if isinstance(c, dict) and c.get("finish_reason")]
        exchange.finish_reasons = reasons or exchange.finish_reasons
    elif isinstance(reason := _stop_reason(body), str):
        exchange.finish_reasons = [reason]  # Anthropic Messages (the message, or a stream's message_delta)
    elif body.get("object") == "response" and isinstance(body.get("status"), str):
        exchange.finish_reasons = [body["status"]]


def _stop_reason(body: dict[str, Any]) -> object:
    delta = body.get("delta")
    return body.get("stop_reason") or (delta.get("stop_reason") if isinstance(delta, dict) else None)


def _dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


# ---- models, pass-through, health --------------------------------------------------------


def _model_object(name: str, backend: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": f"chaperone:{backend}"}


async def list_models(request: web.Request) -> web.Response:
    active = request.app[RUNTIME].in_force()
    policy = active.policy
    caller = await active.authenticate(request.headers.get("Authorization"))
    data = [_model_object(name, policy.routes[name].backend) for name in policy.client_models(caller)]
    data += await upstream_models(active, caller)  # [launcher] what a "*" route's upstream serves
    return web.json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    active = request.app[RUNTIME].in_force()
    policy = active.policy
    caller = await active.authenticate(request.headers.get("Authorization"))
    name = request.match_info["model"]
    if name not in policy.client_models(caller):
        for item in await upstream_models(active, caller):  # [launcher]
            if item["id"] == name:
                return web.json_response(item)
        raise NotFound(f"The model {name!r} does not exist or you do not have access to it.", code="model_not_found")
    return web.json_response(_model_object(name, policy.routes[name].backend))


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Forward another ``/v1/*`` request unchanged to the backend its model (or ``*``) routes to.

    Only what the caller's passthrough rules allow (``proxy.passthrough``); anything else is a 403.
    """
    runtime = request.app[RUNTIME]
    active = runtime.acquire()
    try:
        policy = active.policy
        caller = await active.authenticate(request.headers.get("Authorization"))
        tail = request.match_info["tail"]
        if any(part in (".", "..") for part in tail.split("/")):  # never reach above the backend's /v1
            raise NotFound(f"Unknown request URL: {request.method} {request.path}", code="unknown_url")
        path = "/" + tail
        policy.passthrough_for(caller).check(request.method, path)
        raw = await _read_body(request, policy.limits.max_body_bytes)
        model = _model_in(raw, request.content_type)
        if model is not None:
            route = policy.route_for(model)
            caller.check_model(model)
        elif "*" in policy.routes:
            route = policy.routes["*"]
        elif len(active.backends) == 1:
            route = next(iter(policy.routes.values()))
        else:
            raise NotFound(f"Unknown request URL: {request.method} {request.path}", code="unknown_url")
        backend = active.backends[route.backend]
        upstream = await backend.forward(
            request.method, path, request.query_string, request.headers, raw, authorization=caller.authorization
        )
        headers = {**upstream.headers, "x-request-id": request[REQUEST_ID]}
        out = web.StreamResponse(status=upstream.status, headers=headers)
        try:
            await out.prepare(request)
            try:
                async for data in upstream.body:
                    await out.write(data)
            except UpstreamError as exc:
                log.warning("pass-through failed mid-body (request_id=%s): %s", request[REQUEST_ID], exc.message)
                if request.transport is not None:
                    request.transport.close()  # the body is cut short: the client must see a broken response
                return out
            await out.write_eof()
        finally:
            await _aclose(upstream.body)
        return out
    finally:
        runtime.release(active)


def _model_in(raw: bytes, content_type: str) -> str | None:
    if not raw or content_type != "application/json":
        return None
    body = _maybe_json(raw)
    model = body.get("model") if body else None
    return model if isinstance(model, str) else None


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when a policy is active, its backends answer HTTP and its store answers."""
    runtime = request.app[RUNTIME]
    if runtime.current is None:
        return web.json_response({"status": "starting"}, status=503)
    problems = await runtime.check_ready()
    body: dict[str, Any] = {"status": "ready" if not problems else "not ready", "policy": str(runtime.policy_path)}
    if problems:
        body["problems"] = problems
    if runtime.last_error:
        body["last_reload_error"] = runtime.last_error
    if runtime.current is not None and (circuits := circuits_for_readyz(runtime.current)):  # [reliability]
        body["circuits"] = circuits  # open circuits fail requests over; they do not make the proxy unready
    return web.json_response(body, status=503 if problems else 200)
