"""What ``chaperone scan`` tells the operator: the run's summary, and its progress while it runs.

The summary is plugin-neutral: it knows three report keys of the scan protocol and nothing about
any plugin. Per step it counts the values of ``action`` and of ``entities[].type``, averages a
numeric ``score`` (with a histogram by tenths when scores lie in [0, 1]), and counts the inputs the
step *flagged*: ``"flagged": true``, at least one entity, or an ``action`` other than ``allow``,
``pass`` or ``none``. An input *would be blocked* when a step's ``action`` is ``block``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from tqdm import tqdm  # type: ignore[import-untyped]

__all__ = ["NEUTRAL_ACTIONS", "Progress", "Summary", "make_progress"]

NEUTRAL_ACTIONS = frozenset({"allow", "pass", "none"})
_SHOWN_ERROR_LINES = 20


def verdict(report: dict[str, Any] | None) -> tuple[bool, bool]:
    """(flagged, would block) for one step's report."""
    if not report:
        return False, False
    action = report.get("action")
    entities = report.get("entities")
    flagged = (
        report.get("flagged") is True
        or (isinstance(entities, list) and bool(entities))
        or (isinstance(action, str) and action not in NEUTRAL_ACTIONS)
    )
    return flagged, action == "block"


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class StepStats:
    """What one step reported over the run."""

    scanned: int = 0
    reports: int = 0  # not None
    flagged: int = 0
    blocked: int = 0
    failed: int = 0  # scan raised or returned something that is not a report
    with_entities: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    entities: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, report: dict[str, Any] | None, seconds: float, failed: bool) -> None:
        self.scanned += 1
        self.seconds += seconds
        if failed:
            self.failed += 1
            return
        if report is None:
            return
        self.reports += 1
        flagged, blocked = verdict(report)
        self.flagged += flagged
        self.blocked += blocked
        if isinstance(action := report.get("action"), str):
            self.actions[action] += 1
        entities = report.get("entities")
        if isinstance(entities, list) and entities:
            self.with_entities += 1
            for entity in entities:
                kind = entity.get("type") if isinstance(entity, dict) else None
                self.entities[kind if isinstance(kind, str) else "?"] += 1
        if (score := _score(report.get("score"))) is not None:
            self.scores.append(score)

    def score_json(self) -> dict[str, Any] | None:
        if not self.scores:
            return None
        result: dict[str, Any] = {
            "count": len(self.scores),
            "mean": sum(self.scores) / len(self.scores),
            "min": min(self.scores),
            "max": max(self.scores),
        }
        if all(0.0 <= s <= 1.0 for s in self.scores):
            bins = [0] * 10
            for s in self.scores:
                bins[min(int(s * 10), 9)] += 1
            result["histogram"] = bins  # counts of scores in [0, 0.1), [0.1, 0.2) … [0.9, 1.0]
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "reports": self.reports,
            "flagged": self.flagged,
            "would_block": self.blocked,
            "failed": self.failed,
            "actions": dict(self.actions.most_common()),
            "inputs_with_entities": self.with_entities,
            "entities": dict(self.entities.most_common()),
            "score": self.score_json(),
            "mean_ms": round(1000 * self.seconds / self.scanned, 3) if self.scanned else None,
        }


class Summary:
    """Counts over one scan run, rendered for stderr or as JSON (``--summary-json``)."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.chain = ""
        self.started = time.monotonic()
        self.lines = 0  # inputs read (blank lines are skipped)
        self.scanned = 0
        self.error_lines: list[int] = []
        self.errors = 0
        self.flagged = 0
        self.blocked = 0
        self.steps: dict[str, StepStats] = {}
        self.not_scanned: list[str] = []

    def set_steps(self, keys: Sequence[str], not_scanned: Sequence[str]) -> None:
        self.steps = {key: StepStats() for key in keys}
        self.not_scanned = list(not_scanned)

    def add_error(self, line: int) -> None:
        self.lines += 1
        self.errors += 1
        if len(self.error_lines) < _SHOWN_ERROR_LINES:
            self.error_lines.append(line)

    def add_input(
        self, reports: Mapping[str, Any], failed: Sequence[str] = (), seconds: Mapping[str, float] | None = None
    ) -> None:
        """Count one scanned input: each step's report (``failed``: steps whose scan failed), then the input."""
        self.lines += 1
        self.scanned += 1
        flagged = blocked = False
        for key, report in reports.items():
            self.steps[key].add(report, (seconds or {}).get(key, 0.0), key in failed)
            if key not in failed:
                step_flagged, step_blocked = verdict(report)
                flagged, blocked = flagged or step_flagged, blocked or step_blocked
        self.flagged += flagged
        self.blocked += blocked

    @property
    def step_failures(self) -> int:
        return sum(stats.failed for stats in self.steps.values())

    def failed(self, fail_on: frozenset[str]) -> list[str]:
        """The ``--fail-on`` conditions that held, as sentences."""
        reasons = []
        if "block" in fail_on and self.blocked:
            reasons.append(f"--fail-on block: {_n(self.blocked, 'input')} would be blocked")
        if "flag" in fail_on and self.flagged:
            reasons.append(f"--fail-on flag: {_n(self.flagged, 'input')} flagged")
        if "error" in fail_on and (self.errors or self.step_failures):
            reasons.append(f"--fail-on error: {_n(self.errors, 'bad line')}, {_n(self.step_failures, 'failed scan')}")
        return reasons

    def to_json(self, failed: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "chain": self.chain,
            "lines": self.lines,
            "scanned": self.scanned,
            "errors": self.errors,
            "error_lines": self.error_lines,
            "flagged": self.flagged,
            "would_block": self.blocked,
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "steps": {key: stats.to_json() for key, stats in self.steps.items()},
            "not_scanned": self.not_scanned,
            "failed": list(failed),
        }

    def render(self, failed: Sequence[str] = ()) -> str:
        elapsed = time.monotonic() - self.started
        bad = ""
        if self.errors:
            shown = ", ".join(map(str, self.error_lines)) + (", …" if self.errors > len(self.error_lines) else "")
            bad = f", {_n(self.errors, 'bad line')} (line {shown})"
        lines = [
            f"chaperone scan: {_n(self.lines, 'input')} in {elapsed:.2f} s, chain {self.chain!r} of {self.policy}: "
            f"{self.scanned} scanned{bad}; {self.flagged} flagged, {self.blocked} would be blocked"
        ]
        width = max((len(key) for key in self.steps), default=0)
        for key, stats in self.steps.items():
            lines.extend(_render_step(key.ljust(width), stats))
        if self.not_scanned:
            lines.append(f"  not scanned (no scan method): {', '.join(self.not_scanned)}")
        if not self.steps:
            lines.append("  no step of this chain implements scan: nothing was checked")
        lines.extend(f"  {reason} → exit 1" for reason in failed)
        return "\n".join(lines)


