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
import bisect
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from proxy.chain import HOOK_TIMES
from proxy.exchange import StashKey
from proxy.metrics import FIRST_EVENT

if TYPE_CHECKING:
    from aiohttp import web

    from proxy.exchange import Exchange

log = logging.getLogger(__name__)

# latency / TTFT histogram bucket upper bounds, milliseconds (the last bucket is open-ended)
BOUNDS_MS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
    1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip
NBUCKETS = len(BOUNDS_MS) + 1
_LAT = [f"lat_{i}" for i in range(NBUCKETS)]
_TTFT = [f"ttft_{i}" for i in range(NBUCKETS)]
_MINUTE_SUMS = ("n", "errors", "tokens_in", "tokens_out", "cost", "cache_hits", "saved", "ttft_n")
PAGE_MAX = 200  # no list is ever longer than this
SAVED_USD = StashKey[float]()
"""What a cache hit saved (its price had the upstream answered): set by the ``cost`` plugin, read here."""
STEP_NOTES = StashKey[dict[str, str]]()
"""Plugin name → a short, redacted note on what the step changed ("EMAIL_ADDRESS=2"): never original text."""


class QueryTimeout(Exception):
    """A console query ran past its deadline and was interrupted."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the requests page filters on; None means any."""

    model: str | None = None
    key: str | None = None
    backend: str | None = None
    status: str | None = None  # "ok", "error" or a status code
    plugin: str | None = None  # with ``verdict``: requests where that plugin said that
    verdict: str | None = None
    since: float | None = None  # epoch seconds
    until: float | None = None


def note(exchange: Exchange, plugin: str, text: str) -> None:
    """Say, for the console, what ``plugin`` changed on this request: counts and types, never original text."""
    notes = exchange.stash.get(STEP_NOTES)
    if notes is None:
        notes = exchange.stash[STEP_NOTES] = {}
    notes[plugin] = text


def _bucket(ms: float) -> int:
    return bisect.bisect_left(BOUNDS_MS, ms)


def percentile(hist: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0 to 1) of a bucket histogram, interpolated inside its bucket; None when empty."""
    total = sum(hist)
    if total <= 0:
        return None
    target, seen = q * total, 0.0
    for i, count in enumerate(hist):
        if count and seen + count >= target:
            low = BOUNDS_MS[i - 1] if i > 0 else 0.0
            high = BOUNDS_MS[i] if i < len(BOUNDS_MS) else BOUNDS_MS[-1] * 2
            return low + (high - low) * ((target - seen) / count)
        seen += count
    return BOUNDS_MS[-1]


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


GRAINS = ("minutes", "hours")  # rollup tables per grain; both keep the bucket start as a minute number
_ROLLUP_SCHEMA = "".join(
    f"""CREATE TABLE IF NOT EXISTS {g}(minute INTEGER PRIMARY KEY,
  {", ".join(f"{c} REAL DEFAULT 0" for c in (*_MINUTE_SUMS, *_LAT, *_TTFT))});
