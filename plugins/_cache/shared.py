"""Cache entries and partition logs in the store, and how replicas' in-memory indexes converge.

Store keys (all under ``cache:``):

- ``cache:e:<exact key>``: one answer (JSON: the body, when it was stored, its log sequence number),
  with the policy's TTL.
- ``cache:n:<partition>``: the partition's sequence counter, incremented once per stored answer.
- ``cache:c:<exact key>``: the coalescing lock of a request in flight (``add``; deleted when it ends).
- ``cache:l:<partition>:<n>``: log row ``n``: the exact key, and in semantic mode the last user turn and
  its embedding (float16), with the same TTL.

Eviction: storing row ``n`` of a partition past its cap deletes the answer of row ``n - cap`` (unless
that key was stored again since), so a partition holds at most ``max_entries`` answers on every replica.

Convergence: each process keeps, per partition, the matrix of ``plugins._cache.index`` and the last
sequence number it has read. Before a lookup, at most every ``sync_interval_s``, it reads the counter
(one store read) and then the rows it has not seen (a new process starts from ``counter - cap``). Rows
whose answer is gone (TTL, eviction) are dropped when a lookup finds them. So an answer stored by one
replica is found by semantic lookups on the others within ``sync_interval_s`` (exact lookups see it at
once: they read ``cache:e:`` directly).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import orjson

from plugins._cache.index import DIM, Partition, Vector
from proxy.store import Store, StoreError

log = logging.getLogger(__name__)

SEMANTIC_CAP = 1_000_000
"""Rows kept in memory per partition when the policy sets no entry cap."""
MAX_PARTITIONS = 10_000
"""Partitions kept in memory per process (least recently used are forgotten, and re-read when needed)."""
_BATCH = 256


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored answer: the upstream's JSON bytes, when it was stored (epoch seconds), its log number."""

    body: bytes
    created: float
    seq: int


