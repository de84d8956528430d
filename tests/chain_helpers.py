"""Helpers for running a compiled chain without a network: a stub terminal, an exchange builder, SSE parsing."""

from __future__ import annotations

import copy
import json
import socket
import textwrap
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proxy import tokens
from proxy.exchange import ApiRequest, ApiResponse, Exchange
from proxy.policy import Policy, compile_policy_text
from proxy.registry import PluginRegistry

if TYPE_CHECKING:
    import pytest

CHAT_OK: dict[str, Any] = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "created": 0,
    "model": "stub",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "stub"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}

Handler = Callable[[Exchange], "ApiResponse | dict[str, Any]"]


class StubBackend:
    """An in-process terminal for ``Chain.run``: records each request body, answers through ``handler``.

    ``handler`` may return an ``ApiResponse`` or a JSON dict (sent with status 200), or raise.
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler = handler or (lambda exchange: copy.deepcopy(CHAT_OK))
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, exchange: Exchange) -> ApiResponse:
        self.calls.append(copy.deepcopy(exchange.request.body))
        result = self.handler(exchange)
        return result if isinstance(result, ApiResponse) else ApiResponse(200, body=result)


def counting_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on ``proxy.tokens.count_request_sync``: the ids of the threads each count ran on, in order."""
    threads: list[int] = []
    real = tokens.count_request_sync

    def spy(endpoint: str, body: dict[str, Any]) -> tokens.TokenCount:
        threads.append(threading.get_ident())
        return real(endpoint, body)

    monkeypatch.setattr(tokens, "count_request_sync", spy)
    return threads


def policy_text(chain: str, extra: str = "") -> str:
    """A policy with one never-contacted backend and ``chain`` (flow-style YAML) as the default chain."""
    return textwrap.dedent(
        f"""
        backends:
          stub: {{url: "http://127.0.0.1:9/v1"}}
        models:
          "*": {{backend: stub}}
        chains:
          default: {chain}
        """
    ) + textwrap.dedent(extra)


def compile_chain_policy(chain: str, registry: PluginRegistry, extra: str = "") -> Policy:
    return compile_policy_text(policy_text(chain, extra), registry, env={})


def make_exchange(
    policy: Policy,
    body: dict[str, Any] | None = None,
    *,
    endpoint: str = "chat",
    path: str = "/chat/completions",
    headers: dict[str, str] | None = None,
    authorization: str | None = None,
) -> Exchange:
    """An exchange as the server would build it for ``body`` (default: one user message to model ``m``)."""
    body = body if body is not None else {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    caller = policy.authenticate(authorization)
    return Exchange(
        request_id="req-test",
        policy=policy,
        chain=caller.chain,
        route=policy.route_for(str(body.get("model", ""))),
        request=ApiRequest(endpoint, path, body, dict(headers or {})),
        caller=caller,
        deadline=time.monotonic() + 60,
    )


def sse_data(raw: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded (``[DONE]`` kept as the string)."""
    out: list[Any] = []
    for event in raw.split(b"\n\n"):
        lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
        if lines:
            payload = b"\n".join(lines)
            out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


def closed_port_url() -> str:
    """A loopback base URL on a port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
