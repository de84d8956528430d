"""The aiohttp application: routes, the one error/request-id middleware, and lifecycle wiring."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

import backends.wiring
import console
from proxy import admin, api_routes, backends_view, engines_api, feedback, handlers, realtime, usage
from proxy.accesslog import AccessLog
from proxy.backend import Wiring
from proxy.errors import ChaperoneError
from proxy.handlers import REQUEST_ID
from proxy.metrics import METRICS, Metrics, handle_metrics
from proxy.protocol import DIRECT, error_response, from_http_exception, request_id_for, unreadable_body
from proxy.recorder import RECORDER, Recorder
from proxy.registry import PluginRegistry, build_registry
from proxy.requestlog import RequestLog
from proxy.runtime import RUNTIME, Runtime
from proxy.settings import SETTINGS, Settings
from proxy.tracing import get_tracer

log = logging.getLogger(__name__)

__all__ = ["create_app", "error_response", "request_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every response an ``x-request-id`` and every error the OpenAI shape (Anthropic's on /v1/messages)."""
    request_id = request_id_for(request.headers)
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except ChaperoneError as exc:
        return error_response(exc, request_id, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect or a bodiless success raised as an exception: aiohttp sends it
            raise
        return error_response(from_http_exception(exc, request.method, request.path), request_id, request.path)
    except web.RequestPayloadError as exc:  # a body that does not read (chunked framing, a bad gzip stream)
        return error_response(unreadable_body(exc), request_id, request.path)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error (request_id=%s)", request_id)
        return error_response(ChaperoneError(f"internal error (request_id={request_id})"), request_id, request.path)
    if not response.prepared:
        response.headers["x-request-id"] = request_id
    return response


async def _anonymous(request: web.Request, response: web.StreamResponse) -> None:
    """Drop the ``Server: Python/3.x aiohttp/x`` header aiohttp adds: responses do not name our software."""
    response.headers.popall("Server", None)


def _request_log(settings: Settings, env: Mapping[str, str]) -> RequestLog | None:
    """[console] From CHAPERONE_REQUEST_LOG (``off``, or a file; default CHAPERONE_HOME/console/requests.sqlite)."""
    value = (env.get("CHAPERONE_REQUEST_LOG") or "").strip()
    if value.lower() in ("off", "none", "0", "false"):
        return None
    path = Path(value).expanduser() if value else settings.home / "console" / "requests.sqlite"
    max_rows = int(env.get("CHAPERONE_REQUEST_LOG_MAX_ROWS") or 1_000_000)
    days = float(env.get("CHAPERONE_REQUEST_LOG_RETENTION_DAYS") or 30)
    return RequestLog(path, max_rows=max_rows, retention_s=days * 86400)


def create_app(
    settings: Settings,
    *,
    registry: PluginRegistry | None = None,
    env: Mapping[str, str] | None = None,
    wiring: Wiring | None = None,
) -> web.Application:
    """Wire routes, the middleware and the runtime's lifecycle; no I/O happens until the app starts.

    ``wiring`` (default ``backends.wiring.default()``) says which backend types exist: this module is
    where ``proxy/`` meets ``backends/``, with ``proxy.cli``.

    ``env`` (default: the process environment) configures metrics and the access log:
    PROMETHEUS_MULTIPROC_DIR, OTEL_METRICS_EXPORTER, CHAPERONE_ACCESS_LOG.
    """
    app = web.Application(middlewares=[request_middleware], client_max_size=1024**3)
    app.on_response_prepare.append(_anonymous)  # [providers] after aiohttp set its headers, before they are sent
    app[SETTINGS] = settings
    runtime = Runtime(
        settings.policy_path,
        registry or build_registry(),
        wiring=wiring or backends.wiring.default(),
        home=settings.home,
        tracer=get_tracer(settings.tracer_provider),
        reload_interval_s=settings.reload_interval_s,
        clock=settings.clock,
    )
    app[RUNTIME] = runtime
    app[realtime.STATS] = realtime.RealtimeStats()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    async def stopping(app: web.Application) -> None:
        runtime.begin_stop(settings.shutdown_timeout_s)

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(stopping)
    # [metrics] Prometheus /metrics, OpenTelemetry metrics, the JSON access log
    env = os.environ if env is None else env
    metrics = Metrics.from_env(runtime, app[realtime.STATS], env)
    access = AccessLog.from_env(env)
    app[METRICS] = metrics
    requests = _request_log(settings, env)  # [console] the request log the console reads, and the console
    explicit = (env.get("CHAPERONE_REQUEST_LOG") or "").strip().lower() not in ("", "off", "none", "0", "false")
    app[RECORDER] = Recorder(metrics, access, requests, always=explicit)
    if requests is not None:
        app.cleanup_ctx.append(requests.lifecycle)
    app.cleanup_ctx.append(metrics.lifecycle)
    if access is not None:
        app.cleanup_ctx.append(access.lifecycle)
    app.router.add_get("/metrics", handle_metrics)
    for path, handler in (
        ("/v1/chat/completions", handlers.chat_completions),
        ("/v1/completions", handlers.completions),
        ("/v1/embeddings", handlers.embeddings),
        ("/v1/responses", handlers.responses),
        ("/v1/messages", handlers.messages),
        ("/v1/messages/count_tokens", api_routes.count_tokens),
    ):
        resource = app.router.add_resource(path)
        resource.add_route("POST", handler)
        resource.add_route("*", handlers.post_only)
    # Under ProxyRunner the chain-run APIs skip the router, the middleware chain and the signals;
    # the same middleware function still gives them their request id and error shape.
    direct: dict[tuple[str, str], Any] = {
        ("POST", "/v1" + api.path): functools.partial(request_middleware, handler=handlers.direct(api, app))
        for api in (handlers.CHAT, handlers.COMPLETIONS, handlers.EMBEDDINGS, handlers.RESPONSES, handlers.MESSAGES)
    }
    app[DIRECT] = direct
    app.router.add_get("/v1/responses/{id}", api_routes.get_response)
    app.router.add_delete("/v1/responses/{id}", api_routes.delete_response)
    app.router.add_get("/v1/responses/{id}/input_items", api_routes.list_input_items)
    app.router.add_get("/v1/models", handlers.list_models)
    app.router.add_get("/v1/models/{model:.+}", handlers.get_model)
    app.router.add_get("/v1/realtime", realtime.realtime, allow_head=False)  # before the pass-through catch-all
    app.router.add_route("*", "/v1/{tail:.*}", handlers.passthrough)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    usage.add_routes(app)  # before the admin catch-all
    console.mount(app, requests, env)  # [console] /chaperone/ui, before the admin catch-all
    backends_view.add_routes(app)  # [reliability] GET /chaperone/backends
    engines_api.add_routes(app)  # [register] POST/DELETE /chaperone/engines
    feedback.add_routes(app)  # [loop] POST /chaperone/feedback (the capture plugin's store)
    admin.add_routes(app)
    return app
