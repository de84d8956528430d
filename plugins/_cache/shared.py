"""Cache entries and partition logs in the store, and how replicas' in-memory indexes converge.

Store keys (all under ``cache:``):

- ``cache:e:<exact key>``: one answer (JSON: the body, when it was stored, its log sequence number),
  with the policy's TTL.
- ``cache:n:<partition>``: the partition's sequence counter, incremented once per stored answer.
- ``cache:c:<exact key>``: the coalescing lock of a request in flight (``add``; deleted when it ends).
- ``cache:l:<partition>:<n>``: log row ``n``: the exact key, and in semantic mode the last user turn and
  its embedding (float16), with the same TTL.

Writes go behind: ``put`` keeps the answer in memory (this process's lookups find it at once) and a
flush, ``WRITE_DELAY_S`` later or at ``_BATCH`` answers, writes all of them together: one counter bump
per partition and one ``set_many`` (the diskcache store: one pool hop, one transaction). A lone write
costs several times the CPU of one in a batch, and a miss's write was most of what the cache cost. An
answer is lost if the process dies within the delay (the request was served; the next one misses);
``flush`` runs at shutdown.

Eviction: storing row ``n`` of a partition past its cap deletes the answer of row ``n - cap`` (unless
that key was stored again since), so a partition holds at most ``max_entries`` answers on every replica.

Convergence: each process keeps, per partition, the matrix of ``plugins._cache.index`` and the last
sequence number it has read. Before a lookup, at most every ``sync_interval_s``, it reads the counter
(one store read) and then the rows it has not seen (a new process starts from ``counter - cap``). Rows
whose answer is gone (TTL, eviction) are dropped when a lookup finds them. So an answer stored by one
replica is found by lookups on the others within ``sync_interval_s`` after it was written.

Misses without a store read: from the log, each process also knows which exact keys the store holds
(a set of 64-bit digests per partition, ``KNOWN_MAX`` in all), so a lookup of a key it has never seen
answers "miss" at once, and only a key it knows is read (``cache:e:``; gone: forgotten). A miss was
mostly that read; in-process, on the diskcache store, this cut a miss's cost by more than half. It
needs the log: with ``max_entries: null`` (no log), with ``sync_interval_s: 0``, while a backlog
loads, or for a partition past ``KNOWN_MAX``, every lookup reads the store, as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
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
KNOWN_MAX = 1_000_000
"""Keys whose presence a process tracks, over all partitions (~80 bytes each); past it, lookups read the store."""
_LATE_TRIES = 3  # reads of a log row that was counted but not found (its writer may still be writing it)
_IN_FLIGHT = 4 * 256  # rows this close to the counter may still be in flight
_BATCH = 256
WRITE_DELAY_S = 0.1
"""How long a stored answer waits for others to be written with (a flush starts at once at ``_BATCH``).

