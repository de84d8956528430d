"""The text the model sees: where model-visible text lives in each endpoint's request, answer and stream.

Guards, token counting and caching need "every text the model will read" and "every text it wrote",
whatever the endpoint. This package is the one place that knows the JSON shapes; plugins read and
replace texts through ``TextRef`` objects and never walk endpoint JSON themselves. Endpoints:
``chat``, ``completions``, ``embeddings`` (``proxy.textview.chat``), ``responses`` (the OpenAI
Responses API, ``proxy.textview.responses``) and ``messages`` (Anthropic Messages,
``proxy.textview.messages``); each module's docstring lists the fields it covers.

Reading and replacing:
  ``request_texts(request)``, ``response_texts(endpoint, body)``, ``chunk_texts(endpoint, chunk)`` give
  ``TextRef``s; ``ref.set(new)`` writes a text back in place. In a stream, a ref with a ``stream_key``
  is one piece of a growing text (a delta); a ref without one is a whole text (a ``*.done`` event, a
  completed response repeated in the stream's last event).

Adding operator text: ``add_instruction(request, text)`` puts a system-level instruction before the
request's own (a chat system message, the Responses ``instructions``, the Messages ``system``).

Holding text back in a stream (a plugin that must see more of a text before it can pass it on):
  ``chunk_ends(endpoint, chunk)`` says which growing texts are complete once ``chunk`` arrives, as
  key prefixes (``()`` all, ``(i,)`` everything of choice/item/block ``i``, or a whole key); release
  held text for them with ``append_text`` (into ``chunk`` itself, where its shape can carry it) or,
  when that returns False, as a ``delta_chunk`` sent before ``chunk``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxy.textview import chat, messages, responses
from proxy.textview.base import TRUST_OF_ROLE, StreamKey, TextRef

if TYPE_CHECKING:
    from proxy.exchange import ApiRequest

__all__ = [
    "TRUST_OF_ROLE",
    "StreamKey",
    "TextRef",
    "add_instruction",
    "append_text",
    "chunk_ends",
    "chunk_texts",
    "delta_chunk",
    "key_matches",
    "request_texts",
    "response_texts",
]

KeyPrefix = tuple[int | str | None, ...]


def request_texts(request: ApiRequest) -> list[TextRef]:
    """Every text the model will read in ``request``, in body order."""
    endpoint = request.endpoint
    if endpoint == "responses":
        return responses.request_texts(request.body)
    if endpoint == "messages":
        return messages.request_texts(request.body)
    return chat.request_texts(endpoint, request.body)


def response_texts(endpoint: str, body: dict[str, Any]) -> list[TextRef]:
    """Every text the model wrote in a whole answer (all choices, output items or content blocks)."""
    if endpoint == "responses":
        return responses.response_texts(body)
    if endpoint == "messages":
        return messages.response_texts(body)
    return chat.response_texts(endpoint, body)


def chunk_texts(endpoint: str, chunk: dict[str, Any]) -> list[TextRef]:
    """Every text in one parsed stream chunk or event; ``stream_key`` names the growing text a delta extends."""
    if endpoint == "responses":
        return responses.chunk_texts(chunk)
    if endpoint == "messages":
        return messages.chunk_texts(chunk)
    return chat.chunk_texts(endpoint, chunk)


def chunk_ends(endpoint: str, chunk: dict[str, Any]) -> list[KeyPrefix]:
    """Key prefixes of the growing texts that are complete once ``chunk`` arrives (see ``key_matches``)."""
    if endpoint == "responses":
        return responses.chunk_ends(chunk)
    if endpoint == "messages":
        return messages.chunk_ends(chunk)
    return chat.chunk_ends(chunk)


def key_matches(key: StreamKey, ends: list[KeyPrefix]) -> bool:
    """Whether the growing text ``key`` is among ``ends`` (as ``chunk_ends`` returned them)."""
    return any(key[: len(prefix)] == prefix for prefix in ends)


def append_text(endpoint: str, chunk: dict[str, Any], key: StreamKey, text: str) -> bool:
    """Add ``text`` to growing text ``key`` inside ``chunk`` after its own piece; False where it cannot carry it."""
    if endpoint in ("chat", "completions"):
        return chat.append_text(endpoint, chunk, key, text)
    return False  # a Responses *.done or a Messages content_block_stop carries no delta


def delta_chunk(endpoint: str, key: StreamKey, text: str, like: dict[str, Any]) -> dict[str, Any]:
    """A new chunk carrying only ``text`` for growing text ``key``; ``like`` is the last chunk that extended it."""
    if endpoint == "responses":
        return responses.delta_chunk(key, text, like)
    if endpoint == "messages":
        return messages.delta_chunk(key, text, like)
    return chat.delta_chunk(endpoint, key, text, like)


def add_instruction(request: ApiRequest, text: str) -> bool:
    """Put ``text`` first among the request's system-level instructions; False where the endpoint has none."""
    body = request.body
    if request.endpoint == "chat" and isinstance(body.get("messages"), list):
        body["messages"].insert(0, {"role": "system", "content": text})
    elif request.endpoint == "responses":
        own = body.get("instructions")
        body["instructions"] = f"{text}\n\n{own}" if isinstance(own, str) and own else text
    elif request.endpoint == "messages":
        own = body.get("system")
        if isinstance(own, list):
            own.insert(0, {"type": "text", "text": text})
        else:
            body["system"] = f"{text}\n\n{own}" if isinstance(own, str) and own else text
    else:
        return False
    return True
