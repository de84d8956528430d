"""Spend by key, model and day: the store counters, ``GET /chaperone/usage`` and ``chaperone usage``."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy import usage_cli
from proxy.registry import DEFAULT_PLUGINS, PluginRegistry, build_registry
from proxy.runtime import RUNTIME
from proxy.server import request_middleware
from proxy.store import Store, StoreError, open_store
from proxy.store.config import StoreConfig
from proxy.usage import Ledger, add_routes, summarize
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy, start_site

ADMIN = "admin-key-0123456789"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
KEYS = f"""
admin: {{key: '{ADMIN}'}}
keys:
  - {{name: app1, key: sk-app1}}
  - {{name: app2, key: sk-app2}}
"""
D1, D2, D3 = datetime.date(2026, 11, 29), datetime.date(2026, 11, 30), datetime.date(2026, 12, 1)


def row(requests: int, cost_nusd: int, prompt: int = 10, completion: int = 5) -> dict[str, int]:
    return {"requests": requests, "cost_nusd": cost_nusd, "prompt_tokens": prompt, "completion_tokens": completion}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(StoreConfig(), tmp_path / "home")
    yield opened
    await opened.close()


async def fill(store: Store) -> None:
    ledger = Ledger(store, flush_s=0)
    ledger.add(D1.isoformat(), "app1", "gpt-4o", row(2, 3_000_000_000))
    ledger.add(D1.isoformat(), "app2", "gpt-4o-mini", row(1, 250_000_000))
    ledger.add(D2.isoformat(), "app1", "gpt-4o-mini", row(4, 1_000_000_000))
    ledger.add(D3.isoformat(), "app1", "gpt-4o", row(1, 7))
    await ledger.flush()


async def test_summaries_group_filter_and_total(store: Store) -> None:
    await fill(store)
    by_key = await summarize(store, D1, D2)
    assert [(r["key"], r["requests"], r["cost_usd"]) for r in by_key["data"]] == [("app1", 6, 4.0), ("app2", 1, 0.25)]
    assert (by_key["totals"]["requests"], by_key["totals"]["cost_usd"], by_key["totals"]["prompt_tokens"]) == (
        7,
        4.25,
        30,
    )
    by_model = await summarize(store, D1, D3, group_by=("model",))
    assert [(r["model"], r["cost_usd"]) for r in by_model["data"]] == [("gpt-4o", 3.000000007), ("gpt-4o-mini", 1.25)]
    by_day = await summarize(store, D1, D3, group_by=("day",), key="app1")
    assert [(r["day"], r["requests"]) for r in by_day["data"]] == [
        (D1.isoformat(), 2),
        (D2.isoformat(), 4),
        (D3.isoformat(), 1),
    ]
    both = await summarize(store, D1, D1, group_by=("key", "model"), model="gpt-4o-mini")
    assert [(r["key"], r["model"], r["requests"]) for r in both["data"]] == [("app2", "gpt-4o-mini", 1)]
    assert (await summarize(store, D3 + datetime.timedelta(days=1), D3 + datetime.timedelta(days=9)))["data"] == []


async def test_two_ledgers_flushing_at_once_add_up(store: Store, tmp_path: Path) -> None:
    other = open_store(StoreConfig(), tmp_path / "home")  # a second worker on the same directory
    try:
        ledgers = [Ledger(store, flush_s=0), Ledger(other, flush_s=0)]
        for i in range(50):
            ledgers[i % 2].add(D1.isoformat(), "app1", "gpt-4o", row(1, 1_000))
        await asyncio.gather(*(ledger.flush() for ledger in ledgers))
    finally:
        await other.close()
    totals = (await summarize(store, D1, D1))["totals"]
    assert (totals["requests"], totals["cost_usd"], totals["prompt_tokens"]) == (50, 50_000 / 1e9, 500)


async def test_summaries_on_redis(clean_redis_url: str) -> None:
    redis = open_store(StoreConfig(backend="redis", url=clean_redis_url), Path("."))
    try:
        await fill(redis)
        assert (await summarize(redis, D1, D3))["totals"]["cost_usd"] == 4.250000007
    finally:
        await redis.close()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"group_by": ("team",)}, "cannot group by 'team'"), ({"start": D2, "end": D1}, "is after")],
)
async def test_bad_queries_say_what_is_wrong(store: Store, kwargs: dict[str, Any], words: str) -> None:
    start, end = kwargs.pop("start", D1), kwargs.pop("end", D2)
    with pytest.raises(ValueError, match=words):
        await summarize(store, start, end, **kwargs)


# ---- through the proxy -----------------------------------------------------------------------------------


@pytest.fixture
def cost_registry() -> PluginRegistry:
    return build_registry(entry_points=False, modules=tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.cost"))))


@pytest.fixture
async def keyed(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    cost_registry: PluginRegistry,
) -> RunningProxy:
    policy = simple_policy(mock_upstream.url, chain="[{cost: {flush_s: 0}}]", extra=KEYS)
    proxy = await start_proxy(write_policy(policy), registry_=cost_registry)
    for secret, model, times in (
        ("sk-app1", "gpt-4o", 2),
        ("sk-app2", "gpt-4o-mini", 1),
        ("sk-app1", "gpt-4o-mini", 1),
    ):
        async with proxy.client(secret) as client:
            for _ in range(times):
                await client.chat.completions.create(model=model, messages=MESSAGES)
    return proxy


async def usage_base(proxy: RunningProxy) -> AsyncIterator[str]:
    """The proxy's own base URL once it serves /chaperone/usage; until then, the handler on the proxy's runtime."""
    if any(r.canonical == "/chaperone/usage" for r in proxy.app.router.resources()):
        yield proxy.url.removesuffix("/v1")
        return
    app = web.Application(middlewares=[request_middleware])
    app[RUNTIME] = proxy.runtime
    add_routes(app)
    runner, base = await start_site(app)
    try:
        yield base
    finally:
        await runner.cleanup()


async def get_usage(base: str, query: str, key: str | None = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session, session.get(f"{base}/chaperone/usage?{query}", headers=headers) as r:
        return r.status, await r.json()


async def wait_for_requests(base: str, count: int) -> dict[str, Any]:
    """on_complete runs after each answer went out: poll (bounded) until every request is counted."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 5
    while True:
        status, body = await get_usage(base, "group_by=key")
        assert status == 200, body
        if body["totals"]["requests"] >= count or loop.time() > end:
            summary: dict[str, Any] = body
            return summary
        await asyncio.sleep(0.02)


