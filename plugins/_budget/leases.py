"""Quota leases: a replica takes a meter's quota from the store in chunks and admits requests from them locally.

Admitting every request with its own store ``incr`` costs a store round trip (on diskcache an executor hop
and an SQLite write transaction) per meter per request. Instead each process holds, per meter and window,
a *lease*: an amount it added to the window's store counter in one atomic ``incr``. Requests are admitted
from the lease in process; only when it cannot cover a request does the process take another chunk.

Taking a chunk of size B: ``incr(key, B)`` returns the counter with it (``level``, the previous window's
weighted count added for a sliding meter). What fits is ``keep = min(B, limit - (level - B))`` (whole
requests and tokens); the rest is given back at once with ``incr(key, keep - B)``. Every chunk is
an atomic increment and each process keeps only what fit after every increment before it, so **the sum of
admitted amounts never exceeds the limit**, across coroutines, workers and replicas. (Sliding meters: the
previous window's weight only falls during a window, so what fit when leased still fits.)

Chunk size: ``B = max(need, min(fraction * limit, (limit - seen) / 4))`` where ``seen`` is the level this
process last saw in the window (whole requests and tokens). Early in a window chunks are
``fraction`` of the limit (1/32 by default); near the limit they shrink to a quarter of the room left,
so the last chunks are small and one process does not hoard the tail.

Cost (the bound): **under-admission of at most one process's unused lease per meter per window**, i.e.
less than ``fraction * limit`` plus one request's amount per process (a request meter: under
``max(1, fraction * limit)`` requests), plus transient refusals while another process's excess is on its
way back (as with one ``incr`` per request). A lease dies with its window; one left unused for
``lease_idle_s`` gives its rest back (``return_idle``, run by the plugin), so an idle replica does not
keep a day's or a month's quota from the busy ones; at shutdown the unused part of every current lease
is given back. A crash loses at most the unused leases.

Token meters: a reservation comes out of the lease; settling gives an unused part back to the lease (if
it is still the window's), and an overrun is charged to the lease while it has room, else through the
store by the caller (a forced increment that may go over the limit: it is usage that happened).

Level and headers: ``level`` of a ``Taken`` is the store's level before this process's last chunk plus
what this process admitted since, so ``x-ratelimit-remaining-*`` is exact for one process and
approximate (it lags other replicas' use since our last chunk) across replicas.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from plugins._budget import meters
from plugins._budget.meters import Meter, Previous, Taken
from proxy.store import Store
from proxy.store.base import Clock

_EPS = 1e-9
_SIZE = 10_000  # meters remembered per process (one per key and model with limits)


@dataclass(slots=True)
class Lease:
    """This process's share of one meter's window."""

    meter: Meter
    place: meters.Place
    granted: float = 0.0  # kept from the store in this window
    used: float = 0.0  # admitted from it (reservations, minus refunds, plus local overruns)
    base: float = 0.0  # the meter's level before our last chunk (others' use included)
    since: float = 0.0  # what we admitted since our last chunk
    seen: float = 0.0  # the meter's level right after our last chunk
    grows: int = 0  # chunks asked for in this window
    short: bool = False  # whether the last ask got less than it wanted (the meter is full)
    touched: float = 0.0  # monotonic time of the last admission from it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def room(self) -> float:
        return self.granted - self.used

    def use(self, amount: float) -> Taken:
        self.touched = time.monotonic()
        self.used += amount
        self.since += amount
        at = self.place
        return Taken(self.meter, at.key, at.window_s, at.slot, amount, self.base + self.since)


class Leases:
    """The leases of one process, per meter; ``take`` admits, ``give_back`` and ``settle`` return amounts."""

    def __init__(self, store: Store, previous: Previous, fraction: float = 1 / 32, clock: Clock = time.time) -> None:
        self.store = store
        self.previous = previous
        self.fraction = fraction
        self.clock = clock
        self._leases: dict[str, Lease] = {}

    def local(self, meter: Meter, amount: float, now: float) -> Taken | None:
        """Admit from the current lease without touching the store; None when it cannot cover ``amount``."""
        lease = self._leases.get(meter.name)
        if lease is None or lease.place.slot != meters.slot_of(meter, now) or lease.room() < amount - _EPS:
            return None
        return lease.use(amount)

    async def take(self, meter: Meter, amount: float, now: float) -> Taken:
        """Admit ``amount``, taking a new chunk if needed; a refusal is a ``Taken`` whose level passes the limit.

        Coroutines that find the lease short queue on its lock: the first takes a chunk, the others
        then admit from it (one store increment for a burst, not one each). When that ask came back
        short (the meter is full), the ones that queued during it are refused without asking again.
        """
        lease = self._current(meter, now)
        if lease.room() >= amount - _EPS:
            return lease.use(amount)
        asked = lease.grows
        async with lease.lock:
            if lease.room() < amount - _EPS and not (lease.grows != asked and lease.short):
                await self._grow(meter, lease, amount, now)
            if lease.room() < amount - _EPS:
                return _refused(lease, amount)
            return lease.use(amount)

    def give_back(self, taken: Taken) -> None:
        """Undo an admission (another meter refused the request)."""
        lease = self._of(taken)
        if lease is not None:
            lease.used -= taken.amount
            lease.since -= taken.amount

    def settle(self, taken: Taken, delta: float) -> float:
        """Settle ``taken`` by ``delta`` locally; the part the store must still be charged (an overrun)."""
        lease = self._of(taken)
        if lease is None:
            return max(0.0, delta)  # the window's lease is gone: a refund is dropped, an overrun charged
        local = delta if delta < 0 else min(delta, max(0.0, lease.room()))
        lease.used += local
        lease.since += local
        return delta - local

    async def release(self) -> None:
        """Give the unused part of every current lease back to the store (at shutdown)."""
        now = self.clock()
        leases, self._leases = self._leases, {}
        back = [
            (lease.place, lease.room())
            for lease in leases.values()
            if lease.room() > _EPS and meters.slot_of(lease.meter, now) == lease.place.slot
        ]
        await asyncio.gather(
            *(self.store.incr(at.key, -room, window_s=at.window_s) for at, room in back), return_exceptions=True
        )

    async def return_idle(self, idle_s: float) -> int:
        """Give back the rest of every lease of the current window unused for ``idle_s``; how many went."""
        now, tick = self.clock(), time.monotonic()
        back = []
        for lease in self._leases.values():
            room = lease.room()
            idle = tick - lease.touched >= idle_s and not lease.lock.locked()
            if idle and room > _EPS and meters.slot_of(lease.meter, now) == lease.place.slot:
                lease.granted -= room  # gone from the lease before the store hears of it: never admitted twice
                lease.seen -= room
                back.append((lease.place, room))
        await asyncio.gather(
            *(self.store.incr(at.key, -room, window_s=at.window_s) for at, room in back), return_exceptions=True
        )
        return len(back)

    def used(self, name: str) -> float:
        """What this process admitted on meter ``name`` in its lease's window (0 without a lease)."""
        lease = self._leases.get(name)
        return 0.0 if lease is None else lease.used

    def _of(self, taken: Taken) -> Lease | None:
        lease = self._leases.get(taken.meter.name)
        if lease is None or lease.place.key != taken.key or lease.place.slot != taken.slot:
            return None
        return lease

    def _current(self, meter: Meter, now: float) -> Lease:
        lease = self._leases.get(meter.name)
        if lease is None or lease.place.slot != meters.slot_of(meter, now):
            if len(self._leases) >= _SIZE:
                self._leases.clear()  # forgets unused leases: under-admission only
            lease = self._leases[meter.name] = Lease(meter, meters.locate(meter, now))
        return lease

    def chunk(self, meter: Meter, lease: Lease, need: float) -> float:
        """The size of the next chunk (see the module docstring)."""
        size = min(meter.limit * self.fraction, (meter.limit - lease.seen) / 4)
        if meter.what != "usd":
            size = math.floor(size)  # whole requests and tokens
        return max(need, size)

    async def _grow(self, meter: Meter, lease: Lease, need: float, now: float) -> None:
        at = lease.place
        size = self.chunk(meter, lease, need)
        if at.prev_key is None:
            level = await self.store.incr(at.key, size, window_s=at.window_s)
        else:
            current, before = await asyncio.gather(
                self.store.incr(at.key, size, window_s=at.window_s), self.previous.read(self.store, at.prev_key, now)
            )
            level = before * (1.0 - (now - at.slot * meters.MINUTE) / meters.MINUTE) + current  # weight at now
        prior = level - size
        keep = min(size, max(0.0, meter.limit - prior))
        if meter.what != "usd":
            keep = math.floor(keep + _EPS)
        if keep < size and meters.slot_of(meter, self.clock()) == at.slot:  # never give back into a new window
            await self.store.incr(at.key, keep - size, window_s=at.window_s)
        lease.granted += keep
        lease.base, lease.since, lease.seen = prior, 0.0, prior + keep
        lease.grows += 1
        lease.short = keep < size


def _refused(lease: Lease, amount: float) -> Taken:
    """A refusal: its level (what admitting would bring the meter to, as far as we know) passes the limit."""
    level = max(lease.seen, lease.base + lease.since) + amount
    if level <= lease.meter.limit + _EPS:
        level = lease.meter.limit + max(amount, _EPS) * 2  # a Taken at or below the limit counts as admitted
    at = lease.place
    return Taken(lease.meter, at.key, at.window_s, at.slot, amount, level, refused=True)
