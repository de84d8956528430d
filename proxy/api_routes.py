"""The API routes that do not run the chain: stored responses, and Anthropic's token count.

``GET/DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items`` answer from the
gateway's own store (``proxy.conversations``), for the caller's own responses only: another key gets
a 404, as for an id that never existed. ``POST /v1/messages/count_tokens`` counts locally with
tiktoken (``proxy.tokens``), off the event loop; the figure is an estimate for non-OpenAI tokenizers,
which the ``x-chaperone-token-count`` header says.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from proxy import messages_api, tokens
from proxy.conversations import Conversations
from proxy.errors import InvalidRequest
from proxy.handlers import _parse_object, _read_body
from proxy.policy import Caller
from proxy.runtime import RUNTIME


async def _caller(request: web.Request) -> tuple[Caller, Conversations]:
    active = request.app[RUNTIME].in_force()
    caller = await active.authenticate(request.headers.get("Authorization"))
    if active.conversations is None:
        raise RuntimeError("conversations are not set up")
    return caller, active.conversations


async def get_response(request: web.Request) -> web.Response:
    caller, conversations = await _caller(request)
    return web.json_response(await conversations.get(caller, request.match_info["id"]))


async def delete_response(request: web.Request) -> web.Response:
    caller, conversations = await _caller(request)
    return web.json_response(await conversations.delete(caller, request.match_info["id"]))


async def list_input_items(request: web.Request) -> web.Response:
    caller, conversations = await _caller(request)
    query = request.query
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise InvalidRequest("Invalid value for 'limit': expected an integer.", param="limit") from None
    if not 1 <= limit <= 100:
        raise InvalidRequest("Invalid value for 'limit': must be between 1 and 100.", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid value for 'order': must be one of asc, desc.", param="order")
    page = await conversations.input_items(
        caller, request.match_info["id"], limit=limit, order=order, after=query.get("after")
    )
    return web.json_response(page)


async def count_tokens(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    active = runtime.acquire()
    try:
        policy = active.policy
        caller = await active.authenticate(messages_api.api_key_header(request.headers))
        raw = await _read_body(request, policy.limits.max_body_bytes)
        body = _parse_object(raw)
        messages_api.validate_count_tokens(body)
        policy.route_for(body["model"])
        caller.check_model(body["model"])
        count, label = await asyncio.to_thread(_count, body)  # the first use loads the encoding (~0.5 s)
    finally:
        runtime.release(active)
    return web.json_response({"input_tokens": count}, headers={"x-chaperone-token-count": label})


def _count(body: dict[str, Any]) -> tuple[int, str]:
    encoding, exact = tokens.encoding_for(body["model"])
    return messages_api.count_tokens(body), encoding.name if exact else f"estimate; {encoding.name}"
