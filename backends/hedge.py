"""Hedging: when a replica is slow to answer, ask a second one and take whichever answers first.

Per model route (``hedge: {after_ms: N}``), for backends with several ``urls``. The first attempt goes
out as usual; if it has not answered within ``after_ms``, a second attempt goes to another replica.
The first *successful* answer wins (an attempt that fails fast leaves the other one running); the
loser is cancelled, which closes its upstream connection, and awaited, so no task or socket outlives
the request. For a stream, "answered" means its first chunk arrived: a stream is hedged only before
its first byte, never after. The request's verdicts say who won (``hedge: primary|hedge``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from opentelemetry import trace

from proxy.exchange import ApiRequest, ApiResponse, Exchange

if TYPE_CHECKING:
    from backends.pool import ReplicaPool

Race = dict["asyncio.Task[ApiResponse]", int]  # attempt task → its order (0: primary, 1: hedge)
ORDER = ("primary", "hedge")


async def hedged_send(pool: ReplicaPool, exchange: Exchange, request: ApiRequest | None, after_s: float) -> ApiResponse:
    """Send to one replica, and to a second one if the first has not answered after ``after_s``."""
    first = pool.choose(exchange)
    assert first is not None
    race: Race = {asyncio.ensure_future(_attempt(pool, first, exchange, request)): 0}
    replicas = [first]
    winner: asyncio.Task[ApiResponse] | None = None
    try:
        done, _ = await asyncio.wait(race, timeout=after_s)
        if not done:
            second = pool.choose(exchange, also_exclude=first)
            if second is not None:
                race[asyncio.ensure_future(_attempt(pool, second, exchange, request))] = 1
                replicas.append(second)
        winner = await _first_success(race)
        if len(race) > 1:
            outcome = ORDER[race[winner]]
            exchange.verdicts["hedge"] = outcome
            span = trace.get_current_span()
            if span.is_recording():  # both attempts ran under this span: name the one that answered
                span.set_attributes(
                    {"chaperone.hedge": outcome, "chaperone.replica": pool.labels[replicas[race[winner]]]}
                )
        return winner.result()
    finally:
        await _cancel([task for task in race if task is not winner])


async def _first_success(race: Race) -> asyncio.Task[ApiResponse]:
    """The first attempt to answer without error; if all fail, the primary's error (else the first one's)."""
    pending = set(race)
    errors: list[tuple[int, BaseException]] = []
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in sorted(done, key=race.__getitem__):
            exc = task.exception()
            if exc is None:
                return task
            errors.append((race[task], exc))
    raise min(errors, key=lambda item: item[0])[1]


async def _attempt(pool: ReplicaPool, i: int, exchange: Exchange, request: ApiRequest | None) -> ApiResponse:
    """One replica's attempt; a stream's counts as answered once its first chunk is here."""
    response = await pool.send_to(i, exchange, request)
    stream = response.stream
    if stream is None:
        return response
    try:
        first = await anext(stream, None)
    except BaseException:
        await _aclose(stream)
        raise
    response.stream = _prepend(first, stream)
    return response


async def _prepend(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first is None:
            return
        yield first
        async for data in rest:
            yield data
    finally:
        await _aclose(rest)


async def _cancel(losers: list[asyncio.Task[ApiResponse]]) -> None:
    """Cancel and await the attempts that lost; close any answer one of them still produced."""
    for task in losers:
        task.cancel()
    if not losers:
        return
    await asyncio.wait(losers)
    for task in losers:
        if task.cancelled() or task.exception() is not None:
            continue
        stream = task.result().stream
        if stream is not None:
            await _aclose(stream)


async def _aclose(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
