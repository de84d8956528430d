"""``GET /chaperone/backends``: every backend of the policy in force, its circuit and its own status.

    GET /chaperone/backends   {"object": "list", "data": [{"name", "url", "enabled", "circuit", …}]}

``circuit`` is the breaker's state (``closed``, ``open``, ``half_open``, with counts and ``retry_at``;
``{"state": "off"}`` for a backend without one); whatever the backend's ``status()`` reports is merged in
(replicas, engine state, key rotation), and no URL carries credentials. Guarded like the admin API
when the policy has an ``admin`` section; a policy that runs open (a sidecar) shows it to anyone.
``/readyz`` lists the circuits that are not closed (``circuits_for_readyz``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.errors import Forbidden, Unauthorized
from proxy.runtime import RUNTIME, Active

OFF = {"state": "off"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/chaperone/backends", list_backends)


def backends_status(active: Active) -> list[dict[str, Any]]:
    circuits = active.circuits.status() if active.circuits is not None else {}
    inflight: dict[str, int] = getattr(active.terminal, "inflight", {})  # [console2] counted by the terminal
    out = []
    for name, config in active.policy.backends.items():
        entry: dict[str, Any] = {"name": name, "enabled": config.enabled}
        backend = active.backends.get(name)
        status = getattr(backend, "status", None)
        if callable(status):
            entry.update(status())
        elif config.builtin is not None:
            entry["builtin"] = config.builtin
        entry.setdefault("url", None)
        if name in active.engines:  # [register] POST /chaperone/engines
            entry["registered"] = True
        entry["circuit"] = circuits.get(name, OFF)
        if name in inflight:
            entry["in_flight"] = inflight[name]  # [console2]
        out.append(entry)
    return out


def circuits_for_readyz(active: Active) -> dict[str, str]:
    """Backends whose circuit is not closed, with its state (empty when all are closed)."""
    if active.circuits is None:
        return {}
    return {name: b.state for name, b in active.circuits.breakers.items() if b.state != "closed"}


async def list_backends(request: web.Request) -> web.Response:
    active = request.app[RUNTIME].in_force()
    admin = active.policy.admin
    if admin is not None:
        if not admin.accepts(request.headers.get("Authorization")):
            raise Unauthorized("Missing or incorrect admin key: send 'Authorization: Bearer <admin key>'.")
    elif not active.policy.open:
        raise Forbidden("The admin API is disabled: the policy has no admin section.", code="admin_disabled")
    return web.json_response({"object": "list", "data": backends_status(active)})
