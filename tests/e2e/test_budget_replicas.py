"""Rate limits and budgets hold across two proxy processes sharing one real redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai

from proxy.registry import DEFAULT_PLUGINS
from tests.conftest import MockUpstream, serve_process, simple_policy

# Until the lead makes it a built-in, the serve processes load the plugin by module name.
PLUGIN_ENV = {} if "plugins.budget" in DEFAULT_PLUGINS else {"CHAPERONE_PLUGINS": "plugins.budget"}
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
SLOW: list[Any] = [{"role": "user", "content": "hello [[mock:latency_ms=300]]"}]  # all admitted before any settles


def policy(upstream: str, redis_url: str, fraction: float = 1 / 32) -> str:
    return simple_policy(
        upstream,
        f"[{{budget: {{per_key: {{tokens_per_day: 1000}}, lease_fraction: {fraction}}}}}]",
        f"""
        store: {{backend: redis, url: '{redis_url}'}}
        keys:
          - {{name: limited, key: sk-rpm, limits: {{rpm: 10, tokens_per_day: 100000}}}}
          - {{name: spender, key: sk-tokens}}
          - {{name: racer, key: sk-race, limits: {{rpm: 10, tokens_per_day: 100000}}}}
        """,
    )


async def fire(
    clients: list[openai.AsyncOpenAI], n: int, messages: list[Any] = HELLO, **kwargs: Any
) -> tuple[list[Any], list[Exception]]:
    """``n`` concurrent requests spread over ``clients``; (admitted raw responses, refusals)."""

    async def one(i: int) -> Any:
        try:
            return await clients[i % len(clients)].chat.completions.with_raw_response.create(
                model="mock-gpt", messages=messages, **kwargs
            )
        except openai.APIStatusError as exc:
            return exc

    results = await asyncio.gather(*(one(i) for i in range(n)))
    return [r for r in results if not isinstance(r, Exception)], [r for r in results if isinstance(r, Exception)]


async def test_limits_hold_across_two_replicas_on_one_redis(
    tmp_path: Path, mock_upstream: MockUpstream, clean_redis_url: str
) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(policy(mock_upstream.url, clean_redis_url))
    async with (
        serve_process(tmp_path / "a", "--policy", str(path), **PLUGIN_ENV) as (_, url_a),
        serve_process(tmp_path / "b", "--policy", str(path), **PLUGIN_ENV) as (_, url_b),
    ):
        rpm = [openai.AsyncOpenAI(base_url=u, api_key="sk-rpm", max_retries=0) for u in (url_a, url_b)]
        ok, refused = await fire(rpm, 30)
        assert len(ok) == 10  # one limit for both replicas, never 10 each
        assert all(isinstance(e, openai.RateLimitError) and e.code == "rate_limit_exceeded" for e in refused)
        assert {r.headers["x-ratelimit-limit-requests"] for r in ok} == {"10"}
        assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(10))

        # Each request reserves its input + 100 output tokens against a 1000-token daily budget; all are in
        # flight together (no refund comes back before the last is admitted), so exactly 1000 // that fit.
        tokens = [openai.AsyncOpenAI(base_url=u, api_key="sk-tokens", max_retries=0) for u in (url_a, url_b)]
        ok, refused = await fire(tokens, 24, SLOW, max_tokens=100)
        estimate = int(ok[0].headers["x-chaperone-budget"].split("input_tokens=")[1].split()[0]) + 100
        assert len(ok) == 1000 // estimate
        assert all(isinstance(e, openai.RateLimitError) and e.code == "budget_exceeded" for e in refused)
        assert all(e.response.headers["x-should-retry"] == "false" for e in refused)  # type: ignore[attr-defined]
        for c in (*rpm, *tokens):
            await c.close()


async def test_leases_never_admit_more_than_the_limit_when_many_more_requests_race(
    tmp_path: Path, mock_upstream: MockUpstream, clean_redis_url: str
) -> None:
    """rpm 10 with leases of 3 requests (lease_fraction 0.3), 60 requests racing over two replicas.

    Bound: admitted <= 10 always. Lower bound: each replica can end the window holding at most one unused
    lease (< 3 requests), and a chunk's excess is given back at once, so admitted >= 10 - 2 * 2 = 6.
    """
    path = tmp_path / "shared.yaml"
    path.write_text(policy(mock_upstream.url, clean_redis_url, fraction=0.3))
    async with (
        serve_process(tmp_path / "a", "--policy", str(path), **PLUGIN_ENV) as (_, url_a),
        serve_process(tmp_path / "b", "--policy", str(path), **PLUGIN_ENV) as (_, url_b),
    ):
        clients = [openai.AsyncOpenAI(base_url=u, api_key="sk-race", max_retries=0) for u in (url_a, url_b)]
        ok, refused = await fire(clients, 60)
        assert 6 <= len(ok) <= 10
        assert len(ok) + len(refused) == 60
        assert all(isinstance(e, openai.RateLimitError) and e.code == "rate_limit_exceeded" for e in refused)
        remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in ok]
        assert all(0 <= n < 10 for n in remaining)  # approximate across replicas, never above the limit
        for c in clients:
            await c.close()
