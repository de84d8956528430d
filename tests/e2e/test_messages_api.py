"""Anthropic's Messages API with the official anthropic SDK, through the proxy to a chat-only upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

pytestmark = pytest.mark.asyncio

WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HELLO: Any = [{"role": "user", "content": "Say something about gateways"}]


def anthropic_client(proxy: RunningProxy, key: str = "sk-test") -> anthropic.AsyncAnthropic:
    """The SDK as a coding agent configures it: ANTHROPIC_BASE_URL is the proxy's root, the key in x-api-key."""
    return anthropic.AsyncAnthropic(base_url=proxy.url.removesuffix("/v1"), api_key=key, max_retries=0)


@pytest.fixture
async def claude(proxy: RunningProxy) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic_client(proxy) as client:
        yield client


async def test_create_answers_a_message(claude: anthropic.AsyncAnthropic, mock_upstream: MockUpstream) -> None:
    message = await claude.messages.create(
        model="mock-gpt", max_tokens=100, system="Be brief.", messages=HELLO, stop_sequences=["END"]
    )
    assert message.type == "message" and message.role == "assistant" and message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Mock reply to: Say something about gateways"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = (await mock_upstream.requests())[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["body"]["stop"] == ["END"] and sent["body"]["max_tokens"] == 100
    assert "x-api-key" not in {k.lower() for k in sent["headers"]}  # the gateway's credential stays here


async def test_stream_text_matches_the_whole_answer(claude: anthropic.AsyncAnthropic) -> None:
    whole = await claude.messages.create(model="mock-gpt", max_tokens=100, messages=HELLO)
    async with claude.messages.stream(model="mock-gpt", max_tokens=100, messages=HELLO) as stream:
        kinds = []
        async for event in stream:
            kinds.append(event.type)
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and "content_block_delta" in kinds and kinds[-1] == "message_stop"
    assert kinds.count("content_block_delta") > 3  # it really streamed
    assert final.content[0].type == "text" and whole.content[0].type == "text"
    assert final.content[0].text == whole.content[0].text
    assert final.usage.output_tokens == whole.usage.output_tokens


async def test_tool_use_round_trip(claude: anthropic.AsyncAnthropic, mock_upstream: MockUpstream) -> None:
    asked: Any = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = await claude.messages.create(
        model="mock-gpt", max_tokens=200, messages=asked, tools=[WEATHER], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and "city" in use.input
    turn: Any = [
        *asked,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Snow, -3 degrees"}]},
    ]
    second = await claude.messages.create(model="mock-gpt", max_tokens=200, messages=turn, tools=[WEATHER])
    assert second.content[0].type == "text"
    assert second.content[0].text.startswith("Mock reply using the tool result: Snow")
    messages = (await mock_upstream.requests())[-1]["body"]["messages"]
    assert messages[-1] == {"role": "tool", "tool_call_id": use.id, "content": "Snow, -3 degrees"}


async def test_streamed_tool_input_reassembles_from_input_json_deltas(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(
        model="mock-gpt", max_tokens=200, tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Lima please"}],
    ) as stream:  # fmt: skip
        pieces = []
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                pieces.append(event.delta.partial_json)
        final = await stream.get_final_message()
    use = next(block for block in final.content if block.type == "tool_use")
    assert len(pieces) > 1 and json.loads("".join(pieces)) == use.input
    assert final.stop_reason == "tool_use"


async def test_count_tokens_is_an_estimate_that_grows_with_the_prompt(claude: anthropic.AsyncAnthropic) -> None:
    short = await claude.messages.count_tokens(model="mock-gpt", messages=HELLO)
    raw = await claude.messages.with_raw_response.count_tokens(
        model="mock-gpt", messages=[{"role": "user", "content": "Say something about gateways " * 20}], tools=[WEATHER]
    )
    longer = await raw.parse()
    assert 0 < short.input_tokens < longer.input_tokens
    assert raw.headers["x-chaperone-token-count"].startswith("estimate")


async def test_errors_are_the_sdks_typed_exceptions_in_anthropics_shape(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    extra = "keys:\n  - {name: coder, key: sk-coder, models: [mock-gpt]}\n"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=extra)))
    async with anthropic_client(proxy, "sk-coder") as good, anthropic_client(proxy, "sk-wrong") as bad:
        with pytest.raises(anthropic.AuthenticationError) as unauthorized:
            await bad.messages.create(model="mock-gpt", max_tokens=10, messages=HELLO)
        assert unauthorized.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        with pytest.raises(anthropic.PermissionDeniedError):
            await good.messages.create(model="aliased", max_tokens=10, messages=HELLO)
        with pytest.raises(anthropic.BadRequestError) as invalid:
            await good.messages.create(model="mock-gpt", max_tokens=10, messages=[])
        assert "messages" in invalid.value.message
        with pytest.raises(anthropic.BadRequestError, match=r"tools\.0\.type"):
            await good.messages.create(
                model="mock-gpt", max_tokens=10, messages=HELLO,
                tools=[{"type": "web_search_20250305", "name": "web_search"}],  # type: ignore[list-item]
            )  # fmt: skip
        with pytest.raises(anthropic.InternalServerError):  # the upstream's own 503, in Anthropic's shape
            await good.messages.create(
                model="mock-gpt", max_tokens=10, messages=[{"role": "user", "content": "hi [[mock:status=503]]"}]
            )


async def test_a_stream_that_breaks_ends_with_an_error_event_the_sdk_raises(claude: anthropic.AsyncAnthropic) -> None:
    broken: Any = [{"role": "user", "content": "Tell me a long story [[mock:drop_after=3]]"}]
    with pytest.raises(anthropic.APIStatusError):
        async with claude.messages.stream(model="mock-gpt", max_tokens=100, messages=broken) as stream:
            async for _ in stream:
                pass
