"""Daily rollups (30-day pages read days, not hours; an old log is backfilled) and a guard's counts over time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.requestlog import RequestLog
from tests.console.test_requestlog import NOW, row

DAY = 86400.0


@pytest.fixture
def log(tmp_path: Path) -> RequestLog:
    made = RequestLog(tmp_path / "r.sqlite", max_rows=1000, queue_max=500)
    made.open()
    return made


def test_a_30_day_window_reads_daily_rollups_with_the_same_totals(log: RequestLog) -> None:
    for i in range(40):  # spread over 20 days, two keys, one in four blocked
        verdicts = {"pii": "blocked"} if i % 4 == 0 else {}
        log.add(row(i, ts=NOW - i * DAY / 2 - 60, key="a" if i % 2 else "b", verdicts=verdicts))
    log.flush()
    month = log.overview(NOW - 30 * DAY, NOW)
    assert month["grain"] == "days" and month["totals"]["n"] == 40 and month["step_s"] % DAY == 0
    assert sum(p["n"] for p in month["series"]) == 40
    week = log.overview(NOW - 7 * DAY, NOW)
    assert week["grain"] == "hours"
    spend = {r["name"]: r["n"] for r in log.spend(NOW - 30 * DAY, NOW, "key")}
    assert spend == {"a": 20, "b": 20}
    blocked = log.guard_keys(NOW - 30 * DAY, NOW, "pii", "blocked")
    assert {r["key"]: r["n"] for r in blocked} == {"b": 10}


def test_guard_series_counts_one_key_over_time(log: RequestLog) -> None:
    for i in range(12):
        log.add(row(i, ts=NOW - 60 - i * 600, key="a" if i < 8 else "b", verdicts={"pii": "masked"}))
    log.flush()
    both = log.guard_series(NOW - 6 * 3600, NOW, "pii", "masked", points=12)
    only_a = log.guard_series(NOW - 6 * 3600, NOW, "pii", "masked", key="a", points=12)
    assert sum(both["counts"]) == 12 and sum(only_a["counts"]) == 8 and len(both["counts"]) <= 13
    assert log.guard_series(NOW - 6 * 3600, NOW, "pii", "blocked")["counts"] == [0] * len(
        log.guard_series(NOW - 6 * 3600, NOW, "pii", "blocked")["counts"]
    )


def test_a_log_from_before_daily_rollups_is_backfilled_from_hours(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = RequestLog(path, max_rows=1000, queue_max=500)
    old.open()
    for i in range(10):
        old.add(row(i, ts=NOW - i * DAY - 60))
    old.flush()
    with sqlite3.connect(path) as conn:  # as a log written by the previous version: no daily rows
        conn.execute("DELETE FROM days")
        conn.execute("DELETE FROM spend_days")
    reopened = RequestLog(path, max_rows=1000, queue_max=500)
    reopened.open()
    assert reopened.overview(NOW - 30 * DAY, NOW)["totals"]["n"] == 10
    assert {r["name"]: r["n"] for r in reopened.spend(NOW - 30 * DAY, NOW, "key")} == {"app1": 10}
