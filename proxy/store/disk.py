"""The default store: diskcache (SQLite) in a local directory, safe to share between processes on one host.

diskcache calls block, so they run on a small thread pool owned by the store, never on the event loop.
Read-modify-write operations (``add``, ``incr``) run inside ``Cache.transact()``, an SQLite
``BEGIN IMMEDIATE`` transaction, which makes them atomic across threads and processes.
Within a process, writes also take a lock so the pool's threads queue on it instead of on SQLite's
busy-wait, and they are batched: writes that arrive while one batch is being committed go together
in the next, in one pool call and one transaction (each keeps its own result and error). A thread
hop costs ~40 µs of CPU and a commit ~40 µs, so under concurrency this cuts the store's cost per
write several times; alone, a write costs what it did.

Reads (``get``, ``counter``, ``set_members``) of values held inside SQLite run on the event loop
itself: in WAL mode a reader never waits for a writer, a read costs ~8 µs of CPU where the thread
hop alone costs ~40 µs plus the GIL hand-offs, and it saves the request a loop iteration. The
loop's connection has a zero busy timeout, so a read that would have to wait (a checkpoint, a
recovery) raises at once and goes to the pool instead; so does a value diskcache keeps in a file
of its own (≥ 32 KiB), which the loop only opens, never reads. The cache never evicts
(``eviction_policy="none"``): losing a budget counter to make room would silently reset it, so give
cache entries a TTL.
"""

import asyncio
import functools
import io
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import diskcache  # type: ignore[import-untyped]
from diskcache.core import MODE_RAW  # type: ignore[import-untyped]

from proxy.store.base import (
    Clock,
    StoreError,
    StoreUnavailable,
    check_amount,
    check_positive,
    expires_at,
    is_live,
    pack_value,
    unpack_value,
    window_slot,
)

__all__ = ["DiskStore"]

T = TypeVar("T")

