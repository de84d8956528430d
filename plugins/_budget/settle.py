"""Settling overruns in batches: one store update per meter window every ``interval_s``.

Admission and most settling happen in process (``leases``: a reservation comes out of the process's
lease, and an unused part goes back to it). What reaches this module is what a lease cannot absorb: an
overrun past the lease, or a late one after the lease's window ended. Corrections of the same meter
window from many requests are summed in process and written together. A correction waits at most
``interval_s`` (plus the write), and ``flush`` at shutdown writes what is pending; a crash loses at most
that interval's overruns.
"""

from __future__ import annotations

import asyncio
import logging
import time

from plugins._budget import meters
from plugins._budget.meters import Taken
from proxy.store import Store, StoreError

log = logging.getLogger(__name__)

_Slot = tuple[str, float | None, int]


class Settler:
    def __init__(self, store: Store, interval_s: float = 0.05) -> None:
        self.store = store
        self.interval_s = interval_s
        self._pending: dict[_Slot, tuple[Taken, float]] = {}
        self._timer: asyncio.Task[None] | None = None

    def add(self, taken: Taken, delta: float) -> None:
        """Queue ``delta`` for the meter window ``taken`` counted in."""
        if delta == 0:
            return
        slot = (taken.key, taken.window_s, taken.slot)
        queued = self._pending.get(slot)
        self._pending[slot] = (taken, delta + (queued[1] if queued else 0.0))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self.interval_s)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        """Write every queued correction now."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        now = time.time()
        results = await asyncio.gather(
            *(meters.adjust(self.store, taken, delta, now) for taken, delta in pending.values()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, StoreError):
                log.warning("budget: could not settle a counter: %s", result)
            elif isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
