"""Circuit breakers on a fake clock, on diskcache and on Redis: trip, probe, close, and replicas sharing state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.circuit import Breaker, Circuits, wanted
from proxy.errors import UpstreamError, UpstreamStatus, UpstreamTimeout
from proxy.policyfile import CircuitConfig
from proxy.store import Store, StoreConfig, open_store


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


DOWN = UpstreamError("backend 'a' is unreachable", code="upstream_unreachable")
CONFIG = CircuitConfig(failures=3, timeouts=2, failure_rate=None, cooldown_s=10, max_cooldown_s=25, sync_s=0)


@pytest.fixture(params=["diskcache", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, FakeClock]]:
    clock = FakeClock()
    if request.param == "redis":
        url = request.getfixturevalue("clean_redis_url")
        config = StoreConfig(backend="redis", url=url)
    else:
        config = StoreConfig()
    opened = open_store(config, tmp_path, clock=clock)
    yield opened, clock
    await opened.close()


async def test_consecutive_failures_open_it_and_a_probe_closes_it(store: tuple[Store, FakeClock]) -> None:
    shared, clock = store
    breaker = Breaker("a", CONFIG, shared, clock)
    for _ in range(2):
        assert await breaker.admit()
        await breaker.failure(DOWN)
    await breaker.success()  # a success in between resets the count
    for _ in range(3):
        assert await breaker.admit()
        await breaker.failure(DOWN)
    assert breaker.state == "open"
    assert not await breaker.admit()
    clock.now += 10
    assert await breaker.admit()  # the probe
    assert breaker.state == "half_open"
    assert not await breaker.admit()  # only one probe at a time
    await breaker.success()
    assert breaker.state == "closed" and await breaker.admit()


async def test_a_failed_probe_doubles_the_cooldown_up_to_the_cap(store: tuple[Store, FakeClock]) -> None:
    shared, clock = store
    breaker = Breaker("a", CONFIG, shared, clock)
    for _ in range(2):
        await breaker.failure(UpstreamTimeout("slow"))
    assert breaker.state == "open" and breaker.cooldown == 10
    for expected in (20, 25, 25):
        clock.now += breaker.cooldown
        assert await breaker.admit()
        await breaker.failure(DOWN)
        assert breaker.state == "open" and breaker.cooldown == expected


async def test_client_errors_do_not_count_and_a_4xx_probe_closes(store: tuple[Store, FakeClock]) -> None:
    shared, clock = store
    breaker = Breaker("a", CONFIG, shared, clock)
    for _ in range(10):
        await breaker.failure(UpstreamStatus(400, b'{"error": {"message": "bad"}}'))
        await breaker.failure(UpstreamStatus(429, b"{}"))
    assert breaker.state == "closed"
    for _ in range(3):
        await breaker.failure(UpstreamStatus(503, b"{}"))
    assert breaker.state == "open"
    clock.now += 10
    assert await breaker.admit()
    await breaker.failure(UpstreamStatus(404, b"{}"))  # it answers: alive
    assert breaker.state == "closed"


async def test_failure_rate_over_the_window_opens_it(store: tuple[Store, FakeClock]) -> None:
    shared, clock = store
    config = CircuitConfig(failures=100, failure_rate=0.5, min_requests=10, window_s=60, sync_s=0)
    breaker = Breaker("a", config, shared, clock)
    for _ in range(4):  # alternate: never 100 in a row, but half of them fail
        await breaker.success()
        await breaker.failure(DOWN)
    assert breaker.state == "closed"  # 8 attempts: below min_requests
    await breaker.success()
    await breaker.failure(DOWN)
    assert breaker.state == "open"
    assert breaker.status()["window"] == {"attempts": 10, "failures": 5, "seconds": 60}


async def test_replicas_share_the_state_and_only_one_probes(store: tuple[Store, FakeClock]) -> None:
    shared, clock = store
    one, two = Breaker("a", CONFIG, shared, clock), Breaker("a", CONFIG, shared, clock)
    assert await two.admit()
    for _ in range(3):
        await one.failure(DOWN)
    assert not await two.admit()  # opened by the other replica, read from the store
    assert two.state == "open"
    clock.now += 10
    probes = [await one.admit(), await two.admit()]
    assert probes.count(True) == 1
    prober, other = (one, two) if probes[0] else (two, one)
    await prober.success()
    assert await other.admit()  # the probe's success closed it for everyone
    assert other.state == "closed"


def test_auto_means_backends_some_route_falls_back_from() -> None:
    configs = {
        "a": CircuitConfig(),
        "b": CircuitConfig(),
        "c": CircuitConfig(enabled=True),
        "d": CircuitConfig(enabled=False),
    }
    assert sorted(wanted(configs, ["a", "d"])) == ["a", "c"]
    assert Circuits({}, None).get("a") is None  # type: ignore[arg-type]
