"""The call layer: never more than ``--concurrency`` upstream calls at once, and the cache key's parts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from evals.calls import cache_key
from evals.cli import main
from tests.conftest import start_site


async def test_calls_in_flight_never_exceed_the_limit(tmp_path: Path) -> None:
    limit, inflight, peak = 3, [0], [0]
    full = asyncio.Condition()

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        async with full:
            inflight[0] += 1
            peak[0] = max(peak[0], inflight[0])
            full.notify_all()
            # hold each call until `limit` are in flight (bounded), so the peak shows the real limit
            await asyncio.wait_for(full.wait_for(lambda: inflight[0] >= limit), 5)
        async with full:
            inflight[0] -= 1
        text = body["messages"][-1]["content"]
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": text}}]})  # fmt: skip

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner, base = await start_site(app)
    try:
        data = tmp_path / "d.jsonl"
        data.write_text("".join(json.dumps({"id": i, "messages": [{"role": "user", "content": f"t{i}"}],
                                            "expected": f"t{i}"}) + "\n" for i in range(limit * 4)))  # fmt: skip
        argv = ["run", str(data), "--model", "m", "--base-url", base + "/v1", "--out", str(tmp_path / "o"),
                "--no-cache", "--concurrency", str(limit), "-q"]  # fmt: skip
        assert await asyncio.to_thread(main, argv) == 0
    finally:
        await runner.cleanup()
    assert peak[0] == limit


def test_the_cache_key_separates_url_model_request_and_scorer() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    key = cache_key("http://a/v1", "chat", body, "generate")
    assert key == cache_key("http://a/v1/", "chat", dict(reversed(list(body.items()))), "generate")
    assert len({key, cache_key("http://b/v1", "chat", body, "generate"),
                cache_key("http://a/v1", "chat", {**body, "model": "n"}, "generate"),
                cache_key("http://a/v1", "chat", body, "judge#0.0")}) == 4  # fmt: skip