_WORKERS = 2
_UPSERT_ROWS = 500  # rows per statement: 3000 bound parameters, well under SQLite's limit (32766)
_CLOSE_TIMEOUT_S = 5.0
_BACKEND_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class DiskStore:
    """``Store`` backed by ``diskcache.Cache(directory)``; the directory is created on first use."""

    def __init__(self, directory: Path, *, prefix: str, clock: Clock) -> None:
        self._directory = directory
        self._prefix = prefix
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="chaperone-store")
        self._cache: Any = None
        self._reader: Any = None  # a second diskcache handle, read on the event loop (opened on the pool)
        self._open_lock = threading.Lock()
        self._write_lock = threading.RLock()  # re-entered: a batch holds it around operations that take it
        self._closed = False
        self._pending: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"DiskStore({str(self._directory)!r}, prefix={self._prefix!r})"

    async def get(self, key: str) -> bytes | None:
        full_key = self._prefix + key
        done, raw = self._read_here(full_key, None)
        if done:
            return _live_value(full_key, raw, self._clock())
        return await self._run(self._get, full_key, self._clock())

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        check_positive("ttl_s", ttl_s)
        packed = pack_value(value, expires_at(self._clock(), ttl_s))
        await self._write(self._set, self._prefix + key, packed, ttl_s)

    async def set_many(self, items: Sequence[tuple[str, bytes]], *, ttl_s: float | None = None) -> None:
        check_positive("ttl_s", ttl_s)
        if not items:
            return
        expires = expires_at(self._clock(), ttl_s)
        packed = [(self._prefix + key, pack_value(value, expires)) for key, value in items]
        await self._write(self._set_many, packed, ttl_s)

    async def add(self, key: str, value: bytes, *, ttl_s: float | None = None) -> bool:
        check_positive("ttl_s", ttl_s)
        now = self._clock()
        return await self._write(self._add, self._prefix + key, pack_value(value, expires_at(now, ttl_s)), ttl_s, now)

    async def delete(self, key: str) -> bool:
        return await self._write(self._delete, self._prefix + key, self._clock())

    async def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            await self._write(self._delete_many, [self._prefix + key for key in keys])

    async def incr(self, key: str, amount: float = 1, *, window_s: float | None = None) -> float:
        check_amount(amount)
        full_key, keep_s = self._counter_key(key, window_s)
        return await self._write(self._incr, full_key, amount, keep_s)

    async def counter(self, key: str, *, window_s: float | None = None) -> float:
        full_key, _ = self._counter_key(key, window_s)
        done, raw = self._read_here(full_key, 0)
        if done:
            return float(_as_number(full_key, raw))
        return await self._run(self._counter, full_key)

    async def set_add(self, key: str, member: str) -> bool:
        return await self._write(self._set_change, self._prefix + key, member, True)

    async def set_remove(self, key: str, member: str) -> bool:
        return await self._write(self._set_change, self._prefix + key, member, False)

    async def set_members(self, key: str) -> frozenset[str]:
        full_key = self._prefix + key
        done, raw = self._read_here(full_key, frozenset())
        if done:
            return _as_set(full_key, raw)
        return await self._run(self._set_members, full_key)

    async def ping(self) -> None:
        await self._run(self._ping)

    async def close(self) -> None:
        if self._closed:
            return
        if self._drainer is not None:  # writes already asked for are committed first
            await asyncio.gather(self._drainer, return_exceptions=True)
        self._closed = True
        if self._reader is not None:
            self._reader.close()  # this thread's connection; the pool threads close theirs in _shutdown
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    # -- event-loop side ---------------------------------------------------------------------------------

    def _counter_key(self, key: str, window_s: float | None) -> tuple[str, float | None]:
        check_positive("window_s", window_s)
        if window_s is None:
            return self._prefix + key, None
        return window_slot(self._prefix + key, window_s, self._clock())

    def _read_here(self, key: str, default: object) -> tuple[bool, Any]:
        """Read ``key`` on the event loop if that cannot wait: (True, raw value) or (False, None) for the pool."""
        reader = self._reader
        if reader is None or self._closed:
            return False, None
        try:
            raw = reader.get(key, default=default, read=True)
        except _BACKEND_ERRORS:  # busy (zero timeout) or broken: the pool retries it with patience
            return False, None
        if isinstance(raw, io.IOBase):  # kept in a file of its own: read it on the pool
            raw.close()
            return False, None
        return True, raw

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking cache operation on the pool; backend failures become ``StoreUnavailable``."""
        if self._closed:
            raise StoreUnavailable(f"diskcache store at {self._directory} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except _BACKEND_ERRORS as exc:
            raise StoreUnavailable(f"diskcache store at {self._directory} is unavailable: {exc!r}") from exc

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Queue a write for the next batch and wait for its own result."""
        if self._closed:
            raise StoreUnavailable(f"diskcache store at {self._directory} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, args, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await loop.run_in_executor(self._executor, self._apply, [(f, a) for f, a, _ in batch])
                except _BACKEND_ERRORS as exc:
                    error = StoreUnavailable(f"diskcache store at {self._directory} is unavailable: {exc!r}")
                    results = [(False, error)] * len(batch)
                except BaseException as exc:  # the loop is closing: no waiter is left hanging
                    results = [(False, exc)] * len(batch)
                for (_, _, future), (ok, value) in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._draining = False

    # -- pool side (blocking) ----------------------------------------------------------------------------

    def _apply(self, batch: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
        """Run a batch of writes in one transaction; each gets its own result or exception."""
        cache = self._open()
        out: list[tuple[bool, Any]] = []
        if len(batch) == 1:
            fn, args = batch[0]
            try:
                return [(True, fn(*args))]
            except StoreError as exc:
                return [(False, exc)]
        with self._write_lock, cache.transact():
            for fn, args in batch:
                try:
                    out.append((True, fn(*args)))
                except StoreError as exc:  # its own mistake (a key of another kind): the others go on
                    out.append((False, exc))
        return out

    def _open(self) -> Any:
        with self._open_lock:
            if self._cache is None:
                self._cache = diskcache.Cache(str(self._directory), eviction_policy="none")
                self._reader = diskcache.Cache(str(self._directory), timeout=0, eviction_policy="none")
            return self._cache

    def _get(self, key: str, now: float) -> bytes | None:
        return _live_value(key, self._open().get(key), now)

    def _set(self, key: str, packed: bytes, ttl_s: float | None) -> None:
        cache = self._open()
        with self._write_lock:
            cache.set(key, packed, expire=ttl_s)

    def _set_many(self, packed: list[tuple[str, bytes]], ttl_s: float | None) -> None:
        """Write many values in one transaction: small ones in one upsert statement (see ``_upsert``)."""
        cache = self._open()
        small = [(key, value) for key, value in packed if len(value) < cache.disk_min_file_size]
        with self._write_lock, cache.transact():
            for start in range(0, len(small), _UPSERT_ROWS):
                _upsert(cache, small[start : start + _UPSERT_ROWS], ttl_s)
            for key, value in packed:
                if len(value) >= cache.disk_min_file_size:
                    cache.set(key, value, expire=ttl_s)

    def _add(self, key: str, packed: bytes, ttl_s: float | None, now: float) -> bool:
        cache = self._open()
        with self._write_lock, cache.transact():
            raw = cache.get(key)
            if raw is not None and is_live(unpack_value(key, _as_bytes(key, raw))[1], now):
                return False
            cache.set(key, packed, expire=ttl_s)
            return True

    def _delete(self, key: str, now: float) -> bool:
        cache = self._open()
        with self._write_lock:
            raw = cache.pop(key)
        if raw is None or isinstance(raw, int | float):
            return raw is not None
        return is_live(unpack_value(key, _as_bytes(key, raw))[1], now)

    def _delete_many(self, keys: list[str]) -> None:
        """Delete string keys straight from diskcache's table, in one transaction (its triggers keep the
        count and size right); a value kept in a file of its own gets the file removed."""
        cache = self._open()
        with self._write_lock, cache.transact():
            con = cache._con
            for start in range(0, len(keys), _UPSERT_ROWS):
                chunk = keys[start : start + _UPSERT_ROWS]
                marks = ",".join("?" * len(chunk))
                files = _files_of(con, chunk)
                con.execute(f"DELETE FROM Cache WHERE raw = 1 AND key IN ({marks})", chunk)
                _remove_files(cache, files)

    def _incr(self, key: str, amount: float, keep_s: float | None) -> float:
        cache = self._open()
        with self._write_lock, cache.transact():
            total = _as_number(key, cache.get(key, default=0)) + amount
            cache.set(key, total, expire=keep_s)
        return float(total)

    def _counter(self, key: str) -> float:
        return float(_as_number(key, self._open().get(key, default=0)))

    def _set_change(self, key: str, member: str, add: bool) -> bool:
        """Add or remove one member inside a transaction; an emptied set is deleted."""
        cache = self._open()
        with self._write_lock, cache.transact():
            members = _as_set(key, cache.get(key, default=frozenset()))
            if (member in members) == add:
                return False
            changed = members | {member} if add else members - {member}
            if changed:
                cache.set(key, changed)
            else:
                cache.delete(key)
            return True

    def _set_members(self, key: str) -> frozenset[str]:
        return _as_set(key, self._open().get(key, default=frozenset()))

    def _ping(self) -> None:
        self._open().get(self._prefix + "__ping__")

    def _shutdown(self) -> None:
        """Close every pool thread's SQLite connection (diskcache keeps one per thread), then the pool."""
        caches = [c for c in (self._cache, self._reader) if c is not None]
        if caches:
            barrier = threading.Barrier(_WORKERS, timeout=_CLOSE_TIMEOUT_S)
            closers = [self._executor.submit(_close_in_thread, caches, barrier) for _ in range(_WORKERS)]
            for closer in closers:
                closer.result()
        self._executor.shutdown(wait=True)


_UPSERT = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, filename, value)"
    " VALUES {} ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time,"
    " expire_time = excluded.expire_time, access_time = excluded.access_time, access_count = 0, tag = NULL,"
    " size = 0, mode = excluded.mode, filename = NULL, value = excluded.value"
)
_ROW = "(?, 1, ?, ?, ?, 0, NULL, 0, ?, NULL, ?)"
_EXPIRED = "SELECT {} FROM Cache WHERE expire_time IS NOT NULL AND expire_time < ? ORDER BY expire_time LIMIT ?"


