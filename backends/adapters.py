"""API adapters at the backend: the Responses API and Anthropic Messages on backends that speak only chat.

The chain sees every request and answer in the shape the client used (``exchange.request.endpoint``
``responses`` or ``messages``); here, innermost, a request is sent as it is to a backend that speaks
that API natively, or translated to chat completions (``backends.responses_chat``,
``backends.messages_chat``) and its answer — whole or streamed, event by event — translated back.

Stored responses (``proxy.conversations``) are written here too, so what is kept is the answer as the
model gave it, before any response hook (``pii`` restoring originals) ran; a streamed answer is kept
when its ``response.completed`` event passes, before the client receives that event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from backends import messages_chat, responses_chat
from proxy import sse
from proxy.conversations import EXPANDED
from proxy.errors import ChaperoneError
from proxy.exchange import ApiRequest, ApiResponse, Exchange

if TYPE_CHECKING:
    from backends.base import Backend
    from proxy.conversations import Conversations

log = logging.getLogger(__name__)


class Translator(Protocol):
    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]: ...

    def finish(self) -> list[dict[str, Any]]: ...


def _chat_request(exchange: Exchange, body: dict[str, Any]) -> ApiRequest:
    return ApiRequest("chat", "/chat/completions", body, exchange.request.headers)


async def send_responses(backend: Backend, exchange: Exchange, conversations: Conversations | None) -> ApiResponse:
    """One Responses API attempt on ``backend``: forwarded, or translated to chat; stored when asked."""
    body = exchange.request.body
    store = conversations is not None and body.get("store", True) is not False
    if backend.speaks("responses"):
        request = exchange.request
        if EXPANDED in exchange.stash:  # the context is in ``input`` now; the upstream never saw that id
            request = ApiRequest("responses", "/responses", dict(body), request.headers)
            request.body.pop("previous_response_id", None)
        response = await backend.send(exchange, request)
        if response.stream is None:
            if store and conversations is not None:
                await _save(conversations, exchange, response.json())
            return response
        if store and conversations is not None:
            response.stream = _storing(response.stream, conversations, exchange)
        return response
    chat = responses_chat.to_chat(body, backend=backend.name)
    response_id = responses_chat.new_id("resp")
    created = int(time.time())
    answer = await backend.send(exchange, _chat_request(exchange, chat))
    if answer.stream is None:
        result = responses_chat.from_chat(answer.json(), body, response_id=response_id, created_at=created)
        result["completed_at"] = int(time.time())
        if store and conversations is not None:
            await _save(conversations, exchange, result)
        return ApiResponse(answer.status, body=result, headers=answer.headers)
    translator = responses_chat.ChatToResponsesStream(body, response_id=response_id, created_at=created)
    stream = translate_stream(answer.stream, translator, responses_chat.encode_event)
    if store and conversations is not None:
        stream = _storing(stream, conversations, exchange)
    return ApiResponse(answer.status, stream=stream, headers=answer.headers)


async def send_messages(backend: Backend, exchange: Exchange) -> ApiResponse:
    """One Anthropic Messages attempt on ``backend``: sent as it is when it speaks Messages, else via chat."""
    if backend.speaks("messages"):
        return await backend.send(exchange)
    body = exchange.request.body
    chat = messages_chat.to_chat(body)
    message_id = responses_chat.new_id("msg")
    answer = await backend.send(exchange, _chat_request(exchange, chat))
    if answer.stream is None:
        result = messages_chat.from_chat(answer.json(), body, message_id=message_id)
        return ApiResponse(answer.status, body=result, headers=answer.headers)
    translator = messages_chat.ChatToMessagesStream(body, message_id=message_id)
    return ApiResponse(
        answer.status,
        stream=translate_stream(answer.stream, translator, messages_chat.encode_event),
        headers=answer.headers,
    )


async def translate_stream(
    upstream: AsyncIterator[bytes], translator: Translator, encode: Callable[[dict[str, Any]], bytes]
) -> AsyncIterator[bytes]:
    """One SSE API in, another's events out: one block per upstream read, as the chain expects.

    A translator may raise (an upstream ``error`` event): what it produced before that in the same
    read still goes out first, then the error.
    """
    cutter = sse.EventCutter()
    try:
        async for data in upstream:
            block = cutter.feed(data)
            if block:
                out, failure = _feed(translator, block, encode)
                if out:
                    yield out
                if failure is not None:
                    raise failure
        rest = cutter.rest()
        out, failure = _feed(translator, rest, encode) if rest else (b"", None)
        if out:
            yield out
        if failure is not None:
            raise failure
        tail = b"".join(encode(e) for e in translator.finish())
        if tail:
            yield tail
    finally:
        aclose = getattr(upstream, "aclose", None)
        if aclose is not None:
            await aclose()


def _feed(
    translator: Translator, block: bytes, encode: Callable[[dict[str, Any]], bytes]
) -> tuple[bytes, ChaperoneError | None]:
    events: list[bytes] = []
    for event in sse.split_events(block):
        chunk = sse.decode_data(event)
        if chunk is not None:
            try:
                events.extend(encode(e) for e in translator.feed(chunk))
            except ChaperoneError as exc:
                return b"".join(events), exc
    return b"".join(events), None


async def _storing(
    stream: AsyncIterator[bytes], conversations: Conversations, exchange: Exchange
) -> AsyncIterator[bytes]:
    """Pass a Responses stream through; keep its final response before its ``response.completed`` goes out."""
    cutter = sse.EventCutter()
    try:
        async for data in stream:
            block = cutter.feed(data)
            if b'"response.completed"' in block or b'"response.incomplete"' in block:
                for event in sse.split_events(block):
                    chunk = sse.decode_data(event)
                    if chunk and chunk.get("type") in ("response.completed", "response.incomplete"):
                        response = chunk.get("response")
                        if isinstance(response, dict):
                            await _save(conversations, exchange, response)
            if block:
                yield block
        rest = cutter.rest()
        if rest:
            yield rest
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def _save(conversations: Conversations, exchange: Exchange, response: dict[str, Any]) -> None:
    """Start keeping a response (in the background: the answer does not wait for the store).

    A store failure is logged and the answer still reaches the client; a response too large to keep
    is logged and not stored.
    """
    if response.get("status") not in ("completed", "incomplete"):
        return
    task = conversations.keep(
        exchange.caller, response, exchange.request.body.get("input"), exchange.stash.get(EXPANDED) or 0
    )
    if task is None:
        log.warning("response %s not stored: too large (request_id=%s)", response.get("id"), exchange.request_id)
