"""Shared pieces of the capture tests: canary PII, a keyed policy, reading every byte of a store."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import simple_policy

ADMIN = "admin-key-0123456789"
EMAIL = "canary.leak.4821@example.org"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
CANARIES = (EMAIL, CARD, IBAN, "canary.leak", "4111111111111111", "4111 1111")
PROMPT = f"Please write to {EMAIL} about card {CARD} today"
KEYS = f"""
admin: {{key: '{ADMIN}'}}
keys:
  - {{name: app1, key: sk-app1}}
  - {{name: app2, key: sk-app2}}
"""


THREAD = "{capture: {writer: thread}}"
"""capture with its writer in a thread: tests start many proxies, and a writer process costs seconds to spawn."""


def policy(upstream: str, chain: str, *, keyed: bool = True) -> str:
    return simple_policy(upstream, chain, KEYS if keyed else "")


def store_bytes(home: Path) -> bytes:
    """Every file of the capture directory (the SQLite file, its WAL and shared memory), concatenated."""
    return b"".join(p.read_bytes() for p in sorted((home / "capture").glob("*")) if p.is_file())


def assert_no_canary(data: bytes) -> None:
    for canary in CANARIES:
        assert canary.encode() not in data, canary