def _upsert(cache: Any, items: list[tuple[str, bytes]], ttl_s: float | None) -> None:
    """Write small byte values straight into diskcache's table, inside the caller's transaction.

    ``Cache.set`` costs ~47 µs a row (a lookup, an insert, a cull query, its own transaction and
    bookkeeping in Python); one multi-row upsert of the same rows costs a fifth of that, and it lets
    go of the GIL once, not once a row (under load each of those hand-offs to the busy event loop
    cost more than the row: ``executemany`` here took ~50 µs of CPU a row on a proxy at 1000
    requests/s).

    The rows are what ``set`` writes for a string key and a bytes value under ``disk_min_file_size``
    (inline, ``MODE_RAW``, size 0); the conflict clause is an UPDATE, so diskcache's count and size
    triggers stay right. A key that held a value in a file of its own gets that file removed, and as
    many expired rows as were written are culled, as ``set`` does one at a time. The schema is
    diskcache 5's (pinned in ``pyproject.toml``); ``tests/proxy/store/test_disk_store.py`` reads the
    rows back through diskcache's own API.
    """
    now = time.time()
    expires = None if ttl_s is None else now + ttl_s
    con = cache._con  # the connection of this thread, inside the transaction the caller holds
    files = _files_of(con, [key for key, _ in items])
    rows = [field for key, value in items for field in (key, now, expires, now, MODE_RAW, value)]
    con.execute(_UPSERT.format(",".join([_ROW] * len(items))), rows)  # one statement: the GIL is let go once
    files += con.execute(_EXPIRED.format("filename"), (now, len(items))).fetchall()
    con.execute(f"DELETE FROM Cache WHERE rowid IN ({_EXPIRED.format('rowid')})", (now, len(items)))
    _remove_files(cache, files)


