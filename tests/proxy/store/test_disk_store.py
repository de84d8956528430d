"""The diskcache store's direct writes: ``set_many`` upserts into diskcache's table (``proxy.store.disk._upsert``),
so diskcache's own API, its count and size, its files and its expiry must all still agree."""

import time
import types
from pathlib import Path

import diskcache  # type: ignore[import-untyped]
import pytest

from proxy.store import StoreConfig, disk, open_store


async def test_diskcache_set_many_rows_read_back_through_diskcache(tmp_path: Path) -> None:
    """set_many writes diskcache's table directly: diskcache's own API, count and size must agree."""
    big = b"x" * 40_000  # kept by diskcache in a file of its own
    store = open_store(StoreConfig(), tmp_path)
    try:
        await store.set("was-big", big)  # a file: overwritten below by a small value
        await store.set_many([("was-big", b"small"), ("new", b"v"), ("big", big)], ttl_s=600)
        await store.set_many([("new", b"v2")], ttl_s=600)  # an upsert of an inline row
        assert [await store.get(k) for k in ("was-big", "new", "big")] == [b"small", b"v2", big]
    finally:
        await store.close()
    with diskcache.Cache(str(tmp_path / "store")) as cache:
        assert len(cache) == 3 == cache.reset("count")  # diskcache's own count, kept by its triggers
        files = list((tmp_path / "store").rglob("*.val"))
        assert len(files) == 1  # the overwritten value's file was removed
        assert cache.reset("size") == files[0].stat().st_size  # and its size left diskcache's total
        expiry = cache.get("chaperone:new", expire_time=True)[1]
        assert expiry == pytest.approx(time.time() + 600, abs=5)


async def test_diskcache_set_many_culls_expired_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(StoreConfig(), tmp_path)
    try:
        await store.set_many([(f"old{i}", b"v") for i in range(5)], ttl_s=1)
        later = time.time() + 10  # diskcache's expiry runs on the wall clock: the next write happens "later"
        monkeypatch.setattr(disk, "time", types.SimpleNamespace(time=lambda: later))
        await store.set_many([(f"new{i}", b"v") for i in range(5)], ttl_s=600)
    finally:
        await store.close()
    with diskcache.Cache(str(tmp_path / "store")) as cache:
        assert sorted(cache.iterkeys()) == [f"chaperone:new{i}" for i in range(5)]


async def test_diskcache_delete_many_keeps_diskcache_count_size_and_files_right(tmp_path: Path) -> None:
    big = b"x" * 40_000
    store = open_store(StoreConfig(), tmp_path)
    try:
        await store.set_many([("a", b"1"), ("b", b"2"), ("big", big), ("kept-big", big)], ttl_s=600)
        await store.delete_many(["a", "big", "absent"])
    finally:
        await store.close()
    with diskcache.Cache(str(tmp_path / "store")) as cache:
        assert sorted(cache.iterkeys()) == ["chaperone:b", "chaperone:kept-big"]
        assert len(cache) == 2 == cache.reset("count")
        files = list((tmp_path / "store").rglob("*.val"))
        assert len(files) == 1 and cache.reset("size") == files[0].stat().st_size  # the deleted value's file went
