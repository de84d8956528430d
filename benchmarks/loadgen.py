"""The load generator: a separate process that runs closed-loop request jobs and reports raw timings.

The harness starts it as ``python benchmarks/loadgen.py`` and talks JSON lines over stdin/stdout:
one job per line in, one result per line out. It is kept lean on purpose (the client shares two
cores with the mock and the proxy): bodies are serialised once per job, one pooled session per
target, ``iter_any`` reads, and only a regex search over the bytes of a stream (no JSON parsing).

A job: ``{"url", "body", "stream", "concurrency", "requests", "tokens"}``. A result: per-request
latencies (s), per-stream TTFT (s, to the first non-empty content delta) and largest gap between
reads (s), error and incomplete-stream counts with a sample message, wall time and client CPU time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the shared client lives in bench

from bench.client import new_session

CONTENT = re.compile(rb'"content":\s*"[^"]')  # a delta with non-empty content
DONE = b"data: [DONE]"
HEADERS = {"content-type": "application/json"}


@dataclass(slots=True)
class Job:
    url: str
    body: str
    stream: bool
    concurrency: int
    requests: int
    tokens: int = 0


@dataclass(slots=True)
class Result:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    max_gaps: list[float] = field(default_factory=list)
    errors: int = 0
    incomplete: int = 0
    sample_error: str = ""
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0


class Runner:
    """Holds one session per target origin, reused across jobs so keep-alive pools stay warm."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._serial = itertools.count()  # request numbers never repeat within a run, across jobs and targets

    def session(self, url: str) -> aiohttp.ClientSession:
        origin = url.split("/", 3)[2]
        session = self._sessions.get(origin)
        if session is None:
            session = self._sessions[origin] = new_session()
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    async def run(self, job: Job) -> Result:
        result = Result()
        session = self.session(job.url)
        template = job.body.encode()
        head, marker, tail = template.partition(b"{n}")  # a request number makes every body unique
        left = [job.requests]
        one = _one_stream if job.stream else _one_plain

        async def loop() -> None:
            while left[0] > 0:
                left[0] -= 1
                body = head + str(next(self._serial)).encode() + tail if marker else template
                try:
                    await one(session, job, body, result)
                except Exception as exc:  # a failed request is counted, never fatal
                    result.errors += 1
                    result.sample_error = result.sample_error or f"{type(exc).__name__}: {exc}"

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(min(job.concurrency, job.requests))))
        result.elapsed_s = time.perf_counter() - t0
        result.client_cpu_s = time.process_time() - cpu0
        return result


async def _one_plain(session: aiohttp.ClientSession, job: Job, body: bytes, result: Result) -> None:
    t0 = time.perf_counter()
    async with session.post(job.url, data=body, headers=HEADERS) as resp:
        data = await resp.read()
    if resp.status != 200 or b'"choices"' not in data:
        result.errors += 1
        result.sample_error = result.sample_error or f"HTTP {resp.status}: {data[:200]!r}"
        return
    result.latencies.append(time.perf_counter() - t0)


async def _one_stream(session: aiohttp.ClientSession, job: Job, body: bytes, result: Result) -> None:
    t0 = time.perf_counter()
    first: float | None = None
    last = 0.0
    max_gap = 0.0
    buf = bytearray()
    async with session.post(job.url, data=body, headers=HEADERS) as resp:
        async for data in resp.content.iter_any():
            now = time.perf_counter()
            if last and now - last > max_gap:
                max_gap = now - last
            last = now
            buf += data
            if first is None and CONTENT.search(buf):
                first = now
    end = time.perf_counter()
    if resp.status != 200:
        result.errors += 1
        result.sample_error = result.sample_error or f"HTTP {resp.status}: {bytes(buf[:200])!r}"
        return
    complete = bytes(buf).rstrip().endswith(DONE) and first is not None
    if not complete or (job.tokens and len(CONTENT.findall(buf)) != job.tokens):
        result.incomplete += 1
        result.sample_error = result.sample_error or f"incomplete stream, tail {bytes(buf[-120:])!r}"
        return
    result.latencies.append(end - t0)
    result.ttfts.append((first or end) - t0)
    result.max_gaps.append(max_gap)


async def serve() -> None:
    """Read jobs from stdin, write results to stdout, until stdin closes."""
    runner = Runner()
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            if not line.strip():
                continue
            spec: dict[str, Any] = json.loads(line)
            result = await runner.run(Job(**spec))
            sys.stdout.write(json.dumps(asdict(result)) + "\n")
            sys.stdout.flush()
    finally:
        await runner.close()


def main() -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a Chaperone dependency
        asyncio.run(serve())
    else:
        uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
