"""``proxy.eager.finish``: a coroutine runs to its end whatever happens to its caller, a task only if it waits."""

from __future__ import annotations

import asyncio

import pytest

from proxy import eager


async def test_a_coroutine_that_never_waits_runs_in_the_caller_without_a_task() -> None:
    done: list[str] = []
    before = len(asyncio.all_tasks())

    async def quick() -> None:
        done.append("ran")
        assert len(asyncio.all_tasks()) == before  # no task of its own

    await eager.finish(quick())
    assert done == ["ran"]


async def test_a_coroutine_that_waits_gets_its_results_and_errors_where_it_awaits() -> None:
    loop = asyncio.get_running_loop()
    seen: list[object] = []

    async def waits() -> None:
        ok: asyncio.Future[int] = loop.create_future()
        loop.call_later(0.01, ok.set_result, 7)
        seen.append(await ok)
        bad: asyncio.Future[int] = loop.create_future()
        loop.call_soon(bad.set_exception, ValueError("nope"))
        try:
            await bad
        except ValueError as exc:
            seen.append(str(exc))
        await asyncio.sleep(0)  # a bare yield
        seen.append(await asyncio.to_thread(lambda: "thread"))

    await eager.finish(waits())
    assert seen == [7, "nope", "thread"]


async def test_errors_reach_the_caller_before_and_after_the_first_wait() -> None:
    async def at_once() -> None:
        raise KeyError("first step")

    async def later() -> None:
        await asyncio.sleep(0.001)
        raise KeyError("after a wait")

    with pytest.raises(KeyError, match="first step"):
        await eager.finish(at_once())
    with pytest.raises(KeyError, match="after a wait"):
        await eager.finish(later())


async def test_cancelling_the_caller_lets_the_coroutine_finish_then_re_raises() -> None:
    release = asyncio.Event()
    steps: list[str] = []

    async def accounting() -> None:
        steps.append("start")
        await release.wait()
        steps.append("end")

    caller = asyncio.ensure_future(eager.finish(accounting()))
    await asyncio.sleep(0.01)
    caller.cancel()  # the client went away
    await asyncio.sleep(0.01)
    assert steps == ["start"] and not caller.done()  # still waiting for the coroutine to end
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert steps == ["start", "end"]
