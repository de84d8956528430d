"""The OpenAI Realtime API (``GET /v1/realtime``, a WebSocket) passed through to a backend, frame by frame.

The chain's guards read HTTP bodies, not WebSocket sessions, so a session is refused unless the
caller's passthrough rules say ``WS /realtime``. Whatever can be refused is refused before the
upgrade, as the usual JSON error: a bad key (401), no rule or a model the key may not use (403),
no ``?model=`` (400), an unknown model (404), an upstream that does not take the upgrade (502; 504
on a timeout). After the upgrade, frames pass both ways as they come, and the end of a session is a close code:

    the client or upstream closes with a code     the other side gets the same code and reason
    a frame over ``realtime.max_frame_bytes``      both sides 1009 (message too big)
    no frame either way for ``idle_timeout_s``     both sides 1000
    the upstream connection drops                 the client gets 1011; a dropped client: upstream 1001
    the shutdown grace period ends                both sides 1001

Browsers cannot set headers, so the key may also come as the subprotocol
``openai-insecure-api-key.<KEY>``, as OpenAI accepts; it is never passed upstream.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from proxy.backend import WebSocketOptions
from proxy.backend import websocket_url as upstream_url
from proxy.errors import ChaperoneError, InvalidRequest
from proxy.handlers import REQUEST_ID
from proxy.passthrough import RealtimeConfig
from proxy.runtime import RUNTIME

if TYPE_CHECKING:
    from proxy.runtime import Active, Runtime

__all__ = ["STATS", "RealtimeConfig", "RealtimeStats", "realtime", "upstream_url"]

log = logging.getLogger(__name__)

INSECURE_KEY_PROTOCOL = "openai-insecure-api-key."
_CLOSE_S = 2.0  # longest wait for the other side's close frame; the close frame itself is sent at once
_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes, two of them the code
# Codes that may not appear in a close frame (RFC 6455 §7.4): "no code", "abnormal", "TLS failure".
_UNSENDABLE = frozenset({1004, 1005, 1006, 1015})


@dataclass(slots=True)
class RealtimeStats:
    """Counters over every session of this process (``up``: client to upstream, ``down``: back)."""

    opened: int = 0
    refused: int = 0  # refused before the upgrade (key, rule, model, upstream)
    active: int = 0
    closed: collections.Counter[int] = field(default_factory=collections.Counter)  # by the code the client got
    frames_up: int = 0
    frames_down: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


STATS = web.AppKey("realtime_stats", RealtimeStats)


@dataclass(frozen=True, slots=True)
class _End:
    """How a session ends: the code (and reason) each side is closed with, and who ended it."""

    client_code: int
    upstream_code: int
    reason: str
    by: str  # "client", "upstream", "limit", "idle", "shutdown", "error"


_SHUTDOWN = _End(WSCloseCode.GOING_AWAY, WSCloseCode.GOING_AWAY, "the gateway is shutting down", "shutdown")
_CLIENT_GONE = _End(WSCloseCode.GOING_AWAY, WSCloseCode.GOING_AWAY, "the client went away", "client")
_UPSTREAM_GONE = _End(
    WSCloseCode.INTERNAL_ERROR, WSCloseCode.GOING_AWAY, "the upstream connection was lost", "upstream"
)
_INTERNAL = _End(WSCloseCode.INTERNAL_ERROR, WSCloseCode.GOING_AWAY, "internal error in the gateway", "error")


class _ClientSocket(web.WebSocketResponse[Literal[False]]):
    """The client's socket; aiohttp closes it itself on an oversized frame, and this adds the reason."""

    too_big = b""

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            message = self.too_big
        return await super().close(code=code, message=message, drain=drain)


Socket = web.WebSocketResponse[Literal[False]] | aiohttp.ClientWebSocketResponse[Literal[False]]


# ---- the handler --------------------------------------------------------------------------


async def realtime(request: web.Request) -> web.StreamResponse:
    """``GET /v1/realtime``: check the caller, open the upstream socket, then upgrade and relay."""
    runtime = request.app[RUNTIME]
    stats = request.app[STATS]
    offered = _offered_protocols(request.headers)
    if not web.WebSocketResponse(protocols=offered).can_prepare(request):  # offered: aiohttp logs a mismatch
        stats.refused += 1
        raise InvalidRequest(
            "GET /v1/realtime is the Realtime API's WebSocket: connect with a WebSocket client "
            "(Upgrade: websocket, Sec-WebSocket-Version: 13).",
            code="websocket_required",
        )
    active = runtime.acquire()
    try:
        try:
            session = await _open(request, active, offered, request[REQUEST_ID])
        except ChaperoneError:
            stats.refused += 1
            raise
        return await session.serve(request, runtime, stats)
    finally:
        runtime.release(active)


