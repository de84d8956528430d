"""The structured access log: one JSON line per API request, to the ``chaperone.access`` logger.

``CHAPERONE_ACCESS_LOG=stdout|off|/path/to/file`` (default off). Lines go through a
``QueueHandler`` to a ``QueueListener`` thread that writes them, so a slow disk or pipe never
blocks the event loop; a file is opened with ``WatchedFileHandler`` (logrotate-friendly).

A line holds who asked (key name and id, never the key), what for (endpoint, model, route, backend,
upstream model), how it went (status, latency, TTFT, tokens, cost, cache state, plugin verdicts,
error code), and never prompt or answer text, unless the policy says ``access_log: {include_prompts:
true}``: then the prompts are logged as the model saw them, i.e. after the chain's masking.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import sys
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from proxy.exchange import Exchange, Usage
from proxy.metrics import FIRST_EVENT
from proxy.textview import request_texts

if TYPE_CHECKING:
    from aiohttp import web

LOGGER_NAME = "chaperone.access"


class AccessLogConfig(BaseModel):
    """The policy's ``access_log:`` section (where lines go is process configuration: CHAPERONE_ACCESS_LOG)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    include_prompts: bool = Field(
        default=False,
        description="Also log the prompt texts, as the model saw them (after PII masking). Off: never any prompt text.",
    )


class AccessLog:
    """Writes access lines to ``chaperone.access`` through a queue; ``start``/``stop`` run the writer thread."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.logger = logging.getLogger(LOGGER_NAME)
        self.worker = os.environ.get("CHAPERONE_WORKER")
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._handler = logging.handlers.QueueHandler(self._queue)
        self._listener: logging.handlers.QueueListener | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AccessLog | None:
        """From CHAPERONE_ACCESS_LOG: ``stdout``, ``stderr``, a file path, or ``off`` (the default) → None."""
        env = os.environ if env is None else env
        value = (env.get("CHAPERONE_ACCESS_LOG") or "off").strip()
        if value.lower() in ("off", "none", "0", "false", ""):
            return None
        return cls(value)

    def _sink(self) -> logging.Handler:
        if self.destination.lower() == "stdout":
            return logging.StreamHandler(sys.stdout)
        if self.destination.lower() == "stderr":
            return logging.StreamHandler(sys.stderr)
        return logging.handlers.WatchedFileHandler(os.path.expanduser(self.destination), encoding="utf-8")

    def start(self) -> None:
        sink = self._sink()
        sink.setFormatter(logging.Formatter("%(message)s"))
        self._listener = logging.handlers.QueueListener(self._queue, sink)
        self._listener.start()
        self.logger.addHandler(self._handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # access lines are not application logs

    def stop(self) -> None:
        self.logger.removeHandler(self._handler)
        if self._listener is not None:
            self._listener.stop()  # writes what is queued, then ends the thread
            for handler in self._listener.handlers:
                handler.close()
            self._listener = None

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self.start()
        yield
        self.stop()

    def write(self, exchange: Exchange, status: int, code: str | None, now: float) -> None:
        self.logger.info(orjson.dumps(line(exchange, status, code, now, self.worker)).decode())

    def refused(self, request_id: str, endpoint: str, status: int, code: str | None, seconds: float) -> None:
        record: dict[str, Any] = {
            "time": _now(),
            "id": request_id,
            "endpoint": endpoint,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "error": code,
        }
        if self.worker is not None:
            record["worker"] = self.worker
        self.logger.info(orjson.dumps(record).decode())


def line(exchange: Exchange, status: int, code: str | None, now: float, worker: str | None = None) -> dict[str, Any]:
    """The access record of a finished request (no prompt text unless the policy opted in)."""
    route, caller, usage = exchange.route, exchange.caller, exchange.usage
    last = exchange.attempts[-1] if exchange.attempts else None
    first = exchange.stash.get(FIRST_EVENT)
    record: dict[str, Any] = {
        "time": _now(),
        "id": exchange.request_id,
        "key": caller.name,
        "key_id": caller.key_id,
        "endpoint": exchange.request.endpoint,
        "model": exchange.request.model,
        "route": route.name,
        "backend": last.backend if last is not None else route.backend,
        "upstream_model": exchange.response_model or (last.model if last is not None else route.upstream_model),
        "stream": exchange.request.stream,
        "status": status,
        "latency_ms": round((now - exchange.started) * 1000, 3),
        "ttft_ms": round((first - exchange.started) * 1000, 3) if first is not None else None,
        "tokens": _tokens(usage) if usage is not None else None,
        "cost_usd": exchange.cost_usd,
        "cache": exchange.verdicts.get("cache"),
        "verdicts": exchange.verdicts,
        "attempts": len(exchange.attempts),
        "error": code,
    }
    if worker is not None:
        record["worker"] = worker
    if exchange.policy.access_log.include_prompts:
        record["prompts"] = [{"role": ref.role, "text": ref.text} for ref in request_texts(exchange.request)]
    return record


def _tokens(usage: Usage) -> dict[str, int]:
    return {
        "input": usage.prompt_tokens,
        "output": usage.completion_tokens,
        "total": usage.total_tokens,
        "cached": usage.cached_tokens,
        "reasoning": usage.reasoning_tokens,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
