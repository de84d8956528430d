"""The capture plugin's background writer: a bounded queue, batches masked and written off the event loop.

``offer`` is all the request path does (a ``put_nowait``): when the queue is full the record is dropped
and counted, never waited for. One task drains the queue in batches (whatever is waiting, up to
``batch``); masking (presidio) and the SQLite transaction run in one dedicated thread, so the store's
connection stays on one thread. ``stop`` drains everything already offered: a record counted as kept is
written unless the write itself fails (counted in ``failed``, logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from plugins._capture.mask import Masker, Pending
from plugins._capture.store import CaptureStore

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class WriterStats:
    """Counters since start: offered records kept (queued), dropped (queue full), written, failed writes."""

    kept: int = 0
    dropped: int = 0
    written: int = 0
    failed: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"kept": self.kept, "dropped": self.dropped, "written": self.written, "failed": self.failed,
                "batches": self.batches}  # fmt: skip


class Writer:
    def __init__(self, store: CaptureStore, masker: Masker, *, max_queue: int, batch: int) -> None:
        self.store = store
        self.masker = masker
        self.batch = batch
        self.stats = WriterStats()
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=max_queue)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaperone-capture")
        self._task: asyncio.Task[None] | None = None

    def offer(self, pending: Pending) -> bool:
        """Queue a record without waiting; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        self.stats.kept += 1
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chaperone-capture-writer")

    async def flush(self) -> None:
        """Wait until every record offered so far is written (or failed)."""
        if self._task is None:
            self.start()
        await self._queue.join()

    async def stop(self) -> None:
        """Write what is queued, then stop the task, the thread and the store."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.get_running_loop().run_in_executor(self._pool, self.store.close)
        self._pool.shutdown(wait=True)

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the writer's thread (the store's connection lives there)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _run(self) -> None:
        queue = self._queue
        while True:
            items = [await queue.get()]
            while len(items) < self.batch and not queue.empty():
                items.append(queue.get_nowait())
            try:
                written = await asyncio.get_running_loop().run_in_executor(self._pool, self._write, items)
                self.stats.written += written
                self.stats.failed += len(items) - written
                self.stats.batches += 1
            except Exception:
                self.stats.failed += len(items)
                log.exception("capture: a batch of %d records was not written", len(items))
            finally:
                for _ in items:
                    queue.task_done()

    def _write(self, items: list[Pending]) -> int:
        rows = []
        for pending in items:
            try:
                rows.append(self.masker.row(pending))
            except Exception:  # one bad record does not lose the batch; its text never goes in unmasked
                log.exception("capture: record %s not stored", pending.meta.get("request_id"))
        return self.store.insert_many(rows)
