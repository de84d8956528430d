"""Where cost records go: a rotating JSON-lines file, stdout, and OpenTelemetry metrics.

The file and stdout are written by a ``logging.handlers.QueueListener`` thread, never on the event
loop: a record is one ``queue.put`` of its dict; encoding and writing happen in the thread. The file
rotates by size (``max_bytes``) and
keeps ``keep`` old files (``usage.jsonl.1`` … ``.N``), as ``RotatingFileHandler`` does. Rotation is
per process, so with ``chaperone serve --workers N`` each worker writes its own file: ``{worker}`` (its
index) or ``{pid}`` in the path, else ``.w<index>`` before the suffix (``cost.w0.jsonl``, ``cost.w1.jsonl``).

OpenTelemetry: counters ``chaperone.cost`` (USD) and ``chaperone.tokens`` (``{token}``, by
``gen_ai.token.type``), and a histogram ``chaperone.request.cost`` (USD per request), on the meter
provider given, else the global one when one is configured by the time the plugin starts. Without
either there is no sink at all: the API's default provider drops every point, and building each
record's attributes for it cost ~3 µs a request.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import metrics

from proxy.workers import WORKER_ENV

_TOKEN_TYPES = (
    ("input", "prompt_tokens"),
    ("cached_input", "cached_tokens"),
    ("output", "completion_tokens"),
    ("reasoning", "reasoning_tokens"),
)


class _Line(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return str(record.msg)


class _Listener(logging.handlers.QueueListener):
    """Takes record dicts off the queue and turns them into lines in its own thread, not on the event loop."""

    def prepare(self, record: Any) -> logging.LogRecord:
        when = record.get("time")
        if isinstance(when, int | float):
            record = {**record, "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")}
        line = orjson.dumps(record).decode()
        return logging.LogRecord("chaperone.cost", logging.INFO, "", 0, line, None, None)


def worker_path(path: Path) -> Path:
    """The file of this process: ``{pid}`` and ``{worker}`` replaced; a worker of ``serve --workers N`` whose
    path names neither gets ``<stem>.w<index><suffix>``, so no two processes rotate one file."""
    text = str(path)
    worker = os.environ.get(WORKER_ENV)
    if worker is not None and "{pid}" not in text and "{worker}" not in text:
        path = Path(text)
        text = str(path.with_name(f"{path.stem}.w{worker}{path.suffix}"))
    return Path(text.replace("{pid}", str(os.getpid())).replace("{worker}", worker or "0"))


class LineSinks:
    """JSON lines to a rotating file and/or stdout, written by one background thread."""

    def __init__(self, path: Path | None, *, max_bytes: int, keep: int, stdout: bool) -> None:
        handlers: list[logging.Handler] = []
        if path is not None:
            path = worker_path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(
                logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=keep, encoding="utf-8")
            )
        if stdout:
            handlers.append(logging.StreamHandler(sys.stdout))
        for handler in handlers:
            handler.setFormatter(_Line())
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._handlers = handlers
        self._listener = _Listener(self._queue, *handlers) if handlers else None
        if self._listener is not None:
            self._listener.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue ``record`` (a dict the caller no longer changes); the thread writes it as one JSON line."""
        if self._listener is not None:
            self._queue.put(record)

    def close(self) -> None:
        """Write what is queued, stop the thread, close the file."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        for handler in self._handlers:
            handler.close()


# What opentelemetry-api's get_meter_provider() returns while no application configured one: the proxy that
# forwards to a provider set later, or the explicit no-op. Neither exports anything.
_UNSET_PROVIDERS = frozenset({"_ProxyMeterProvider", "NoOpMeterProvider"})


class MeterSink:
    """Cost and tokens as OpenTelemetry metrics (no-op without a configured meter provider)."""

    @classmethod
    def configured(cls, provider: metrics.MeterProvider | None = None) -> MeterSink | None:
        """A sink on ``provider``, else on the global provider if one is set; None when neither would keep a point."""
        if provider is None:
            provider = metrics.get_meter_provider()
            if type(provider).__name__ in _UNSET_PROVIDERS:
                return None
        return cls(provider)

    def __init__(self, provider: metrics.MeterProvider | None = None) -> None:
        meter = (provider or metrics.get_meter_provider()).get_meter("chaperone.cost")
        self._cost = meter.create_counter("chaperone.cost", unit="USD", description="Money spent on upstream calls.")
        self._tokens = meter.create_counter("chaperone.tokens", unit="{token}", description="Tokens by type.")
        self._per_request = meter.create_histogram(
            "chaperone.request.cost", unit="USD", description="What one request cost."
        )

    def write(self, record: dict[str, Any]) -> None:
        attributes = {
            "gen_ai.request.model": record["model"],
            "gen_ai.response.model": record["upstream_model"] or record["model"],
            "chaperone.key": record["key"],
            "chaperone.backend": record["backend"],
            "chaperone.estimated": record["estimated"],
        }
        cost = record["cost_usd"]
        if cost is not None:
            self._cost.add(cost, attributes)
            self._per_request.record(cost, attributes)
        for kind, name in _TOKEN_TYPES:
            if record[name]:
                self._tokens.add(record[name], {**attributes, "gen_ai.token.type": kind})
