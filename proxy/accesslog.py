"""The structured access log: one JSON line per API request, to the ``chaperone.access`` logger.

``CHAPERONE_ACCESS_LOG=stdout|stderr|off|/path/to/file`` (default off). Lines are collected in
memory and a thread writes them every 0.1 s, one write per batch, so a slow disk or pipe never
blocks the event loop and a line costs no thread wake-up; a file is opened with
``WatchedFileHandler`` (logrotate-friendly). Handlers others add to the logger get every line too.

A line holds who asked (key name and id, never the key), what for (endpoint, model, route, backend,
upstream model), how it went (status, latency, TTFT, tokens, cost, cache state, plugin verdicts,
error code), and never prompt or answer text, unless the policy says ``access_log: {include_prompts:
true}``: then the prompts are logged as the model saw them, i.e. after the chain's masking.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
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


class _Batch(logging.Handler):
    """Collects access lines; a thread hands them to ``sink`` in batches (one wake-up per batch, not per line)."""

    def __init__(self, sink: logging.Handler, interval_s: float = 0.1) -> None:
        super().__init__()
        self.sink = sink
        self.interval_s = interval_s
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaperone-access-log", daemon=True)

    def emit(self, record: logging.LogRecord) -> None:
        self.add(record.getMessage())

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._flush()
        self.sink.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:  # one record for the batch: the sink writes it (and reopens a rotated file) at once
            self.sink.handle(logging.makeLogRecord({"msg": "\n".join(lines), "levelno": logging.INFO}))


class AccessLog:
    """Writes access lines to ``chaperone.access``; a thread writes them out in batches (``start``/``stop``)."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.logger = logging.getLogger(LOGGER_NAME)
        self.worker = os.environ.get("CHAPERONE_WORKER")
        self._batch: _Batch | None = None

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
        self._batch = _Batch(sink)
        self._batch.start()
        self.logger.addHandler(self._batch)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # access lines are not application logs

    def stop(self) -> None:
        if self._batch is not None:
            self.logger.removeHandler(self._batch)
            self._batch.stop()  # writes what is left, then closes the sink
            self._batch = None

    def _emit(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record).decode()
        handlers = self.logger.handlers
        batch = self._batch
        if batch is not None and len(handlers) == 1 and handlers[0] is batch:
            batch.add(line)  # nobody else listens: skip building a LogRecord
        else:
            self.logger.info(line)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self.start()
        yield
        self.stop()

    def write(self, exchange: Exchange, status: int, code: str | None, now: float) -> None:
        self._emit(line(exchange, status, code, now, self.worker))

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
        self._emit(record)


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
