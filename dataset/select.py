"""Which store rows an export (or ``list``) reads: time range, model, key, tags, feedback, judge score."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from plugins._capture.store import CaptureStore

Feedback = Literal["any", "good", "bad", "none", "some", "corrected"]


@dataclass(frozen=True, slots=True)
class Filters:
    since: float | None = None
    until: float | None = None
    models: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    feedback: Feedback = "any"
    min_judge_score: float | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = ["1"]
        params: list[Any] = []
        if self.since is not None:
            clauses.append("e.ts >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("e.ts < ?")
            params.append(self.until)
        for column, values in (("e.model", self.models), ("e.key", self.keys)):
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        if self.min_judge_score is not None:
            clauses.append("e.judge_score >= ?")
            params.append(self.min_judge_score)
        return " AND ".join(clauses), params

    def keeps(self, row: dict[str, Any]) -> bool:
        """The filters SQL does not express: tags (any of) and feedback."""
        if self.tags and not set(self.tags).intersection(row.get("tags") or []):
            return False
        fb = row.get("feedback")
        return {
            "any": True,
            "some": fb is not None,
            "none": fb is None,
            "good": fb is not None and (fb["good"] is True or (fb["good"] is None and bool(fb.get("correction")))),
            "bad": fb is not None and fb["good"] is False,
            "corrected": fb is not None and bool(fb.get("correction")),
        }[self.feedback]

    def describe(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, (), "any")}
        for name in ("since", "until"):
            if name in out:
                out[name] = datetime.fromtimestamp(out[name], UTC).isoformat()
        return out


def select(store: CaptureStore, filters: Filters, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
    where, params = filters.where()
    count = 0
    for row in store.rows(where, params):
        if filters.keeps(row):
            yield row
            count += 1
            if limit is not None and count >= limit:
                return


def parse_time(value: str) -> float:
    """ISO date or datetime (UTC when no zone) → unix seconds."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date or time (2026-12-01 or 2026-12-01T08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
