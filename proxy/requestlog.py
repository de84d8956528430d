"""The request log the console reads: per-request metadata (never prompt text) in SQLite, with rollups.

One file, ``CHAPERONE_HOME/console/requests.sqlite`` (WAL). The handlers' ``Recorder`` calls ``record``
when a request finished, on the event loop: it copies a few fields into a tuple and appends it to a
bounded in-memory queue (full → the row is dropped and ``dropped`` counts it). A thread writes the queue
every ``flush_s`` in one transaction: the raw rows, their plugin verdicts, and per-minute rollups
(counts, tokens, cost, cache hits and money saved, latency and TTFT histograms as bucket columns) by
minute, by (minute, key, model) and by (minute, plugin, verdict, key). Pages read only rollups for
figures and percentiles (bounded by the window's minutes, never by the number of requests), and raw
rows only by an index, newest first, a page at a time (keyset on ``seq``). Old rows go by retention
(``max_rows``, ``retention_s``), a bounded delete at a time. Every read runs in a reader thread with a
deadline (SQLite's progress handler interrupts it), so a console page cannot hold up the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from proxy.chain import HOOK_TIMES
from proxy.exchange import StashKey
from proxy.metrics import FIRST_EVENT
from proxy.requestlog_sql import (
    _COLUMNS,
    _MINUTE_SUMS,
    GRAINS,
    NBUCKETS,
    PAGE_MAX,
    Filters,
    _bucket,
    _by_hour,
    _grain,
    _overview,
    _page,
    _upsert,
    create_schema,
    percentile,
    series,
    upsert_backends,
)

if TYPE_CHECKING:
    from aiohttp import web

    from proxy.exchange import Exchange

log = logging.getLogger(__name__)
__all__ = ["PAGE_MAX", "SAVED_USD", "STEP_NOTES", "Filters", "QueryTimeout", "RequestLog", "note", "percentile"]

SAVED_USD = StashKey[float]()
"""What a cache hit saved (its price had the upstream answered): set by the ``cost`` plugin, read here."""
STEP_NOTES = StashKey[dict[str, str]]()
"""Plugin name → a short, redacted note on what the step changed ("EMAIL_ADDRESS=2"): never original text."""


class QueryTimeout(Exception):
    """A console query ran past its deadline and was interrupted."""


def note(exchange: Exchange, plugin: str, text: str) -> None:
    """Say, for the console, what ``plugin`` changed on this request: counts and types, never original text."""
    notes = exchange.stash.get(STEP_NOTES)
    if notes is None:
        notes = exchange.stash[STEP_NOTES] = {}
    notes[plugin] = text


def row_of(exchange: Exchange, status: int, code: str | None, now: float) -> tuple[Any, ...]:
    """What the log keeps of a finished request: metadata only, copied so the exchange can go."""
    first = exchange.stash.get(FIRST_EVENT)
    usage = exchange.usage
    last = exchange.attempts[-1] if exchange.attempts else None
    times = exchange.stash.get(HOOK_TIMES)
    steps = [step.name for step in exchange.chain.steps]
    detail = {
        "endpoint": exchange.request.endpoint,
        "route": exchange.route.name,
        "stream": exchange.request.stream,
        "upstream_model": exchange.response_model
        or (last.model if last is not None else exchange.route.upstream_model),
        "steps": steps,
        "entered": exchange.entered,
        "times": [[p, h, s * 1000] for (p, h), s in times.items()] if times else [],
        "attempts": [
            [a.backend, a.model, a.status, a.error, None if a.ended is None else (a.ended - a.started) * 1000]
            for a in exchange.attempts
        ],
        "usage": None if usage is None else [usage.cached_tokens, usage.reasoning_tokens],
        "subcalls": len(exchange.subcalls),
        "source": exchange.response.source if exchange.response is not None else None,
        "notes": exchange.stash.get(STEP_NOTES) or {},
    }
    return (
        time.time(),
        exchange.request_id,
        exchange.caller.name,
        exchange.request.model,
        last.backend if last is not None else exchange.route.backend,
        status,
        (now - exchange.started) * 1000,
        None if first is None else (first - exchange.started) * 1000,
        usage.prompt_tokens if usage is not None else 0,
        usage.completion_tokens if usage is not None else 0,
        exchange.cost_usd,
        exchange.verdicts.get("cache"),
        code,
        dict(exchange.verdicts),
        detail,
        _saved(exchange),
    )


def _saved(exchange: Exchange) -> float:
    saved = exchange.stash.get(SAVED_USD)
    return float(saved) if saved else 0.0


class RequestLog:
    """The writer (a thread, batched) and the bounded readers of the console's request log."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 1_000_000,
        retention_s: float = 30 * 86400,
        queue_max: int = 20_000,
        flush_s: float = 0.25,
        query_timeout_s: float = 2.0,
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.retention_s = retention_s
        self.queue_max = queue_max
        self.flush_s = flush_s
        self.query_timeout_s = query_timeout_s
        self.dropped = 0
        self.written = 0
        self._queue: deque[tuple[Any, ...]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers = threading.local()
        self._last_prune = 0.0
        self.unavailable: str | None = None  # why the log could not be opened (then nothing is recorded)

    # ---- writing ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the file and schema (also for readers that never write); see ``create_schema``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_schema(self._connect)

    def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self._run, name="chaperone-request-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(self.start)
        except (OSError, sqlite3.Error) as exc:  # the gateway serves on without it; the console says so
            log.error("request log disabled: %s cannot be used (%s)", self.path, exc)
            self.unavailable = f"{self.path}: {exc}"
        yield
        await asyncio.to_thread(self.stop)

    def record(self, exchange: Exchange, status: int, code: str | None, now: float) -> None:
        """Queue one finished request (on the loop: a tuple and an append); dropped when the queue is full."""
        self.add(row_of(exchange, status, code, now))

    def refused(self, request_id: str, endpoint: str, status: int, code: str | None, seconds: float) -> None:
        """Queue a request refused before its chain ran (no key, a bad body, an unknown model)."""
        detail = {"endpoint": endpoint, "steps": [], "entered": 0, "times": [], "attempts": [], "refused": True}
        ms = seconds * 1000
        self.add((time.time(), request_id, None, None, None, status, ms, None, 0, 0, None, None, code, {}, detail, 0.0))

    def add(self, row: tuple[Any, ...]) -> None:
        if self.unavailable is not None:
            return
        with self._lock:
            if len(self._queue) >= self.queue_max:
                self.dropped += 1
                return
            self._queue.append(row)

    def flush(self) -> None:
        """Write what is queued now (the thread calls it; tests and the benchmark may too)."""
        with self._lock:
            rows = list(self._queue)
            self._queue.clear()
        if not rows:
            return
        conn = self._writer()
        with conn:
            self._write(conn, rows)
        self.written += len(rows)
        if time.monotonic() - self._last_prune > 5:
            self._last_prune = time.monotonic()
            self.prune(conn)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            try:
                self.flush()
            except sqlite3.Error:
                log.exception("request log: a batch could not be written")
        self.flush()
        writer = getattr(self, "_conn", None)
        if writer is not None:
            writer.close()

    def _writer(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self, "_conn", None)
        if conn is None:
            conn = self._conn = self._connect()
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _write(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: max(seq) stays ours (several workers, one file)
        cur = conn.cursor()
        seq = int(cur.execute("SELECT coalesce(max(seq), 0) FROM requests").fetchone()[0])
        minutes: dict[int, list[float]] = {}
        spend: dict[tuple[int, str, str], list[float]] = {}
        verdict_counts: dict[tuple[int, str, str, str], int] = {}
        by_backend: dict[tuple[int, str], list[float]] = {}
        raw: list[tuple[Any, ...]] = []
        verdict_rows: list[tuple[str, str, int]] = []
        width = len(_MINUTE_SUMS) + 2 * NBUCKETS
        for (
            ts,
            rid,
            key,
            model,
            backend,
            status,
            lat,
            ttft,
            tin,
            tout,
            cost,
            cache,
            error,
            verdicts,
            detail,
            saved,
        ) in rows:
            seq += 1
            raw.append((seq, ts, rid, key, model, backend, status, int(status < 400), lat, ttft, tin, tout, cost,
                        cache, error, orjson.dumps(verdicts), orjson.dumps(detail)))  # fmt: skip
            minute = int(ts // 60)
            failed = int(status >= 400)
            m = minutes.get(minute)
            if m is None:
                m = minutes[minute] = [0.0] * width
            m[0] += 1
            m[1] += failed
            m[2] += tin
            m[3] += tout
            m[4] += cost or 0.0
            m[5] += cache == "hit"
            m[6] += saved
            m[len(_MINUTE_SUMS) + _bucket(lat)] += 1
            if ttft is not None:
                m[7] += 1
                m[len(_MINUTE_SUMS) + NBUCKETS + _bucket(ttft)] += 1
            sk = (minute, key or "", model or "")
            sp = spend.get(sk)
            if sp is None:
                sp = spend[sk] = [0, 0, 0, 0, 0.0]
            sp[0] += 1
            sp[1] += failed
            sp[2] += tin
            sp[3] += tout
            sp[4] += cost or 0.0
            bk = by_backend.get((minute, backend or ""))
            if bk is None:
                bk = by_backend[(minute, backend or "")] = [0, 0, 0.0]
            bk[0] += 1
            bk[1] += failed
            bk[2] += lat
            for plugin, verdict in verdicts.items():
                verdict_rows.append((plugin, verdict, seq))
                vk = (minute, plugin, verdict, key or "")
                verdict_counts[vk] = verdict_counts.get(vk, 0) + 1
        cur.executemany(
            "INSERT INTO requests(seq, ts, id, key, model, backend, status, ok, latency_ms, ttft_ms, tokens_in,"
            " tokens_out, cost, cache, error, verdicts, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            raw,
        )
        cur.executemany("INSERT OR IGNORE INTO verdicts VALUES (?,?,?)", verdict_rows)
        _upsert(cur, "minutes", minutes, spend, verdict_counts)
        _upsert(cur, "hours", *_by_hour(minutes, spend, verdict_counts))
        _upsert(cur, "days", *_by_hour(minutes, spend, verdict_counts, unit=1440))  # [console2]
        upsert_backends(cur, by_backend)
        conn.execute("COMMIT")

    def prune(self, conn: sqlite3.Connection, batch: int = 50_000) -> int:
        """Delete rows past ``max_rows`` or older than ``retention_s``, at most ``batch`` at a time."""
        top = conn.execute("SELECT max(seq) FROM requests").fetchone()[0] or 0
        old = conn.execute("SELECT max(seq) FROM requests WHERE ts < ?", (time.time() - self.retention_s,)).fetchone()
        cutoff = max(top - self.max_rows, old[0] or 0)
        low = conn.execute("SELECT min(seq) FROM requests").fetchone()[0] or 0
        cutoff = min(cutoff, low + batch - 1)
        if cutoff < low:
            return 0
        with conn:
            conn.execute("DELETE FROM requests WHERE seq <= ?", (cutoff,))
            conn.execute("DELETE FROM verdicts WHERE seq <= ?", (cutoff,))
            oldest = int((time.time() - max(self.retention_s, 90 * 86400)) // 60)
            for table in (*GRAINS, *(f"{t}_{g}" for t in ("spend", "verdict", "backend") for g in GRAINS)):
                conn.execute(f"DELETE FROM {table} WHERE minute < ?", (oldest,))
        return cutoff - low + 1

    # ---- reading (in a thread, with a deadline) ------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self._readers.conn = conn
        return conn

    def query(self, fn: Callable[[sqlite3.Connection], Any], timeout_s: float | None = None) -> Any:
        """Run ``fn(conn)`` with a deadline; raises ``QueryTimeout`` when SQLite had to be interrupted."""
        conn = self._reader()
        deadline = time.monotonic() + (timeout_s or self.query_timeout_s)
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout("the query took too long; narrow the filters or the window") from None
            raise
        finally:
            conn.set_progress_handler(None, 0)

    def page(self, filters: Filters, before: int | None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest-first rows matching ``filters`` with ``seq < before``; at most ``limit`` (≤ PAGE_MAX)."""
        limit = max(1, min(limit, PAGE_MAX))
        return list(self.query(lambda conn: _page(conn, filters, before, limit)))

    def request(self, ident: str) -> dict[str, Any] | None:
        """One request by its seq or its request id, with its verdicts, steps and attempts."""

        def get(conn: sqlite3.Connection) -> dict[str, Any] | None:
            where = "seq = ?" if ident.isdigit() else "id = ?"
            row = conn.execute(f"SELECT {_COLUMNS}, verdicts, detail FROM requests WHERE {where} LIMIT 1", (ident,))
            found = row.fetchone()
            if found is None:
                return None
            out = dict(found)
            out["verdicts"] = orjson.loads(out["verdicts"] or b"{}")
            out["detail"] = orjson.loads(out["detail"] or b"{}")
            labels = conn.execute("SELECT plugin, label FROM labels WHERE seq = ? LIMIT 50", (out["seq"],))
            out["labels"] = {r["plugin"]: r["label"] for r in labels}
            return out

        result: dict[str, Any] | None = self.query(get)
        return result

    def overview(self, since: float, until: float, points: int = 60) -> dict[str, Any]:
        """Totals, percentiles and a time series over [since, until) from the per-minute rollup only."""
        return dict(self.query(lambda conn: _overview(conn, since, until, points)))

    def spend(self, since: float, until: float, group: str, limit: int = 100) -> list[dict[str, Any]]:
        """Requests, errors, tokens and cost by ``key`` or ``model`` over the window (a bounded list)."""
        column = {"key": "key", "model": "model"}[group]
        grain, lo, hi = _grain(since, until)
        sql = (
            f"SELECT {column} AS name, sum(n) AS n, sum(errors) AS errors, sum(tokens_in) AS tokens_in,"
            f" sum(tokens_out) AS tokens_out, sum(cost) AS cost FROM spend_{grain} WHERE minute >= ? AND minute < ?"
            f" GROUP BY {column} ORDER BY cost DESC, n DESC LIMIT ?"
        )
        args = (lo, hi, min(limit, PAGE_MAX))
        return self._rows(sql, args)

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[dict[str, Any]]:
        """The rows of one bounded query (under the query deadline), as dicts."""
        return [dict(r) for r in self.query(lambda conn: conn.execute(sql, args).fetchall())]

    def guards(self, since: float, until: float, limit: int = 100) -> list[dict[str, Any]]:
        """Verdict counts per plugin and verdict over the window, with how many keys saw them."""
        grain, lo, hi = _grain(since, until)
        sql = (
            f"SELECT plugin, verdict, sum(n) AS n, count(DISTINCT key) AS keys FROM verdict_{grain}"
            " WHERE minute >= ? AND minute < ? GROUP BY plugin, verdict ORDER BY plugin, n DESC LIMIT ?"
        )
        args = (lo, hi, min(limit, PAGE_MAX))
        return self._rows(sql, args)

    def guard_keys(
        self, since: float, until: float, plugin: str, verdict: str, limit: int = 50
    ) -> list[dict[str, Any]]:
        """How often ``plugin`` said ``verdict`` per key over the window, most first (a bounded list)."""
        grain, lo, hi = _grain(since, until)
        sql = (
            f"SELECT key, sum(n) AS n FROM verdict_{grain} WHERE minute >= ? AND minute < ? AND plugin = ?"
            " AND verdict = ? GROUP BY key ORDER BY n DESC LIMIT ?"
        )
        args = (lo, hi, plugin, verdict, min(limit, PAGE_MAX))
        return self._rows(sql, args)

    def limits_fired(self, since: float, until: float, limit: int = 100) -> list[dict[str, Any]]:
        """[console2] Refusals (verdicts ``rejected…``) per key, plugin and verdict over the window, most first."""
        grain, lo, hi = _grain(since, until)
        sql = (
            f"SELECT key, plugin, verdict, sum(n) AS n FROM verdict_{grain} WHERE minute >= ? AND minute < ?"
            " AND verdict LIKE 'rejected%' GROUP BY key, plugin, verdict ORDER BY n DESC LIMIT ?"
        )
        args = (lo, hi, min(limit, PAGE_MAX))
        return self._rows(sql, args)

    def guard_series(
        self, since: float, until: float, plugin: str, verdict: str, key: str | None = None, points: int = 60
    ) -> dict[str, Any]:
        """[console2] ``plugin`` saying ``verdict`` per slot over the window, for one key or all, from the rollups."""
        return dict(self.query(lambda conn: series(conn, since, until, plugin, verdict, key, points)))

    def backends(self, since: float, until: float) -> dict[str, dict[str, float]]:
        """Per backend over the window: requests, error rate, mean latency (ms), from the minute rollup."""
        sql = (
            "SELECT backend, sum(n) AS n, sum(errors) AS errors, sum(latency_ms) AS latency_ms FROM backend_minutes"
            " WHERE minute >= ? AND minute < ? GROUP BY backend LIMIT ?"
        )
        args = (int(since // 60), int(until // 60) + 1, PAGE_MAX)
        rows = self.query(lambda conn: conn.execute(sql, args).fetchall())
        return {
            r["backend"]: {"n": r["n"], "error_rate": r["errors"] / r["n"], "latency_ms": r["latency_ms"] / r["n"]}
            for r in rows
            if r["n"]
        }

    def label(self, seq: int, plugin: str, label: str) -> bool:
        """Mark one verdict of one request (e.g. ``false_positive``); False when the request has no such verdict."""
        conn = self._connect()
        try:
            found = conn.execute("SELECT verdict FROM verdicts WHERE seq = ? AND plugin = ?", (seq, plugin)).fetchone()
            if found is None:
                return False
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO labels VALUES (?,?,?,?,?)", (seq, plugin, found[0], label, time.time())
                )
            return True
        finally:
            conn.close()

    def labels(self, after: int | None = None, limit: int = PAGE_MAX) -> list[dict[str, Any]]:
        """Labelled verdicts, oldest first from ``after`` (a seq), for the JSONL export."""
        sql = (
            "SELECT l.seq, l.plugin, l.verdict, l.label, l.at, r.id, r.key, r.model, r.ts FROM labels l"
            " JOIN requests r ON r.seq = l.seq WHERE l.seq > ? ORDER BY l.seq LIMIT ?"
        )
        args = (after or 0, min(limit, 10_000))
        return self._rows(sql, args)