def _offered_protocols(headers: Mapping[str, str]) -> tuple[str, ...]:
    # The first header only, as aiohttp's handshake reads it: both must agree on what was offered.
    raw = headers.get("Sec-WebSocket-Protocol", "")
    return tuple(p for p in (part.strip() for part in raw.split(",")) if p)


async def _open(request: web.Request, active: Active, offered: tuple[str, ...], request_id: str) -> _Session:
    """Authenticate, apply the rules, route the model and connect upstream; raises the JSON refusals."""
    policy = active.policy
    key = next((p.removeprefix(INSECURE_KEY_PROTOCOL) for p in offered if p.startswith(INSECURE_KEY_PROTOCOL)), None)
    authorization = request.headers.get("Authorization") or (f"Bearer {key}" if key else None)
    caller = await active.authenticate(authorization)
    policy.passthrough_for(caller).check("WS", "/realtime")
    model = request.query.get("model")
    if not model:
        raise InvalidRequest(
            "Name the model in the URL: /v1/realtime?model=<model>.", param="model", code="missing_model"
        )
    route = policy.route_for(model)
    caller.check_model(model)
    config: RealtimeConfig = policy.realtime
    options = WebSocketOptions(
        query=request.query,
        upstream_model=route.upstream_model,
        headers=_passed_headers(request.headers, request_id),
        authorization=caller.authorization,
        protocols=tuple(p for p in offered if not p.startswith(INSECURE_KEY_PROTOCOL)),
        max_msg_size=config.max_frame_bytes + 1,  # aiohttp refuses a message of max_msg_size bytes or more
        close_timeout_s=_CLOSE_S,
    )
    upstream = await active.backends[route.backend].open_websocket(options)
    client = _ClientSocket(
        protocols=_answer(offered, upstream.protocol),
        max_msg_size=config.max_frame_bytes + 1,  # aiohttp refuses a message of max_msg_size bytes or more
        decode_text=False,  # text frames pass as bytes: no decoding and encoding again
        timeout=_CLOSE_S,
    )
    client.too_big = _too_big("client", config).encode()
    client.headers["x-request-id"] = request_id
    return _Session(request_id, caller.name, model, client, upstream, config)


def _passed_headers(client: Mapping[str, str], request_id: str) -> dict[str, str]:
    """What travels upstream from the client's handshake (credentials are the backend's rule, not ours)."""
    headers = {}
    beta = client.get("OpenAI-Beta")
    if beta:
        headers["openai-beta"] = beta
    headers["x-request-id"] = request_id
    return headers


def _answer(offered: tuple[str, ...], chosen: str | None) -> tuple[str, ...]:
    """The subprotocol to answer: the upstream's choice, else one the client offered (browsers insist on one)."""
    if chosen:
        return (chosen,)
    plain = [p for p in offered if not p.startswith(INSECURE_KEY_PROTOCOL)]
    return tuple((plain or list(offered))[:1])


def _too_big(side: str, config: RealtimeConfig) -> str:
    return f"message too big: the {side} sent a frame over realtime.max_frame_bytes ({config.max_frame_bytes} bytes)"


def _sendable(code: int | None) -> int:
    if code is None or code < 1000 or code >= 5000 or code in _UNSENDABLE:
        return WSCloseCode.OK
    return code


def _reason(text: str) -> bytes:
    return text.encode()[:_REASON_BYTES].decode(errors="ignore").encode()


# ---- the session --------------------------------------------------------------------------


