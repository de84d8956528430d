"""Messages ↔ chat translation, judged by the anthropic SDK: its types, its stream accumulator, its client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from backends.messages_chat import (
    RAW_ARGUMENTS_KEY,
    TOOL_ERROR_PREFIX,
    ChatToMessagesStream,
    encode_event,
    from_chat,
    to_chat,
)
from proxy.errors import InvalidRequest

EVENT = TypeAdapter(RawMessageStreamEvent)
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}], **extra}


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.Anthropic:
    """A real anthropic client whose HTTP goes to ``handler`` in-process (no socket)."""
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(
        api_key="k", base_url="http://proxy.test", max_retries=0, http_client=httpx2.Client(transport=transport)
    )


def sse_response(events: list[dict[str, Any]]) -> Callable[[httpx2.Request], httpx2.Response]:
    payload = b"".join(encode_event(e) for e in events)
    return lambda _request: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=payload)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "up",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **choice}],
    }


def usage_chunk(prompt: int = 12, completion: int = 7, cached: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "up", "choices": [], "usage": usage}


def run_stream(chunks: list[dict[str, Any]], request: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    stream = ChatToMessagesStream(request or base(stream=True), message_id="msg_1")
    events = [e for c in chunks for e in stream.feed(c)] + stream.finish()
    for event in events:
        EVENT.validate_python(event)
    return events


# --- requests -----------------------------------------------------------------------------------


def test_system_blocks_and_plain_fields_translate() -> None:
    body = base(
        system=[
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use French."},
        ],
        stop_sequences=["END"],
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        metadata={"user_id": "u-7"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        service_tier="auto",
    )
    chat = to_chat(body)
    assert chat == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "system", "content": "Be brief.\n\nUse French."}, {"role": "user", "content": "hi"}],
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END"],
        "user": "u-7",
    }


def test_stream_asks_for_usage() -> None:
    chat = to_chat(base(stream=True))
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def test_tool_use_and_tool_result_round_trip() -> None:
    body = base(
        tools=[
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "let me check", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and be quick"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18°C"}]},
                ],
            },
        ],
    )
    chat = to_chat(body)
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    user, assistant, tool, follow_up = chat["messages"]
    assert user == {"role": "user", "content": "Weather in Paris?"}
    assert assistant["content"] == "Checking."
    call = assistant["tool_calls"][0]
    assert (call["id"], call["function"]["name"]) == ("toolu_1", "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert tool == {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"}  # before the turn's text
    assert follow_up == {"role": "user", "content": "and be quick"}


def test_tool_choice_variants() -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    assert to_chat(base(tools=tools, tool_choice={"type": "auto"}))["tool_choice"] == "auto"
    assert to_chat(base(tools=tools, tool_choice={"type": "none"}))["tool_choice"] == "none"
    named = to_chat(base(tools=tools, tool_choice={"type": "tool", "name": "f"}))
    assert named["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert "parallel_tool_calls" not in named


def test_error_tool_result_is_prefixed_and_assistant_tool_only_has_null_content() -> None:
    chat = to_chat(
        base(
            messages=[
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True}],
                },
            ]
        )
    )
    assert chat["messages"][1]["content"] is None
    assert chat["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": TOOL_ERROR_PREFIX + "boom"}
    assert len(chat["messages"]) == 3  # no empty user message after the tool result


def test_images_become_image_url_parts() -> None:
    chat = to_chat(
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                        {"type": "text", "text": "What are these?"},
                    ],
                }
            ]
        )
    )
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What are these?"},
            ],
        }
    ]


def test_image_in_a_tool_result_moves_to_the_user_message() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    chat = to_chat(
        base(
            messages=[
                {"role": "user", "content": "screenshot please"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "done"}, image],
                        }
                    ],
                },
            ]
        )
    )
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "done"}
    assert chat["messages"][3]["content"][0]["type"] == "image_url"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            base(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
                        ],
                    }
                ]
            ),
            "messages.0.content.0.type",
        ),
        (base(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
        (
            base(tools=[{"name": "f", "input_schema": {"type": "object"}}, {"type": "bash_20250124", "name": "bash"}]),
            "tools.1.type",
        ),
        (base(tools=[{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}]), "tools.0.type"),
        (
            base(
                messages=[
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}
                ]
            ),
            "messages.0.content.0.source.type",
        ),
    ],
)
def test_what_a_chat_backend_cannot_do_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat(body)
    assert caught.value.param == param and caught.value.http_status == 400
    assert caught.value.message.startswith(param)


# --- whole answers -----------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


def test_text_answer_is_a_valid_message_under_the_requested_model() -> None:
    answer = from_chat(completion({"content": "Bonjour !"}), base(), message_id="msg_abc")
    message = Message.model_validate(answer)
    assert message.model == "claude-sonnet-4-5" and message.id == "msg_abc"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Bonjour !"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 5)


def test_tool_call_answer_parses_arguments() -> None:
    calls = [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]
    message = Message.model_validate(
        from_chat(completion({"content": None, "tool_calls": calls}, "tool_calls"), base(), message_id="msg_1")
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.id == "call_9" and block.input == {"city": "Oslo"}


def test_invalid_tool_arguments_are_kept_raw() -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"city": "Os'}}]
    answer = from_chat(completion({"content": "", "tool_calls": calls}, "stop"), base(), message_id="msg_1")
    message = Message.model_validate(answer)
    assert message.stop_reason == "tool_use"
    assert message.content[0].input == {RAW_ARGUMENTS_KEY: '{"city": "Os'}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("length", {}, "max_tokens", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),  # vLLM names the stop string
        ("stop", {"stop_reason": 128009}, "end_turn", None),  # an EOS token id
        ("stop", {}, "end_turn", None),
    ],
)
def test_stop_reasons(finish: str, extra: dict[str, Any], reason: str, sequence: str | None) -> None:
    answer = from_chat(completion({"content": "x"}, finish, **extra), base(stop_sequences=["END"]), message_id="m")
    message = Message.model_validate(answer)
    assert (message.stop_reason, message.stop_sequence) == (reason, sequence)


def test_cached_prompt_tokens_are_cache_reads() -> None:
    chat = completion({"content": "x"})
    chat["usage"]["prompt_tokens_details"] = {"cached_tokens": 16}
    usage = Message.model_validate(from_chat(chat, base(), message_id="m")).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (4, 16, 5)


def test_the_sdk_client_reads_a_translated_answer() -> None:
    answer = from_chat(completion({"content": "pong"}), base(), message_id="msg_sdk")
    client = sdk_client(lambda _r: httpx2.Response(200, json=answer))
    message = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "ping"}]
    )
    assert message.content[0].text == "pong"  # type: ignore[union-attr]


# --- streams ------------------------------------------------------------------------------------


def test_streamed_text_is_rebuilt_by_the_sdk() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo!"}),
        chunk(finish="stop"),
        usage_chunk(prompt=30, completion=3, cached=10),
    ]
    events = run_stream(chunks)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    client = sdk_client(sse_response(events))
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["Hel", "lo!"]
    assert final.content[0].text == "Hello!"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.model == "claude-sonnet-4-5"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (20, 3, 10)


def test_streamed_tool_use_input_is_rebuilt_by_the_sdk() -> None:
    def call(index: int, arguments: str, **first: str) -> dict[str, Any]:
        return chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        **first,
                        "function": {
                            **({"name": first.pop("name")} if "name" in first else {}),
                            "arguments": arguments,
                        },
                    }
                ]
            }
        )

    chunks = [
        chunk({"role": "assistant", "content": "Let me look."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        call(0, '{"ci'),
        call(0, 'ty": "Par'),
        call(0, 'is"}'),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
                    }
                ]
            }
        ),
        chunk(finish="tool_calls"),
        usage_chunk(),
    ]
    events = run_stream(chunks)
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    client = sdk_client(sse_response(events))
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    text, first, second = final.content
    assert text.type == "text" and text.text == "Let me look."
    assert first.type == "tool_use" and (first.id, first.name, first.input) == (
        "call_a",
        "get_weather",
        {"city": "Paris"},
    )
    assert second.type == "tool_use" and second.input == {"tz": "CET"}


def test_message_delta_waits_for_usage_and_finish_is_idempotent() -> None:
    stream = ChatToMessagesStream(base(stream=True), message_id="msg_1", input_tokens=42)
    first = stream.feed(chunk({"content": "hi"}))
    assert first[0]["message"]["usage"]["input_tokens"] == 42
    assert [e["type"] for e in stream.feed(chunk(finish="length"))] == ["content_block_stop"]
    tail = stream.feed(usage_chunk(prompt=9, completion=1))
    assert [e["type"] for e in tail] == ["message_delta", "message_stop"]
    assert tail[0]["delta"]["stop_reason"] == "max_tokens"
    assert tail[0]["usage"] == {"input_tokens": 9, "output_tokens": 1}
    assert stream.finish() == [] and stream.feed(chunk({"content": "late"})) == []
    assert Message.model_validate(stream.message).content[0].text == "hi"  # type: ignore[union-attr]


def test_stream_cut_without_usage_still_closes_cleanly() -> None:
    events = run_stream([chunk({"content": "partial"})])
    assert [e["type"] for e in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2]["usage"]["output_tokens"] == 0


def test_empty_stream_is_a_valid_empty_message() -> None:
    events = ChatToMessagesStream(base(), message_id="msg_e").finish()
    client = sdk_client(sse_response(events))
    with client.messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]) as stream:
        assert stream.get_final_message().content == []


def test_stream_failure_is_raised_by_the_sdk_as_the_typed_error() -> None:
    stream = ChatToMessagesStream(base(stream=True), message_id="msg_1")
    events = stream.feed(chunk({"content": "par"}))
    error = stream.fail(529, "upstream overloaded")
    assert stream.finish() == []
    payload = b"".join(encode_event(e) for e in events + error)
    client = sdk_client(lambda _r: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=payload))
    with pytest.raises(anthropic.APIStatusError) as caught:  # the error arrives mid-iteration
        with client.messages.stream(model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}]) as s:
            s.get_final_message()
    assert "upstream overloaded" in str(caught.value)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "upstream overloaded"},
    }


def test_encode_event_is_named_sse() -> None:
    assert encode_event({"type": "message_stop"}) == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_streamed_stop_sequence_named_by_vllm() -> None:
    request = base(stream=True, stop_sequences=["END"])
    events = run_stream([chunk({"content": "a"}), chunk(finish="stop", stop_reason="END"), usage_chunk()], request)
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
