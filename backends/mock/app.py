"""The mock backend's aiohttp application: routes, the error/record middleware, models and introspection."""

from __future__ import annotations

import asyncio
from collections import deque

from aiohttp import web
from aiohttp.typedefs import Handler

from .calls import ClientGone, json_response
from .chat import chat_completions
from .config import MockConfig
from .embeddings import embeddings, moderations
from .errors import MockError
from .faults import FaultSpec, parse_fault
from .legacy import completions
from .realtime import add_realtime
from .state import STATE, MockState, record_of, start_record

MODEL_CREATED = 1_700_000_000
MODEL_OWNER = "chaperone-mock"
INTROSPECTION_PREFIX = "/_mock/"
CLIENT_MAX_SIZE = 64 * 1024 * 1024


def create_app(config: MockConfig | None = None) -> web.Application:
    """Build the mock application; raise ``FaultSpecError`` (a ``ValueError``) if ``config.fault`` is invalid.

    Works with or without ``handler_cancellation``: with it, a disconnect cancels the handler; without it,
    waits poll the transport and writes fail, and both are recorded as ``client_disconnected``.
    """
    config = config or MockConfig()
    app = web.Application(middlewares=[mock_middleware], client_max_size=CLIENT_MAX_SIZE)
    app[STATE] = MockState(config=config, base_fault=_base_fault(config), records=deque(maxlen=max(config.record, 0)))
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    add_realtime(app)
    app.router.add_get("/_mock/requests", list_requests)
    app.router.add_delete("/_mock/requests", clear_requests)
    app.router.add_get("/_mock/health", health)
    app.on_shutdown.append(_stop_waiting)
    return app


async def _stop_waiting(app: web.Application) -> None:
    app[STATE].closing = True


def _base_fault(config: MockConfig) -> FaultSpec:
    timing = FaultSpec(latency_ms=config.latency_ms or None, chunk_delay_ms=config.chunk_delay_ms or None)
    return timing.merged(parse_fault(config.fault)) if config.fault else timing


@web.middleware
async def mock_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record each request and its outcome; turn every error into OpenAI-shaped JSON."""
    introspection = request.path.startswith(INTROSPECTION_PREFIX)
    record = record_of(request) if introspection else start_record(request)
    try:
        response = await handler(request)
    except MockError as exc:
        response = exc.to_response()
    except web.HTTPException as exc:
        response = _http_error(request, exc)
    except ClientGone:
        record.finish("client_disconnected")
        return web.Response()  # never delivered: the socket is gone and aiohttp ignores the failed write
    except asyncio.CancelledError:
        record.finish("client_disconnected")
        raise
    record.finish("completed" if response.status < 400 else "error")
    return response


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    if exc.status == 404:
        message = f"Unknown request URL: {request.method} {request.path}. Please check the URL for typos."
        return MockError(404, message, type_="invalid_request_error", code="unknown_url").to_response()
    return MockError(exc.status, exc.reason, headers=headers).to_response()


def _model(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": MODEL_OWNER}


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the configured model names."""
    names = request.app[STATE].config.model_names
    return json_response({"object": "list", "data": [_model(name) for name in names]})


async def get_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}``: one configured model, or a 404 ``model_not_found``."""
    model_id = request.match_info["model"]
    if model_id not in request.app[STATE].config.model_names:
        message = f"The model '{model_id}' does not exist or you do not have access to it."
        raise MockError(404, message, type_="invalid_request_error", code="model_not_found", param="model")
    return json_response(_model(model_id))


async def list_requests(request: web.Request) -> web.Response:
    """``GET /_mock/requests``: the most recent requests, oldest first, with their outcomes."""
    return json_response([record.to_json() for record in request.app[STATE].records])


async def clear_requests(request: web.Request) -> web.Response:
    """``DELETE /_mock/requests``: forget the recorded requests and the ``fail_times`` counters."""
    state = request.app[STATE]
    state.records.clear()
    state.fail_counts.clear()
    return web.Response(status=204)


async def health(request: web.Request) -> web.Response:
    """``GET /_mock/health``: readiness probe for scripts and benchmarks."""
    return json_response({"status": "ok"})
