"""Per-app state of the mock backend: settings, the request log, ``fail_times`` counters, id counters."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .config import MockConfig
from .faults import FaultSpec

# Outcomes a request record can end with; "pending" while in flight, "hung" while a ``hang`` fault holds it.
OUTCOMES = ("completed", "error", "client_disconnected", "dropped", "hung")
_OPEN = frozenset({"pending", "hung"})


@dataclass(slots=True)
class RequestRecord:
    """One received request, as ``GET /_mock/requests`` shows it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any = None
    outcome: str = "pending"

    def finish(self, outcome: str) -> None:
        """Set the final outcome unless one was already set (``dropped``, ``client_disconnected``...)."""
        if self.outcome in _OPEN:
            self.outcome = outcome

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class MockState:
    """Everything the handlers share. One per application, so parallel test servers stay independent."""

    config: MockConfig
    base_fault: FaultSpec
    records: deque[RequestRecord]
    fail_counts: dict[str, int] = field(default_factory=dict)
    closing: bool = False  # set on shutdown: ends hangs and latency waits
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        """A unique, readable id such as ``chatcmpl-mock000001``."""
        return f"{prefix}mock{next(self._ids):06d}"


STATE = web.AppKey("chaperone_mock_state", MockState)
_RECORD = web.RequestKey("chaperone_mock_record", RequestRecord)


def start_record(request: web.Request) -> RequestRecord:
    """Log ``request`` in the app's request log and attach the record to the request."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    record = RequestRecord(request.method, request.path, request.query_string, headers)
    request.app[STATE].records.append(record)
    request[_RECORD] = record
    return record


def record_of(request: web.Request) -> RequestRecord:
    """The record :func:`start_record` attached (a detached one for unrecorded paths)."""
    if _RECORD in request:
        return request[_RECORD]
    return RequestRecord(request.method, request.path, request.query_string, {})