@dataclass(slots=True)
class _Sync:
    seen: int = 0
    at: float = float("-inf")
    own: set[int] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class Shared:
    """The plugin's view of the store: entries, partition logs, and the per-process indexes."""

    def __init__(self, store: Store, *, ttl_s: float, cap: int | None, sync_interval_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.cap = cap or SEMANTIC_CAP
        self.bounded = cap is not None
        self.sync_interval_s = sync_interval_s
        self.partitions: OrderedDict[str, tuple[Partition, _Sync]] = OrderedDict()

    async def get(self, key: str) -> Entry | None:
        """The stored answer for an exact key, or None."""
        raw = await self.store.get("cache:e:" + key)
        if raw is None:
            return None
        head, sep, body = raw.partition(b"\x00")
        try:
            meta = orjson.loads(head)
        except orjson.JSONDecodeError:
            return None
        if not sep or not isinstance(meta, dict):
            return None
        return Entry(body, float(meta.get("c", 0)), int(meta.get("s", 0)))

    async def put(self, partition: str, key: str, body: bytes, text: str | None, vector: Vector | None) -> None:
        """Store an answer (its JSON bytes), log it in its partition (with its embedding), evict past the cap.

        Without a cap, an answer with no embedding is only stored (nothing needs its log row).
        """
        if vector is None and not self.bounded:
            entry = orjson.dumps({"c": time.time(), "s": 0}) + b"\x00" + body
            await self.store.set("cache:e:" + key, entry, ttl_s=self.ttl_s)
            return
        seq = int(await self.store.incr("cache:n:" + partition))
        entry = orjson.dumps({"c": time.time(), "s": seq}) + b"\x00" + body
        row = orjson.dumps({"k": key, "t": text or ""})
        if vector is not None:
            row += b"\x00" + vector.astype(np.float16).tobytes()
        await asyncio.gather(  # together: the diskcache store commits them in one transaction
            self.store.set("cache:e:" + key, entry, ttl_s=self.ttl_s),
            self.store.set(f"cache:l:{partition}:{seq}", row, ttl_s=self.ttl_s),
        )
        if vector is not None and text:
            index, sync = self._partition(partition)
            sync.own.add(seq)
            index.add(vector, key, text)
        if self.bounded and seq > self.cap:
            await self._evict(partition, seq - self.cap)

    async def _evict(self, partition: str, seq: int) -> None:
        raw = await self.store.get(f"cache:l:{partition}:{seq}")
        if raw is None:
            return
        key = orjson.loads(raw.partition(b"\x00")[0]).get("k")
        if not isinstance(key, str):
            return
        old = await self.get(key)
        if old is not None and old.seq == seq:
            await self.store.delete("cache:e:" + key)

    async def lock(self, key: str, ttl_s: float) -> bool:
        """Take the coalescing lock of an exact key (True: this request calls upstream for everyone)."""
        try:
            return await self.store.add("cache:c:" + key, b"1", ttl_s=max(ttl_s, 0.1))
        except StoreError:
            return True

    async def unlock(self, key: str) -> None:
        await self.store.delete("cache:c:" + key)

    async def wait(self, key: str, timeout_s: float) -> Entry | None:
        """Poll for the answer another process is fetching; None once its lock is gone without one, or late."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        pause = 0.01
        while loop.time() < end:
            await asyncio.sleep(pause)
            entry = await self.get(key)
            if entry is not None:
                return entry
            if await self.store.get("cache:c:" + key) is None:
                return await self.get(key)
            pause = min(pause * 2, 0.1)
        return None

    def forget(self, partition: str, key: str) -> None:
        """Drop a row whose answer is gone."""
        found = self.partitions.get(partition)
        if found is not None:
            found[0].drop(key)

    async def index(self, partition: str) -> Partition:
        """The partition's matrix, after reading what other replicas added (at most every sync interval)."""
        index, sync = self._partition(partition)
        now = time.monotonic()
        if now - sync.at < self.sync_interval_s or (sync.task is not None and not sync.task.done()):
            return index
        sync.at = now
        try:
            latest = int(await self.store.counter("cache:n:" + partition))
        except StoreError:
            return index
        if latest <= sync.seen:
            return index
        first = max(sync.seen + 1, latest - self.cap + 1)
        sync.seen = latest
        todo = [n for n in range(first, latest + 1) if n not in sync.own]
        sync.own = {n for n in sync.own if n > latest}
        if len(todo) <= _BATCH:
            await self._load(partition, index, todo)
        else:  # a large backlog (a new replica): load in the background, serve misses meanwhile
            sync.task = asyncio.ensure_future(self._load(partition, index, todo))
        return index

    async def _load(self, partition: str, index: Partition, seqs: list[int]) -> None:
        for start in range(0, len(seqs), _BATCH):
            batch = seqs[start : start + _BATCH]
            rows = await asyncio.gather(*(self.store.get(f"cache:l:{partition}:{n}") for n in batch))
            await asyncio.to_thread(_add_rows, index, rows)

    def _partition(self, partition: str) -> tuple[Partition, _Sync]:
        found = self.partitions.get(partition)
        if found is None:
            found = self.partitions[partition] = (Partition(self.cap), _Sync())
            while len(self.partitions) > MAX_PARTITIONS:
                self.partitions.popitem(last=False)
        else:
            self.partitions.move_to_end(partition)
        return found


def _add_rows(index: Partition, rows: list[bytes | None]) -> None:
    """Decode log rows into the index (in a worker thread: features and vectors cost ~0.1 ms a row)."""
    for raw in rows:
        if raw is None:
            continue
        head, _, tail = raw.partition(b"\x00")
        meta = orjson.loads(head)
        if len(tail) == DIM * 2 and meta.get("t"):
            vector = np.frombuffer(tail, dtype=np.float16).astype(np.float32)
            index.add(vector, meta["k"], meta["t"])