A flush is two hops to the store's thread pool (the counter, then the rows), and waking a thread costs
~0.1-0.5 ms of CPU on a virtual machine; at 10 ms, a cache on a busy proxy spent ~60 µs of CPU per miss
on flushes. This process finds its own answers at once; other processes find them only after their
next read of the log anyway (``sync_interval_s``, 1 s), so 0.1 s of delay costs them nothing."""


@dataclass(frozen=True, slots=True)
class _Put:
    partition: str
    key: str
    body: bytes
    text: str | None
    vector: Vector | None
    created: float


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
    known: set[int] | None = field(default_factory=set)  # digests of the keys the log holds; None: not tracked
    late: dict[int, int] = field(default_factory=dict)  # log rows counted but not yet written -> tries left

    def ready(self) -> bool:
        """Whether ``known`` holds every key of the log as of the last read (no backlog still loading)."""
        return self.known is not None and self.at > float("-inf") and (self.task is None or self.task.done())


class Shared:
    """The plugin's view of the store: entries, partition logs, and the per-process indexes."""

    def __init__(
        self, store: Store, *, ttl_s: float, cap: int | None, sync_interval_s: float,
        write_delay_s: float | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.ttl_s = ttl_s
        self.cap = cap or SEMANTIC_CAP
        self.bounded = cap is not None
        self.sync_interval_s = sync_interval_s
        self.partitions: OrderedDict[str, tuple[Partition, _Sync]] = OrderedDict()
        self.write_delay_s = WRITE_DELAY_S if write_delay_s is None else write_delay_s
        self.written = 0  # answers written to the store (diagnostics; tests wait on it)
        self.skipped = 0  # lookups answered "miss" without a store read (diagnostics)
        self.tracked = 0  # keys in the partitions' ``known`` sets
        self._pending: dict[str, _Put] = {}  # put, not yet being written (a key put twice: the newer answer)
        self._writing: dict[str, _Put] = {}  # being written now
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set: write now (a full batch, or flush)

    async def get(self, key: str) -> Entry | None:
        """The stored answer for an exact key (or one put and not yet written), or None."""
        waiting = self._pending.get(key) or self._writing.get(key)
        if waiting is not None:
            return Entry(waiting.body, waiting.created, 0)
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

    async def lookup(self, partition: str, key: str) -> Entry | None:
        """The answer for an exact key, reading the store only when the key may be there.

        A bounded cache logs every key it stores, and each process reads the log (at most every
        ``sync_interval_s``), so it knows which keys the store holds: a key it has not seen is a miss
        without a store read (most of what a miss cost). One stored by another process is found once
        this one has read the log after it was written: within ``sync_interval_s``.
        """
        waiting = self._pending.get(key) or self._writing.get(key)
        if waiting is not None:
            return Entry(waiting.body, waiting.created, 0)
        sync = None
        if self.bounded and self.sync_interval_s > 0:
            sync = await self._sync(partition)
            if sync.ready() and _digest(key) not in sync.known:  # type: ignore[operator]
                self.skipped += 1
                return None
        entry = await self.get(key)
        if entry is None and sync is not None and sync.known:
            self._unknow(sync, key)
        return entry

    def put(self, partition: str, key: str, body: bytes, text: str | None, vector: Vector | None) -> None:
        """Keep an answer (its JSON bytes): at once for this process's lookups, in the store at the next flush.

        Writes go behind (``WRITE_DELAY_S``): every answer stored meanwhile is written in one go, so the
        store commits them together (the diskcache store: one pool hop and one transaction for the lot;
        a lone write costs ~5x more CPU than one in a batch). Other processes see an answer once written.
        """
        self._pending[key] = _Put(partition, key, body, text, vector, time.time())
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_soon())
        elif len(self._pending) >= _BATCH:
            self._wake.set()

    async def flush(self) -> None:
        """Write every answer put so far (on shutdown, and in tests)."""
        while self._pending or (self._flusher is not None and not self._flusher.done()):
            if self._flusher is not None and not self._flusher.done():
                self._wake.set()
                await asyncio.shield(self._flusher)
            elif self._pending:
                await self._write(self._take())

    async def _flush_soon(self) -> None:
        while self._pending:
            if len(self._pending) < _BATCH and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.write_delay_s)
            self._wake.clear()
            await self._write(self._take())

    def _take(self) -> list[_Put]:
        batch = list(self._pending.values())[:_BATCH]
        for item in batch:
            del self._pending[item.key]
        self._writing.update((item.key, item) for item in batch)
        return batch

    async def _write(self, batch: list[_Put]) -> None:
        """Store a batch: one counter bump per partition, then every entry and log row together."""
        old: list[tuple[str, int]] = []
        try:
            old = await self._store_batch(batch)
        except StoreError as exc:  # a cache is best effort: the answers are lost, the requests were served
            log.warning("cache: %d answers not stored (store: %s)", len(batch), exc)
        except Exception:
            log.exception("cache: %d answers not stored", len(batch))
        finally:
            for item in batch:
                if self._writing.get(item.key) is item:
                    del self._writing[item.key]
        try:
            await asyncio.gather(*(self._evict(partition, seq) for partition, seq in old))
        except StoreError as exc:
            log.warning("cache: eviction failed (store: %s); the TTL still bounds the entries", exc)

    async def _store_batch(self, batch: list[_Put]) -> list[tuple[str, int]]:
        """Write a batch; returns the (partition, log number) rows it pushed past the cap."""
        plain = [item for item in batch if item.vector is None and not self.bounded]
        logged = [item for item in batch if item.vector is not None or self.bounded]
        seqs: dict[int, int] = {}
        if logged:
            counts: dict[str, list[_Put]] = {}
            for item in logged:
                counts.setdefault(item.partition, []).append(item)
            tops = await asyncio.gather(*(self.store.incr("cache:n:" + p, len(items)) for p, items in counts.items()))
            for (_, items), top in zip(counts.items(), tops, strict=True):
                first = int(top) - len(items) + 1
                for n, item in enumerate(items, first):
                    seqs[id(item)] = n
        writes: list[tuple[str, bytes]] = []
        for item in batch:
            seq = seqs.get(id(item), 0)
            entry = orjson.dumps({"c": item.created, "s": seq}) + b"\x00" + item.body
            writes.append(("cache:e:" + item.key, entry))
            if seq:
                row = orjson.dumps({"k": item.key, "t": item.text or ""})
                if item.vector is not None:
                    row += b"\x00" + item.vector.astype(np.float16).tobytes()
                writes.append((f"cache:l:{item.partition}:{seq}", row))
        await self.store.set_many(writes, ttl_s=self.ttl_s)  # the diskcache store: one transaction
        for item in logged:
            seq = seqs[id(item)]
            index, sync = self._partition(item.partition)
            sync.own.add(seq)
            self._know(sync, item.key)
            if item.vector is not None and item.text:
                index.add(item.vector, item.key, item.text)
        self.written += len(plain) + len(logged)
        if not self.bounded:
            return []
        return [(item.partition, seqs[id(item)] - self.cap) for item in logged if seqs[id(item)] > self.cap]

    async def _evict(self, partition: str, seq: int) -> None:
        raw = await self.store.get(f"cache:l:{partition}:{seq}")
        if raw is None:
            return
        key = orjson.loads(raw.partition(b"\x00")[0]).get("k")
        if not isinstance(key, str) or key in self._pending or key in self._writing:
            return  # stored again since: the new answer stays
        old = await self.get(key)
        if old is not None and old.seq == seq:
            await self.store.delete("cache:e:" + key)
            found = self.partitions.get(partition)
            if found is not None:
                self._unknow(found[1], key)

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
            self._unknow(found[1], key)

    async def index(self, partition: str) -> Partition:
        """The partition's matrix, after reading what other replicas added (at most every sync interval)."""
        await self._sync(partition)
        return self._partition(partition)[0]

    async def _sync(self, partition: str) -> _Sync:
        """Read the log rows other processes added to a partition since the last read (at most every interval).

        A backlog over ``_BATCH`` rows (a new process, a partition forgotten and used again) loads in
        the background; meanwhile semantic lookups search what is loaded and exact ones read the store.
        A row counted but not yet written (its writer is between the two steps) is read again at the
        next few reads of the log.
        """
        index, sync = self._partition(partition)
        now = time.monotonic()
        if now - sync.at < self.sync_interval_s or (sync.task is not None and not sync.task.done()):
            return sync
        sync.at = now
        try:
            latest = int(await self.store.counter("cache:n:" + partition))
        except StoreError:
            return sync
        todo = sorted(sync.late)
        fresh = max(sync.seen, latest - _IN_FLIGHT)  # rows above it were counted lately: maybe still being written
        if latest > sync.seen:
            first = max(sync.seen + 1, latest - self.cap + 1)
            todo += [n for n in range(first, latest + 1) if n not in sync.own]
            sync.seen = latest
            sync.own = {n for n in sync.own if n > latest}
        if not todo:
            return sync
        if len(todo) <= _BATCH:
            await self._load(partition, index, sync, todo, fresh)
        else:
            sync.task = asyncio.ensure_future(self._load(partition, index, sync, todo, fresh))
        return sync

    async def _load(self, partition: str, index: Partition, sync: _Sync, seqs: list[int], fresh: int) -> None:
        try:
            for start in range(0, len(seqs), _BATCH):
                batch = seqs[start : start + _BATCH]
                rows = await asyncio.gather(*(self.store.get(f"cache:l:{partition}:{n}") for n in batch))
                vectors = False
                for n, raw in zip(batch, rows, strict=True):
                    if raw is None:
                        tries = sync.late.pop(n, _LATE_TRIES if n > fresh else 0) - 1
                        if tries > 0:
                            sync.late[n] = tries
                        continue
                    sync.late.pop(n, None)
                    head, sep, _ = raw.partition(b"\x00")
                    key = orjson.loads(head).get("k")
                    if isinstance(key, str):
                        self._know(sync, key)
                    vectors = vectors or bool(sep)
                if vectors:
                    await asyncio.to_thread(_add_rows, index, rows)
        except Exception as exc:  # what this process knows is incomplete: its exact lookups read the store
            log.warning("cache: reading the partition log failed (%s); lookups read the store", exc)
            self._untrack(sync)

    def _know(self, sync: _Sync, key: str) -> None:
        if sync.known is None:
            return
        if self.tracked >= KNOWN_MAX:
            self._untrack(sync)
            return
        digest = _digest(key)
        if digest not in sync.known:
            sync.known.add(digest)
            self.tracked += 1

    def _unknow(self, sync: _Sync, key: str) -> None:
        if sync.known is not None and _digest(key) in sync.known:
            sync.known.discard(_digest(key))
            self.tracked -= 1

    def _untrack(self, sync: _Sync) -> None:
        if sync.known is not None:
            self.tracked -= len(sync.known)
            sync.known = None

    def _partition(self, partition: str) -> tuple[Partition, _Sync]:
        found = self.partitions.get(partition)
        if found is None:
            found = self.partitions[partition] = (Partition(self.cap), _Sync())
            while len(self.partitions) > MAX_PARTITIONS:
                self._untrack(self.partitions.popitem(last=False)[1][1])
        else:
            self.partitions.move_to_end(partition)
        return found


def _digest(key: str) -> int:
    """A key as 64 bits (the process's string hash; the sets never leave the process): a collision only
    costs a store read."""
    return hash(key)


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