def _render_step(key: str, stats: StepStats) -> list[str]:
    pad = " " * (len(key) + 4)
    head = f"  {key}  {stats.flagged} flagged, {stats.blocked} would block"
    if stats.failed:
        head += f", {stats.failed} FAILED"
    if stats.scanned:
        head += f" ({1000 * stats.seconds / stats.scanned:.2f} ms per input)"
    out = [head]
    if stats.actions:
        out.append(f"{pad}actions: {_counts(stats.actions)}")
    if stats.entities:
        out.append(f"{pad}entities in {_n(stats.with_entities, 'input')}: {_counts(stats.entities)}")
    score = stats.score_json()
    if score is not None:
        text = f"{pad}score: mean {score['mean']:.3f}, max {score['max']:.3f} over {score['count']}"
        if "histogram" in score:
            text += "; by tenths 0|" + " ".join(map(str, score["histogram"])) + "|1"
        out.append(text)
    return out


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.most_common())


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# ---- progress -------------------------------------------------------------------------------


class Progress:
    """No progress at all (``--quiet``); the base of the two kinds that show some."""

    def advance(self, summary: Summary) -> None:
        """One more input is done (its result was written)."""

    @contextlib.contextmanager
    def writing(self, out: IO[str]) -> Iterator[None]:
        """Around a write of a result to ``out`` (a bar moves out of the way on a shared terminal)."""
        yield

    def close(self, complete: bool = False) -> None:
        """The run is over (``complete``: every input was read and written)."""


class _Bar(Progress):
    """A tqdm bar on the terminal, with the running error and block counts."""

    def __init__(self, stream: IO[str], total: int | None) -> None:
        try:
            sized = os.get_terminal_size(stream.fileno()).columns >= 20
        except (AttributeError, OSError, ValueError):
            sized = False
        self.bar = tqdm(  # a terminal that reports no size (a bare pty, a serial console) gets 80x20: tqdm hides
            total=total, file=stream, unit="input", desc="scan", leave=True,  # its bar on a terminal of 0 rows
            dynamic_ncols=sized, ncols=None if sized else 80, nrows=None if sized else 20,
        )  # fmt: skip

    def advance(self, summary: Summary) -> None:
        postfix = f"bad={summary.errors} flagged={summary.flagged} block={summary.blocked}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(1)

    @contextlib.contextmanager
    def writing(self, out: IO[str]) -> Iterator[None]:
        if out.isatty():
            with tqdm.external_write_mode(file=out):
                yield
        else:
            yield

    def close(self, complete: bool = False) -> None:
        if complete and self.bar.total is not None:
            self.bar.total = self.bar.n  # the total counted blank lines, which are not inputs
            self.bar.refresh()
        self.bar.close()


class _Plain(Progress):
    """A line every ``interval_s`` seconds, for logs and CI (stderr is not a terminal)."""

    def __init__(self, stream: IO[str], total: int | None, interval_s: float) -> None:
        self.stream = stream
        self.total = total
        self.interval_s = interval_s
        self.started = self.last = time.monotonic()
        self.done = 0

    def advance(self, summary: Summary) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return
        self.last = now
        of = f"/{self.total}" if self.total is not None else ""
        rate = self.done / max(now - self.started, 1e-9)
        print(
            f"chaperone scan: {self.done}{of} inputs, {summary.errors} bad, {summary.flagged} flagged, "
            f"{summary.blocked} would be blocked ({rate:.0f} inputs/s)",
            file=self.stream,
            flush=True,
        )


def make_progress(mode: str, stream: IO[str], total: int | None, interval_s: float) -> Progress:
    """``auto``: a bar when ``stream`` is a terminal, else plain lines; or ``bar``, ``plain``, ``none``."""
    if mode == "auto":
        mode = "bar" if stream.isatty() else "plain"
    if mode == "bar":
        return _Bar(stream, total)
    if mode == "plain":
        return _Plain(stream, total, interval_s)
    return Progress()
