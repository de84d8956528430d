"""The cache's partition log: one row per written batch, read by other replicas; answers stored by number."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from plugins._cache import log
from plugins._cache import shared as shared_module
from plugins._cache.index import Embedder
from plugins._cache.shared import Shared, entry_key
from proxy.store import Store, StoreConfig, open_store


def _resync(shared: Shared, partition: str) -> None:
    shared.partitions[partition][1].at = float("-inf")


async def _synced(shared: Shared, partition: str = "p") -> None:
    """Read the partition's log, waiting for a backlog that loads in the background."""
    await shared.lookup(partition, "-")
    task = shared.partitions[partition][1].task
    if task is not None:
        await task


async def _put(shared: Shared, keys: range, partition: str = "p") -> None:
    for i in keys:
        shared.put(partition, f"k{i}", b'{"n": %d}' % i, None, None)
    await shared.flush()


async def test_a_batch_of_answers_writes_one_log_row(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=100, sync_interval_s=1)
        await _put(shared, range(10))
        raw = await store.get("cache:l:p:1")
        assert raw is not None and orjson.loads(raw) == {"n": 10, "k": [f"k{i}" for i in range(10)]}
        assert all([await store.get(f"cache:l:p:{n}") is None for n in range(2, 11)])
        assert await store.counter("cache:n:p") == 10
        stored = await store.get(entry_key("p", 10))  # k9, the tenth answer: under its number
        assert stored is not None and orjson.loads(stored.partition(b"\x00")[0])["k"] == "k9"
    finally:
        await store.close()


async def test_another_replica_knows_every_answer_of_a_batch(replicas: tuple[Store, Store]) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=1000, sync_interval_s=3600)
    b = Shared(two, ttl_s=60, cap=1000, sync_interval_s=3600)
    await _put(a, range(3))
    await _put(a, range(3, 300))  # past one row: 256 answers, then 41
    await _synced(b)
    assert [await b.lookup("p", f"k{i}") is not None for i in range(300)] == [True] * 300
    before = b.skipped
    assert await b.lookup("p", "never-stored") is None and b.skipped == before + 1  # known: no store read


async def test_a_batch_counted_and_never_written_does_not_hide_the_rows_after_it(replicas: tuple[Store, Store]) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=1000, sync_interval_s=3600)
    b = Shared(two, ttl_s=60, cap=1000, sync_interval_s=3600)
    await _put(a, range(2))
    assert await one.incr("cache:n:p", 7) == 9  # a writer took 3..9 and died before writing them
    await _put(a, range(2, 5))
    assert await b.lookup("p", "k4") is not None  # b walked past the gap
    assert await b.lookup("p", "k0") is not None
    before = b.skipped
    assert await b.lookup("p", "k99") is None and b.skipped == before + 1


async def test_a_row_that_shows_up_late_is_read_at_a_later_sync(replicas: tuple[Store, Store]) -> None:
    one, two = replicas
    b = Shared(two, ttl_s=60, cap=1000, sync_interval_s=3600)
    assert await one.incr("cache:n:p", 3) == 3  # another replica counted three answers, writes them late
    assert await b.lookup("p", "k1") is None
    row = orjson.dumps({"n": 3, "k": ["k0", "k1", "k2"]})
    entries = [
        (entry_key("p", i + 1), orjson.dumps({"c": 1, "s": i + 1, "k": f"k{i}"}) + b'\x00{"late": true}')
        for i in range(3)
    ]
    await one.set_many([*entries, ("cache:l:p:1", row)])
    _resync(b, "p")
    assert (await b.lookup("p", "k1")).body == b'{"late": true}'  # type: ignore[union-attr]
    before = b.skipped
    assert await b.lookup("p", "k7") is None and b.skipped == before + 1


async def test_eviction_keeps_the_newest_cap_answers_across_rows_and_writers(replicas: tuple[Store, Store]) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=5, sync_interval_s=0)
    b = Shared(two, ttl_s=60, cap=5, sync_interval_s=0)  # reads the log before every lookup
    await _put(a, range(3))
    await _put(a, range(3, 6))  # answers 1..6: answer 1 (k0) goes
    await _put(b, range(6, 9))  # 7..9: 2..4 go, in a's rows, which b never read
    live = [i for i in range(9) if await a.lookup("p", f"k{i}") is not None]
    assert live == [4, 5, 6, 7, 8]
    a.put("p", "k5", b'{"again": 5}', None, None)  # stored again: its new number keeps it past the next evictions
    await a.flush()
    await _put(a, range(9, 12))  # 11..13: 6..8 go (k5's old number among them), k5 stays
    live = [i for i in range(12) if await b.lookup("p", f"k{i}") is not None]
    assert live == [5, 8, 9, 10, 11]
    assert await one.get(entry_key("p", 6)) is None  # k5's old number went with its turn


