"""``GET /v1/models`` with a ``*`` route: the policy's named models plus what that route's upstream serves.

A policy whose ``*`` route passes every other name through would otherwise list nothing for it, and
``client.models.list()`` would come back empty on the default policy. The upstream's own list
(``GET /models`` through the backend, so its key and timeouts apply) is cached per active policy and
caller credentials for ``CACHE_S``; an upstream that does not answer leaves just the named models
(logged, never an error for the client).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from proxy.policy import Caller
    from proxy.runtime import Active

__all__ = ["CACHE_S", "model_object", "upstream_models"]

log = logging.getLogger(__name__)
CACHE_S = 10.0
FETCH_TIMEOUT_S = 5.0


def model_object(name: str, backend: str, created: int = 0) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": f"chaperone:{backend}"}


async def upstream_models(active: Active, caller: Caller) -> list[dict[str, Any]]:
    """Model objects the ``*`` route's backend lists, minus the named routes; [] without a ``*`` route
    or for a key limited to named models."""
    policy = active.policy
    route = policy.routes.get("*")
    if route is None or caller.models is not None:
        return []
    cache = active.models_cache
    key = caller.authorization
    hit = cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    found = await _fetch(active, route.backend, caller.authorization)
    named = set(policy.routes)
    listed = [model_object(m, route.backend, c) for m, c in found if m not in named]
    if len(cache) > 64:
        cache.clear()
    cache[key] = (now, listed)
    return listed


async def _fetch(active: Active, backend_name: str, authorization: str | None) -> list[tuple[str, int]]:
    backend = active.backends[backend_name]
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_S):
            raw = await backend.forward("GET", "/models", "", {}, b"", authorization=authorization)
            body = b"".join([chunk async for chunk in raw.body])
        if raw.status != 200:
            log.info("backend %s lists no models: HTTP %s", backend_name, raw.status)
            return []
        items = orjson.loads(body).get("data", [])
        return [
            (str(item["id"]), int(item.get("created") or 0)) for item in items
            if isinstance(item, dict) and isinstance(item.get("id"), str)
        ]  # fmt: skip
    except Exception as exc:  # any failure leaves the named models only: listing must not break
        log.info("backend %s did not list its models: %s", backend_name, type(exc).__name__)
        return []
