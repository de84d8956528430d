"""Spend by key, model and day: the store layout the ``cost`` plugin writes, its summary, and ``GET /chaperone/usage``.

Layout (in the policy's store, so every replica and worker adds to the same totals):

    usage:days                       set of "YYYY-MM-DD" (UTC) that have rows
    usage:{day}:rows                 set of rows, each a JSON ``[key name, model]``
    usage:{day}:{row}:{field}        counter, one per field of ``FIELDS``

Counters only ever grow, by atomic ``incr``; money is counted in integer nano-dollars (1e-9 USD), so
totals stay exact in Redis' ``INCRBYFLOAT`` and in diskcache. ``Ledger`` batches the increments of a
process in memory and writes them every ``flush_s`` (and at shutdown): a replica that dies loses at most
that window of accounting, never a counter. The admin endpoint reads the same keys:

    GET /chaperone/usage?from=2026-11-01&to=2026-11-30&key=app1&model=gpt-4o&group_by=key|model|day

answers ``{"object": "usage.summary", "from", "to", "group_by", "currency": "USD", "totals": {…},
"data": [{"key"?, "model"?, "day"?, …totals}]}`` (default range: the current UTC month to date;
``group_by`` may list several, comma-separated; rows sorted by cost, days by date). Admin key required.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import InvalidRequest, ServiceUnavailable
from proxy.store import Store, StoreError

log = logging.getLogger(__name__)

FIELDS = (
    "requests",
    "cost_nusd",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "estimated",
    "unpriced",
    "errors",
    "cache_hits",
    "saved_nusd",
)
"""Counters per row: requests, nano-USD spent, tokens by kind, requests whose tokens were counted by the
proxy (no upstream usage), requests of models without a price, failed requests, cache hits and the
nano-USD those hits saved."""
GROUPS = ("key", "model", "day")
MAX_DAYS = 366
NANO = 1_000_000_000
OPEN_KEY = "(open)"
"""The key name recorded for requests of a policy that runs without keys."""


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def _row(key: str, model: str) -> str:
    return orjson.dumps([key, model]).decode()


def _unrow(row: str) -> tuple[str, str] | None:
    try:
        key, model = orjson.loads(row)
    except (ValueError, TypeError):
        return None
    return (key, model) if isinstance(key, str) and isinstance(model, str) else None


# ---- writing ---------------------------------------------------------------------------------------


class UsageQueryError(ValueError):
    """A bad ``from``/``to``/``group_by``; ``param`` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class Ledger:
    """Adds usage rows to the store: in memory first, then one atomic ``incr`` per changed counter."""

    def __init__(self, store: Store, *, flush_s: float) -> None:
        self.store = store
        self.flush_s = flush_s
        self._pending: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
        self._indexed: set[tuple[str, str]] = set()  # rows this process already put in the day's index
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, day: str, key: str, model: str, amounts: Mapping[str, int]) -> None:
        """Count ``amounts`` (field → integer) for the row; written at the next flush."""
        row = self._pending[(day, _row(key, model))]
        for name, amount in amounts.items():
            row[name] += amount

    def start(self) -> None:
        if self.flush_s > 0 and self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except StoreError as exc:  # kept in memory, tried again at the next tick
                log.warning("usage counters not written yet (store: %s)", exc)

    async def flush(self) -> None:
        """Write what was counted since the last flush; on a store error the unwritten rest stays pending."""
        async with self._lock:
            batch, self._pending = self._pending, defaultdict(lambda: dict.fromkeys(FIELDS, 0))
            try:
                for (day, row), amounts in list(batch.items()):
                    if (day, row) not in self._indexed:
                        await self.store.set_add("usage:days", day)
                        await self.store.set_add(f"usage:{day}:rows", row)
                        self._indexed.add((day, row))
                    for name in FIELDS:
                        if amounts[name]:
                            await self.store.incr(f"usage:{day}:{row}:{name}", amounts[name])
                            amounts[name] = 0  # written: a retry must not add it again
                    del batch[(day, row)]
            finally:
                for slot, amounts in batch.items():  # not written: back into the next flush
                    pending = self._pending[slot]
                    for name, amount in amounts.items():
                        pending[name] += amount