async def test_the_usage_view_sums_spend_by_key_and_model(keyed: RunningProxy) -> None:
    async for base in usage_base(keyed):
        by_key = await wait_for_requests(base, 4)
        assert [(r["key"], r["requests"]) for r in by_key["data"]] == [("app1", 3), ("app2", 1)]
        assert by_key["totals"]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in by_key["data"]))
        status, by_model = await get_usage(base, "group_by=model&key=app1")
        assert status == 200
        assert [(r["model"], r["requests"]) for r in by_model["data"]] == [("gpt-4o", 2), ("gpt-4o-mini", 1)]
        assert by_model["data"][0]["cost_usd"] > by_model["data"][1]["cost_usd"] > 0
        today = datetime.datetime.now(datetime.UTC).date().isoformat()
        status, by_day = await get_usage(base, f"from={today}&to={today}&group_by=day")
        assert [(r["day"], r["requests"]) for r in by_day["data"]] == [(today, 4)]


async def test_the_usage_view_needs_the_admin_key_and_good_dates(keyed: RunningProxy) -> None:
    async for base in usage_base(keyed):
        status, body = await get_usage(base, "", key=None)
        assert status == 401
        status, body = await get_usage(base, "", key="sk-app1")
        assert status == 401
        status, body = await get_usage(base, "from=yesterday")
        assert (status, body["error"]["param"]) == (400, "from")
        status, body = await get_usage(base, "group_by=team")
        assert (status, body["error"]["param"]) == (400, "group_by")


# ---- the CLI ---------------------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="chaperone")
    usage_cli.register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["usage", *argv])
    status: int = args.func(args)
    return status


async def test_the_cli_prints_a_table_and_json(
    keyed: RunningProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async for base in usage_base(keyed):
        await wait_for_requests(base, 4)
    monkeypatch.setenv("CHAPERONE_HOME", str(tmp_path / "home"))  # the proxy's home, so its store
    if "plugins.cost" not in DEFAULT_PLUGINS:
        monkeypatch.setenv("CHAPERONE_PLUGINS", "plugins.cost")
    policy = str(tmp_path / "policy.yaml")
    assert await asyncio.to_thread(run_cli, "--policy", policy, "--by", "model") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("usage ") and lines[1].split()[:3] == ["MODEL", "REQUESTS", "COST"]
    assert [line.split()[:2] for line in lines[2:]] == [["gpt-4o", "2"], ["gpt-4o-mini", "2"], ["TOTAL", "4"]]
    assert await asyncio.to_thread(run_cli, "--policy", policy, "--by", "key", "--key", "app2", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert [(r["key"], r["requests"]) for r in summary["data"]] == [("app2", 1)]
    assert await asyncio.to_thread(run_cli, "--policy", policy, "--from", "2026-13-01") == 2
    assert "--from: 'from' must be a date as YYYY-MM-DD" in capsys.readouterr().err


async def test_counters_wait_in_memory_until_a_flush_and_survive_a_store_error(store: Store) -> None:
    class Flaky:
        """The store, except that the first ``incr`` fails as an unreachable Redis would."""

        def __init__(self) -> None:
            self.failed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def incr(self, key: str, amount: float = 1, *, window_s: float | None = None) -> float:
            if not self.failed:
                self.failed = True
                raise StoreError("redis is down")
            return await store.incr(key, amount, window_s=window_s)

    ledger = Ledger(Flaky(), flush_s=3600)
    ledger.start()
    ledger.add(D1.isoformat(), "app1", "gpt-4o", row(3, 30))
    assert (await summarize(store, D1, D1))["totals"]["requests"] == 0  # not written before a flush
    with pytest.raises(StoreError):
        await ledger.flush()
    ledger.add(D1.isoformat(), "app1", "gpt-4o", row(1, 10))
    await ledger.stop()  # shutdown writes what is pending, the failed part included, once
    totals = (await summarize(store, D1, D1))["totals"]
    assert (totals["requests"], totals["cost_usd"], totals["prompt_tokens"]) == (4, 40 / 1e9, 20)
