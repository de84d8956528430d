"""The request log on its own: rollups and percentiles, keyset pages, caps, retention, the dropped counter."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.requestlog import PAGE_MAX, Filters, QueryTimeout, RequestLog, percentile

NOW = time.time()


def row(i: int, *, ts: float | None = None, status: int = 200, lat: float = 100.0, key: str = "app1",
        model: str = "m", verdicts: dict[str, str] | None = None, cost: float = 0.001) -> tuple[Any, ...]:  # fmt: skip
    return (ts or NOW - 30, f"req{i}", key, model, "b", status, lat, lat / 2, 10, 5, cost, None,
            None if status < 400 else "upstream_error", verdicts or {}, {"steps": []}, 0.0)  # fmt: skip


@pytest.fixture
def log(tmp_path: Path) -> RequestLog:
    made = RequestLog(tmp_path / "r.sqlite", max_rows=1000, queue_max=50)
    made.open()
    return made


def test_percentiles_come_from_the_histogram_within_a_bucket() -> None:
    from proxy.requestlog_sql import NBUCKETS, _bucket

    hist = [0.0] * NBUCKETS
    for ms in range(1, 1001):  # 1..1000 ms, uniform
        hist[_bucket(ms)] += 1
    p50, p99 = percentile(hist, 0.5), percentile(hist, 0.99)
    assert p50 is not None and 400 <= p50 <= 600
    assert p99 is not None and 900 <= p99 <= 1000
    assert percentile([0.0] * NBUCKETS, 0.5) is None


def test_overview_sums_what_was_written(log: RequestLog) -> None:
    for i in range(40):
        log.add(row(i, status=502 if i % 4 == 0 else 200, lat=50 if i < 20 else 2000))
    log.flush()
    data = log.overview(NOW - 900, NOW)
    assert data["totals"]["n"] == 40 and data["totals"]["errors"] == 10
    assert data["error_rate"] == pytest.approx(0.25)
    assert data["totals"]["cost"] == pytest.approx(0.04)
    assert 30 <= data["latency"]["p50"] <= 2000 and data["latency"]["p99"] > 1500
    long = log.overview(NOW - 7 * 86400, NOW)  # hourly rollup: the same totals
    assert long["totals"]["n"] == 40 and long["grain"] == "hours"


def test_pages_walk_newest_first_and_are_capped(log: RequestLog) -> None:
    for i in range(30):
        log.add(row(i, key="a" if i % 2 else "b", verdicts={"injection": "flagged"} if i % 3 == 0 else {}))
    log.flush()
    first = log.page(Filters(), None, 10)
    assert [r["id"] for r in first] == [f"req{i}" for i in range(29, 19, -1)]
    second = log.page(Filters(), first[-1]["seq"], 10)
    assert [r["id"] for r in second] == [f"req{i}" for i in range(19, 9, -1)]
    assert {r["key"] for r in log.page(Filters(key="a"), None, 50)} == {"a"}
    flagged = log.page(Filters(plugin="injection", verdict="flagged"), None, 50)
    assert [r["id"] for r in flagged] == [f"req{i}" for i in range(27, -1, -3)]
    assert len(log.page(Filters(), None, 10**9)) <= PAGE_MAX


def test_a_full_queue_drops_and_counts(log: RequestLog) -> None:
    for i in range(60):
        log.add(row(i))
    assert log.dropped == 10
    log.flush()
    assert len(log.page(Filters(), None, 100)) == 50


def test_retention_keeps_max_rows_and_drops_old_rows(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "r.sqlite", max_rows=20, retention_s=3600, queue_max=1000)
    log.open()
    for i in range(10):
        log.add(row(i, ts=NOW - 7200))  # older than retention
    for i in range(10, 50):
        log.add(row(i))
    log.flush()
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    log.prune(conn)
    ids = [r["id"] for r in log.page(Filters(), None, 100)]
    assert ids == [f"req{i}" for i in range(49, 29, -1)]
    assert log.overview(NOW - 900, NOW)["totals"]["n"] == 40  # rollups outlive raw rows


def test_a_slow_query_is_interrupted(log: RequestLog) -> None:
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(QueryTimeout):
        log.query(lambda conn: conn.execute(slow).fetchone(), timeout_s=0.05)


def test_labels_export_what_was_marked(log: RequestLog) -> None:
    log.add(row(1, verdicts={"pii": "masked"}))
    log.flush()
    assert not log.label(1, "injection", "false_positive")  # no such verdict on that request
    assert log.label(1, "pii", "false_positive")
    assert [(r["id"], r["plugin"], r["verdict"], r["label"]) for r in log.labels()] == [
        ("req1", "pii", "masked", "false_positive")
    ]


def test_workers_opening_a_new_log_together_all_get_it(tmp_path: Path) -> None:
    """``--workers`` open one new file at once; SQLite's immediate "database is locked" (its deadlock
    avoidance, before the file is in WAL mode) hit one of them now and then, which lost that worker
    its request log. 150 rounds of six openers: before the retry, ~5 % of rounds had a failure."""
    import threading

    failures: list[BaseException] = []
    for n in range(150):
        path = tmp_path / str(n) / "console" / "requests.sqlite"
        start = threading.Barrier(6)

        def open_it(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                RequestLog(path).open()
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
