"""The budget plugin's pieces on their own: store meters (real stores, fake clock), the window table, fitting units."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plugins._budget import fitting, meters
from plugins._budget.meters import MINUTE, Meter
from plugins._budget.windows import window_for
from proxy import tokens
from proxy.store import Store, StoreConfig, open_store

T0 = 60.0 * 29_000_000  # a minute boundary (2025-02-19 21:20 UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["diskcache", "redis"])
async def store_and_clock(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Clock]]:
    clock = Clock()
    if request.param == "redis":
        url = request.getfixturevalue("clean_redis_url")
        store = open_store(StoreConfig(backend="redis", url=url), tmp_path, clock=clock)
    else:
        store = open_store(StoreConfig(), tmp_path, clock=clock)
    yield store, clock
    await store.close()


def test_each_window_outlives_the_next_one() -> None:
    for i in range(10_000):
        m = meters._span(i)
        assert i % m != m - 1
        assert (i // m + 1) * m >= i + 2  # its store window ends after slot i + 1 ends


async def test_sliding_count_weights_the_previous_window(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    rpm = Meter("ratelimit:key:k:rpm", "sliding", 10, "requests", "rpm")
    clock.now = T0 + 1
    assert (await meters.take(store, rpm, 8, clock.now)).level == 8
    clock.now = T0 + MINUTE + 30  # half-way through the next window: 8 * 0.5 + 1
    assert (await meters.take(store, rpm, 1, clock.now)).level == pytest.approx(5)
    clock.now = T0 + MINUTE + 59  # the previous window is still readable, almost weightless
    assert (await meters.take(store, rpm, 1, clock.now)).level == pytest.approx(8 / 60 + 2)
    clock.now = T0 + 2 * MINUTE + 30  # two windows on: only the last one counts
    assert (await meters.take(store, rpm, 1, clock.now)).level == pytest.approx(2 * 0.5 + 1)


async def test_settling_lands_in_the_reserving_window_or_is_dropped(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    tpm = Meter("ratelimit:key:k:tpm", "sliding", 1000, "tokens", "tpm")
    taken = await meters.take(store, tpm, 500, clock.now)
    await meters.adjust(store, taken, -300, clock.now)  # actual usage was 200
    assert (await meters.take(store, tpm, 0, clock.now)).level == 200
    day = Meter("budget:key:k:tokens_per_day", "day", 10_000, "tokens", "tokens_per_day")
    reserved = await meters.take(store, day, 500, clock.now)
    clock.now += meters.DAY  # the next day: a refund is dropped, an overrun is charged to today
    await meters.adjust(store, reserved, -400, clock.now)
    assert await store.counter(day.name, window_s=meters.DAY) == 0
    await meters.adjust(store, reserved, 50, clock.now)
    assert await store.counter(day.name, window_s=meters.DAY) == 50


async def test_month_budgets_count_per_calendar_month(store_and_clock: tuple[Store, Clock]) -> None:
    store, clock = store_and_clock
    usd = Meter("budget:key:k:usd_per_month", "month", 5.0, "usd", "usd_per_month")
    first = await meters.take(store, usd, 1.25, clock.now)
    assert first.key == "budget:key:k:usd_per_month:2025-02"
    clock.now += 10 * meters.DAY  # March
    assert (await meters.take(store, usd, 0.5, clock.now)).level == 0.5
    await meters.adjust(store, first, 0.25, clock.now)  # a late settlement still lands in February
    assert await store.counter("budget:key:k:usd_per_month:2025-02") == 1.5
    assert meters.reset_s(usd, clock.now) == pytest.approx(meters._epoch(2025, 4) - clock.now)


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o-2024-08-06", 128_000),
        ("gpt-4o-mini", 128_000),
        ("gpt-4.1-nano", 1_047_576),
        ("gpt-5-mini", 400_000),
        ("o4-mini", 200_000),
        ("o1-mini", 128_000),
        ("claude-sonnet-4-5", 200_000),
        ("meta-llama/Llama-3.1-8B-Instruct", 131_072),
        ("my-model", None),
    ],
)
def test_context_window_table(model: str, window: int | None) -> None:
    assert window_for(model, {}) == window


def test_policy_windows_override_the_table() -> None:
    assert window_for("gpt-4o-2024-08-06", {"gpt-4o": 64_000}) == 64_000
    assert window_for("my-model", {}, default=8_192) == 8_192


def agent_loop(rounds: int) -> list[Any]:
    """One user request, then ``rounds`` tool calls with their results, as a coding agent sends them."""
    messages: list[Any] = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "Fix it."}]
    for i in range(rounds):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "read", "arguments": f'{{"n": {i}}}'}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": "line " * 50})
    return messages


@pytest.mark.parametrize("middle_out", [False, True])
def test_an_agent_loop_loses_whole_old_tool_rounds(middle_out: bool) -> None:
    enc = tokens.get_encoding("o200k_base")
    messages = agent_loop(6)
    parts = fitting.units(enc, messages)
    assert [(u.stop - u.start, u.pinned) for u in parts] == [(1, True), (1, True)] + [(2, False)] * 5 + [(2, True)]
    dropped = fitting.choose_drops(parts, 2 * parts[2].tokens, middle_out)
    assert dropped is not None and len(dropped) == 2
    kept = fitting.without(messages, dropped)
    assert kept[:2] == messages[:2] and kept[-2:] == messages[-2:]
    calls = [m["tool_calls"][0]["id"] for m in kept if m.get("tool_calls")]
    results = [m["tool_call_id"] for m in kept if m["role"] == "tool"]
    assert calls == results  # every kept call still has its result, in order
    assert calls == (["c0", "c3", "c4", "c5"] if middle_out else ["c2", "c3", "c4", "c5"])  # middle: c2, then c1


def test_nothing_can_go_when_only_pinned_turns_are_left() -> None:
    enc = tokens.get_encoding("o200k_base")
    parts = fitting.units(enc, [{"role": "system", "content": "s"}, {"role": "user", "content": "u " * 100}])
    assert fitting.choose_drops(parts, 10, False) is None


def test_messages_rounds_start_at_user_turns_and_keep_tool_results_with_their_call() -> None:
    enc = tokens.get_encoding("o200k_base")
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}
    messages: list[Any] = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        result,
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    parts = fitting.rounds(enc, messages)
    assert [(u.start, u.stop, u.pinned) for u in parts] == [(0, 4, False), (4, 6, False), (6, 7, True)]