# ---- reading ---------------------------------------------------------------------------------------


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _totals(counts: Iterable[Mapping[str, float]]) -> dict[str, Any]:
    total = dict.fromkeys(FIELDS, 0)
    for count in counts:
        for name in FIELDS:
            total[name] += int(count.get(name, 0))
    out: dict[str, Any] = {name: total[name] for name in FIELDS if not name.endswith("_nusd")}
    out["cost_usd"] = total["cost_nusd"] / NANO
    out["saved_usd"] = total["saved_nusd"] / NANO
    return out


async def _read_day(
    store: Store, day: str, key: str | None, model: str | None
) -> list[tuple[str, str, dict[str, float]]]:
    rows = []
    for row in sorted(await store.set_members(f"usage:{day}:rows")):
        parsed = _unrow(row)
        if parsed is None or (key is not None and parsed[0] != key) or (model is not None and parsed[1] != model):
            continue
        values = await asyncio.gather(*(store.counter(f"usage:{day}:{row}:{name}") for name in FIELDS))
        rows.append((parsed[0], parsed[1], dict(zip(FIELDS, values, strict=True))))
    return rows


async def summarize(
    store: Store,
    start: date,
    end: date,
    *,
    key: str | None = None,
    model: str | None = None,
    group_by: tuple[str, ...] = ("key",),
) -> dict[str, Any]:
    """Spend from ``start`` to ``end`` (UTC days, inclusive), filtered by key and model, grouped by ``group_by``."""
    if end < start:
        raise UsageQueryError(f"'from' ({start}) is after 'to' ({end})", "from")
    if (end - start).days >= MAX_DAYS:
        raise UsageQueryError(f"the range is limited to {MAX_DAYS} days", "from")
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise UsageQueryError(f"cannot group by {unknown[0]!r}; use key, model or day", "group_by")
    known = await store.set_members("usage:days")
    groups: dict[tuple[str, ...], list[dict[str, float]]] = defaultdict(list)
    everything: list[dict[str, float]] = []
    for day in _days(start, end):
        if day not in known:
            continue
        for row_key, row_model, counts in await _read_day(store, day, key, model):
            parts = {"key": row_key, "model": row_model, "day": day}
            groups[tuple(parts[g] for g in group_by)].append(counts)
            everything.append(counts)
    data = [{**dict(zip(group_by, group, strict=True)), **_totals(counts)} for group, counts in groups.items()]
    if "day" in group_by:
        data.sort(key=lambda r: (r["day"], -r["cost_usd"]))
    else:
        data.sort(key=lambda r: (-r["cost_usd"], -r["requests"], *(r[g] for g in group_by)))
    return {
        "object": "usage.summary",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": list(group_by),
        "filters": {"key": key, "model": model},
        "currency": "USD",
        "totals": _totals(everything),
        "data": data,
    }


def parse_range(start: str | None, end: str | None, *, today: date | None = None) -> tuple[date, date]:
    """``from``/``to`` as dates (YYYY-MM-DD); default: the first of the current UTC month to today."""
    today = today or datetime.now(UTC).date()
    to = _date("to", end) if end else today
    return (_date("from", start) if start else to.replace(day=1)), to


def parse_groups(value: str | None) -> tuple[str, ...]:
    groups = tuple(part.strip() for part in (value or "key").split(",") if part.strip())
    return groups or ("key",)


def _date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageQueryError(f"{name!r} must be a date as YYYY-MM-DD, got {value!r}", name) from None


# ---- HTTP ------------------------------------------------------------------------------------------


async def usage_view(request: web.Request) -> web.Response:
    """``GET /chaperone/usage``: the spend summary (admin key required)."""
    from proxy.admin import require_admin  # the one admin guard

    active = require_admin(request)
    query = request.query
    try:
        start, end = parse_range(query.get("from"), query.get("to"))
        groups = parse_groups(query.get("group_by"))
        summary = await summarize(
            active.store, start, end, key=query.get("key"), model=query.get("model"), group_by=groups
        )
    except UsageQueryError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    except StoreError as exc:
        raise ServiceUnavailable(f"The usage store could not be read: {exc}") from None
    return web.json_response(summary, dumps=lambda obj: orjson.dumps(obj).decode())


def add_routes(app: web.Application) -> None:
    """Register ``GET /chaperone/usage``; call before ``proxy.admin.add_routes`` (its catch-all comes last)."""
    app.router.add_get("/chaperone/usage", usage_view, allow_head=False)