CREATE TABLE IF NOT EXISTS spend_{g}(minute INTEGER, key TEXT, model TEXT, n INTEGER, errors INTEGER,
  tokens_in INTEGER, tokens_out INTEGER, cost REAL, PRIMARY KEY(minute, key, model)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verdict_{g}(minute INTEGER, plugin TEXT, verdict TEXT, key TEXT, n INTEGER,
  PRIMARY KEY(minute, plugin, verdict, key)) WITHOUT ROWID;
"""
    for g in GRAINS
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS requests(
  seq INTEGER PRIMARY KEY, ts REAL NOT NULL, id TEXT NOT NULL, key TEXT, model TEXT, backend TEXT,
  status INTEGER, ok INTEGER, latency_ms REAL, ttft_ms REAL, tokens_in INTEGER, tokens_out INTEGER,
  cost REAL, cache TEXT, error TEXT, verdicts BLOB, detail BLOB);
CREATE INDEX IF NOT EXISTS req_id ON requests(id);
CREATE INDEX IF NOT EXISTS req_ts ON requests(ts);
CREATE INDEX IF NOT EXISTS req_model ON requests(model, seq);
CREATE INDEX IF NOT EXISTS req_key ON requests(key, seq);
CREATE INDEX IF NOT EXISTS req_backend ON requests(backend, seq);
CREATE INDEX IF NOT EXISTS req_status ON requests(status, seq);
CREATE INDEX IF NOT EXISTS req_ok ON requests(ok, seq);
CREATE TABLE IF NOT EXISTS verdicts(plugin TEXT, verdict TEXT, seq INTEGER, PRIMARY KEY(plugin, verdict, seq))
  WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS verdict_seq ON verdicts(seq);
{_ROLLUP_SCHEMA}
CREATE TABLE IF NOT EXISTS labels(seq INTEGER, plugin TEXT, verdict TEXT, label TEXT, at REAL,
  PRIMARY KEY(seq, plugin));
"""

_COLUMNS = "seq, ts, id, key, model, backend, status, latency_ms, ttft_ms, tokens_in, tokens_out, cost, cache, error"
_SUMS = ", ".join(f"sum({c})" for c in (*_MINUTE_SUMS, *_LAT, *_TTFT))
_ROLLUP_UPSERT = (
    "INSERT INTO {g}(minute, "
    f"{', '.join((*_MINUTE_SUMS, *_LAT, *_TTFT))}) "
    f"VALUES ({', '.join('?' * (1 + len(_MINUTE_SUMS) + 2 * NBUCKETS))}) ON CONFLICT(minute) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in (*_MINUTE_SUMS, *_LAT, *_TTFT))
)


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

    # ---- writing ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the file and schema (also for readers that never write)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

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
        await asyncio.to_thread(self.start)
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
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _write(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: max(seq) stays ours (several workers, one file)
        cur = conn.cursor()
        seq = int(cur.execute("SELECT coalesce(max(seq), 0) FROM requests").fetchone()[0])
        minutes: dict[int, list[float]] = {}
        spend: dict[tuple[int, str, str], list[float]] = {}
        verdict_counts: dict[tuple[int, str, str, str], int] = {}
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
            for table in (*GRAINS, *(f"spend_{g}" for g in GRAINS), *(f"verdict_{g}" for g in GRAINS)):
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
        return [dict(r) for r in self.query(lambda conn: conn.execute(sql, args).fetchall())]

    def guards(self, since: float, until: float, limit: int = 100) -> list[dict[str, Any]]:
        """Verdict counts per plugin and verdict over the window, with how many keys saw them."""
        grain, lo, hi = _grain(since, until)
        sql = (
            f"SELECT plugin, verdict, sum(n) AS n, count(DISTINCT key) AS keys FROM verdict_{grain}"
            " WHERE minute >= ? AND minute < ? GROUP BY plugin, verdict ORDER BY plugin, n DESC LIMIT ?"
        )
        args = (lo, hi, min(limit, PAGE_MAX))
        return [dict(r) for r in self.query(lambda conn: conn.execute(sql, args).fetchall())]

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
        return [dict(r) for r in self.query(lambda conn: conn.execute(sql, args).fetchall())]

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
        return [dict(r) for r in self.query(lambda conn: conn.execute(sql, args).fetchall())]


def _page(conn: sqlite3.Connection, f: Filters, before: int | None, limit: int) -> Iterable[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []
    table = "requests r"
    if f.plugin and f.verdict:
        table = "verdicts v JOIN requests r ON r.seq = v.seq"
        where += ["v.plugin = ?", "v.verdict = ?"]
        args += [f.plugin, f.verdict]
    for column, value in (("model", f.model), ("key", f.key), ("backend", f.backend)):
        if value:
            where.append(f"r.{column} = ?")
            args.append(value)
    if f.status == "ok":
        where.append("r.ok = 1")
    elif f.status == "error":
        where.append("r.ok = 0")
    elif f.status and f.status.isdigit():
        where.append("r.status = ?")
        args.append(int(f.status))
    seq = "v.seq" if table != "requests r" else "r.seq"  # order by the index that filters
    high = before
    if f.until is not None:  # time bounds become seq bounds through the ts index
        found = _first_at(conn, f.until)
        if found is not None:
            high = found if high is None else min(high, found)
    if f.since is not None:
        low = _first_at(conn, f.since)
        where.append(f"{seq} >= ?")
        args.append(low if low is not None else 1 << 62)
    if high is not None:
        where.append(f"{seq} < ?")
        args.append(high)
    sql = f"SELECT {', '.join('r.' + c.strip() for c in _COLUMNS.split(','))} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {seq} DESC LIMIT ?"
    args.append(limit)
    return [dict(r) for r in conn.execute(sql, args)]


def _first_at(conn: sqlite3.Connection, ts: float) -> int | None:
    """The first row at or after ``ts``, found through the ts index (``min(seq)`` would walk the table)."""
    row = conn.execute("SELECT seq FROM requests INDEXED BY req_ts WHERE ts >= ? ORDER BY ts LIMIT 1", (ts,)).fetchone()
    return None if row is None else int(row[0])


def _overview(conn: sqlite3.Connection, since: float, until: float, points: int) -> dict[str, Any]:
    grain, lo, hi = _grain(since, until)
    row = conn.execute(f"SELECT {_SUMS} FROM {grain} WHERE minute >= ? AND minute < ?", (lo, hi)).fetchone()
    sums = [float(v or 0) for v in row]
    k = len(_MINUTE_SUMS)
    totals = dict(zip(_MINUTE_SUMS, sums[:k], strict=True))
    lat, ttft = sums[k : k + NBUCKETS], sums[k + NBUCKETS :]
    unit = 60 if grain == "hours" else 1
    step = max(1, (hi - lo + points * unit - 1) // (points * unit)) * unit
    series = conn.execute(
        f"SELECT (minute - ?) / ? AS slot, sum(n), sum(errors), sum(cost), sum(tokens_in + tokens_out) FROM {grain}"
        " WHERE minute >= ? AND minute < ? GROUP BY slot ORDER BY slot",
        (lo, step, lo, hi),
    ).fetchall()
    seconds = max((hi - lo) * 60 if grain == "hours" else until - since, 1.0)
    n = totals["n"]
    return {
        "totals": totals,
        "rps": n / seconds,
        "error_rate": totals["errors"] / n if n else 0.0,
        "cache_hit_rate": totals["cache_hits"] / n if n else 0.0,
        "latency": {f"p{int(q * 100)}": percentile(lat, q) for q in (0.5, 0.95, 0.99)},
        "ttft": {f"p{int(q * 100)}": percentile(ttft, q) for q in (0.5, 0.95, 0.99)},
        "step_s": step * 60,
        "grain": grain,
        "start": lo * 60,
        "series": [
            {"t": (lo + int(slot) * step) * 60, "n": r[1], "errors": r[2], "cost": r[3], "tokens": r[4]}
            for r in series
            for slot in (r[0],)
        ],
    }


HOURLY_AFTER_S = 6 * 3600  # windows longer than this read the hourly rollups (whole hours)


def _grain(since: float, until: float) -> tuple[str, int, int]:
    """Which rollup a window reads, and its [lo, hi) in minute numbers (whole hours for the hourly one)."""
    lo, hi = int(since // 60), int(until // 60) + 1
    if until - since <= HOURLY_AFTER_S:
        return "minutes", lo, hi
    return "hours", lo // 60 * 60, (hi + 59) // 60 * 60


def _upsert(
    cur: sqlite3.Cursor,
    grain: str,
    minutes: dict[int, list[float]],
    spend: dict[tuple[int, str, str], list[float]],
    verdicts: dict[tuple[int, str, str, str], int],
) -> None:
    cur.executemany(_ROLLUP_UPSERT.format(g=grain), [(minute, *sums) for minute, sums in minutes.items()])
    cur.executemany(
        f"INSERT INTO spend_{grain} VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n,"
        " errors = errors + excluded.errors, tokens_in = tokens_in + excluded.tokens_in,"
        " tokens_out = tokens_out + excluded.tokens_out, cost = cost + excluded.cost",
        [(*k, *v) for k, v in spend.items()],
    )
    cur.executemany(
        f"INSERT INTO verdict_{grain} VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(*k, v) for k, v in verdicts.items()],
    )


def _by_hour(
    minutes: dict[int, list[float]],
    spend: dict[tuple[int, str, str], list[float]],
    verdicts: dict[tuple[int, str, str, str], int],
) -> tuple[dict[int, list[float]], dict[tuple[int, str, str], list[float]], dict[tuple[int, str, str, str], int]]:
    """The same sums keyed by the minute number of their hour's start."""
    hours: dict[int, list[float]] = {}
    for minute, sums in minutes.items():
        into = hours.setdefault(minute // 60 * 60, [0.0] * len(sums))
        for i, value in enumerate(sums):
            into[i] += value
    hour_spend: dict[tuple[int, str, str], list[float]] = {}
    for (minute, key, model), sums in spend.items():
        into = hour_spend.setdefault((minute // 60 * 60, key, model), [0.0] * len(sums))
        for i, value in enumerate(sums):
            into[i] += value
    hour_verdicts: dict[tuple[int, str, str, str], int] = {}
    for (minute, plugin, verdict, key), n in verdicts.items():
        k = (minute // 60 * 60, plugin, verdict, key)
        hour_verdicts[k] = hour_verdicts.get(k, 0) + n
    return hours, hour_spend, hour_verdicts
