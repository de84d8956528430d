"""The admin HTTP API under ``/chaperone/``: virtual keys (list, create, show, rotate, revoke).

Every admin path is guarded by the policy's ``admin.key``, sent as ``Authorization: Bearer <key>``
and compared in constant time. Without an ``admin`` section every admin path answers 403
``admin_disabled``; a missing or wrong key is 401. Answers never include a hash, and the only secret
they ever carry is the one just created or rotated, once, under ``"key"``.

    GET    /chaperone/keys                    list               {"object": "list", "data": [key, …]}
    POST   /chaperone/keys                    create             201 {key…, "key": "sk-chp-…"}
           body {"name", "chain"?, "models"?, "metadata"?, "passthrough"?: [rules], "expires"?: "30d" | ISO 8601}
    GET    /chaperone/keys/{id}               show
    POST   /chaperone/keys/{id}/rotate        new secret; body {"overlap_s"?} (default admin.rotation_overlap_s)
    POST   /chaperone/keys/{id}/revoke        revoke (also DELETE on it, or DELETE /chaperone/keys/{id})
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from proxy.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from proxy.keys import KeyBusy, KeyManager, KeyNotFound, KeySpec, KeyStateError, grant_problem
from proxy.protocol import read_body
from proxy.runtime import RUNTIME, Active
from proxy.store import StoreError

_MAX_BODY = 64 * 1024


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/chaperone/keys", list_keys)
    router.add_post("/chaperone/keys", create_key)
    router.add_get("/chaperone/keys/{id}", show_key)
    router.add_delete("/chaperone/keys/{id}", revoke_key)
    router.add_post("/chaperone/keys/{id}/rotate", rotate_key)
    router.add_post("/chaperone/keys/{id}/revoke", revoke_key)
    router.add_delete("/chaperone/keys/{id}/revoke", revoke_key)
    router.add_route("*", "/chaperone/{tail:.*}", unknown)


def require_admin(request: web.Request) -> Active:
    """The active policy, once the request proved it holds the admin key."""
    active = request.app[RUNTIME].in_force()
    admin = active.policy.admin
    if admin is None:
        raise Forbidden("The admin API is disabled: the policy has no admin section.", code="admin_disabled")
    if not admin.accepts(request.headers.get("Authorization")):
        raise Unauthorized("Missing or incorrect admin key: send 'Authorization: Bearer <admin key>'.")
    return active


@asynccontextmanager
async def _keys(request: web.Request) -> AsyncIterator[tuple[Active, KeyManager]]:
    """Admin check, then a manager on the active store; store and key errors become API errors."""
    active = require_admin(request)
    try:
        yield active, active.keyring.manager
    except KeyNotFound as exc:
        raise NotFound(str(exc), code="key_not_found") from None
    except KeyStateError as exc:
        raise InvalidRequest(str(exc), code="key_not_active") from None
    except (KeyBusy, StoreError) as exc:
        raise ServiceUnavailable(f"The key store could not be used: {exc}") from None


async def list_keys(request: web.Request) -> web.Response:
    async with _keys(request) as (_, manager):
        records = await manager.list()
        now = manager.clock()
    return web.json_response({"object": "list", "data": [r.view(now) for r in records]}, dumps=_dumps)


async def create_key(request: web.Request) -> web.Response:
    async with _keys(request) as (active, manager):
        body = await read_json_body(request)
        try:
            spec = KeySpec.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(part) for part in first["loc"]) or None
            raise InvalidRequest(f"{param}: {first['msg']}", param=param) from None
        problem = grant_problem(active.policy, spec.chain, spec.models)
        if problem is not None:
            raise InvalidRequest(problem[1], param=problem[0])
        try:
            spec.expires_at(manager.clock())
        except ValueError as exc:
            raise InvalidRequest(f"expires: {exc}", param="expires") from None
        record, secret = await manager.create(spec)
        view = record.view(manager.clock())
    return web.json_response({**view, "key": secret}, status=201, dumps=_dumps)


async def show_key(request: web.Request) -> web.Response:
    async with _keys(request) as (_, manager):
        record = await manager.require(request.match_info["id"])
        return web.json_response(record.view(manager.clock()), dumps=_dumps)


async def rotate_key(request: web.Request) -> web.Response:
    async with _keys(request) as (active, manager):
        body = await read_json_body(request, optional=True)
        assert active.policy.admin is not None
        overlap = body.get("overlap_s", active.policy.admin.rotation_overlap_s)
        if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap < math.inf:
            raise InvalidRequest("overlap_s must be a number of seconds, 0 or more", param="overlap_s")
        record, secret = await manager.rotate(request.match_info["id"], overlap_s=float(overlap))
        active.keyring.forget(record.id)
        view = record.view(manager.clock())
    return web.json_response({**view, "key": secret}, dumps=_dumps)


async def revoke_key(request: web.Request) -> web.Response:
    async with _keys(request) as (active, manager):
        record = await manager.revoke(request.match_info["id"])
        active.keyring.forget(record.id)
        return web.json_response(record.view(manager.clock()), dumps=_dumps)


async def unknown(request: web.Request) -> web.Response:
    require_admin(request)
    raise NotFound(f"Unknown admin URL: {request.method} {request.path}", code="unknown_url")


async def read_json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """An admin request's JSON object (decoded, bounded); a 400 ``invalid_json`` for anything else."""
    raw = await read_body(request, _MAX_BODY)  # [edge] decoded (gzip, deflate) and bounded once decoded
    if optional and not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except ValueError:
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json")
    return body


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
