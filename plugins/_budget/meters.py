"""Store-backed meters: sliding-window rate limits (rpm, tpm) and fixed-window budgets (tokens, USD).

A meter is a store counter per window (``locate``: its key, store window and slot). The plugin admits
through ``leases`` (a process takes quota in chunks with one atomic ``incr`` each and admits from them
locally); ``take`` here is the one-step form (one ``incr`` of the request's amount), used to charge an
overrun to the current window, and ``adjust`` settles a correction in the window it belongs to.
Either way every amount is an atomic store increment, so concurrent requests on any number of
replicas never get more than the limit admitted.

Sliding window: two fixed windows, weighted. The count is ``previous * (1 - elapsed/W) + current``,
the approximation Cloudflare and nginx use. Error bound: within any clock-aligned window the admitted
amount never exceeds the limit (``current`` alone is bounded by it); over an arbitrary W-long span it is
exact for evenly spread traffic, and in the adversarial worst case (the whole previous window's traffic
at its very end) up to twice the limit. The store expires a windowed counter right after its window ends,
so the previous window must outlive it: window ``i`` is counted in a store window of ``m(i)·W`` seconds
where ``m(i)`` is the smallest ``m ≥ 2`` for which ``i`` is not the last W-slot of its ``m·W`` window.

Budgets: UTC minute and day are the store's windows; a calendar month is a counter named by the month
(``YYYY-MM``) that never expires (one small counter per key, model and month).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from proxy.store import Store
from proxy.store.base import window_slot

MINUTE = 60.0
DAY = 86_400.0


def _span(i: int) -> int:
    """``m(i)``: the smallest m ≥ 2 such that W-slot ``i`` is not the last of its m·W store window."""
    m = 2
    while i % m == m - 1:
        m += 1
    return m


@dataclass(frozen=True, slots=True)
class Meter:
    """One limit on one scope: ``name`` is the store key stem, ``kind`` sliding | minute | day | month."""

    name: str
    kind: str
    limit: float
    what: str  # "requests", "tokens" or "usd": what the amount counts, for messages and headers
    label: str  # the config field, for verdicts and messages: "rpm", "tokens_per_day", …


@dataclass(slots=True)
class Taken:
    """What one admission added to one meter, so it can be settled or undone."""

    meter: Meter
    key: str  # the exact store key it was added to (unwindowed form)
    window_s: float | None  # the store window of that key (None: an unwindowed counter)
    slot: int  # the W-slot (sliding), the store window index, or year * 12 + month - 1 (``slot_of``)
    amount: float
    level: float  # the meter's level after this admission (sliding: weighted), for headers
    refused: bool = False  # a lease could not cover it: nothing was admitted (``level`` passes the limit)


def _month(now: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now))


class Previous:
    """A per-process cache of finished windows' counts, re-read from the store after ``ttl_s``.

    A finished window only changes by late settlements, so reading it once a second instead of on every
    request saves one store round trip per sliding meter; the weighted count may lag those by ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 1.0, size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._seen: dict[str, tuple[float, float]] = {}

    async def read(self, store: Store, key: str, now: float) -> float:
        hit = self._seen.get(key)
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        value = await store.counter(key)
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[key] = (value, now)
        return value


@dataclass(frozen=True, slots=True)
class Place:
    """Where a meter counts at one moment: its store key, store window, slot, and the previous window."""

    key: str
    window_s: float | None
    slot: int
    prev_key: str | None = None  # sliding only: the previous W-slot's store key (full, windowed form)
    weight: float = 0.0  # sliding only: how much of the previous slot still counts


def slot_of(meter: Meter, now: float) -> int:
    """The window index ``now`` falls in for ``meter`` (a month is ``year * 12 + month - 1``)."""
    if meter.kind in ("sliding", "minute"):
        return math.floor(now / MINUTE)
    if meter.kind == "day":
        return math.floor(now / DAY)
    t = time.gmtime(now)
    return t.tm_year * 12 + t.tm_mon - 1


