"""Quota leases on the real stores (diskcache and Redis, fake clock): chunks, the limit, settling, release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import patch

import pytest

from plugins._budget import meters
from plugins._budget.leases import Leases
from plugins._budget.meters import MINUTE, Meter, Previous
from proxy.store import Store, StoreConfig, open_store

T0 = 60.0 * 29_000_000 + 1  # just after a minute boundary


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["diskcache", "redis"])
async def store_and_clock(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Clock]]:
    clock = Clock()
    if request.param == "redis":
        config = StoreConfig(backend="redis", url=request.getfixturevalue("clean_redis_url"))
    else:
        config = StoreConfig()
    store = open_store(config, tmp_path, clock=clock)
    yield store, clock
    await store.close()


RPM = Meter("ratelimit:key:k:rpm", "sliding", 320, "requests", "rpm")
TPD = Meter("budget:key:k:tokens_per_day", "day", 10_000, "tokens", "tokens_per_day")


def leases(store: Store, clock: Clock, fraction: float = 1 / 32) -> Leases:
    return Leases(store, Previous(), fraction, clock=clock)


async def test_a_burst_on_an_empty_lease_takes_one_chunk(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    mine = leases(store, clock)
    with patch.object(store, "incr", wraps=store.incr) as incr:
        taken = await asyncio.gather(*(mine.take(RPM, 1, clock.now) for _ in range(10)))
    assert incr.call_count == 1  # 10 coroutines, one chunk of 320 / 32 = 10
    assert not any(t.refused for t in taken) and all(t.level <= RPM.limit for t in taken)
    assert sorted(t.level for t in taken) == list(range(1, 11))  # exact headers for one process
    assert await store.counter(meters.locate(RPM, clock.now).key, window_s=2 * MINUTE) == 10
    assert mine.local(RPM, 1, clock.now) is None  # used up: the next one needs a chunk


async def test_processes_never_admit_more_than_the_limit(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    limit = Meter("ratelimit:key:k:rpm", "sliding", 25, "requests", "rpm")
    procs = [leases(store, clock, fraction=0.3) for _ in range(3)]  # chunks of 7, smaller near the end
    taken = await asyncio.gather(*(procs[i % 3].take(limit, 1, clock.now) for i in range(200)))
    admitted = [t for t in taken if not t.refused]
    assert 25 - 3 * 6 <= len(admitted) <= 25  # each process may hold < 7 unused
    assert sum(p.used(limit.name) for p in procs) == len(admitted)
    level = await store.counter(meters.locate(limit, clock.now).key, window_s=2 * MINUTE)
    assert len(admitted) <= level <= 25  # the store counts leased amounts, never past the limit


async def test_chunks_shrink_near_the_limit(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    other, mine = leases(store, clock), leases(store, clock)
    for _ in range(9_000 // 312):
        await other.take(TPD, 312, clock.now)  # another process used ~9000 of 10000
    taken = await mine.take(TPD, 10, clock.now)
    lease = mine._leases[TPD.name]
    assert lease.granted == 312  # the first chunk: 1/32 of the limit, before it knew the level
    assert mine.chunk(TPD, lease, 10) == pytest.approx((10_000 - lease.seen) / 4)
    assert taken.level == pytest.approx(lease.base + 10)


async def test_settling_is_local_and_an_overrun_past_the_lease_goes_to_the_store(
    store_and_clock: tuple[Store, Clock],
) -> None:
    store, clock = store_and_clock
    mine = leases(store, clock)
    taken = await mine.take(TPD, 300, clock.now)  # a chunk of 312
    assert mine.settle(taken, -200) == 0  # used 100: the rest goes back to the lease
    assert mine.used(TPD.name) == 100
    assert mine.settle(taken, 150) == 0  # an overrun the lease still covers
    assert mine.settle(taken, 100) == pytest.approx(38)  # 312 - 250 = 62 from the lease, 38 for the store
    clock.now += meters.DAY
    await mine.take(TPD, 1, clock.now)  # a new day, a new lease: yesterday's is gone
    assert mine.settle(taken, -50) == 0 and mine.used(TPD.name) == 1  # a late refund is dropped
    assert mine.settle(taken, 20) == 20  # a late overrun is charged through the store


async def test_release_gives_unused_leases_back_and_a_new_window_starts_afresh(
    store_and_clock: tuple[Store, Clock],
) -> None:
    store, clock = store_and_clock
    mine = leases(store, clock)
    await mine.take(TPD, 100, clock.now)
    await mine.release()
    assert await store.counter(TPD.name, window_s=meters.DAY) == 100  # the chunk's unused 212 came back
    await mine.take(TPD, 100, clock.now)
    clock.now += meters.DAY
    taken = await mine.take(TPD, 100, clock.now)
    assert taken.slot == meters.slot_of(TPD, clock.now) and mine.used(TPD.name) == 100
    assert await store.counter(TPD.name, window_s=meters.DAY) == 312


async def test_a_sliding_lease_counts_the_previous_window_weighted(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    mine = leases(store, clock)
    for _ in range(95):
        await mine.take(RPM, 1, clock.now)  # 95 used of 100 leased (chunks of 10) in this minute
    clock.now += MINUTE + 29  # half-way through the next minute: the previous one counts 100 * 0.5
    taken = [await mine.take(RPM, 1, clock.now) for _ in range(300)]
    admitted = [t for t in taken if not t.refused]
    assert len(admitted) == 320 - 50  # one process: the last chunks shrink to exactly what fits
    assert all(t.refused and t.level > RPM.limit for t in taken[len(admitted) :])  # then every one is refused


async def test_a_burst_on_a_full_meter_asks_the_store_once(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    full, mine = leases(store, clock), leases(store, clock)
    await asyncio.gather(*(full.take(TPD, 312, clock.now) for _ in range(40)))  # another process filled it
    with patch.object(store, "incr", wraps=store.incr) as incr:
        taken = await asyncio.gather(*(mine.take(TPD, 100, clock.now) for _ in range(50)))
    assert all(t.refused and t.level > TPD.limit for t in taken)
    assert incr.call_count == 2  # one chunk asked for and given back, for all 50


async def test_an_idle_lease_gives_its_rest_back_so_a_busy_process_can_use_it(
    store_and_clock: tuple[Store, Clock],
) -> None:
    store, clock = store_and_clock
    tight = Meter("budget:key:k:tokens_per_day", "day", 1_000, "tokens", "tokens_per_day")
    idle, busy = leases(store, clock, fraction=0.5), leases(store, clock, fraction=0.5)
    await idle.take(tight, 10, clock.now)  # a chunk of 250 (a quarter of the room), it uses 10, goes quiet
    admitted = [t for t in [await busy.take(tight, 10, clock.now) for _ in range(100)] if not t.refused]
    assert sum(t.amount for t in admitted) <= 1_000 - 250  # the idle one holds 240 the busy one cannot have
    assert await idle.return_idle(3600) == 0  # not idle for an hour yet: kept
    assert await idle.return_idle(0) == 1
    assert idle.local(tight, 10, clock.now) is None  # its lease is empty now: the next request asks the store
    more = [t for t in [await busy.take(tight, 10, clock.now) for _ in range(100)] if not t.refused]
    total = sum(t.amount for t in admitted + more) + 10
    assert 1_000 - 10 * 2 <= total <= 1_000  # now the day's budget is used almost whole, never past it
    assert await store.counter(tight.name, window_s=meters.DAY) <= 1_000
