"""The balancer's strategies and passive ejection, with an injected clock (no sleeps, exact picks)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from backends.balancer import Balancer
from proxy.policyfile import BalanceConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(n: int = 3, clock: Clock | None = None, **config: Any) -> Balancer:
    return Balancer([f"r{i}" for i in range(n)], BalanceConfig(**config), clock or Clock())


def test_round_robin_takes_turns() -> None:
    balancer = make(3)
    assert [balancer.pick() for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_weighted_is_smooth_and_exact() -> None:
    balancer = make(2, strategy="weighted", weights=[3, 1])
    picks = [balancer.pick() for _ in range(8)]
    assert picks == [0, 0, 1, 0, 0, 0, 1, 0]  # nginx's smooth order: never four in a row
    assert Counter(picks) == {0: 6, 1: 2}


def test_weighted_zero_weight_gets_nothing() -> None:
    balancer = make(3, strategy="weighted", weights=[1, 0, 1])
    assert 1 not in {balancer.pick() for _ in range(20)}


def test_least_outstanding_prefers_the_idle_replica() -> None:
    balancer = make(3, strategy="least_outstanding")
    for i in (0, 0, 1):
        balancer.begin(i)
    assert balancer.pick() == 2
    balancer.begin(2)
    balancer.begin(2)
    assert balancer.pick() == 1  # 0 has 2, 1 has 1, 2 has 2
    for _ in range(2):
        balancer.finish(0)
    assert balancer.pick() == 0


def test_ewma_prefers_the_fast_replica_and_tries_unknown_ones_first() -> None:
    balancer = make(2, strategy="ewma")
    assert balancer.pick() == 0
    balancer.succeeded(0, 0.5)
    assert balancer.pick() == 1  # no sample yet: explored
    balancer.succeeded(1, 0.05)
    assert [balancer.pick() for _ in range(5)] == [1] * 5
    for _ in range(4):  # the fast one is loaded: latency x (in flight + 1) overtakes the slow one
        balancer.begin(1)
    assert balancer.pick() == 1
    for _ in range(6):
        balancer.begin(1)
    assert balancer.pick() == 0


def test_ewma_smooths_with_alpha() -> None:
    balancer = make(1, strategy="ewma", ewma_alpha=0.5)
    balancer.succeeded(0, 1.0)
    balancer.succeeded(0, 0.0)
    assert balancer.targets[0].ewma_s == 0.5


def test_failures_eject_for_a_while_then_probation() -> None:
    clock = Clock()
    balancer = make(2, clock, eject_after=2, eject_s=10)
    balancer.failed(1)
    assert 1 in {balancer.pick() for _ in range(4)}
    balancer.failed(1)
    assert {balancer.pick() for _ in range(6)} == {0}
    status = balancer.status()[1]
    assert status["healthy"] is False and status["ejections"] == 1 and status["ejected_for_s"] == 10
    clock.now += 10
    assert 1 in {balancer.pick() for _ in range(2)}  # back after eject_s
    balancer.failed(1)  # on probation: one more failure ejects it again
    assert {balancer.pick() for _ in range(4)} == {0}
    clock.now += 10
    balancer.succeeded(1, 0.01)
    balancer.failed(1)  # a success ended the probation
    assert 1 in {balancer.pick() for _ in range(2)}


def test_every_replica_out_means_try_them_all() -> None:
    balancer = make(2, eject_after=1)
    balancer.failed(0)
    balancer.failed(1)
    assert {balancer.pick() for _ in range(4)} == {0, 1}


def test_health_check_down_and_up() -> None:
    balancer = make(2, eject_after=1)
    balancer.set_down(0, True)
    assert {balancer.pick() for _ in range(4)} == {1}
    balancer.failed(1)
    balancer.set_down(1, False)  # a passing check ends a passive ejection
    assert {balancer.pick() for _ in range(4)} == {1}


def test_exclude_avoids_tried_replicas() -> None:
    balancer = make(3)
    assert balancer.pick(exclude={0, 1}) == 2
    assert balancer.pick(exclude={0, 1, 2}) in {0, 1, 2}
