"""The background writer: a full queue drops and counts, never waits; what it kept is all written, even at stop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

from plugins._capture import worker
from plugins._capture.mask import Pending
from plugins._capture.store import CaptureStore
from plugins._capture.writer import Mode, Writer
from tests.capture.helpers import EMAIL, policy
from tests.conftest import MockUpstream, ProxyFactory


def store_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir())


def pending(n: int) -> Pending:
    meta = {
        "request_id": f"r{n}",
        "ts": float(n),
        "endpoint": "chat",
        "model": "m",
        "key": "k",
        "status": 200,
        "latency_ms": 1.0,
        "retention": "full",
        "tags": [],
        "verdicts": {},
        "events": [],
        "attempts": [],
    }
    body = {"model": "m", "messages": [{"role": "user", "content": f"mail {EMAIL} #{n}"}]}
    return Pending(meta, "chat", orjson.dumps(body), None)


@pytest.mark.parametrize("mode", ["thread", "process"])
async def test_a_full_queue_drops_and_counts_and_stop_writes_every_kept_record(mode: Mode, tmp_path: Path) -> None:
    writer = Writer(tmp_path / "c.sqlite", {}, max_queue=5, batch=2, mode=mode)
    await writer.start()
    offered = [writer.offer(pending(n)) for n in range(20)]  # no await in between: the writer cannot drain
    assert offered == [True] * 5 + [False] * 15
    assert (writer.stats.kept, writer.stats.dropped) == (5, 15)
    await writer.stop()
    reader = CaptureStore(tmp_path / "c.sqlite", readonly=True)
    rows = list(reader.rows())
    assert [r["request_id"] for r in rows] == [f"r{n}" for n in range(5)]
    assert writer.stats.written == 5 and writer.stats.failed == 0 and writer.stats.batches == 3
    assert all("<EMAIL_ADDRESS_1>" in r["request"]["messages"][0]["content"] for r in rows)


async def test_a_record_that_cannot_be_masked_is_not_stored_and_the_batch_goes_on(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "c.sqlite", {}, max_queue=10, batch=10, mode="thread")
    await writer.start()
    worker._OPEN[writer.key][1].detector = None  # masking now fails: the record must not go in
    unmasked, metadata = pending(1), pending(2)
    metadata.text = False
    writer.offer(unmasked)
    writer.offer(metadata)
    await writer.stop()
    rows = list(CaptureStore(tmp_path / "c.sqlite", readonly=True).rows())
    assert [r["request_id"] for r in rows] == ["r2"] and rows[0]["request"] is None
    assert EMAIL.encode() not in store_bytes(tmp_path)


async def test_under_load_every_request_is_kept_or_counted_dropped_and_every_kept_one_is_stored(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    chain = "[pii, {capture: {max_queue: 8, writer: thread}}]"
    proxy = await start_proxy(write_policy(policy(mock_upstream.url, chain, keyed=False)))
    plugin = next(p for p in proxy.runtime.in_force().policy.plugins if getattr(p, "name", "") == "capture")
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": f"hello {EMAIL}"}]}
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(proxy.url + "/chat/completions", json=body) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one() for _ in range(120)))
        async with session.get(proxy.url.removesuffix("/v1") + "/metrics") as response:
            metrics = await response.text()
    assert statuses == [200] * 120
    counted = {m[0]: int(float(m[1])) for m in re.findall(r'chaperone_capture_records_total\{outcome="(\w+)"\} (\S+)',
                                                           metrics)}  # fmt: skip
    stats = plugin.stats()
    assert counted.get("kept", 0) + counted.get("dropped", 0) == 120
    assert (stats["kept"], stats["dropped"]) == (counted.get("kept", 0), counted.get("dropped", 0))
    path = plugin.path
    await proxy.runner.cleanup()
    assert CaptureStore(path, readonly=True).count() == stats["kept"]


async def test_closing_the_stream_tee_closes_the_upstream_stream() -> None:
    from plugins.capture import _tee

    closed: list[bool] = []

    async def upstream() -> AsyncIterator[bytes]:
        try:
            for n in range(10):
                yield b"data: {}\n\n" * n
        finally:
            closed.append(True)

    kept: list[bytes] = []
    tee = _tee(upstream(), kept)
    assert await tee.__anext__() == b""
    assert await tee.__anext__() == b"data: {}\n\n"
    await tee.aclose()  # what the handler does when the client goes away
    assert closed == [True] and kept == [b"", b"data: {}\n\n"]
