"""Translate between Anthropic's Messages API and OpenAI chat completions, for chat-only backends.

Pure functions, no I/O: the HTTP layer (``/v1/messages``) validates with ``proxy.messages_api``, calls
``to_chat`` on the way in, then ``from_chat`` for a whole answer or a ``ChatToMessagesStream`` per
streamed answer on the way out. Where the APIs differ, the choices are documented in
``proxy/messages_chat.py`` (requests) and ``backends/_messages/response.py`` (answers).
"""

from __future__ import annotations

from backends._messages.response import (
    RAW_ARGUMENTS_KEY,
    ChatToMessagesStream,
    encode_event,
    error_object,
    error_type,
    from_chat,
)
from proxy.messages_chat import TOOL_ERROR_PREFIX, to_chat

__all__ = [
    "RAW_ARGUMENTS_KEY",
    "TOOL_ERROR_PREFIX",
    "ChatToMessagesStream",
    "encode_event",
    "error_object",
    "error_type",
    "from_chat",
    "to_chat",
]
