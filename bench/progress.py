"""Live progress of a run: a tqdm bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from typing import Any, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]

from bench.client import Outcome


class Progress:
    """Requests done (and failed), the rate over the last 5 s and the rolling p50 time to first content token."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.label, self.stream, self.interval_s = label, stream or sys.stderr, interval_s
        self.done = self.failed = 0
        self._ends: deque[float] = deque()
        self._ttfc: deque[float] = deque(maxlen=200)
        self._shown = time.monotonic()
        self._bar: Any = None
        self.enabled = enabled
        if enabled and self.stream.isatty():
            try:
                sized = os.get_terminal_size(self.stream.fileno()).columns >= 20
            except (AttributeError, OSError, ValueError):
                sized = False
            self._bar = tqdm(  # a terminal that reports no size (a bare pty) gets 80x20: tqdm hides bars past 0 rows
                total=total, desc=label, unit="req", file=self.stream, leave=True,
                dynamic_ncols=sized, ncols=None if sized else 80, nrows=None if sized else 20,
            )  # fmt: skip

    def __call__(self, outcome: Outcome) -> None:
        now = time.monotonic()
        self.done += 1
        self.failed += outcome.error is not None
        self._ends.append(now)
        while self._ends and now - self._ends[0] > 5:
            self._ends.popleft()
        if outcome.ttfc is not None and outcome.error is None:  # a failed request is in no latency figure
            self._ttfc.append(outcome.ttfc * 1e3)
        if self._bar is not None:
            self._bar.update(1)
            if now - self._shown > 0.5:
                self._bar.set_postfix_str(self._status(now), refresh=False)
                self._shown = now
        elif self.enabled and now - self._shown >= self.interval_s:
            print(f"bench: {self.label}: {self.done} done, {self._status(now)}", file=self.stream, flush=True)
            self._shown = now

    def _status(self, now: float) -> str:
        span = now - self._ends[0] if len(self._ends) > 1 else 0.0
        rate = (len(self._ends) - 1) / span if span > 0 else 0.0
        ttfc = sorted(self._ttfc)
        p50 = f"{ttfc[len(ttfc) // 2]:.1f} ms" if ttfc else "-"
        return f"{self.failed} failed, {rate:.1f} req/s, p50 TTFC {p50}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            print(f"bench: {self.label}: {self.done} done, {self.failed} failed", file=self.stream, flush=True)
