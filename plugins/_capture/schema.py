"""The capture store's schema (version 1): what one captured exchange holds, as SQLite tables.

This is the contract between the ``capture`` plugin (writes), ``POST /chaperone/feedback`` (adds feedback)
and ``chaperone dataset`` (reads). Every text column holds PII-masked text only (``<EMAIL_ADDRESS_1>``-style
placeholders); ``metadata_only`` rows have NULL text columns.

``exchanges`` (one row per captured request, keyed by the ``x-request-id`` the client got):

    request_id TEXT   ts REAL (unix s, when it finished)   endpoint TEXT ("chat", "responses", …)
    model TEXT (the name the client asked for)   response_model TEXT   backend TEXT   key TEXT ("(open)")
    status INTEGER   error_code TEXT   latency_ms REAL   prompt_tokens, completion_tokens INTEGER
    retention TEXT ("full" | "metadata_only")   tags TEXT (JSON list)   verdicts TEXT (JSON object)
    judge_score REAL (the last judge score, NULL without a judge)   events TEXT (JSON list, ``EVENTS``)
    attempts TEXT (JSON list of {"backend", "model", "status", "error", "ms"})
    request TEXT (JSON: the request body as the model saw it, masked)
    answer TEXT (JSON: the final answer's first choice message, e.g. {"role": "assistant", "content": …})
    drafts TEXT (JSON list of {"source", "message"}: answers the gateway discarded, masked)
    masked_by TEXT ("pii", "capture", "pii+capture", "none")   policy_digest TEXT   schema INTEGER

``feedback`` (at most one row per request; a later POST replaces it):

    request_id TEXT   ts REAL   good INTEGER (0/1/NULL)   score REAL   comment TEXT (masked)
    correction TEXT (JSON message, masked: a demonstration)   author TEXT (key name or "admin")
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1
DEFAULT_PATH: Final = "capture/capture.sqlite"
"""Where the store lives, relative to ``CHAPERONE_HOME``."""
OPEN_KEY: Final = "(open)"

EVENTS: Final = ("judge_refine", "judge_fallback", "schema_repair", "retry", "fallback")
"""Gateway events a record may list: a judge refinement, a judge fallback answer, a schema repair, a retried
attempt on the same route, a fallback to another route after the primary failed."""

DRAFT_SOURCES: Final = ("judge_refine", "judge_fallback", "schema_repair", "retry")

COLUMNS: Final = (
    "request_id", "ts", "endpoint", "model", "response_model", "backend", "key", "status", "error_code",
    "latency_ms", "prompt_tokens", "completion_tokens", "retention", "tags", "verdicts", "judge_score",
    "events", "attempts", "request", "answer", "drafts", "masked_by", "policy_digest", "schema",
)  # fmt: skip
JSON_COLUMNS: Final = frozenset({"tags", "verdicts", "events", "attempts", "request", "answer", "drafts"})

DDL: Final = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exchanges (
    request_id TEXT PRIMARY KEY, ts REAL NOT NULL, endpoint TEXT NOT NULL, model TEXT NOT NULL,
    response_model TEXT, backend TEXT, key TEXT NOT NULL, status INTEGER NOT NULL, error_code TEXT,
    latency_ms REAL NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, retention TEXT NOT NULL,
    tags TEXT NOT NULL, verdicts TEXT NOT NULL, judge_score REAL, events TEXT NOT NULL, attempts TEXT NOT NULL,
    request TEXT, answer TEXT, drafts TEXT, masked_by TEXT NOT NULL, policy_digest TEXT,
    schema INTEGER NOT NULL DEFAULT {SCHEMA_VERSION}
);
CREATE INDEX IF NOT EXISTS exchanges_ts ON exchanges (ts);
CREATE INDEX IF NOT EXISTS exchanges_model ON exchanges (model, ts);
CREATE INDEX IF NOT EXISTS exchanges_key ON exchanges (key, ts);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY, ts REAL NOT NULL, good INTEGER, score REAL, comment TEXT, correction TEXT,
    author TEXT NOT NULL
);
"""
