"""The state store contract, run against both backends: diskcache and a real redis-server."""

import asyncio
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import diskcache  # type: ignore[import-untyped]
import pydantic
import pytest
import redis.asyncio

from proxy.store import Store, StoreConfig, StoreError, StoreUnavailable, open_store

REPO_ROOT = Path(__file__).resolve().parents[3]
T0 = 1_800_000_000.0  # a multiple of 60, so minute windows start here


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(params=["diskcache", "redis"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> StoreConfig:
    if request.param == "redis":
        url: str = request.getfixturevalue("clean_redis_url")
        return StoreConfig(backend="redis", url=url, prefix=f"test-{uuid.uuid4().hex}:")
    return StoreConfig(path=str(tmp_path / "store"))


@pytest.fixture
async def store(config: StoreConfig, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    opened = open_store(config, tmp_path, clock=clock)
    yield opened
    await opened.close()


# -- values ---------------------------------------------------------------------------------------------


async def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)
    await store.ping()


async def test_get_set_delete(store: Store) -> None:
    assert await store.get("k") is None
    await store.set("k", b"v1")
    assert await store.get("k") == b"v1"
    await store.set("k", b"\x00|binary|\xff")
    assert await store.get("k") == b"\x00|binary|\xff"
    assert await store.delete("k") is True
    assert await store.get("k") is None
    assert await store.delete("k") is False


async def test_delete_many_removes_values_and_counters_and_skips_absent_keys(store: Store) -> None:
    await store.set_many([(f"d{i}", b"x") for i in range(1200)])  # past one statement's and one command's batch
    await store.set("big", b"y" * 40_000)  # diskcache keeps it in a file of its own
    await store.set("keep", b"z")
    await store.incr("n", 3)
    await store.delete_many([*(f"d{i}" for i in range(1200)), "big", "n", "never-set"])
    await store.delete_many([])
    assert [await store.get(f"d{i}") for i in (0, 599, 1199)] == [None, None, None]
    assert await store.get("big") is None and await store.counter("n") == 0
    assert await store.get("keep") == b"z"
    await store.set("d0", b"again")  # the key is free to use again
    assert await store.get("d0") == b"again"


async def test_set_many_stores_each_with_its_ttl(store: Store, clock: FakeClock) -> None:
    await store.set("a", b"old")
    await store.set_many([("a", b"1"), ("b", b"2"), ("c", b"")], ttl_s=10)
    await store.set_many([], ttl_s=10)
    assert [await store.get(k) for k in "abc"] == [b"1", b"2", b""]
    clock.advance(11)
    assert [await store.get(k) for k in "abc"] == [None, None, None]


async def test_set_many_concurrent_with_single_writes(store: Store) -> None:
    await asyncio.gather(
        store.set_many([(f"m{i}", b"x") for i in range(50)]), *(store.set(f"s{i}", b"y") for i in range(20))
    )
    assert all([await store.get(f"m{i}") == b"x" for i in range(50)])
    assert all([await store.get(f"s{i}") == b"y" for i in range(20)])


async def test_empty_value(store: Store) -> None:
    await store.set("k", b"")
    assert await store.get("k") == b""


async def test_add_sets_only_when_absent(store: Store) -> None:
    assert await store.add("lock", b"first") is True
    assert await store.add("lock", b"second") is False
    assert await store.get("lock") == b"first"
    await store.delete("lock")
    assert await store.add("lock", b"third") is True


async def test_add_is_exclusive_under_concurrency(store: Store) -> None:
    results = await asyncio.gather(*(store.add("once", str(i).encode()) for i in range(50)))
    assert results.count(True) == 1


async def test_ttl_expires_by_the_clock(store: Store, clock: FakeClock) -> None:
    await store.set("k", b"v", ttl_s=10)
    clock.advance(9.99)
    assert await store.get("k") == b"v"
    clock.advance(0.01)
    assert await store.get("k") is None
    assert await store.delete("k") is False


async def test_set_without_ttl_clears_the_ttl(store: Store, clock: FakeClock) -> None:
    await store.set("k", b"short", ttl_s=1)
    await store.set("k", b"forever")
    clock.advance(3600)
    assert await store.get("k") == b"forever"


async def test_add_succeeds_once_the_holder_expired(store: Store, clock: FakeClock) -> None:
    assert await store.add("lock", b"a", ttl_s=5) is True
    clock.advance(4)
    assert await store.add("lock", b"b", ttl_s=5) is False
    clock.advance(1)
    assert await store.add("lock", b"b", ttl_s=5) is True
    assert await store.get("lock") == b"b"


@pytest.mark.parametrize("ttl_s", [0, -1, float("inf"), float("nan")])
async def test_bad_ttl_is_rejected(store: Store, ttl_s: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        await store.set("k", b"v", ttl_s=ttl_s)
    with pytest.raises(ValueError, match="ttl_s"):
        await store.add("k", b"v", ttl_s=ttl_s)


# -- counters -------------------------------------------------------------------------------------------


async def test_incr_and_counter(store: Store) -> None:
    assert await store.counter("c") == 0
    assert await store.incr("c") == 1.0
    assert await store.incr("c") == 2.0
    assert await store.incr("c", 5) == 7.0
    assert await store.incr("c", -3) == 4.0
    assert await store.counter("c") == 4.0
    assert await store.delete("c") is True
    assert await store.counter("c") == 0


async def test_float_increments(store: Store) -> None:
    assert await store.incr("cost", 0.25) == 0.25
    assert await store.incr("cost", 1.5) == 1.75
    assert await store.incr("cost", 2) == 3.75
    assert await store.counter("cost") == 3.75


async def test_window_counts_within_the_window(store: Store, clock: FakeClock) -> None:
    assert await store.incr("rpm", window_s=60) == 1
    clock.advance(59.9)
    assert await store.incr("rpm", window_s=60) == 2
    assert await store.counter("rpm", window_s=60) == 2
    clock.advance(0.1)
    assert await store.counter("rpm", window_s=60) == 0
    assert await store.incr("rpm", window_s=60) == 1


async def test_windows_are_aligned_to_the_clock(store: Store, clock: FakeClock) -> None:
    clock.advance(45)
    await store.incr("rpm", 3, window_s=60)
    clock.advance(15)  # T0 + 60: a new minute, though only 15 s passed
    assert await store.counter("rpm", window_s=60) == 0
    clock.advance(-0.5)
    assert await store.counter("rpm", window_s=60) == 3


async def test_windowed_and_plain_counters_are_separate(store: Store) -> None:
    await store.incr("c", 1)
    await store.incr("c", 10, window_s=60)
    await store.incr("c", 100, window_s=3600)
    assert await store.counter("c") == 1
    assert await store.counter("c", window_s=60) == 10
    assert await store.counter("c", window_s=3600) == 100


async def test_concurrent_increments(store: Store) -> None:
    totals = await asyncio.gather(*(store.incr("c") for _ in range(200)))
    assert sorted(totals) == [float(n) for n in range(1, 201)]
    assert await store.counter("c") == 200


_CHILD = """
import asyncio, pathlib, sys
from proxy.store import StoreConfig, open_store

async def main() -> None:
    store = open_store(StoreConfig.model_validate_json(sys.argv[1]), pathlib.Path(sys.argv[2]))
    await store.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(sys.argv[3])):
        await store.incr("shared")
    await store.close()

asyncio.run(main())
"""


async def test_concurrent_increments_from_two_processes(store: Store, config: StoreConfig, tmp_path: Path) -> None:
    args = (sys.executable, "-c", _CHILD, config.model_dump_json(), str(tmp_path), "200")
    pipe = asyncio.subprocess.PIPE
    children = [await asyncio.create_subprocess_exec(*args, stdin=pipe, stdout=pipe, cwd=REPO_ROOT) for _ in "ab"]
    for child in children:  # both connected before either starts, so they really overlap
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
    outcomes = await asyncio.wait_for(asyncio.gather(*(child.communicate(b"go\n") for child in children)), 30)
    assert [child.returncode for child in children] == [0, 0], outcomes
    assert await store.counter("shared") == 400


@pytest.mark.parametrize("amount", [float("inf"), float("nan")])
async def test_bad_amount_is_rejected(store: Store, amount: float) -> None:
    with pytest.raises(ValueError, match="amount"):
        await store.incr("c", amount)


@pytest.mark.parametrize("window_s", [0, -60])
async def test_bad_window_is_rejected(store: Store, window_s: float) -> None:
    with pytest.raises(ValueError, match="window_s"):
        await store.incr("c", window_s=window_s)
    with pytest.raises(ValueError, match="window_s"):
        await store.counter("c", window_s=window_s)


async def test_values_and_counters_do_not_mix(store: Store) -> None:
    await store.set("value", b"12")
    await store.incr("count")
    with pytest.raises(StoreError, match="holds a value"):
        await store.incr("value")
    with pytest.raises(StoreError, match="holds a value"):
        await store.counter("value")
    with pytest.raises(StoreError, match="holds a counter"):
        await store.get("count")
    with pytest.raises(StoreError, match="holds a counter"):
        await store.add("count", b"x")


# -- sets -----------------------------------------------------------------------------------------------


async def test_set_add_remove_members(store: Store) -> None:
    assert await store.set_members("ids") == frozenset()
    assert await store.set_add("ids", "a") is True
    assert await store.set_add("ids", "a") is False
    assert await store.set_add("ids", "b|c") is True
    assert await store.set_members("ids") == {"a", "b|c"}
    assert await store.set_remove("ids", "a") is True
    assert await store.set_remove("ids", "a") is False
    assert await store.set_members("ids") == {"b|c"}
    assert await store.set_remove("ids", "b|c") is True
    assert await store.set_members("ids") == frozenset()
    await store.set("ids", b"a value now")  # an emptied set is gone, so the key is free again
    assert await store.get("ids") == b"a value now"


async def test_concurrent_set_adds_all_land(store: Store) -> None:
    results = await asyncio.gather(*(store.set_add("ids", f"m{i}") for i in range(50)))
    assert all(results)
    assert await store.set_members("ids") == {f"m{i}" for i in range(50)}


async def test_sets_and_values_do_not_mix(store: Store) -> None:
    await store.set("value", b"x")
    await store.incr("count")
    await store.set_add("ids", "a")
    for wrong in (store.set_add("value", "a"), store.set_members("count"), store.get("ids"), store.incr("ids")):
        with pytest.raises(StoreError):
            await wrong


# -- lifecycle and isolation ----------------------------------------------------------------------------


async def test_prefixes_isolate_stores(store: Store, config: StoreConfig, tmp_path: Path, clock: FakeClock) -> None:
    other = open_store(config.model_copy(update={"prefix": "other:"}), tmp_path, clock=clock)
    try:
        await store.set("k", b"mine")
        await store.incr("c")
        await store.set_add("s", "m")
        assert await other.get("k") is None
        assert await other.counter("c") == 0
        assert await other.set_members("s") == frozenset()
    finally:
        await other.close()


async def test_closed_store_raises_unavailable(config: StoreConfig, tmp_path: Path) -> None:
    closing = open_store(config, tmp_path)
    await closing.set("k", b"v")
    await closing.close()
    await closing.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await closing.get("k")


async def test_diskcache_defaults_to_home_store(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path)
    try:
        await store.set("k", b"v")
    finally:
        await store.close()
    with diskcache.Cache(str(tmp_path / "store")) as cache:
        assert cache.get("chaperone:k") is not None


async def test_diskcache_unusable_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    store = open_store(StoreConfig(path="a-file/store"), tmp_path)
    try:
        with pytest.raises(StoreUnavailable, match="a-file"):
            await store.ping()
    finally:
        await store.close()


async def test_diskcache_backend_expiry_collects_entries(tmp_path: Path, clock: FakeClock) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=clock)
    try:
        await store.set("k", b"v", ttl_s=30)
        await store.incr("c", window_s=60)
    finally:
        await store.close()
    with diskcache.Cache(str(tmp_path / "store")) as cache:
        expiries = {key: cache.get(key, expire_time=True)[1] - time.time() for key in cache.iterkeys()}
    assert expiries.pop("chaperone:k") == pytest.approx(30, abs=5)
    assert list(expiries.values()) == [pytest.approx(61, abs=5)]


async def test_redis_backend_expiry_collects_entries(clean_redis_url: str, tmp_path: Path, clock: FakeClock) -> None:
    store = open_store(StoreConfig(backend="redis", url=clean_redis_url), tmp_path, clock=clock)
    client = redis.asyncio.Redis.from_url(clean_redis_url)
    try:
        await store.set("k", b"v", ttl_s=30)
        await store.incr("c", window_s=60)
        assert await client.pttl("chaperone:k") == pytest.approx(30_000, abs=5_000)
        [window_key] = [key async for key in client.scan_iter("chaperone:c@*")]
        assert await client.pttl(window_key) == pytest.approx(61_000, abs=5_000)
    finally:
        await client.aclose()
        await store.close()


async def test_unreachable_redis_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    store = open_store(StoreConfig(backend="redis", url=url), tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=url):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.incr("c")
        assert time.monotonic() - started < 2
    finally:
        await store.close()


async def test_unavailable_message_hides_the_password(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = open_store(StoreConfig(backend="redis", url=f"redis://app:s3cret@127.0.0.1:{port}/0"), tmp_path)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.ping()
        assert "s3cret" not in str(caught.value)
        assert f"redis://app:***@127.0.0.1:{port}/0" in str(caught.value)
    finally:
        await store.close()


# -- configuration --------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = StoreConfig()
    assert (config.backend, config.path, config.url, config.prefix) == ("diskcache", None, None, "chaperone:")


def test_redis_requires_url() -> None:
    with pytest.raises(pydantic.ValidationError, match="url is required"):
        StoreConfig(backend="redis")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"colour": "blue"}, "Extra inputs are not permitted"),
        ({"backend": "memcached"}, "backend"),
        ({"backend": "redis", "url": "http://localhost:6379"}, "url must start with"),
        ({"url": "redis://localhost:6379/0"}, "url applies only to backend 'redis'"),
        ({"backend": "redis", "url": "redis://localhost:6379/0", "path": "x"}, "path applies only"),
    ],
)
def test_config_rejects(fields: dict[str, str], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        StoreConfig.model_validate(fields)


def test_config_is_frozen_and_described() -> None:
    config = StoreConfig()
    with pytest.raises(pydantic.ValidationError):
        config.prefix = "x"
    assert all(field.description for field in StoreConfig.model_fields.values())


async def test_concurrent_writes_each_get_their_own_result_and_error(store: Store) -> None:
    """Writes batched together (diskcache) still answer one by one: totals in order, a wrong kind fails alone."""
    await store.set("a-value", b"v")
    results = await asyncio.gather(
        *(store.incr("n", 1) for _ in range(20)),
        store.incr("a-value", 1),
        store.add("once", b"1"),
        store.add("once", b"2"),
        return_exceptions=True,
    )
    totals = sorted(r for r in results[:20] if isinstance(r, float))
    assert totals == [float(i) for i in range(1, 21)]  # atomic: every caller saw a distinct total
    assert isinstance(results[20], StoreError)
    assert sorted(results[21:]) == [False, True]  # exactly one add won
    assert await store.counter("n") == 20 and await store.get("once") in (b"1", b"2")


async def test_large_values_round_trip(store: Store) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB: diskcache keeps it in a file of its own
    await store.set("big", big)
    await store.set("small", b"s")
    assert await store.get("big") == big
    assert await store.get("small") == b"s"


async def test_diskcache_reads_see_another_handles_writes(tmp_path: Path) -> None:
    """Reads run on the event loop over their own connection: they still see what others committed."""
    reader, writer = open_store(StoreConfig(), tmp_path), open_store(StoreConfig(), tmp_path)
    try:
        await reader.set("k", b"one")
        assert await reader.get("k") == b"one"
        await writer.set("k", b"two")
        await writer.incr("n", 5)
        assert await reader.get("k") == b"two"
        assert await reader.counter("n") == 5
    finally:
        await reader.close()
        await writer.close()


async def test_diskcache_busy_read_falls_back_to_the_pool(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path)
    try:
        await store.set("k", b"v")
        await store.set_add("s", "m")

        def busy(*args: object, **kwargs: object) -> object:
            raise diskcache.Timeout("database is locked")

        store._reader.get = busy  # type: ignore[attr-defined]  # the loop's connection cannot wait
        assert await store.get("k") == b"v"
        assert await store.counter("missing") == 0
        assert await store.set_members("s") == frozenset({"m"})
    finally:
        await store.close()
