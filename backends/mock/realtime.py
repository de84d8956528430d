"""The mock's Realtime API: ``GET /v1/realtime`` as a WebSocket that echoes, with control messages for tests.

On connect it sends ``{"type": "session.created", "session": {"model": …}}``. Then each text frame comes
back as ``{"type": "echo", "data": <the frame as JSON, or the raw text>}`` and each binary frame comes
back unchanged, except these control messages:

- ``{"type": "mock.close", "code": 4000, "reason": "…"}``: the mock closes with that code and reason;
- ``{"type": "mock.big", "bytes": N}``: the mock sends one text frame of N bytes;
- ``{"type": "mock.drop"}``: the mock drops the TCP connection without a close frame.

The session is in the request log like any request; when it ends, its record's ``body`` is
``{"frames": <data frames received>, "close_code": <the client's close code, or the mock's own>,
"close_reason": <the client's close reason>}``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType, web

from .state import record_of

_SOCKETS = web.AppKey("chaperone_mock_realtime_sockets", set[web.WebSocketResponse])
_MAX_MESSAGE = 64 * 1024 * 1024


def add_realtime(app: web.Application) -> None:
    """Register ``GET /v1/realtime`` and close open sessions (1001) when the app shuts down."""
    app[_SOCKETS] = set()
    app.router.add_get("/v1/realtime", realtime_session, allow_head=False)
    app.on_shutdown.append(_close_all)


async def _close_all(app: web.Application) -> None:
    sockets = app[_SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"mock shutting down")


async def realtime_session(request: web.Request) -> web.StreamResponse:
    """``GET /v1/realtime?model=…``: the echoing session described in the module docstring."""
    ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=_MAX_MESSAGE)
    if not ws.can_prepare(request):
        raise web.HTTPBadRequest(reason="GET /v1/realtime expects a WebSocket upgrade")
    await ws.prepare(request)
    sockets = request.app[_SOCKETS]
    sockets.add(ws)
    record = record_of(request)
    frames, reason = 0, None
    try:
        await ws.send_json({"type": "session.created", "session": {"model": request.query.get("model")}})
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type is WSMsgType.TEXT:
                if not await _text(request, ws, msg.data):
                    break
            else:
                reason = msg.extra if msg.type is WSMsgType.CLOSE else None
                break
            frames += 1
    finally:
        sockets.discard(ws)
        record.body = {"frames": frames, "close_code": ws.close_code, "close_reason": reason}
    return ws


async def _text(request: web.Request, ws: web.WebSocketResponse, text: str) -> bool:
    """Answer one text frame; False when the session is over."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = text
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "mock.close":
        await ws.close(code=int(data.get("code", 1000)), message=str(data.get("reason", "")).encode())
        return False
    if kind == "mock.big":
        await ws.send_str(_padded(int(data.get("bytes", 0))))
        return True
    if kind == "mock.drop":
        if request.transport is not None:
            request.transport.abort()
        return False
    await ws.send_str(json.dumps({"type": "echo", "data": data}))
    return True


def _padded(size: int) -> str:
    """A JSON event of exactly ``size`` bytes when that is long enough for one, else ``size`` x's."""
    head = '{"type":"mock.big","pad":"'
    if size < len(head) + 2:
        return "x" * size
    return head + "x" * (size - len(head) - 2) + '"}'
