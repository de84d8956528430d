"""The console's pages beyond the basics: policy load and failed reloads, in-flight requests, engines, spend."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from proxy.recorder import RECORDER
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy
from tests.console.test_console_http import ADMIN, APP_KEY, CHAIN, EXTRA, get, ui
from tests.launch.conftest import standins, until  # noqa: F401  (standins: a fixture)

HANG: list[Any] = [{"role": "user", "content": "[[mock:hang]]"}]


async def _backends_json(proxy: RunningProxy) -> dict[str, Any]:
    url = proxy.url.removesuffix("/v1") + "/chaperone/backends"
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
        data: list[dict[str, Any]] = (await r.json())["data"]
    return {b["name"]: b for b in data}


async def test_policy_page_shows_digest_load_time_and_the_last_failed_reload(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    good = simple_policy(mock_upstream.url, chain=CHAIN, extra=EXTRA)
    path = write_policy(good)
    proxy = await start_proxy(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _, html, _ = await get(ui(proxy, "/policy"))
    assert f'id="digest">{digest}<' in html and re.search(r'id="loaded-at">20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC', html)
    assert 'id="last-failure">none' in html

    write_policy(good.replace("chains:\n  default:", "chains:\n  default: [{nosuchplugin: {}}]\n  other:"))
    assert not await proxy.runtime.reload()
    _, html, _ = await get(ui(proxy, "/policy"))
    assert f'id="digest">{digest}<' in html, "the policy in force keeps its own digest"
    assert "unknown plugin" in html and "chains.default[0]" in html and "still broken" in html
    assert re.search(r'id="failed-at">20\d\d-', html)

    write_policy(good)  # back to the file in force: nothing to reload, the failure stays listed as fixed
    assert not await proxy.runtime.reload()
    _, html, _ = await get(ui(proxy, "/policy"))
    assert proxy.runtime.last_error is None and "fixed since" in html and "unknown plugin" in html


async def test_in_flight_requests_per_backend_count_a_stream_until_it_ends(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN, extra=EXTRA)))
    assert (await _backends_json(proxy))["mock"]["in_flight"] == 0
    slow: list[Any] = [{"role": "user", "content": "[[mock:chunk_delay_ms=50,tokens=40]] hi"}]
    async with proxy.client(APP_KEY) as client:
        stream = await client.chat.completions.create(model="mock-gpt", messages=slow, stream=True)
        first = await anext(aiter(stream))
        assert first is not None
        assert (await _backends_json(proxy))["mock"]["in_flight"] == 1
        _, html, _ = await get(ui(proxy, "/backends"))
        assert re.search(r'class="inflight" data-backend="mock">1<', html), html
        async for _ in stream:
            pass
        await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x"}])
        hung = asyncio.ensure_future(client.chat.completions.create(model="mock-gpt", messages=HANG))
        for _ in range(200):  # bounded wait for the request to reach the backend
            if (await _backends_json(proxy))["mock"]["in_flight"] == 1:
                break
            await asyncio.sleep(0.01)
        assert (await _backends_json(proxy))["mock"]["in_flight"] == 1
        hung.cancel()
        await asyncio.gather(hung, return_exceptions=True)
    for _ in range(200):
        if (await _backends_json(proxy))["mock"]["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert (await _backends_json(proxy))["mock"]["in_flight"] == 0


@pytest.mark.usefixtures("standins")
async def test_a_launched_engine_shows_its_command_uptime_restarts_and_metrics(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    launch = ("{engine: vllm, model: meta-llama/Llama-3.1-8B-Instruct, served_model_name: [llama], api_key: engine-key,"
              " ready_timeout_s: 30, metrics_interval_s: 0.1, env: {HF_TOKEN: hf-secret-1}}")  # fmt: skip
    text = f"backends:\n  gpu: {{timeout_s: 20, launch: {launch}}}\nmodels:\n  llama: {{backend: gpu}}\n"
    proxy = await start_proxy(write_policy(text + "chains:\n  default: []\n" + EXTRA.replace("chain: default", "")))
    active = proxy.runtime.current
    assert active is not None
    engine = active.backends["gpu"].group.engines[0]  # type: ignore[attr-defined]
    await until(lambda: "kv_cache_usage" in engine.metrics)
    _, html, _ = await get(ui(proxy, "/backends"))
    command = re.search(r'class="command">([^<]*)<', html)
    assert command is not None and command.group(1).startswith("vllm serve meta-llama/Llama-3.1-8B-Instruct")
    assert "--api-key &#39;***&#39;" in command.group(1) and "engine-key" not in html and "hf-secret-1" not in html
    assert "HF_TOKEN" in html and re.search(r'class="uptime">\d+ s<', html) and 'class="restarts">0<' in html
    assert "kv_cache_usage=0.1" in html


BUDGET_CHAIN = "[{budget: {per_key: {tokens_per_day: 100000, rpm: 2}}}, {cost: {}}]"


async def test_spend_shows_teams_remaining_budgets_and_limits_that_fired(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=BUDGET_CHAIN, extra=EXTRA)))
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(ui(proxy, "/keys"), data={"name": "blue-app", "team": "blue"}, headers=headers) as r:
            found = re.search(r'id="new-key">(sk-chp-[^<]+)<', await r.text())
    assert found is not None
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    for key, n in ((APP_KEY, 3), (found.group(1), 1)):
        async with proxy.client(key) as client:
            for i in range(n):
                try:
                    await client.chat.completions.create(model="mock-gpt", messages=hi)
                except openai.RateLimitError:
                    assert key == APP_KEY and i == 2  # the third request in a minute: over rpm 2
    log = proxy.app[RECORDER].requests
    assert log is not None
    log.flush()
    _, html, _ = await get(ui(proxy, "/spend?window=15m"))
    teams = html[html.index('id="by-team"') : html.index('id="by-key"')]
    assert re.search(r"<td>blue <span[^>]*>\(1 keys\)</span></td><td>1</td>", teams), teams
    assert re.search(r"<td>\(no team\) <span[^>]*>\(1 keys\)</span></td><td>3</td>", teams), teams
    row = re.search(r'data-key="app1" data-limit="tokens_per_day">.*?class="used">([\d.]+)<.*?class="left">([\d.]+)<',
                    html, re.S)  # fmt: skip
    assert row is not None and float(row.group(1)) > 0 and float(row.group(1)) + float(row.group(2)) == 100000
    assert re.search(r'data-key="blue-app" data-limit="rpm">.*?class="used">1<', html, re.S)
    assert re.search(r"<td>app1</td><td>budget</td><td>rejected:rpm</td><td class=\"n\">1</td>", html), html


async def test_guards_show_a_verdict_over_time_for_one_key(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=BUDGET_CHAIN, extra=EXTRA)))
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    async with proxy.client(APP_KEY) as client:
        for _ in range(4):
            try:
                await client.chat.completions.create(model="mock-gpt", messages=hi)
            except openai.RateLimitError:
                pass
    log = proxy.app[RECORDER].requests
    assert log is not None
    log.flush()
    _, html, _ = await get(ui(proxy, "/guards?window=1h&plugin=budget&verdict=rejected:rpm"))
    assert 'id="guard-series"><svg' in html and "peak 2)" in html
    link = re.search(r'<a class="key" href="\?([^"]+)">app1</a>', html)
    assert link is not None
    _, html, _ = await get(ui(proxy, "/guards?" + link.group(1).replace("&amp;", "&")))
    assert "key app1" in html and "peak 2)" in html and html.count('href="/chaperone/ui/requests/') == 2
    _, html, _ = await get(ui(proxy, "/guards?window=1h&plugin=budget&verdict=rejected:rpm&key=nobody"))
    assert "key nobody" in html and "peak 2)" not in html


async def test_capture_and_eval_pages_show_counts_feedback_and_run_summaries(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    runs = tmp_path / "home" / "evals"
    (runs / "pr-42").mkdir(parents=True)
    small = {"gate": "fail", "pass_rate": 0.75, "errors": 1, "scores": {"f1": 0.51}}
    summary = {"gate": {"passed": False, "cutoffs": {"f1": 0.6}, "min_pass_rate": 0.9}, "data": {"rows": 12},
               "models": {"small": small}}  # fmt: skip
    (runs / "pr-42" / "summary.json").write_bytes(orjson.dumps(summary))
    (runs / "broken").mkdir()
    (runs / "broken" / "summary.json").write_text("{not json")
    chain = "[{capture: {}}, {cost: {}}]"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=chain, extra=EXTRA)))
    async with proxy.client(APP_KEY) as client:
        for text in ("my secret prompt text", "second"):
            raw = await client.chat.completions.with_raw_response.create(
                model="mock-gpt", messages=[{"role": "user", "content": text}]
            )
    request_id = raw.headers["x-request-id"]
    base = proxy.url.removesuffix("/v1")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN}"}) as s:
        async with s.post(base + "/chaperone/feedback", json={"request_id": request_id, "good": True}) as r:
            assert r.status == 200
    html = ""
    for _ in range(200):  # the capture writer is asynchronous: bounded wait for both records
        _, html, _ = await get(ui(proxy, "/capture"))
        if 'id="captured-total">2<' in html:
            break
        await asyncio.sleep(0.02)
    assert 'id="captured-total">2<' in html and 'id="captured-day">2<' in html and "1 good" in html
    assert request_id in html and "my secret prompt text" not in html and "second" not in html
    _, html, _ = await get(ui(proxy, "/evals"))
    assert 'data-run="pr-42"' in html and 'class="gate">fail' in html and "75.0%" in html and "f1=0.510" in html
    assert "unreadable summary.json" in html
