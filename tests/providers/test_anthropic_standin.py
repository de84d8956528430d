"""The stand-in Anthropic server is judged by the anthropic SDK itself, and the two translations undo each other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

from backends._anthropic.request import to_messages
from backends._anthropic.response import to_chat_completion
from backends._anthropic.stream import MessagesToChat
from backends.messages_chat import ChatToMessagesStream, from_chat, to_chat
from backends.provider import DONE
from proxy.errors import UpstreamError
from proxy.policy import PolicyError
from tests.conftest import ProxyFactory, start_site
from tests.providers.anthropic_standin import KEY, create_app

WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TOOL_CONVERSATION: Any = {
    "model": "claude-standin",
    "max_tokens": 64,
    "system": "Be brief.",
    "tools": [WEATHER],
    "tool_choice": {"type": "tool", "name": "get_weather"},
    "stop_sequences": ["END"],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ],
}


@pytest.fixture
async def claude() -> AsyncIterator[anthropic.AsyncAnthropic]:
    runner, url = await start_site(create_app())
    async with anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0) as client:
        yield client
    await runner.cleanup()


@pytest.mark.asyncio
async def test_the_sdk_reads_the_standins_tool_use_whole_and_streamed(claude: anthropic.AsyncAnthropic) -> None:
    ask: Any = [{"role": "user", "content": "weather in Oslo?"}]
    whole = await claude.messages.create(model="m", max_tokens=50, messages=ask, tools=[WEATHER])
    async with claude.messages.stream(model="m", max_tokens=50, messages=ask, tools=[WEATHER]) as stream:
        final = await stream.get_final_message()
    for message in (whole, final):
        assert message.stop_reason == "tool_use"
        use = message.content[1]
        assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Oslo"}


@pytest.mark.asyncio
async def test_the_standin_refuses_like_anthropic(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="tool_use_id"):
        await claude.messages.create(
            model="m",
            max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}],
        )
    with pytest.raises(anthropic.BadRequestError, match="alternate"):
        await claude.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        )


def test_a_messages_request_survives_chat_and_back() -> None:
    back = to_messages(to_chat(TOOL_CONVERSATION))
    expected = {k: v for k, v in TOOL_CONVERSATION.items() if k != "tool_choice"}
    assert {k: v for k, v in back.items() if k != "tool_choice"} == expected
    assert back["tool_choice"] == {"type": "tool", "name": "get_weather"}


def test_a_message_survives_chat_and_back() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-standin",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 3},
    }
    chat = to_chat_completion(message)
    assert chat["usage"]["prompt_tokens"] == 13 and chat["usage"]["prompt_tokens_details"]["cached_tokens"] == 3
    again = from_chat(chat, {"model": "claude-standin"}, message_id="msg_1")
    assert again == message


def test_a_stream_survives_chat_and_back() -> None:
    """Anthropic events → chat chunks (this adapter) → Anthropic events (the reverse adapter): the same Message."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_2", "model": "c", "usage": {"input_tokens": 7}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_3", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a": '}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]  # fmt: skip
    forward = MessagesToChat({"model": "c", "stream_options": {"include_usage": True}}, "claude")
    chunks = [chunk for event in events for chunk in forward.feed(event)]
    assert chunks[-1] is DONE and forward.finish() == []
    reverse = ChatToMessagesStream({"model": "c"}, message_id="msg_2")
    for chunk in chunks[:-1]:
        reverse.feed(chunk)
    reverse.finish()
    assert reverse.message["content"] == [
        {"type": "text", "text": "Hi there"},
        {"type": "tool_use", "id": "toolu_3", "name": "f", "input": {"a": 1}},
    ]
    assert reverse.message["stop_reason"] == "tool_use"
    assert reverse.message["usage"] == {"input_tokens": 7, "output_tokens": 5, "cache_read_input_tokens": 0}


def test_a_stream_without_message_stop_is_an_upstream_failure() -> None:
    forward = MessagesToChat({"model": "c"}, "claude")
    forward.feed({"type": "message_start", "message": {"id": "m", "usage": {}}})
    with pytest.raises(UpstreamError, match="ended the stream early"):
        forward.finish()


@pytest.mark.asyncio
async def test_an_unknown_backend_type_is_refused_naming_its_yaml_path(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    text = 'backends:\n  g: {type: gemini, url: "http://127.0.0.1:9"}\nmodels:\n  "*": {backend: g}\n'
    with pytest.raises(
        PolicyError, match=r"backends\.g\.type: unknown backend type 'gemini'; known: anthropic, openai"
    ):
        await start_proxy(write_policy(text))