class _Session:
    """One relayed session: two pumps, the idle watch, and the close of both sides."""

    runtime: Runtime  # set by serve, with the process's counters
    stats: RealtimeStats

    def __init__(
        self,
        request_id: str,
        key_name: str | None,
        model: str,
        client: _ClientSocket,
        upstream: aiohttp.ClientWebSocketResponse[Literal[False]],
        config: RealtimeConfig,
    ) -> None:
        self.request_id = request_id
        self.key_name = key_name
        self.model = model
        self.client = client
        self.upstream = upstream
        self.config = config
        self.frames = [0, 0]  # up, down
        self.last = 0.0  # loop time of the last frame either way

    async def serve(self, request: web.Request, runtime: Runtime, stats: RealtimeStats) -> web.StreamResponse:
        self.stats, self.runtime = stats, runtime
        try:
            await self.client.prepare(request)
        except BaseException:
            await _shielded(self.upstream.close(code=WSCloseCode.GOING_AWAY, message=b"the client went away"))
            raise
        task = asyncio.current_task()
        assert task is not None
        runtime.streams.add(task)  # cancelled at the end of the shutdown grace period, like a stream
        try:
            await self._relay()
        finally:
            runtime.streams.discard(task)
        return self.client

    async def _relay(self) -> None:
        loop = asyncio.get_running_loop()
        started, self.last = time.monotonic(), loop.time()
        self.stats.opened += 1
        self.stats.active += 1
        pumps = (
            asyncio.create_task(self._pump(self.client, self.upstream, True), name="chaperone-realtime-up"),
            asyncio.create_task(self._pump(self.upstream, self.client, False), name="chaperone-realtime-down"),
        )
        try:
            end = await self._watch(pumps)
        except asyncio.CancelledError:  # the shutdown grace period ran out, or aiohttp saw the client go
            end = _first_end(pumps) or (_SHUTDOWN if self.runtime.stopping else _CLIENT_GONE)
            await _shielded(self._finish(end, pumps, started))
            raise
        except Exception:
            log.exception("realtime session failed (request_id=%s)", self.request_id)
            end = _INTERNAL
        await _shielded(self._finish(end, pumps, started))

    async def _watch(self, pumps: tuple[asyncio.Task[_End], ...]) -> _End:
        """The first pump's end, or the idle end when no frame passed for ``idle_timeout_s``."""
        loop, idle = asyncio.get_running_loop(), self.config.idle_timeout_s
        while True:
            remaining = self.last + idle - loop.time()
            if remaining <= 0:
                reason = f"idle for {idle:g} s (realtime.idle_timeout_s)"
                return _End(WSCloseCode.OK, WSCloseCode.OK, reason, "idle")
            done, _ = await asyncio.wait(pumps, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if done:
                return next(task for task in pumps if task in done).result()

    async def _pump(self, src: Socket, dst: Socket, up: bool) -> _End:
        """Relay ``src``'s frames to ``dst`` one at a time (``dst``'s backpressure holds ``src``) until an end."""
        loop, stats, index = asyncio.get_running_loop(), self.stats, 0 if up else 1
        frames = self.frames
        while True:
            msg = await src.receive()
            kind = msg.type
            if kind is not WSMsgType.TEXT and kind is not WSMsgType.BINARY:
                return self._ended(msg.type, msg.data, msg.extra, up)
            data: bytes = msg.data
            self.last = loop.time()
            try:
                await dst.send_frame(data, kind)
            except (ConnectionError, aiohttp.ClientError):
                return _UPSTREAM_GONE if up else _CLIENT_GONE
            frames[index] += 1
            if up:
                stats.frames_up += 1
                stats.bytes_up += len(data)
            else:
                stats.frames_down += 1
                stats.bytes_down += len(data)

    def _ended(self, kind: WSMsgType, data: Any, extra: str | None, up: bool) -> _End:
        side = "client" if up else "upstream"
        if kind is WSMsgType.CLOSE:
            code = _sendable(data)
            return _End(code, code, extra or "", side)
        if kind is WSMsgType.ERROR:
            if isinstance(data, aiohttp.WebSocketError) and data.code == WSCloseCode.MESSAGE_TOO_BIG:
                return _End(
                    WSCloseCode.MESSAGE_TOO_BIG, WSCloseCode.MESSAGE_TOO_BIG, _too_big(side, self.config), "limit"
                )
            log.info("realtime %s socket failed (request_id=%s): %s", side, self.request_id, data)
        return _CLIENT_GONE if up else _UPSTREAM_GONE  # CLOSED, CLOSING: the connection dropped

    async def _finish(self, end: _End, pumps: tuple[asyncio.Task[_End], ...], started: float) -> None:
        """Close both sides (bounded), end the pumps, count and log the session."""
        reason = _reason(end.reason)
        try:
            async with asyncio.timeout(_CLOSE_S):
                await asyncio.gather(
                    self.client.close(code=end.client_code, message=reason),
                    self.upstream.close(code=end.upstream_code, message=reason),
                    return_exceptions=True,
                )
        except TimeoutError:
            pass
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        stats = self.stats
        stats.active -= 1
        stats.closed[end.client_code] += 1
        log.info(
            "realtime session ended (request_id=%s key=%s model=%s duration=%.3fs close=%d by=%s frames=%d/%d)",
            self.request_id, self.key_name or "-", self.model, time.monotonic() - started,
            end.client_code, end.by, self.frames[0], self.frames[1],
        )  # fmt: skip


def _first_end(pumps: tuple[asyncio.Task[_End], ...]) -> _End | None:
    for task in pumps:
        if task.done() and not task.cancelled() and task.exception() is None:
            return task.result()
    return None


async def _shielded(coro: Coroutine[Any, Any, object]) -> None:
    """Run ``coro`` to its end even if the caller is cancelled meanwhile (then re-raise the cancel)."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
