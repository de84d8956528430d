"""Upstream calls of an eval: the openai SDK against one base URL, a concurrency limit, a disk cache.

A call is cached by (base URL, model, request body, scorer) — ``scorer`` is ``"generate"`` for the
answer itself, ``judge#2`` for a judge's second repeat, and so on — so a re-run with the same data
and options makes no upstream call at all. Only successful answers are stored: an error (HTTP
status, connection failure, timeout) is never cached and is asked again next time.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


class CallFailed(Exception):
    """An upstream call that did not give an answer (after the SDK's own retries)."""


@dataclass(slots=True)
class Counters:
    calls: int = 0  # upstream calls made
    cached: int = 0  # answered from the cache
    errors: int = 0


def cache_key(base_url: str, endpoint: str, body: dict[str, Any], scorer: str) -> str:
    material = {"base_url": base_url.rstrip("/"), "endpoint": endpoint, "request": body, "scorer": scorer}
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class Caller:
    """Chat and legacy completions through one OpenAI-compatible URL, cached and bounded."""

    base_url: str
    api_key: str
    cache_dir: Path | None
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 2
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        import diskcache  # type: ignore[import-untyped]
        import openai

        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s, max_retries=self.max_retries
        )
        self._cache = diskcache.Cache(str(self.cache_dir)) if self.cache_dir is not None else None
        self._limit = asyncio.Semaphore(self.concurrency)

    async def close(self) -> None:
        await self._client.close()
        if self._cache is not None:
            self._cache.close()

    async def chat(self, body: dict[str, Any], scorer: str) -> dict[str, Any]:
        """The chat completion for ``body`` as a dict (``model`` and ``messages`` in it)."""
        return await self._cached("chat", body, scorer)

    async def completion(self, body: dict[str, Any], scorer: str) -> dict[str, Any]:
        """A legacy ``/completions`` answer as a dict (perplexity uses ``echo`` + ``logprobs``)."""
        return await self._cached("completions", body, scorer)

    async def _cached(self, endpoint: str, body: dict[str, Any], scorer: str) -> dict[str, Any]:
        key = cache_key(self.base_url, endpoint, body, scorer)
        if self._cache is not None:
            hit = await asyncio.to_thread(self._cache.get, key)
            if isinstance(hit, bytes):
                self.counters.cached += 1
                value: dict[str, Any] = orjson.loads(hit)
                return value
        async with self._limit:
            answer = await self._send(endpoint, body)
        if self._cache is not None:
            await asyncio.to_thread(self._cache.set, key, orjson.dumps(answer))
        return answer

    async def _send(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        import openai

        self.counters.calls += 1
        params = dict(body)
        try:
            if endpoint == "chat":
                response: Any = await self._client.chat.completions.create(**params)
            else:
                response = await self._client.completions.create(**params)
        except openai.APIStatusError as exc:
            self.counters.errors += 1
            raise CallFailed(f"HTTP {exc.status_code}: {_message(exc)}") from None
        except openai.APIError as exc:  # connection errors, timeouts
            self.counters.errors += 1
            raise CallFailed(f"{type(exc).__name__}: {exc}") from None
        dumped: dict[str, Any] = response.model_dump(mode="json", exclude_unset=False)
        return dumped


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(getattr(exc, "message", exc))


def answer_text(response: dict[str, Any]) -> str:
    """The first choice's text: its content, else its first tool call's arguments."""
    choices = response.get("choices") or []
    if not choices:
        raise CallFailed("the answer has no choices")
    message = choices[0].get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return content
    calls = message.get("tool_calls") or []
    if calls and isinstance(calls[0], dict):
        return str((calls[0].get("function") or {}).get("arguments") or "")
    return ""
