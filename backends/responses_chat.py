"""The OpenAI Responses API spoken over chat completions, for backends that know only chat (vLLM, TGI, llama.cpp,
Ollama, the bundled mock).

Pure functions, no I/O: ``to_chat`` turns a Responses request into a chat body (refusing, with a 400 naming the
param, what chat cannot carry), ``from_chat`` turns the chat answer into a Response object, and
``ChatToResponsesStream`` turns a chat chunk stream into Responses stream events; ``encode_event`` frames one
event for the wire. ``previous_response_id`` is expanded by the caller before ``to_chat`` runs.
"""

from __future__ import annotations

from typing import Any

import orjson

from backends._responses.request import to_chat, unsupported
from backends._responses.response import from_chat, new_id
from backends._responses.stream import ChatToResponsesStream

__all__ = ["ChatToResponsesStream", "encode_event", "from_chat", "new_id", "to_chat", "unsupported"]


def encode_event(event: dict[str, Any]) -> bytes:
    """One Responses stream event as server-sent-event bytes: ``event: <type>`` then ``data: <json>``."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