async def test_a_new_replica_starts_reading_where_the_cap_begins(replicas: tuple[Store, Store]) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=300, sync_interval_s=3600)
    await _put(a, range(256))  # rows at 1, 257, 513
    await _put(a, range(256, 512))
    await _put(a, range(512, 600))
    b = Shared(two, ttl_s=60, cap=300, sync_interval_s=3600)
    await _synced(b)
    assert [await b.lookup("p", f"k{i}") is not None for i in range(300, 600)] == [True] * 300
    assert [await b.lookup("p", f"k{i}") for i in range(300)] == [None] * 300  # evicted past the cap
    before = b.skipped
    assert await b.lookup("p", "never-stored") is None and b.skipped == before + 1


async def test_semantic_rows_carry_their_embeddings(replicas: tuple[Store, Store], embedder: Embedder) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=1000, sync_interval_s=0)
    b = Shared(two, ttl_s=60, cap=1000, sync_interval_s=0)
    texts = [f"how do I bake bread number {i}" for i in range(40)] + ["boil an egg"]
    for i, text in enumerate(texts):
        a.put("p", f"k{i}", b"{}", text, embedder.embed(text))
    a.put("p", "plain", b"{}", None, None)  # a long query: logged without an embedding
    await a.flush()
    assert orjson.loads((await one.get(f"cache:l:p:{log.SEMANTIC_ROW + 1}") or b"").partition(b"\x00")[0])["n"] == 10
    seen = await b.index("p")
    assert len(seen) == 41
    assert [c.key for c in seen.search(embedder.embed("boil an egg"), 0.9, 1)] == ["k40"]
    assert await b.lookup("p", "plain") is not None


async def test_what_a_writer_remembers_of_its_log_stays_bounded(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=2, sync_interval_s=3600)
        for i in range(1000):
            await _put(shared, range(i, i + 1))  # 1000 rows of one answer, never read back
        sync = shared.partitions["p"][1]
        assert sync.known is not None and len(sync.known) <= 2 + log.MAX_ROW  # evicted numbers are forgotten
        assert shared.tracked == len(sync.known)
        assert len(sync.own) <= 2 + log.MAX_ROW + 1
        assert [i for i in range(1000) if await shared.lookup("p", f"k{i}") is not None] == [998, 999]
    finally:
        await store.close()


def test_rows_of_one_answer_from_before_batches_still_read() -> None:
    row = log.decode(7, b'{"k": "key", "t": "text"}' + b"\x00" + bytes(512))
    assert row is not None and row.keys == ("key",) and row.end == 8 and row.vectors == (0,)
    assert log.decode(7, b"not json") is None and log.decode(7, b'{"k": [1]}') is None


async def test_answers_are_stored_by_number_in_key_order_and_checked_on_read(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=100, sync_interval_s=3600)
        await _put(shared, range(12))
        assert [entry_key("p", n) for n in range(1, 13)] == sorted(entry_key("p", n) for n in range(1, 13))
        assert await store.get("cache:e:k3") is None  # not under its exact key
        await store.set(entry_key("p", 4), orjson.dumps({"c": 1, "s": 4, "k": "other"}) + b"\x00{}")
        assert await shared.lookup("p", "k3") is None  # the number holds another key's answer: a miss
        assert await shared.lookup("p", "k3") is None and shared.skipped == 1  # and k3 is forgotten
        assert (await shared.lookup("p", "k4")).body == b'{"n": 4}'  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_a_partition_whose_log_read_failed_is_read_again_from_the_start(
    replicas: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=1000, sync_interval_s=3600)
    b = Shared(two, ttl_s=60, cap=1000, sync_interval_s=3600)
    await _put(a, range(3))

    async def failing_walk(*args: object, **kwargs: object) -> object:
        raise RuntimeError("store hiccup")

    with monkeypatch.context() as patch:
        patch.setattr(log, "walk", failing_walk)
        assert await b.lookup("p", "k0") is None  # the read failed: nothing is known, a miss
    assert b.partitions["p"][1].seen == 0 and b.tracked == 0  # forgotten, not left half-known for good
    assert await b.lookup("p", "k1") is None  # not read again before the interval (no storm while the store ails)
    _resync(b, "p")
    assert (await b.lookup("p", "k1")).body == b'{"n": 1}'  # type: ignore[union-attr]  # read from the start


async def test_past_the_key_budget_the_least_recently_used_partition_is_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_module, "KNOWN_MAX", 5)
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=100, sync_interval_s=3600)
        await _put(shared, range(4), partition="a")
        await _put(shared, range(4), partition="b")  # 8 keys > 5: "a" goes, "b" is whole
        assert list(shared.partitions) == ["b"] and shared.tracked == 4
        assert [await shared.lookup("b", f"k{i}") is not None for i in range(4)] == [True] * 4
        assert (await shared.lookup("a", "k2")).body == b'{"n": 2}'  # type: ignore[union-attr]  # read again
    finally:
        await store.close()