def _files_of(con: sqlite3.Connection, keys: list[str]) -> list[tuple[str | None]]:
    """The files diskcache keeps of these string keys' values (those ≥ ``disk_min_file_size``)."""
    marks = ",".join("?" * len(keys))
    query = f"SELECT filename FROM Cache WHERE raw = 1 AND filename IS NOT NULL AND key IN ({marks})"
    return con.execute(query, keys).fetchall()


def _remove_files(cache: Any, files: list[tuple[str | None]]) -> None:
    """Remove value files whose rows went (the caller holds the transaction that removed them)."""
    for (filename,) in files:
        if filename is not None:
            cache._disk.remove(os.path.join(cache.directory, filename))


def _close_in_thread(caches: list[Any], barrier: threading.Barrier) -> None:
    """Close this thread's connections, then wait so each pool thread runs exactly one closer."""
    for cache in caches:
        cache.close()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass


def _live_value(key: str, raw: object, now: float) -> bytes | None:
    if raw is None:
        return None
    value, expires = unpack_value(key, _as_bytes(key, raw))
    return value if is_live(expires, now) else None


def _as_bytes(key: str, raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    kind = "set" if isinstance(raw, frozenset) else "counter"
    raise StoreError(f"key {key!r} holds a {kind}, not a value")


def _as_set(key: str, raw: object) -> frozenset[str]:
    if isinstance(raw, frozenset):
        return raw
    kind = "value" if isinstance(raw, bytes) else "counter"
    raise StoreError(f"key {key!r} holds a {kind}, not a set")


def _as_number(key: str, raw: object) -> int | float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return raw
    kind = "set" if isinstance(raw, frozenset) else "value"
    raise StoreError(f"key {key!r} holds a {kind}, not a counter")
