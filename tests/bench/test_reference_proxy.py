"""The benchmark's reference relays: the plain one relays untouched; ``--metered`` (the floor) counts what it relays."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import reference_proxy
from tests.conftest import MockUpstream


@pytest.fixture(autouse=True)
def _gc_settings() -> Iterator[None]:
    """The relay tunes the collector at startup as ``serve`` does; the test process gets its own settings back."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def _relay(upstream: MockUpstream, *, metered: bool) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(reference_proxy.create_app(upstream.url.removesuffix("/v1"), metered=metered))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/v1"


@pytest.fixture
async def metered(mock_upstream: MockUpstream) -> AsyncIterator[tuple[web.Application, str]]:
    runner, url = await _relay(mock_upstream, metered=True)
    yield runner.app, url
    await runner.cleanup()


def _samples(app: web.Application) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(app[reference_proxy.METER].registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_the_metered_floor_relays_whole_and_streamed_answers_and_counts_them(
    metered: tuple[web.Application, str],
) -> None:
    app, url = metered
    async with openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m1", messages=[{"role": "user", "content": "hi"}]
        )
        whole = raw.parse()
        stream = await client.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert raw.headers["x-request-id"].startswith("ref")
    assert whole.choices[0].message.content == text == "Mock reply to: hi"
    samples = _samples(app)
    assert samples["requests_total", (("model", "m1"), ("status", "200"))] == 2
    assert samples["request_seconds_count", (("model", "m1"),)] == 2
    assert whole.usage is not None  # only the whole answer's usage is read
    assert samples["tokens_total", (("direction", "input"), ("model", "m1"))] == whole.usage.prompt_tokens
    assert samples["tokens_total", (("direction", "output"), ("model", "m1"))] == whole.usage.completion_tokens


async def test_the_metered_floor_refuses_a_body_without_a_model_as_json(metered: tuple[web.Application, str]) -> None:
    _, url = metered
    async with openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.post("/chat/completions", body={"messages": []}, cast_to=object)
    assert caught.value.code == "invalid_body"


async def test_the_plain_reference_relays_untouched(mock_upstream: MockUpstream) -> None:
    runner, url = await _relay(mock_upstream, metered=False)
    try:
        async with openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="m1", messages=[{"role": "user", "content": "hi"}]
            )
        assert "x-request-id" not in raw.headers  # the mock sends none; the plain relay adds none
        assert raw.parse().choices[0].message.content == "Mock reply to: hi"
    finally:
        await runner.cleanup()


def test_metered_needs_the_lean_client() -> None:
    with pytest.raises(ValueError, match="lean client"):
        reference_proxy.create_app("http://127.0.0.1:1", client="aiohttp", metered=True)
