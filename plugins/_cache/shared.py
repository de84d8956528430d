"""Cache entries and partition logs in the store, and how replicas' in-memory indexes converge.

Store keys (all under ``cache:``):

- ``cache:e:<partition>:<number>``: one answer (JSON head: when it was stored, its log number, its exact
  key; then the body), with the policy's TTL. The number is the answer's place in its partition's log,
  zero-padded, so the store's index takes new answers in order. With ``max_entries: null`` (no log,
  no numbers) an answer is ``cache:e:<exact key>`` instead.
- ``cache:n:<partition>``: the partition's sequence counter, which numbers its answers (a batch of
  ``n`` answers bumps it once, by ``n``).
- ``cache:c:<exact key>``: the coalescing lock of a request in flight (``add``; deleted when it ends).
- ``cache:l:<partition>:<first>``: the log row of a written batch (up to ``log.MAX_ROW`` answers from
  number ``first`` on): their exact keys, and in semantic mode their last user turns and embeddings
  (float16), with the same TTL. See ``plugins/_cache/log.py``: one row per batch, not per answer,
  halves the rows a miss writes.

Why numbers: on diskcache an answer under its exact key (a random SHA-256) lands on a random leaf of
SQLite's key index, so a batch of 256 misses dirtied ~200 index pages, each written to the WAL and
again at the checkpoint (a row cost 11 µs at 15k answers and 26 µs at 100k; 7 µs under a number),
and eviction had to find and read the keys it deleted. In process, writing a miss went from 28 to
15 µs at 15k answers and from 94 to 25 µs in a partition full at 100k (``benchmarks/README.md``).

Writes go behind: ``put`` keeps the answer in memory (this process's lookups find it at once) and a
flush, ``WRITE_DELAY_S`` later or at ``_BATCH`` answers, writes all of them together: one counter bump
per partition and one ``set_many`` (the diskcache store: one pool hop, one transaction). A lone write
costs several times the CPU of one in a batch, and a miss's write was most of what the cache cost. An
answer is lost if the process dies within the delay (the request was served; the next one misses);
``flush`` runs at shutdown.

Eviction: storing answer ``n`` of a partition past its cap deletes answer ``n - cap`` (by its number:
no read), so a partition holds at most ``max_entries`` answers on every replica. A key stored again
has a new number; the old one goes in its turn.

Convergence and lookups: each process keeps, per partition, the exact keys of the log as a map from
a 64-bit digest to the answer's number (``KNOWN_MAX`` keys in all), the matrix of
``plugins._cache.index`` in semantic mode, and the last number it has read. Before a lookup, at most
every ``sync_interval_s`` (0: before every lookup), it reads the counter (one store read) and then
the rows it has not seen (a new process starts at ``counter - cap``; a backlog over ``_BATCH`` answers
loads in the background). A lookup reads the store only for a key it knows, at its number, and checks
the exact key stored there; a key it has not seen is a miss without a store read. So an answer stored
by one replica is found by lookups on the others within ``sync_interval_s`` after it was written;
while a new process's backlog loads, or for a partition past ``KNOWN_MAX``, lookups of keys not
known yet miss (a miss is never a wrong answer). Answers written by earlier versions under their
exact keys are not found by number: they miss until their TTL ends.
"""

from __future__ import annotations

import asyncio
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
"""Keys whose numbers a process tracks, over all partitions (~100 bytes each); past it, the least recently
used partitions are forgotten (read again when used). One partition holding more keys misses beyond them."""
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
    """A stored answer: the upstream's JSON bytes and when it was stored (epoch seconds)."""

    body: bytes
    created: float


