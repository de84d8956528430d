"""The request log's SQLite layout: schema, latency histograms, rollup upserts and the bounded read queries.

Rollups exist per grain (``minutes``, ``hours``; both keyed by the minute number their bucket starts at),
so a window's figures cost at most its minutes (or hours past ``HOURLY_AFTER_S``), never its requests.
Raw rows are only ever read newest first through an index, ``LIMIT``-ed (``PAGE_MAX``).
"""

from __future__ import annotations

import bisect
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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


GRAINS = ("minutes", "hours", "days")  # rollup tables per grain; each keeps its bucket's start as a minute number
UNIT_MINUTES = {"minutes": 1, "hours": 60, "days": 1440}  # [console2] days
_ROLLUP_SCHEMA = "".join(
    f"""CREATE TABLE IF NOT EXISTS {g}(minute INTEGER PRIMARY KEY,
  {", ".join(f"{c} REAL DEFAULT 0" for c in (*_MINUTE_SUMS, *_LAT, *_TTFT))});
CREATE TABLE IF NOT EXISTS spend_{g}(minute INTEGER, key TEXT, model TEXT, n INTEGER, errors INTEGER,
  tokens_in INTEGER, tokens_out INTEGER, cost REAL, PRIMARY KEY(minute, key, model)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backend_{g}(minute INTEGER, backend TEXT, n INTEGER, errors INTEGER, latency_ms REAL,
  PRIMARY KEY(minute, backend)) WITHOUT ROWID;
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
    unit = UNIT_MINUTES[grain]
    step = max(1, (hi - lo + points * unit - 1) // (points * unit)) * unit
    series = conn.execute(
        f"SELECT (minute - ?) / ? AS slot, sum(n), sum(errors), sum(cost), sum(tokens_in + tokens_out) FROM {grain}"
        " WHERE minute >= ? AND minute < ? GROUP BY slot ORDER BY slot",
        (lo, step, lo, hi),
    ).fetchall()
    seconds = max((hi - lo) * 60 if grain != "minutes" else until - since, 1.0)
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
DAILY_AFTER_S = 7 * 86400  # [console2] longer than this: the daily rollups (whole UTC days)


def _grain(since: float, until: float) -> tuple[str, int, int]:
    """Which rollup a window reads, and its [lo, hi) in minute numbers (whole hours or days for the coarse ones)."""
    lo, hi = int(since // 60), int(until // 60) + 1
    if until - since <= HOURLY_AFTER_S:
        return "minutes", lo, hi
    unit = 60 if until - since <= DAILY_AFTER_S else 1440
    return ("hours" if unit == 60 else "days"), lo // unit * unit, (hi + unit - 1) // unit * unit


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
    unit: int = 60,
) -> tuple[dict[int, list[float]], dict[tuple[int, str, str], list[float]], dict[tuple[int, str, str, str], int]]:
    """The same sums keyed by the minute number of their hour's start (of their day's, with ``unit=1440``)."""
    hours: dict[int, list[float]] = {}
    for minute, sums in minutes.items():
        into = hours.setdefault(minute // unit * unit, [0.0] * len(sums))
        for i, value in enumerate(sums):
            into[i] += value
    hour_spend: dict[tuple[int, str, str], list[float]] = {}
    for (minute, key, model), sums in spend.items():
        into = hour_spend.setdefault((minute // unit * unit, key, model), [0.0] * len(sums))
        for i, value in enumerate(sums):
            into[i] += value
    hour_verdicts: dict[tuple[int, str, str, str], int] = {}
    for (minute, plugin, verdict, key), n in verdicts.items():
        k = (minute // unit * unit, plugin, verdict, key)
        hour_verdicts[k] = hour_verdicts.get(k, 0) + n
    return hours, hour_spend, hour_verdicts


OPEN_PATIENCE_S = 10.0
"""How long ``create_schema`` retries SQLite's immediate "database is locked" (workers starting together)."""


def create_schema(connect: Callable[[], sqlite3.Connection]) -> None:
    """Create the tables on a connection from ``connect`` (and fill daily rollups an older log lacks).

    ``--workers`` start together on one file: while it is new (not yet in WAL mode) SQLite answers
    "database is locked" at once, without waiting, to one of two connections that would otherwise
    deadlock. That error is retried for ``OPEN_PATIENCE_S`` (call this from a worker thread: it sleeps).
    """
    deadline = time.monotonic() + OPEN_PATIENCE_S
    pause = 0.01
    while True:
        try:
            conn = connect()
            try:
                conn.executescript(_SCHEMA)
                backfill_days(conn)  # [console2]
            finally:
                conn.close()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def backfill_days(conn: sqlite3.Connection) -> None:
    """[console2] A log written before daily rollups existed: fill ``days`` from ``hours`` once (when empty)."""
    if conn.execute("SELECT 1 FROM days LIMIT 1").fetchone() is not None:
        return
    if conn.execute("SELECT 1 FROM hours LIMIT 1").fetchone() is None:
        return
    cols = ", ".join((*_MINUTE_SUMS, *_LAT, *_TTFT))
    with conn:
        conn.execute(
            f"INSERT OR IGNORE INTO days(minute, {cols})"
            f" SELECT minute / 1440 * 1440 AS d, {_SUMS} FROM hours GROUP BY d"
        )
        conn.execute(
            "INSERT OR IGNORE INTO spend_days SELECT minute / 1440 * 1440 AS d, key, model, sum(n), sum(errors),"
            " sum(tokens_in), sum(tokens_out), sum(cost) FROM spend_hours GROUP BY d, key, model"
        )
        conn.execute(
            "INSERT OR IGNORE INTO verdict_days SELECT minute / 1440 * 1440 AS d, plugin, verdict, key, sum(n)"
            " FROM verdict_hours GROUP BY d, plugin, verdict, key"
        )


def series(
    conn: sqlite3.Connection, since: float, until: float, plugin: str, verdict: str, key: str | None, points: int
) -> dict[str, Any]:
    """[console2] How often ``plugin`` said ``verdict`` per slot over the window (for one key, or all)."""
    grain, lo, hi = _grain(since, until)
    unit = UNIT_MINUTES[grain]
    step = max(1, (hi - lo + points * unit - 1) // (points * unit)) * unit
    sql = (
        f"SELECT (minute - ?) / ? AS slot, sum(n) FROM verdict_{grain} WHERE minute >= ? AND minute < ?"
        " AND plugin = ? AND verdict = ?" + (" AND key = ?" if key is not None else "") + " GROUP BY slot ORDER BY slot"
    )
    args: list[Any] = [lo, step, lo, hi, plugin, verdict] + ([key] if key is not None else [])
    found = {int(slot): n for slot, n in conn.execute(sql, args).fetchall()}
    slots = (hi - lo + step - 1) // step
    return {"step_s": step * 60, "start": lo * 60, "counts": [found.get(i, 0) for i in range(slots)]}


def upsert_backends(cur: sqlite3.Cursor, counts: dict[tuple[int, str], list[float]]) -> None:
    """Requests, errors and summed latency per (minute, backend): the Backends page's recent figures."""
    cur.executemany(
        "INSERT INTO backend_minutes VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n,"
        " errors = errors + excluded.errors, latency_ms = latency_ms + excluded.latency_ms",
        [(*k, *v) for k, v in counts.items()],
    )
