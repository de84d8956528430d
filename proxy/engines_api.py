"""The admin API for engines registered at run time (``chaperone launch … --register URL`` calls it).

Guarded by the policy's ``admin.key`` like every ``/chaperone/`` path (403 ``admin_disabled`` without an
``admin`` section, 401 for a missing or wrong key):

    GET    /chaperone/engines          {"object": "list", "data": [engine, …]}
    POST   /chaperone/engines          body {"name", "url", "models": [served names], "api_key"?}
                                       201 registered, 200 when the same registration was already in force,
                                       409 ``engine_clash`` naming the policy's backend or model it would take
    GET    /chaperone/engines/{name}   the engine, or 404 ``engine_not_found``
    DELETE /chaperone/engines/{name}   unregister: its backend and routes are gone (404 if unknown)

An engine is ``{"name", "url", "models", "api_key": bool}`` (the key itself is never shown). The
runtime keeps registrations in this process's memory and merges them into every policy it activates,
so a hot reload keeps them and a proxy restart forgets them (see ``proxy.registered``). A worker of
``serve --workers N`` refuses them (409 ``engines_need_one_process``): a registration would reach only
the worker that took the request.
"""

from __future__ import annotations

import os

from aiohttp import web
from pydantic import ValidationError

from proxy.admin import read_json_body, require_admin
from proxy.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from proxy.policy import PolicyError
from proxy.registered import EngineClash, Registration
from proxy.runtime import RUNTIME
from proxy.workers import WORKER_ENV


def add_routes(app: web.Application) -> None:
    """Mount the engine routes (before the admin API's ``/chaperone/{tail}`` catch-all)."""
    router = app.router
    router.add_get("/chaperone/engines", list_engines)
    router.add_post("/chaperone/engines", register_engine)
    router.add_get("/chaperone/engines/{name}", show_engine)
    router.add_delete("/chaperone/engines/{name}", unregister_engine)


async def list_engines(request: web.Request) -> web.Response:
    active = require_admin(request)
    return web.json_response({"object": "list", "data": [reg.view() for reg in active.engines.values()]})


async def show_engine(request: web.Request) -> web.Response:
    active = require_admin(request)
    reg = active.engines.get(request.match_info["name"])
    if reg is None:
        raise _not_found(request.match_info["name"])
    return web.json_response(reg.view())


async def register_engine(request: web.Request) -> web.Response:
    require_admin(request)
    if os.environ.get(WORKER_ENV):
        raise Conflict(
            "Engines can be registered only with a proxy of one process: this is a worker of 'serve --workers N' "
            "and a registration would reach this worker alone. Run the proxy with --workers 1.",
            code="engines_need_one_process",
        )
    try:
        reg = Registration.model_validate(await read_json_body(request))
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequest(f"{param}: {first['msg'].removeprefix('Value error, ')}", param=param) from None
    try:
        changed = await request.app[RUNTIME].register(reg)
    except EngineClash as exc:
        raise Conflict(f"Engine {reg.name!r} not registered: {exc}.", code="engine_clash") from None
    except (PolicyError, OSError) as exc:
        raise ServiceUnavailable(f"Engine {reg.name!r} not registered: the policy did not activate: {exc}") from None
    return web.json_response(reg.view(), status=201 if changed else 200)


async def unregister_engine(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["name"]
    try:
        reg = await request.app[RUNTIME].unregister(name)
    except (PolicyError, OSError) as exc:
        raise ServiceUnavailable(f"Engine {name!r} not unregistered: the policy did not activate: {exc}") from None
    if reg is None:
        raise _not_found(name)
    return web.json_response(reg.view())


def _not_found(name: str) -> NotFound:
    return NotFound(f"No engine named {name!r} is registered with this proxy.", code="engine_not_found")
