"""Stores with hand-made rows for the dataset tests (the capture plugin's own tests cover how rows are made)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins._capture.store import CaptureStore

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()  # fmt: skip


def row(request_id: str, prompt: str, answer: str | None, *, ts: float, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_id": request_id, "ts": ts, "endpoint": "chat", "model": "m1", "response_model": "m1",
        "backend": "mock", "key": "app1", "status": 200, "error_code": None, "latency_ms": 12.5,
        "prompt_tokens": 10, "completion_tokens": 5, "retention": "full", "tags": [], "verdicts": {},
        "judge_score": None, "events": [], "attempts": [], "masked_by": "pii", "policy_digest": "abc123",
        "schema": 1, "drafts": [],
        "request": {"model": "m1", "messages": [{"role": "user", "content": prompt}]},
        "answer": None if answer is None else {"role": "assistant", "content": answer},
    }  # fmt: skip
    base.update(extra)
    return base


def distinct(n: int) -> str:
    """A prompt of its own: no two of these are near duplicates."""
    picked = [WORDS[(n * 7 + i * (n % 5 + 1)) % len(WORDS)] for i in range(6)]
    return f"Question {n}: what links {' and '.join(picked)} in story number {n * 31}?"


def make_store(path: Path, rows: list[dict[str, Any]]) -> CaptureStore:
    store = CaptureStore(path)
    store.insert_many(rows)
    return store
