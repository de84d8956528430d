"""Hot reload, client disconnects, graceful shutdown and tracing, against real sockets."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, serve_process, simple_policy

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def _chain_with_header(value: str) -> str:
    return f"[{{headers: {{response: {{set: {{x-policy-version: '{value}'}}}}}}}}]"


async def _version(client: openai.AsyncOpenAI) -> str:
    raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=MESSAGES)
    return raw.headers.get("x-policy-version", "")


async def _until(check: Callable[[], Any], timeout_s: float = 10.0) -> None:
    """Await ``check()`` until it is truthy; bounded, so a broken reload fails instead of hanging."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not await check():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_hot_reload_applies_good_edits_and_keeps_the_last_good_policy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    path = write_policy(simple_policy(mock_upstream.url, chain=_chain_with_header("1")))
    proxy = await start_proxy(path, reload_interval_s=0.02)
    async with proxy.client() as c:
        assert await _version(c) == "1"
        write_policy(simple_policy(mock_upstream.url, chain=_chain_with_header("2")))
        await _until(lambda: _is(_version(c), "2"))

        path.write_text("backends: [this is: not, valid")  # broken YAML
        await _until(lambda: _true(proxy.runtime.last_error is not None))
        assert "invalid YAML" in (proxy.runtime.last_error or "")
        assert await _version(c) == "2"  # the last good policy is still in force

        write_policy(simple_policy(mock_upstream.url, chain="[{nosuchplugin: {}}]"))
        await _until(lambda: _true("unknown plugin" in (proxy.runtime.last_error or "")))
        assert "chains.default[0]" in (proxy.runtime.last_error or "")
        assert await _version(c) == "2"
        async with aiohttp.ClientSession() as s, s.get(proxy.url.removesuffix("/v1") + "/readyz") as r:
            assert "unknown plugin" in (await r.json())["last_reload_error"]

        write_policy(simple_policy(mock_upstream.url, chain=_chain_with_header("3")))
        await _until(lambda: _is(_version(c), "3"))
        assert proxy.runtime.last_error is None


async def test_reload_lets_an_in_flight_stream_finish(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=_chain_with_header("1"))))
    async with proxy.client() as c:
        stream = await c.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "[[mock:tokens=12,chunk_delay_ms=20]]"}],
            stream=True,
        )
        it = stream.__aiter__()
        await it.__anext__()
        write_policy(simple_policy(mock_upstream.url, chain=_chain_with_header("2")))
        assert await proxy.runtime.reload()
        rest = [chunk async for chunk in it]
        assert rest[-1].choices[0].finish_reason == "length" or rest[-1].choices[0].finish_reason == "stop"
        assert await _version(c) == "2"


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def _true(value: bool) -> bool:
    return value


async def test_client_disconnect_cancels_the_upstream_stream(proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    async with proxy.client() as c:
        stream = await c.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "[[mock:tokens=500,chunk_delay_ms=20]]"}],
            stream=True,
        )
        it = stream.__aiter__()
        await it.__anext__()
        await stream.close()
    log = await mock_upstream.wait_for(lambda log: bool(log) and log[-1]["outcome"] not in ("pending", "hung"))
    assert log[-1]["outcome"] == "client_disconnected"


async def test_graceful_shutdown_finishes_an_in_flight_stream(
    tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    policy = write_policy(simple_policy(mock_upstream.url))
    async with serve_process(tmp_path / "home", "--policy", str(policy)) as (proc, url):
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as c:
            stream = await c.chat.completions.create(
                model="mock-gpt",
                messages=[{"role": "user", "content": "[[mock:tokens=15,chunk_delay_ms=40]]"}],
                stream=True,
            )
            it = stream.__aiter__()
            first = await it.__anext__()
            proc.send_signal(signal.SIGTERM)
            rest = [chunk async for chunk in it]
        pieces = [ch.choices[0].delta.content or "" for ch in [first, *rest] if ch.choices]
        assert len([p for p in pieces if p]) == 15
        assert rest[-1].choices[0].finish_reason is not None
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_tracing_records_request_plugin_and_upstream_spans(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    chain = "[{params: {defaults: {temperature: 0.3}}}, {headers: {}}]"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=chain)), tracer_provider=provider)
    async with proxy.client() as c:
        await c.chat.completions.create(model="aliased", messages=MESSAGES, max_tokens=7)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    root = spans["chat aliased"]
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "aliased"
    assert attrs["gen_ai.request.max_tokens"] == 7
    assert attrs["gen_ai.response.model"] == "upstream-name"
    assert int(str(attrs["gen_ai.usage.input_tokens"])) > 0 and int(str(attrs["gen_ai.usage.output_tokens"])) > 0
    upstream = spans["upstream mock"]
    assert dict(upstream.attributes or {})["gen_ai.request.model"] == "upstream-name"
    plugin = spans["chaperone.plugin params.on_request"]
    assert "chaperone.plugin headers.on_response" in spans
    for child in (upstream, plugin):
        assert child.parent is not None and child.parent.span_id == root.context.span_id
    provider.shutdown()


async def test_a_stream_outliving_the_shutdown_grace_period_ends_with_an_error_event(
    tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    policy = write_policy(simple_policy(mock_upstream.url))
    args = ("--policy", str(policy))
    async with serve_process(tmp_path / "home", *args, CHAPERONE_SHUTDOWN_TIMEOUT_S="0.3") as (proc, url):
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as c:
            stream = await c.chat.completions.create(
                model="mock-gpt",
                messages=[{"role": "user", "content": "[[mock:tokens=400,chunk_delay_ms=25]]"}],
                stream=True,
            )
            it = stream.__aiter__()
            await it.__anext__()
            proc.send_signal(signal.SIGTERM)
            try:
                async for _ in it:
                    pass
            except openai.APIError as exc:
                assert "shutting down" in exc.message
            else:
                raise AssertionError("the stream ended as if complete")
        assert await asyncio.wait_for(proc.wait(), 20) == 0
