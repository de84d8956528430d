"""The capture store: one SQLite file (WAL) under ``CHAPERONE_HOME``, opened by the plugin, feedback and datasets.

Synchronous by design: the plugin calls it from one writer thread (``plugins._capture.writer``), the CLI
directly. WAL lets ``chaperone dataset`` read while a proxy writes; ``busy_timeout`` covers short overlaps.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from plugins._capture.schema import COLUMNS, DDL, JSON_COLUMNS, SCHEMA_VERSION


class StoreVersionError(RuntimeError):
    """The file was written by a newer capture schema than this code reads."""


class CaptureStore:
    """Rows of captured exchanges and their feedback (``plugins._capture.schema``)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.exists():
                raise FileNotFoundError(f"no capture store at {path}")
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(DDL)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            self._db.commit()
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        version = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is not None and int(version[0]) > SCHEMA_VERSION:
            raise StoreVersionError(f"{path}: capture schema {version[0]} is newer than {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writing ---------------------------------------------------------------------------------------------

    def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert (or replace) rows in one transaction; JSON columns are serialised here."""
        if not rows:
            return 0
        marks = ",".join("?" * len(COLUMNS))
        values = [tuple(_column(name, row.get(name)) for name in COLUMNS) for row in rows]
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO exchanges ({','.join(COLUMNS)}) VALUES ({marks})", values)
        return len(values)

    def set_feedback(
        self,
        request_id: str,
        *,
        author: str,
        good: bool | None = None,
        score: float | None = None,
        comment: str | None = None,
        correction: Mapping[str, Any] | None = None,
        ts: float | None = None,
    ) -> None:
        fixed = orjson.dumps(correction).decode() if correction is not None else None
        good_value = None if good is None else int(good)
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO feedback (request_id, ts, good, score, comment, correction, author)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (request_id, ts if ts is not None else time.time(), good_value, score, comment, fixed, author),
            )

    # ---- reading ---------------------------------------------------------------------------------------------

    def key_of(self, request_id: str) -> str | None:
        """The key name that made a captured request, or None when it was not captured."""
        with self._lock:
            row = self._db.execute("SELECT key FROM exchanges WHERE request_id = ?", (request_id,)).fetchone()
        return None if row is None else str(row[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0])

    def rows(
        self, where: str = "1", params: Sequence[Any] = (), *, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Exchanges (oldest first) with their feedback as ``row["feedback"]`` (None without), JSON parsed."""
        sql = (
            "SELECT e.*, f.ts AS fb_ts, f.good AS fb_good, f.score AS fb_score, f.comment AS fb_comment,"
            " f.correction AS fb_correction, f.author AS fb_author"
            f" FROM exchanges e LEFT JOIN feedback f USING (request_id) WHERE {where} ORDER BY e.ts, e.request_id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            fetched = self._db.execute(sql, tuple(params)).fetchall()
        for raw in fetched:
            yield _decode(raw)


def _column(name: str, value: Any) -> Any:
    if name in JSON_COLUMNS:
        return None if value is None else orjson.dumps(value).decode()
    return value


def _decode(raw: sqlite3.Row) -> dict[str, Any]:
    row = {name: raw[name] for name in COLUMNS}
    for name in JSON_COLUMNS:
        if row[name] is not None:
            row[name] = orjson.loads(row[name])
    feedback = None
    if raw["fb_ts"] is not None:
        correction = raw["fb_correction"]
        feedback = {
            "ts": raw["fb_ts"],
            "good": None if raw["fb_good"] is None else bool(raw["fb_good"]),
            "score": raw["fb_score"],
            "comment": raw["fb_comment"],
            "correction": orjson.loads(correction) if correction else None,
            "author": raw["fb_author"],
        }
    row["feedback"] = feedback
    return row