def locate(meter: Meter, now: float) -> Place:
    """The store key and window ``meter`` counts in at ``now``."""
    if meter.kind == "sliding":
        i = math.floor(now / MINUTE)
        prev_key = window_slot(f"{meter.name}:{i - 1}", _span(i - 1) * MINUTE, (i - 1) * MINUTE)[0]
        return Place(f"{meter.name}:{i}", _span(i) * MINUTE, i, prev_key, 1.0 - (now - i * MINUTE) / MINUTE)
    if meter.kind == "month":
        return Place(f"{meter.name}:{_month(now)}", None, slot_of(meter, now))
    return Place(meter.name, MINUTE if meter.kind == "minute" else DAY, slot_of(meter, now))


async def take(store: Store, meter: Meter, amount: float, now: float, previous: Previous | None = None) -> Taken:
    """Add ``amount`` to ``meter`` atomically; the new level (weighted for a sliding meter)."""
    at = locate(meter, now)
    if at.prev_key is None:
        level = await store.incr(at.key, amount, window_s=at.window_s)
        return Taken(meter, at.key, at.window_s, at.slot, amount, level)
    before = store.counter(at.prev_key) if previous is None else previous.read(store, at.prev_key, now)
    current, prior = await asyncio.gather(store.incr(at.key, amount, window_s=at.window_s), before)
    return Taken(meter, at.key, at.window_s, at.slot, amount, prior * at.weight + current)


async def level(store: Store, meter: Meter, now: float) -> float:
    """[console2] The meter's level at ``now`` (weighted for a sliding meter), read without changing anything.

    Quota a process has leased but not yet used counts as used (``leases``), so what remains is a lower bound.
    """
    at = locate(meter, now)
    current = await store.counter(at.key, window_s=at.window_s)
    if at.prev_key is None:
        return current
    return await store.counter(at.prev_key) * at.weight + current


async def adjust(store: Store, taken: Taken, delta: float, now: float) -> None:
    """Change what ``taken`` added by ``delta`` (settle to actual usage, or undo with ``-amount``).

    A correction lands in the window the admission counted in while that window is still the store's
    current one; later, an increase goes to the current window and a decrease is dropped (the
    over-reservation ages out with its window).
    """
    if delta == 0:
        return
    if taken.window_s is None:
        await store.incr(taken.key, delta)
        return
    if taken.meter.kind == "sliding":
        same = math.floor(now / taken.window_s) == math.floor(taken.slot * MINUTE / taken.window_s)
        if same:
            await store.incr(taken.key, delta, window_s=taken.window_s)
        elif delta > 0:
            await take(store, taken.meter, delta, now)
        return
    if math.floor(now / taken.window_s) == taken.slot or delta > 0:
        await store.incr(taken.key, delta, window_s=taken.window_s)


def rate_headers(taken: list[Taken], now: float) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the tightest sliding meter of each kind (requests, tokens)."""
    tight: dict[str, Taken] = {}
    for t in taken:
        if t.meter.kind == "sliding":
            best = tight.get(t.meter.what)
            if best is None or t.meter.limit - t.level < best.meter.limit - best.level:
                tight[t.meter.what] = t
    if not tight:
        return {}
    headers: dict[str, str] = {}
    reset = f"{math.ceil(MINUTE - now % MINUTE)}s"  # reset_s of a sliding meter
    for what, (limit, remaining, resets) in _RATE_NAMES.items():
        got = tight.get(what)
        if got is not None:
            headers[limit] = str(int(got.meter.limit))
            headers[remaining] = str(max(0, math.floor(got.meter.limit - got.level)))
            headers[resets] = reset
    return headers


_RATE_NAMES = {
    what: (f"x-ratelimit-limit-{what}", f"x-ratelimit-remaining-{what}", f"x-ratelimit-reset-{what}")
    for what in ("requests", "tokens")
}


def reset_s(meter: Meter, now: float) -> float:
    """Seconds until the meter's current window ends (when a refused request may fit again, at the latest)."""
    if meter.kind in ("sliding", "minute"):
        return MINUTE - now % MINUTE
    if meter.kind == "day":
        return DAY - now % DAY
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return max(1.0, _epoch(year, month) - now)


def _epoch(year: int, month: int) -> float:
    import calendar

    return float(calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)))
