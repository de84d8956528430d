"""Chat completions from the mock backend, driven by the official openai SDK over a real socket."""

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic
import pytest

from .conftest import MockServer

MODEL = "any-model-name"
HELLO: Any = [{"role": "user", "content": "Hello there, mock!"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 3},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "detailed": {"type": "boolean"},
                "where": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}}},
                    "required": ["lat", "tags"],
                },
            },
            "required": ["city", "days", "unit", "detailed", "where"],
        },
    },
}


class Person(pydantic.BaseModel):
    name: str
    age: int
    emails: list[str]
    nickname: str | None


async def test_non_stream_reply_and_usage(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model=MODEL, messages=HELLO)
    choice = completion.choices[0]
    assert completion.model == MODEL
    assert completion.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Mock reply to: Hello there, mock!"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens == 9  # Mock, reply, to, :, Hello, there, ",", mock, !
    assert usage.prompt_tokens == 3 + 3 + 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_stream_reassembles_to_the_non_stream_content(client: openai.AsyncOpenAI) -> None:
    reference = await client.chat.completions.create(model=MODEL, messages=HELLO)
    stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({chunk.id for chunk in chunks}) == 1
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == MODEL for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == reference.choices[0].message.content
    assert reference.usage is not None
    content_chunks = [c for c in chunks if c.choices[0].delta.content]
    assert len(content_chunks) == reference.usage.completion_tokens
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


async def test_stream_include_usage_adds_a_final_usage_chunk(client: openai.AsyncOpenAI) -> None:
    reference = await client.chat.completions.create(model=MODEL, messages=HELLO)
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and reference.usage is not None
    assert chunks[-1].usage.total_tokens == reference.usage.total_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_raw_sse_wire_format(mock_server: MockServer) -> None:
    body = {"model": MODEL, "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    async with mock_server.http.post(f"{mock_server.base_url}/chat/completions", json=body) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        raw = await response.text()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert all(event.startswith("data: ") for event in events[:-1])
    assert all("usage" in p and p["usage"] is None for p in payloads[:-1])
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 9


async def test_max_tokens_cuts_with_finish_reason_length(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3)
    assert completion.choices[0].message.content == "Mock reply to"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3


@pytest.mark.parametrize("tokens", [1, 5, 40])
async def test_magic_tokens_sets_the_exact_length(client: openai.AsyncOpenAI, tokens: int) -> None:
    messages: Any = [{"role": "user", "content": f"bench [[mock:tokens={tokens}]]"}]
    stream = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) == tokens
    assert "[[mock" not in "".join(pieces)


async def test_n_gives_n_choices(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model=MODEL, messages=HELLO, n=3)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert completion.usage is not None and completion.usage.completion_tokens == 3 * 9


def _check_weather_arguments(arguments: str) -> None:
    args = json.loads(arguments)
    assert set(args) >= {"city", "days", "unit", "detailed", "where"}
    assert isinstance(args["city"], str) and args["days"] >= 3 and args["unit"] == "celsius"
    assert args["detailed"] is True
    assert isinstance(args["where"]["lat"], int | float) and isinstance(args["where"]["tags"], list)


async def test_tool_call_non_stream(client: openai.AsyncOpenAI) -> None:
    messages: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    completion = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    _check_weather_arguments(call.function.arguments)


async def test_tool_call_stream_reassembles_with_the_sdk_helper(client: openai.AsyncOpenAI) -> None:
    messages: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    async with client.chat.completions.stream(model=MODEL, messages=messages, tools=[WEATHER_TOOL]) as stream:
        events = [event.type async for event in stream]
        final = await stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    _check_weather_arguments(choice.message.tool_calls[0].function.arguments)


async def test_strict_pydantic_tool_parses(client: openai.AsyncOpenAI) -> None:
    tool = openai.pydantic_function_tool(Person)
    messages: Any = [{"role": "user", "content": "Look up Ada."}]
    completion = await client.chat.completions.parse(
        model=MODEL,
        messages=messages,
        tools=[tool],
        tool_choice="required",
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    parsed = calls[0].function.parsed_arguments
    assert isinstance(parsed, Person) and parsed.emails


async def test_tool_choice_named_and_none(client: openai.AsyncOpenAI) -> None:
    other: Any = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    named = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    calls = named.choices[0].message.tool_calls
    assert calls is not None
    call = calls[0]
    assert call.type == "function" and call.function.name == "lookup" and call.function.arguments == "{}"
    messages: Any = [{"role": "user", "content": "weather please"}]
    plain = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason == "stop"


async def test_tool_result_gets_a_text_answer(client: openai.AsyncOpenAI) -> None:
    messages: Any = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny and 21C"},
    ]
    completion = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == "Mock reply using the tool result: sunny and 21C"


async def test_json_schema_response_parses(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.parse(model=MODEL, messages=HELLO, response_format=Person)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Person)
    assert parsed.name and parsed.age == 1


async def test_json_schema_response_streams(client: openai.AsyncOpenAI) -> None:
    async with client.chat.completions.stream(model=MODEL, messages=HELLO, response_format=Person) as stream:
        final = await stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Person)


async def test_json_object_response(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        response_format={"type": "json_object"},
    )
    content = completion.choices[0].message.content
    assert content is not None and json.loads(content) == {"reply": "Mock reply to: Hello there, mock!"}
