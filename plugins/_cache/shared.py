"""Cache entries and partition logs in the store, and how replicas' in-memory indexes converge.

Store keys (all under ``cache:``):

- ``cache:e:<exact key>``: one answer (JSON: the body, when it was stored, its log sequence number),
  with the policy's TTL.
- ``cache:n:<partition>``: the partition's sequence counter, which numbers its answers (a batch of
  ``n`` answers bumps it once, by ``n``).
- ``cache:c:<exact key>``: the coalescing lock of a request in flight (``add``; deleted when it ends).
- ``cache:l:<partition>:<first>``: the log row of a written batch (up to ``log.MAX_ROW`` answers from
  number ``first`` on): their exact keys, and in semantic mode their last user turns and embeddings
  (float16), with the same TTL. See ``plugins/_cache/log.py``: one row per batch, not per answer,
  halves the rows a miss writes.

Writes go behind: ``put`` keeps the answer in memory (this process's lookups find it at once) and a
flush, ``WRITE_DELAY_S`` later or at ``_BATCH`` answers, writes all of them together: one counter bump
per partition and one ``set_many`` (the diskcache store: one pool hop, one transaction). A lone write
costs several times the CPU of one in a batch, and a miss's write was most of what the cache cost. An
answer is lost if the process dies within the delay (the request was served; the next one misses);
``flush`` runs at shutdown.

Eviction: storing answer ``n`` of a partition past its cap deletes answer ``n - cap`` (unless that key
was stored again since), so a partition holds at most ``max_entries`` answers on every replica. The
writer finds those keys in the log rows that hold the numbers: rows it knows (its own, or read when
syncing) are read directly, others are found by walking the log.

Convergence: each process keeps, per partition, the matrix of ``plugins._cache.index`` and the last
sequence number it has read. Before a lookup, at most every ``sync_interval_s``, it reads the counter
(one store read) and then walks the rows it has not seen (a new process starts at ``counter - cap``). Rows
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
import bisect
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson

from plugins._cache import log
from plugins._cache.index import Partition, Vector
from proxy.store import Store, StoreError

logger = logging.getLogger(__name__)

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
    own: dict[int, int] = field(default_factory=dict)  # rows this process wrote, not yet passed by a read: first -> n
    task: asyncio.Task[None] | None = None
    known: set[int] | None = field(default_factory=set)  # digests of the keys the log holds; None: not tracked
    late: dict[int, int] = field(default_factory=dict)  # numbers a row was missing at, near the counter -> tries left
    spans: dict[int, int] | None = field(default_factory=dict)  # log rows known here (first -> n), for eviction
    starts: list[int] = field(default_factory=list)  # the keys of ``spans``, sorted

    def ready(self) -> bool:
        """Whether ``known`` holds every key of the log as of the last read (no backlog still loading)."""
        return self.known is not None and self.at > float("-inf") and (self.task is None or self.task.done())

    def span(self, first: int, n: int, cap: int) -> None:
        """Remember that a log row holds answers ``first .. first + n - 1``; forget rows so old that no
        later write of this process can evict from them (they end ``cap`` or more below ``first``)."""
        if self.spans is not None and first not in self.spans:
            self.spans[first] = n
            if self.starts and first < self.starts[-1]:
                bisect.insort(self.starts, first)
            else:
                self.starts.append(first)
            self.forget_spans(first - cap - 1)

    def covering(self, lo: int, hi: int) -> list[int] | None:
        """The first numbers of the known rows that hold ``lo .. hi`` without a gap, or None."""
        if self.spans is None:
            return None
        i = bisect.bisect_right(self.starts, lo) - 1
        if i < 0:
            return None
        out = []
        reach = self.starts[i]
        for first in self.starts[i:]:
            if first > reach or reach > hi:
                break
            out.append(first)
            reach = first + self.spans[first]
        return out if reach > hi else None

    def forget_spans(self, hi: int) -> None:
        """Forget the rows whose answers all number ``hi`` or less."""
        if self.spans is None:
            return
        gone = 0
        for first in self.starts:
            if first + self.spans[first] - 1 > hi:
                break
            del self.spans[first]
            gone += 1
        del self.starts[:gone]


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
        old: list[tuple[str, int, int]] = []
        try:
            old = await self._store_batch(batch)
        except StoreError as exc:  # a cache is best effort: the answers are lost, the requests were served
            logger.warning("cache: %d answers not stored (store: %s)", len(batch), exc)
        except Exception:
            logger.exception("cache: %d answers not stored", len(batch))
        finally:
            for item in batch:
                if self._writing.get(item.key) is item:
                    del self._writing[item.key]
        try:
            await asyncio.gather(*(self._evict(partition, lo, hi) for partition, lo, hi in old))
        except StoreError as exc:
            logger.warning("cache: eviction failed (store: %s); the TTL still bounds the entries", exc)

    async def _store_batch(self, batch: list[_Put]) -> list[tuple[str, int, int]]:
        """Write a batch; returns the (partition, first, last) answer numbers it pushed past the cap."""
        logged = [item for item in batch if item.vector is not None or self.bounded]
        seqs: dict[int, int] = {}
        rows: list[tuple[str, int, list[_Put]]] = []  # (partition, first number, its answers)
        if logged:
            counts: dict[str, list[_Put]] = {}
            for item in logged:
                counts.setdefault(item.partition, []).append(item)
            tops = await asyncio.gather(*(self.store.incr("cache:n:" + p, len(items)) for p, items in counts.items()))
            for (partition, items), top in zip(counts.items(), tops, strict=True):
                first = int(top) - len(items) + 1
                size = log.row_size(items)
                for start in range(0, len(items), size):
                    rows.append((partition, first + start, items[start : start + size]))
                for n, item in enumerate(items, first):
                    seqs[id(item)] = n
        writes: list[tuple[str, bytes]] = []
        for item in batch:
            entry = orjson.dumps({"c": item.created, "s": seqs.get(id(item), 0)}) + b"\x00" + item.body
            writes.append(("cache:e:" + item.key, entry))
        for partition, first, items in rows:
            writes.append((f"cache:l:{partition}:{first}", log.encode(items)))
        await self.store.set_many(writes, ttl_s=self.ttl_s)  # the diskcache store: one transaction
        for partition, first, items in rows:
            index, sync = self._partition(partition)
            own = sync.own
            own[first] = len(items)
            while next(iter(own)) < first - self.cap - log.MAX_ROW:  # no read of the log starts that low
                del own[next(iter(own))]  # oldest first (one out of order only waits a little)
            sync.span(first, len(items), self.cap)
            for item in items:
                self._know(sync, item.key)
                if item.vector is not None and item.text:
                    index.add(item.vector, item.key, item.text)
        self.written += len(batch)
        if not self.bounded:
            return []
        cap = self.cap
        return [(p, f - cap, f + len(items) - 1 - cap) for p, f, items in rows if f + len(items) - 1 > cap]

    async def _evict(self, partition: str, lo: int, hi: int) -> None:
        """Delete the answers numbered ``lo .. hi`` (the ones a write pushed past the cap), unless stored again
        since: their keys come from the log rows that hold those numbers (known here, else read)."""
        lo = max(lo, 1)
        sync = self._partition(partition)[1]
        rows = await self._rows_covering(partition, sync, lo, hi)
        doomed = [
            (key, seq) for row in rows for seq, key in enumerate(row.keys, row.first)
            if lo <= seq <= hi and key not in self._pending and key not in self._writing
        ]  # fmt: skip
        olds = await asyncio.gather(*(self.get(key) for key, _ in doomed))
        gone = [key for (key, seq), old in zip(doomed, olds, strict=True) if old is not None and old.seq == seq]
        await self.store.delete_many(["cache:e:" + key for key in gone])
        for key in gone:
            self._unknow(sync, key)

    async def _rows_covering(self, partition: str, sync: _Sync, lo: int, hi: int) -> list[log.Row]:
        """The log rows holding answer numbers ``lo .. hi``: read where this process knows them to start,
        else found by walking the log from ``MAX_ROW`` numbers before ``lo``."""
        starts = sync.covering(lo, hi)
        if starts is None:
            found, _ = await log.walk(self.store, partition, {}, max(1, lo - log.MAX_ROW + 1), hi)
            return [row for row in found if row.end > lo]
        raws = await asyncio.gather(*(self.store.get(f"cache:l:{partition}:{n}") for n in starts))
        return [row for n, raw in zip(starts, raws, strict=True) if raw is not None and (row := log.decode(n, raw))]

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

        A backlog over ``_BATCH`` answers (a new process, a partition forgotten and used again) loads in
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
        if latest <= sync.seen and not sync.late:
            return sync
        fresh = max(sync.seen, latest - _IN_FLIGHT)  # rows above it were counted lately: maybe still being written
        begin = max(sync.seen + 1, latest - self.cap - log.MAX_ROW + 2)  # the row holding answer latest - cap + 1
        end = latest
        sync.seen = max(sync.seen, latest)
        if end - begin < _BATCH:
            await self._load(partition, index, sync, begin, end, fresh)
        else:
            sync.task = asyncio.ensure_future(self._load(partition, index, sync, begin, end, fresh))
        return sync

    async def _load(self, partition: str, index: Partition, sync: _Sync, begin: int, end: int, fresh: int) -> None:
        """Read the rows of answers ``begin .. end`` (and those found late before) into what this process knows."""
        try:
            rows: list[log.Row] = []
            late = sorted(sync.late)
            raws = await asyncio.gather(*(self.store.get(f"cache:l:{partition}:{n}") for n in late))
            for n, raw in zip(late, raws, strict=True):
                row = log.decode(n, raw) if raw is not None else None
                if row is not None:
                    rows.append(row)
                    del sync.late[n]
                elif sync.late[n] > 1:
                    sync.late[n] -= 1
                else:
                    del sync.late[n]
            found, missing = await log.walk(self.store, partition, sync.own, begin, end) if begin <= end else ([], [])
            rows += found
            for n in missing:
                if n > fresh and n not in sync.late:
                    sync.late[n] = _LATE_TRIES - 1
            for first in [n for n in sync.own if n <= end]:
                del sync.own[first]
            for row in rows:
                sync.span(row.first, len(row.keys), self.cap)
                for key in row.keys:
                    self._know(sync, key)
            vectors = [row for row in rows if row.vectors]
            if vectors:
                await asyncio.to_thread(log.add_to_index, index, vectors)
        except Exception as exc:  # what this process knows is incomplete: its exact lookups read the store
            logger.warning("cache: reading the partition log failed (%s); lookups read the store", exc)
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
        sync.spans = None
        sync.starts = []

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
