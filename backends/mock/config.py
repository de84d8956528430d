"""The mock backend's settings: defaults are fast and fault-free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MockConfig:
    """How the mock behaves for every request; per-request faults layer on top.

    :param latency_ms: delay before the response headers (or the first stream chunk).
    :param chunk_delay_ms: delay between stream chunks; 0 sends a whole stream in one write.
    :param fault: a fault spec applied to every request (see :mod:`backends.mock.faults`).
    :param model_names: what ``GET /v1/models`` lists (any model name is accepted on inference endpoints).
    :param record: how many recent requests ``GET /_mock/requests`` keeps.
    """

    latency_ms: float = 0
    chunk_delay_ms: float = 0
    fault: str | None = None
    model_names: tuple[str, ...] = ("mock-gpt", "mock-embed")
    record: int = 200
