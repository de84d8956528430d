"""Upstream Anthropic (``type: anthropic``): the Messages API behind the OpenAI-compatible ``Backend``.

A policy backend ``{type: anthropic, api_key: ${ANTHROPIC_API_KEY}}`` (``url`` defaults to
https://api.anthropic.com, the root as the anthropic SDK names it; a trailing ``/v1`` is accepted) serves:

- chat completions (and so the Responses API, which ``backends.adapters`` turns into chat first),
  translated to ``POST /v1/messages`` and back, whole or streamed, tool calls both ways
  (``backends/_anthropic/``: request, response, stream);
- ``POST /v1/messages`` from Anthropic clients, passed as it is (the chain still runs on it), with the
  stream's usage completed so cost and budgets count input tokens too.

The key goes as ``x-api-key`` (the backend's, or in open mode the caller's own bearer token), with
``anthropic-version: 2023-06-01`` unless the client or ``headers:`` sets another; a native client's
``anthropic-beta`` passes. Errors come back OpenAI-shaped on chat (529 → 503), Anthropic-shaped on
``/v1/messages``. ``probe`` asks ``GET /v1/models``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from backends._anthropic.request import to_messages
from backends._anthropic.response import chat_error, to_chat_completion
from backends._anthropic.stream import MessagesToChat, MessagesUsage
from backends.adapters import Translator
from backends.provider import Encoder, ProviderBackend
from proxy.errors import UpstreamError, UpstreamStatus
from proxy.messages_api import encode_event

if TYPE_CHECKING:
    from proxy.policyfile import BackendConfig

__all__ = ["ANTHROPIC", "API_VERSION", "AnthropicBackend", "AnthropicDialect"]

API_VERSION = "2023-06-01"
_PASSED = ("anthropic-version", "anthropic-beta")


class AnthropicDialect:
    """The Messages API as a ``backends.provider.Dialect``."""

    name = "Anthropic Messages"
    default_url = "https://api.anthropic.com"
    native = frozenset({"messages"})

    def path(self, endpoint: str, body: dict[str, Any]) -> str:
        return "/messages"

    def headers(self, api_key: str | None, client: Mapping[str, str]) -> dict[str, str]:
        headers = {k: v for k, v in client.items() if k in _PASSED}
        headers.setdefault("anthropic-version", API_VERSION)
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def to_provider(self, chat: dict[str, Any]) -> dict[str, Any]:
        return to_messages(chat)

    def to_chat(self, answer: dict[str, Any]) -> dict[str, Any]:
        return to_chat_completion(answer)

    def chat_stream(self, chat: dict[str, Any], backend: str) -> Translator:
        return MessagesToChat(chat, backend)

    def native_stream(self, endpoint: str) -> tuple[Translator, Encoder] | None:
        return MessagesUsage(), encode_event

    def error(self, status: int, body: bytes, headers: Mapping[str, str], *, native: bool) -> UpstreamError:
        if native:  # a Messages client reads Anthropic's own error (``proxy.messages_api.error_body``)
            retry = {k.lower(): v for k, v in headers.items() if k.lower() == "retry-after"}
            return UpstreamStatus(status, body, retry)
        return chat_error(status, body, headers)


ANTHROPIC = AnthropicDialect()


class AnthropicBackend(ProviderBackend):
    """``type: anthropic``: one Anthropic API root with its own pool, key and timeouts."""

    def __init__(self, name: str, config: BackendConfig, url: str | None = None) -> None:
        root = (url or config.url or ANTHROPIC.default_url).rstrip("/").removesuffix("/v1")
        super().__init__(name, config, root + "/v1", ANTHROPIC)
