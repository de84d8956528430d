"""The capture plugin's background writer: a bounded queue, batches masked and written off the event loop.

``offer`` is all the request path does (a ``put_nowait``): when the queue is full the record is dropped
and counted, never waited for. One task drains the queue in batches (whatever is waiting, up to
``batch``) and hands each to ``plugins._capture.worker`` in a separate process (``mode: process``, the
default: no GIL shared with the event loop) or in one dedicated thread (``mode: thread``). ``stop`` drains
everything already offered: a record counted as kept is written unless the write itself fails (counted
in ``failed``, logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plugins._capture import worker
from plugins._capture.mask import Pending

log = logging.getLogger(__name__)
Mode = Literal["process", "thread"]
_NICE = 10  # the writer process yields the CPU to the proxy when both want it


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
    def __init__(self, path: Path, detector: dict[str, Any], *, max_queue: int, batch: int, mode: Mode) -> None:
        self.path = path
        self.batch = batch
        self.stats = WriterStats()
        self.key = f"{path}#{id(self)}"
        self._detector = detector
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=max_queue)
        self._process = mode == "process"
        self._pool: Executor = (
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            if self._process
            else ThreadPoolExecutor(1, thread_name_prefix="chaperone-capture")
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store and build the recognizers where they will run; then start draining."""
        await self.call(worker.init, self.key, str(self.path), self._detector, _NICE if self._process else 0)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chaperone-capture-writer")

    def offer(self, pending: Pending) -> bool:
        """Queue a record without waiting; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        self.stats.kept += 1
        return True

    async def flush(self) -> None:
        """Wait until every record offered so far is written (or failed)."""
        await self._queue.join()

    async def stop(self) -> None:
        """Write what is queued, then stop the task, close the store and the process (or thread)."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.call(worker.close, self.key)
        self._pool.shutdown(wait=True)

    async def call(self, fn: Any, *args: Any) -> Any:
        """Run a ``plugins._capture.worker`` function where the store lives."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _run(self) -> None:
        queue = self._queue
        while True:
            items = [await queue.get()]
            while len(items) < self.batch and not queue.empty():
                items.append(queue.get_nowait())
            try:
                written = await self.call(worker.write, self.key, items)
                self.stats.written += written
                self.stats.failed += len(items) - written
                self.stats.batches += 1
            except Exception:
                self.stats.failed += len(items)
                log.exception("capture: a batch of %d records was not written", len(items))
            finally:
                for _ in items:
                    queue.task_done()
