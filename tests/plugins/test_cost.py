"""The cost plugin through the real proxy: streamed usage with and without the client asking, partial streams,
cached and reasoning tokens at their rates, the cost header, and records that never hold prompt text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import web

from proxy import tokens
from proxy.policy import PolicyError
from proxy.registry import DEFAULT_PLUGINS, PluginRegistry, build_registry
from tests.chain_helpers import compile_chain_policy
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy, start_site

MESSAGES: list[Any] = [{"role": "user", "content": "please tell me about invoices"}]
SECRET = "my-secret-prompt-words"
CHAIN = "[{cost: {flush_s: 0, jsonl: {path: cost.jsonl}}}]"
GPT4O_MINI = (0.15, 0.60)  # USD per 1M input / output tokens in the built-in table


@pytest.fixture
def cost_registry() -> PluginRegistry:
    return build_registry(entry_points=False, modules=tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.cost"))))


async def records(home: Path, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The JSONL records once ``count`` are written (a background thread writes them after the answer)."""
    path = home / "cost.jsonl"
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        assert loop.time() < end, f"only {len(lines)} of {count} records written"
        await asyncio.sleep(0.01)


@pytest.fixture
async def costed(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    cost_registry: PluginRegistry,
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN)), registry_=cost_registry)


def expected_cost(prompt: int, completion: int, price: tuple[float, float] = GPT4O_MINI) -> float:
    return (prompt * price[0] + completion * price[1]) / 1e6


# ---- streams --------------------------------------------------------------------------------------------


async def test_a_stream_is_priced_although_the_client_did_not_ask_for_usage_and_it_sees_no_usage(
    costed: RunningProxy, mock_upstream: MockUpstream, tmp_path: Path
) -> None:
    async with costed.client() as client:
        whole = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks), "the extra usage-only chunk reached the client"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    sent = (await mock_upstream.requests())[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}
    assert whole.usage is not None
    streamed = (await records(tmp_path / "home", 2))[1]
    assert (streamed["prompt_tokens"], streamed["completion_tokens"]) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )
    assert streamed["cost_usd"] == pytest.approx(
        expected_cost(whole.usage.prompt_tokens, whole.usage.completion_tokens)
    )
    assert (streamed["estimated"], streamed["partial"], streamed["stream"]) == (False, False, True)
    assert streamed["upstream_model"] == "gpt-4o-mini"


async def test_a_client_that_asks_for_usage_gets_it_and_the_same_cost(costed: RunningProxy, tmp_path: Path) -> None:
    async with costed.client() as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    (record,) = await records(tmp_path / "home", 1)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert record["cost_usd"] == pytest.approx(expected_cost(usage.prompt_tokens, usage.completion_tokens))


async def test_legacy_completions_streams_are_priced_too(costed: RunningProxy, tmp_path: Path) -> None:
    async with costed.client() as client:
        stream = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hello", stream=True)
        chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks) and all(chunk.choices for chunk in chunks)
    (record,) = await records(tmp_path / "home", 1)
    assert record["completion_tokens"] > 0 and record["estimated"] is False
    assert record["cost_usd"] == pytest.approx(
        expected_cost(record["prompt_tokens"], record["completion_tokens"], (1.50, 2.00))
    )


async def test_a_stream_the_upstream_breaks_is_charged_for_what_was_sent(costed: RunningProxy, tmp_path: Path) -> None:
    text = ""
    async with costed.client() as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-mock-fault": "drop_after=4,tokens=12"},
        )
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text
    (record,) = await records(tmp_path / "home", 1)
    prompt = tokens.count_chat({"model": "gpt-4o-mini", "messages": MESSAGES})
    assert (record["partial"], record["estimated"]) == (True, True)
    assert record["prompt_tokens"] == prompt
    assert record["completion_tokens"] == tokens.count(text, "gpt-4o-mini")
    assert record["cost_usd"] == pytest.approx(expected_cost(prompt, record["completion_tokens"]))
    assert record["status"] >= 500


async def test_a_stream_the_client_leaves_is_charged_for_what_went_out(costed: RunningProxy, tmp_path: Path) -> None:
    async with costed.client() as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True,
            extra_headers={"x-mock-fault": "chunk_delay_ms=50,tokens=40"},
        )  # fmt: skip
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
    (record,) = await records(tmp_path / "home", 1)
    assert (record["partial"], record["estimated"], record["status"]) == (True, True, 499)
    assert 0 < record["completion_tokens"] < 40
    assert record["cost_usd"] > 0


# ---- whole answers --------------------------------------------------------------------------------------


async def test_a_whole_answer_carries_its_cost_in_a_header_and_the_record_agrees(
    costed: RunningProxy, tmp_path: Path
) -> None:
    async with costed.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        unpriced = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=MESSAGES)
    answer = raw.parse()
    assert answer.usage is not None
    header = float(raw.headers["x-chaperone-cost"])
    assert header == pytest.approx(expected_cost(answer.usage.prompt_tokens, answer.usage.completion_tokens))
    assert "x-chaperone-cost" not in unpriced.headers
    first, second = await records(tmp_path / "home", 2)
    assert first["cost_usd"] == pytest.approx(header) and first["priced_as"] == "gpt-4o-mini"
    assert (second["cost_usd"], second["priced_as"]) == (None, None)


