"""The load models: closed loop (N clients, each sends when its last answer ended) and open loop
(arrivals at a mean rate, Poisson or gamma-bursty, whether or not earlier requests have finished).

A run ends after ``requests`` requests or ``duration_s`` seconds, or when ``stop`` is set (Ctrl-C):
then nothing new starts and requests still in flight are cancelled (and left out). The arrival
schedule and the workload are both drawn from the seed, so every target gets the same requests at
the same offsets. For the open loop each request records how late it was sent against its
schedule (``scheduled``): the load generator's own timing error.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from bench.client import Outcome, send
from bench.workload import Planned, Workload


@dataclass(frozen=True)
class LoadSpec:
    """How requests are offered; every field goes into ``manifest.json``."""

    concurrency: int | None = None
    rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    requests: int | None = None
    duration_s: float | None = None
    warmup: str = "5%"
    cooldown: str = "5%"
    seed: int = 0

    def check(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("give exactly one of --concurrency (closed loop) and --rate (open loop)")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("--rate must be above 0")
        if self.burstiness <= 0:
            raise ValueError("--burstiness must be above 0 (1 is Poisson; below 1 burstier, above 1 more regular)")
        if self.requests is None and self.duration_s is None:
            raise ValueError("give --requests or --duration")
        parse_window(self.warmup, 1.0)
        parse_window(self.cooldown, 1.0)

    @property
    def label(self) -> str:
        if self.rate is not None:
            shape = "poisson" if self.burstiness == 1 else f"gamma k={self.burstiness:g}"
            return f"rate {self.rate:g}/s ({shape})"
        return f"concurrency {self.concurrency}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def parse_window(text: str, total_s: float) -> float:
    """``"5%"`` of ``total_s``, or ``"2s"``/``"2"`` seconds; raise ``ValueError`` on anything else."""
    raw = text.strip().lower()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1])
            if not 0 <= value < 50:
                raise ValueError
            return total_s * value / 100
        value = float(raw.removesuffix("s"))
    except ValueError:
        raise ValueError(f"warm-up/cool-down must be like 5% (under 50%) or 2s, got {text!r}") from None
    if value < 0:
        raise ValueError(f"warm-up/cool-down must not be negative, got {text!r}")
    return value


def arrival_offsets(rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
    """Seconds from the start of each arrival: gamma intervals of mean 1/rate (shape 1 = exponential, Poisson)."""
    t = 0.0
    while True:
        yield t
        t += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


@dataclass
class Drive:
    """One target's run: where to send, the load and workload, and who hears of each finished request."""

    session: aiohttp.ClientSession
    url: str
    headers: dict[str, str]
    load: LoadSpec
    workload: Workload
    stop: asyncio.Event
    on_done: Callable[[Outcome], None] = lambda outcome: None

    async def run(self) -> list[Outcome]:
        """All finished outcomes, in start order; start/end/scheduled relative to the run's start."""
        self._t0 = time.perf_counter()
        self._deadline = self._t0 + self.load.duration_s if self.load.duration_s else None
        self._left = self.load.requests if self.load.requests is not None else -1
        self._done: list[Outcome] = []
        self._plans = iter(self.workload)
        if self.load.concurrency is not None:
            await self._closed(self.load.concurrency)
        else:
            await self._open()
        for outcome in self._done:
            outcome.start -= self._t0
            outcome.end -= self._t0
        return sorted(self._done, key=lambda o: o.start)

    def _take(self, offset: float | None = None) -> Planned | None:
        """The next request, or None when the run is over. An open-loop arrival (``offset``, its scheduled
        second) counts by its schedule, so a late wake-up never drops one: the seed fixes how many are sent."""
        if self.stop.is_set() or self._left == 0:
            return None
        if offset is not None and self.load.duration_s is not None:
            if offset >= self.load.duration_s:
                return None
        elif self._deadline is not None and time.perf_counter() >= self._deadline:
            return None
        self._left -= 1
        return next(self._plans)

    async def _one(self, planned: Planned, scheduled: float | None = None) -> None:
        outcome = Outcome(
            planned.index,
            planned.kind,
            scheduled=scheduled,
            input_tokens=planned.input_tokens,
            max_tokens=planned.output_tokens,
        )
        await send(self.session, self.url, self.headers, planned.body, outcome, self.workload.spec.stream)
        self._done.append(outcome)
        self.on_done(outcome)

    async def _closed(self, concurrency: int) -> None:
        async def client() -> None:
            while (planned := self._take()) is not None:
                await self._one(planned)

        await self._until_stopped([asyncio.ensure_future(client()) for _ in range(concurrency)])

    async def _open(self) -> None:
        assert self.load.rate is not None
        offsets = arrival_offsets(self.load.rate, self.load.burstiness, random.Random(self.load.seed + 1))
        cap = asyncio.Semaphore(self.load.max_concurrency) if self.load.max_concurrency else None
        tasks: set[asyncio.Task[None]] = set()

        async def capped(planned: Planned, at: float) -> None:
            if cap is None:
                return await self._one(planned, at)
            async with cap:
                return await self._one(planned, at)

        async def schedule() -> None:
            for offset in offsets:
                if self.load.duration_s is not None and offset >= self.load.duration_s:
                    return
                at = self._t0 + offset
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                planned = self._take(offset)
                if planned is None:
                    return
                task = asyncio.ensure_future(capped(planned, offset))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        await self._until_stopped([asyncio.ensure_future(schedule())])
        if tasks and not self.stop.is_set():
            await self._until_stopped(list(tasks))
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _until_stopped(self, tasks: list[asyncio.Future[None]]) -> None:
        """Wait for ``tasks``; when ``stop`` is set first, cancel them (their requests are left out)."""
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            pending: set[asyncio.Future[Any]] = set(tasks)
            while pending and not self.stop.is_set():
                _, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stopper)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            stopper.cancel()
