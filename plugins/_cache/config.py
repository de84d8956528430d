"""The ``cache`` plugin's policy config (frozen, validated at policy load)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_THRESHOLD = 0.75
"""Cosine similarity (wordllama 256-d) a semantic hit needs; tuned on ``benchmarks/data/cache_pairs.jsonl``."""


class CacheConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: Literal["exact", "semantic"] = Field(
        default="exact",
        description="exact: identical normalised requests; semantic: also near-identical last user turns.",
    )
    shadow: bool = Field(
        default=False, description="Compute would-be hits, log and label them (shadow-hit), but always call upstream."
    )
    threshold: float = Field(
        default=DEFAULT_THRESHOLD, ge=0.0, le=1.0, description="Cosine similarity a semantic hit needs."
    )
    ttl_s: float = Field(default=3600.0, gt=0, description="How long a stored answer stays valid, in seconds.")
    max_entries: int | None = Field(
        default=100_000,
        ge=1,
        description="Entries kept per partition; the oldest are evicted beyond this. null: TTL only (no "
        "partition log: a miss then costs one store write fewer, but every lookup reads the store).",
    )
    max_temperature: float = Field(
        default=0.3, ge=0.0, description="Requests with a higher temperature are not cached (bypass)."
    )
    missing_temperature: float = Field(
        default=1.0,
        ge=0.0,
        description="The temperature assumed when a request sends none (the APIs' default is 1.0, so not cached).",
    )
    share_across_keys: bool = Field(
        default=False, description="One partition for every caller; by default each key only sees its own answers."
    )
    cache_tool_calls: bool = Field(default=True, description="Store answers that are tool calls.")
    coalesce: bool = Field(
        default=True, description="Identical concurrent misses wait for the first one's upstream call."
    )
    coalesce_across_processes: bool = Field(
        default=False,
        description="Also coalesce with workers and replicas sharing the store (a lock in the store; followers "
        "poll). Two more store writes per miss.",
    )
    coalesce_wait_s: float = Field(
        default=60.0, gt=0, description="How long a coalesced request waits for the first one before calling itself."
    )
    sync_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="How often a process reads the answers other workers and replicas added to a partition "
        "(it finds them within this); 0: before every lookup (one more store read each).",
    )
    max_query_chars: int = Field(
        default=2000,
        ge=1,
        description="Longer last user turns are cached exactly only (a small edit in a long text barely moves it).",
    )
    candidates: int = Field(
        default=8, ge=1, le=64, description="Nearest entries above the threshold checked against the vetoes."
    )