@dataclass(slots=True)
class _Sync:
    seen: int = 0
    at: float = float("-inf")
    own: dict[int, int] = field(default_factory=dict)  # rows this process wrote, not yet passed by a read: first -> n
    task: asyncio.Task[None] | None = None
    known: dict[int, int] | None = field(default_factory=dict)  # digest of a logged key -> its answer's number
    late: dict[int, int] = field(default_factory=dict)  # numbers a row was missing at, near the counter -> tries left
    pruned: int = 0  # ``known`` holds no number at or below this (evicted: the cap passed them)


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
        self.tracked = 0  # keys in the partitions' ``known`` maps
        self._pending: dict[str, _Put] = {}  # put, not yet being written (a key put twice: the newer answer)
        self._writing: dict[str, _Put] = {}  # being written now
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set: write now (a full batch, or flush)

    async def lookup(self, partition: str, key: str, *, fresh: bool = False) -> Entry | None:
        """The answer for an exact key (or one put and not yet written), or None; ``fresh``: read the log first
        whatever the sync interval (a follower polling for its leader's answer).

        A bounded cache logs every key it stores, and each process reads the log (at most every
        ``sync_interval_s``), so it knows each stored key's number: a key it has not seen is a miss
        without a store read (most of what a miss cost), and one it knows is read at its number. One
        stored by another process is found once this one has read the log after it was written.
        """
        waiting = self._pending.get(key) or self._writing.get(key)
        if waiting is not None:
            return Entry(waiting.body, waiting.created)
        if not self.bounded:
            return _entry(await self.store.get("cache:e:" + key), None)
        sync = await self._sync(partition, force=fresh)
        known = sync.known
        number = known.get(_digest(key)) if known is not None else None
        if number is None:
            if known is not None:
                self.skipped += 1
            return None
        entry = _entry(await self.store.get(entry_key(partition, number)), key)
        if entry is None:
            self._unknow(sync, key, number)
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
            if self.bounded:  # every answer is logged, so it has a number: stored under it
                n = seqs[id(item)]
                head = {"c": item.created, "s": n, "k": item.key}
                writes.append((entry_key(item.partition, n), orjson.dumps(head) + b"\x00" + item.body))
            else:
                head = {"c": item.created, "s": seqs.get(id(item), 0)}
                writes.append(("cache:e:" + item.key, orjson.dumps(head) + b"\x00" + item.body))
        for partition, first, items in rows:
            writes.append((f"cache:l:{partition}:{first}", log.encode(items)))
        await self.store.set_many(writes, ttl_s=self.ttl_s)  # the diskcache store: one transaction
        for partition, first, items in rows:
            index, sync = self._partition(partition)
            own = sync.own
            own[first] = len(items)
            while next(iter(own)) < first - self.cap - log.MAX_ROW:  # no read of the log starts that low
                del own[next(iter(own))]  # oldest first (one out of order only waits a little)
            for n, item in enumerate(items, first):
                self._know(sync, item.key, n)
                if item.vector is not None and item.text:
                    index.add(item.vector, item.key, item.text)
        self.written += len(batch)
        if not self.bounded:
            return []
        cap = self.cap
        return [(p, f - cap, f + len(items) - 1 - cap) for p, f, items in rows if f + len(items) - 1 > cap]

    async def _evict(self, partition: str, lo: int, hi: int) -> None:
        """Delete the answers numbered ``lo .. hi`` (the ones a write pushed past the cap), by their numbers.

        A key stored again since has a newer number and stays. What this process knows of the evicted
        numbers is dropped with the next prune (``_prune``), or by the lookup that finds one gone."""
        lo = max(lo, 1)
        if hi >= lo:
            await self.store.delete_many([entry_key(partition, n) for n in range(lo, hi + 1)])
        self._prune(self._partition(partition)[1], hi)

    async def lock(self, key: str, ttl_s: float) -> bool:
        """Take the coalescing lock of an exact key (True: this request calls upstream for everyone)."""
        try:
            return await self.store.add("cache:c:" + key, b"1", ttl_s=max(ttl_s, 0.1))
        except StoreError:
            return True

    async def unlock(self, key: str) -> None:
        await self.store.delete("cache:c:" + key)

    async def wait(self, partition: str, key: str, timeout_s: float) -> Entry | None:
        """Poll for the answer another process is fetching (reading the log each time, so its number is
        known as soon as it is written); None once its lock is gone without one, or late."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        pause = 0.01
        while loop.time() < end:
            await asyncio.sleep(pause)
            entry = await self.lookup(partition, key, fresh=True)
            if entry is not None:
                return entry
            if await self.store.get("cache:c:" + key) is None:
                return await self.lookup(partition, key, fresh=True)
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

    async def _sync(self, partition: str, *, force: bool = False) -> _Sync:
        """Read the log rows other processes added to a partition since the last read (at most every interval,
        unless ``force``).

        A backlog over ``_BATCH`` answers (a new process, a partition forgotten and used again) loads in
        the background; meanwhile lookups find what is loaded (the keys not loaded yet miss).
        A row counted but not yet written (its writer is between the two steps) is read again at the
        next few reads of the log.
        """
        index, sync = self._partition(partition)
        now = time.monotonic()
        if (now - sync.at < self.sync_interval_s and not force) or (sync.task is not None and not sync.task.done()):
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
                for n, key in enumerate(row.keys, row.first):
                    self._know(sync, key, n)
            self._prune(sync, end - self.cap)
            vectors = [row for row in rows if row.vectors]
            if vectors:
                await asyncio.to_thread(log.add_to_index, index, vectors)
        except Exception as exc:  # what this process knows is incomplete: start over, at the next sync
            logger.warning("cache: reading the partition log failed (%s); it is read again from the start", exc)
            current = self.partitions.get(partition)
            if current is not None and current[1] is sync:
                self._untrack(sync)
                self.partitions[partition] = (Partition(self.cap), _Sync(at=sync.at))  # not before the interval

    def _know(self, sync: _Sync, key: str, number: int) -> None:
        """Remember that the log holds ``key`` as answer ``number`` (its newest, when stored more than once)."""
        known = sync.known
        if known is None or number <= sync.pruned:
            return
        digest = _digest(key)
        had = known.get(digest)
        if had is None:
            if self.tracked >= KNOWN_MAX and not self._make_room(sync):
                self._untrack(sync)
                return
            self.tracked += 1
        if had is None or had < number:
            known[digest] = number

    def _unknow(self, sync: _Sync, key: str, number: int | None = None) -> None:
        """Forget ``key`` (only if it is still known as ``number``, when given: not a newer copy)."""
        known = sync.known
        digest = _digest(key)
        if known is not None and digest in known and (number is None or known[digest] == number):
            del known[digest]
            self.tracked -= 1

    def _prune(self, sync: _Sync, hi: int) -> None:
        """Forget the numbers at or below ``hi`` (evicted: the cap has passed them); it runs once per quarter
        of the cap at most, so it costs O(1) per answer, and ``known`` stays within ~1.25 caps a partition."""
        known = sync.known
        if known is None or hi - sync.pruned < max(self.cap // 4, _BATCH):
            return
        kept = {digest: n for digest, n in known.items() if n > hi}
        self.tracked -= len(known) - len(kept)
        sync.known = kept
        sync.pruned = hi

    def _make_room(self, sync: _Sync) -> bool:
        """Forget the least recently used partitions other than ``sync``'s until one more key fits."""
        while self.tracked >= KNOWN_MAX:
            oldest = next(((name, other) for name, (_, other) in self.partitions.items() if other is not sync), None)
            if oldest is None:
                return False
            del self.partitions[oldest[0]]
            self._untrack(oldest[1])
        return True

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
    """A key as 64 bits (the process's string hash; the maps never leave the process): a collision costs
    a store read, never a wrong answer (the entry names its exact key, ``_entry`` checks it)."""
    return hash(key)


def entry_key(partition: str, number: int) -> str:
    """Where answer ``number`` of a partition is stored: zero-padded, so new answers come in key order."""
    return f"cache:e:{partition}:{number:012d}"


def _entry(raw: bytes | None, key: str | None) -> Entry | None:
    """A stored answer from its bytes; None when absent, malformed, or (``key`` given) another key's."""
    if raw is None:
        return None
    head, sep, body = raw.partition(b"\x00")
    try:
        meta = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    if not sep or not isinstance(meta, dict) or (key is not None and meta.get("k") != key):
        return None
    return Entry(body, float(meta.get("c", 0)))