async def test_records_hold_no_prompt_or_answer_text(costed: RunningProxy, tmp_path: Path) -> None:
    async with costed.client() as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": SECRET}])
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": SECRET}], stream=True
        )
        [chunk async for chunk in stream]
    await records(tmp_path / "home", 2)
    assert "secret" not in (tmp_path / "home" / "cost.jsonl").read_text()


# ---- cached and reasoning tokens (a fake upstream that reports them) -------------------------------------

DETAILED = {
    "prompt_tokens": 1000,
    "completion_tokens": 500,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 400},
    "completion_tokens_details": {"reasoning_tokens": 200},
}


async def _detailed(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    base = {"id": "c1", "created": 0, "model": "o3-2025-04-16"}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "42"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return web.json_response({**base, "object": "chat.completion", "choices": [choice], "usage": DETAILED})
    out = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await out.prepare(request)
    chunk = {**base, "object": "chat.completion.chunk"}
    asked = (body.get("stream_options") or {}).get("include_usage")
    for delta, reason in (({"role": "assistant", "content": "42"}, None), ({}, "stop")):
        extra = {"usage": None} if asked else {}
        event = {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}], **extra}
        await out.write(b"data: " + json.dumps(event).encode() + b"\n\n")
    if asked:
        await out.write(b"data: " + json.dumps({**chunk, "choices": [], "usage": DETAILED}).encode() + b"\n\n")
    await out.write(b"data: [DONE]\n\n")
    return out


@pytest.fixture
async def detailed_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _detailed)
    runner, base = await start_site(app)
    yield base + "/v1"
    await runner.cleanup()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_cached_and_reasoning_tokens_are_priced_at_their_rates(
    start_proxy: ProxyFactory,
    detailed_upstream: str,
    write_policy: Callable[[str], Path],
    cost_registry: PluginRegistry,
    tmp_path: Path,
    stream: bool,
) -> None:
    proxy = await start_proxy(write_policy(simple_policy(detailed_upstream, chain=CHAIN)), registry_=cost_registry)
    async with proxy.client() as client:
        if stream:
            chunks = [c async for c in await client.chat.completions.create(model="o3", messages=MESSAGES, stream=True)]
            assert all(c.usage is None and c.choices for c in chunks)
        else:
            await client.chat.completions.create(model="o3", messages=MESSAGES)
    (record,) = await records(tmp_path / "home", 1)
    # o3: input 2.00, cached input 0.50, output (reasoning included) 8.00 per 1M tokens
    assert record["cost_usd"] == pytest.approx((600 * 2.00 + 400 * 0.50 + 500 * 8.00) / 1e6)
    assert (record["cached_tokens"], record["reasoning_tokens"]) == (400, 200)
    assert record["priced_as"] == "o3-2025-04-16" and record["upstream_model"] == "o3-2025-04-16"


# ---- config -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "path"),
    [
        ("[{cost: {flush_s: -1}}]", "chains.default[0].cost.flush_s"),
        ("[{cost: {jsonl: {path: x.jsonl, keep: 0}}}]", "chains.default[0].cost.jsonl.keep"),
        ("[{cost: {jsonl: {max_bytes: 10}}}]", "chains.default[0].cost.jsonl.max_bytes"),
        ("[{cost: {sinks: [stdout]}}]", "chains.default[0].cost.sinks"),
    ],
)
def test_bad_config_is_refused_naming_its_yaml_path(chain: str, path: str, cost_registry: PluginRegistry) -> None:
    with pytest.raises(PolicyError) as info:
        compile_chain_policy(chain, cost_registry)
    assert any(error.startswith(path) for error in info.value.errors), info.value.errors


def test_policy_prices_reach_the_compiled_policy(cost_registry: PluginRegistry) -> None:
    policy = compile_chain_policy("[cost]", cost_registry, extra="prices:\n  local-llama: {input: 1, output: 2}\n")
    assert "local-llama" in policy.prices


# ---- the Responses and Messages APIs (their streams carry usage in their last events) -----------------------


async def test_responses_and_messages_streams_are_priced_from_their_final_events(
    costed: RunningProxy, tmp_path: Path
) -> None:
    async with costed.client() as client:
        stream = await client.responses.create(model="gpt-4o-mini", input="tell me about invoices", stream=True)
        events = [event async for event in stream]
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.usage is not None
    async with anthropic.AsyncAnthropic(
        base_url=costed.url.removesuffix("/v1"), api_key="sk-test", max_retries=0
    ) as claude:
        async with claude.messages.stream(model="claude-3-5-haiku", max_tokens=100, messages=MESSAGES) as messages:
            final = await messages.get_final_message()
    first, second = await records(tmp_path / "home", 2)
    usage = completed.response.usage
    assert (first["endpoint"], first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        "responses", usage.input_tokens, usage.output_tokens, False,
    )  # fmt: skip
    assert first["cost_usd"] == pytest.approx(expected_cost(usage.input_tokens, usage.output_tokens))
    assert second["endpoint"] == "messages" and second["estimated"] is False
    assert (second["prompt_tokens"], second["completion_tokens"]) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )
    assert second["cost_usd"] == pytest.approx(
        expected_cost(final.usage.input_tokens, final.usage.output_tokens, (0.80, 4.00))
    )
