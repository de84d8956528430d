"""Progress without a terminal: plain lines with requests done, failures, the current rate and p50 TTFC."""

from __future__ import annotations

import io

from bench.client import Outcome
from bench.progress import Progress


def test_plain_lines_when_stderr_is_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress("mock (concurrency 2)", 10, stream=out, interval_s=0)
    for i in range(4):
        progress(Outcome(i, "plain", ttfc=0.010 * (i + 1), error="timeout" if i == 3 else None))
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith("bench: mock (concurrency 2): 4 done, 1 failed, ")
    assert "req/s" in lines[-2] and "p50 TTFC 20.0 ms" in lines[-2]
    assert lines[-1] == "bench: mock (concurrency 2): 4 done, 1 failed"


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress("x", None, enabled=False, stream=out, interval_s=0)
    progress(Outcome(0, "plain"))
    progress.close()
    assert out.getvalue() == ""
