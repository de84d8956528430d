"""The Responses API over chat completions: request bodies, whole answers and streams, checked with the SDK's types."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from backends.responses_chat import ChatToResponsesStream, encode_event, from_chat, to_chat
from proxy.errors import InvalidRequest

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
CHAT_WEATHER = {
    "type": "function",
    "function": {k: v for k, v in WEATHER.items() if k != "type"},
}


USER_HI = {"role": "user", "content": "hi"}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "local-llama", "input": "hello", **fields}


# ---------------------------------------------------------------- to_chat


def test_string_input_is_one_user_message_after_the_instructions() -> None:
    chat = to_chat(request(instructions="Be brief."), backend="local")
    assert chat == {
        "model": "local-llama",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
    }


def test_message_items_with_and_without_type_and_every_role() -> None:
    body = request(
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be kind."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Bonjour"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Salut"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "Non."}]},
        ]
    )
    assert to_chat(body, backend="local")["messages"] == [
        # developer → system (chat-only templates often lack it); consecutive system messages become one
        {"role": "system", "content": "Answer in French.\n\nBe kind."},
        {"role": "user", "content": "Bonjour"},
        {"role": "assistant", "content": "Salut"},
        {"role": "assistant", "content": "Non."},
    ]


def test_instructions_and_a_leading_developer_message_are_one_system_message() -> None:
    body = request(instructions="Be brief.", input=[{"role": "developer", "content": "No emoji."}, USER_HI])
    assert to_chat(body, backend="local")["messages"] == [
        {"role": "system", "content": "Be brief.\n\nNo emoji."},
        {"role": "user", "content": "hi"},
    ]


def test_images_become_image_url_parts_with_their_detail() -> None:
    parts = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
    ]
    chat = to_chat(request(input=[{"role": "user", "content": parts}]), backend="local")
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "auto"}},
            ],
        }
    ]


def test_function_call_round_trip_becomes_assistant_tool_calls_and_tool_messages() -> None:
    body = request(
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "4C"}]},
            {"type": "function_call", "call_id": "call_c", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        ],
    )
    chat = to_chat(body, backend="local")
    call = lambda cid, city: {  # noqa: E731
        "id": cid,
        "type": "function",
        "function": {"name": "get_weather", "arguments": f'{{"city":"{city}"}}'},
    }
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call("call_a", "Paris"), call("call_b", "Oslo")]},
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "4C"},
        {"role": "assistant", "content": None, "tool_calls": [call("call_c", "Rome")]},
    ]
    assert chat["tools"] == [CHAT_WEATHER]


def test_sampling_format_and_streaming_fields_map_to_their_chat_names() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = request(
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
        max_output_tokens=64,
        temperature=0.2,
        top_p=0.9,
        top_logprobs=3,
        safety_identifier="user-42",
        reasoning={"effort": "low", "summary": "auto"},
        stream=True,
        store=True,
        metadata={"k": "v"},
        include=["reasoning.encrypted_content"],
        truncation="disabled",
        service_tier="auto",
        prompt_cache_key="abc",
        previous_response_id="resp_1",
        top_k=40,  # an engine extension the proxy does not know: passes through
    )
    chat = to_chat(body, backend="local")
    assert chat == {
        "model": "local-llama",
        "messages": [{"role": "user", "content": "hello"}],
        "tools": [CHAT_WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "logprobs": True,
        "top_logprobs": 3,
        "user": "user-42",
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
        "top_k": 40,
    }


def test_json_object_text_and_allowed_tools() -> None:
    other = {**WEATHER, "name": "get_time"}
    body = request(
        text={"format": {"type": "json_object"}},
        tools=[WEATHER, other],
        tool_choice={"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]},
    )
    chat = to_chat(body, backend="local")
    assert chat["response_format"] == {"type": "json_object"}
    assert [t["function"]["name"] for t in chat["tools"]] == ["get_time"]
    assert chat["tool_choice"] == "required"
    assert "response_format" not in to_chat(request(text={"format": {"type": "text"}}), backend="local")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [WEATHER, WEATHER, {"type": "web_search"}]}, "tools[2].type"),
        ({"tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
        ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type"),
        ({"tools": [{"type": "mcp", "server_label": "x"}]}, "tools[0].type"),
        ({"tools": [{"type": "custom", "name": "grammar"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]}]},
            "input[0].content[0].file_id",
        ),
    ],
)
def test_what_chat_cannot_carry_is_a_400_naming_param_and_backend(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat(request(**fields), backend="local")
    error = caught.value
    assert (error.status, error.param, error.code) == (400, param, "unsupported_on_backend")
    assert "'local'" in error.message and "Responses API" in error.message


def test_built_in_tool_message_says_what_to_do() -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat(request(tools=[WEATHER, WEATHER, {"type": "web_search"}]), backend="local")
    assert caught.value.message == (
        "The built-in tool 'web_search' cannot run on backend 'local': it speaks only chat completions. "
        "Remove it or route this model to a backend that speaks the Responses API."
    )


# ---------------------------------------------------------------- from_chat


def chat_answer(message: dict[str, Any], finish_reason: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "local-llama-8b",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
        **extra,
    }


def test_text_answer_is_a_valid_completed_response_echoing_the_request() -> None:
    req = request(instructions="Be brief.", temperature=0.3, metadata={"a": "b"}, previous_response_id="resp_0")
    body = from_chat(chat_answer({"content": "Hi there"}), req, response_id="resp_1", created_at=1700000000)
    response = Response.model_validate(body)
    assert response.status == "completed" and response.incomplete_details is None
    assert response.output_text == "Hi there"
    assert response.output[0].id.startswith("msg_")
    assert (response.model, response.instructions, response.temperature) == ("local-llama-8b", "Be brief.", 0.3)
    assert (response.metadata, response.previous_response_id, response.id) == ({"a": "b"}, "resp_0", "resp_1")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (12, 5, 17)
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 2


def test_reasoning_and_tool_calls_become_items_in_order() -> None:
    message = {
        "content": None,
        "reasoning_content": "The user wants weather.",
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        ],
    }
    req = request(tools=[WEATHER])
    response = Response.model_validate(
        from_chat(chat_answer(message, "tool_calls"), req, response_id="r", created_at=1)
    )
    assert [item.type for item in response.output] == ["reasoning", "function_call", "function_call"]
    reasoning, first, second = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert reasoning.content is not None and reasoning.content[0].text == "The user wants weather."
    assert first.type == "function_call" and second.type == "function_call"
    assert (first.call_id, first.name, first.arguments, first.status) == (
        "call_a",
        "get_weather",
        '{"city":"Paris"}',
        "completed",
    )
    assert second.call_id == "call_b" and first.id is not None and first.id.startswith("fc_")
    assert response.tools[0].type == "function" and response.tools[0].name == "get_weather"  # as the client sent it


def test_vllm_reasoning_field_name_is_also_read() -> None:
    body = from_chat(chat_answer({"content": "4", "reasoning": "2+2"}), request(), response_id="r", created_at=1)
    assert [item["type"] for item in body["output"]] == ["reasoning", "message"]


@pytest.mark.parametrize(
    ("finish_reason", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_cut_answers_are_incomplete_with_the_reason(finish_reason: str, reason: str) -> None:
    body = from_chat(chat_answer({"content": "Once upon"}, finish_reason), request(), response_id="r", created_at=1)
    response = Response.model_validate(body)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == reason
    assert response.output[0].status == "incomplete"


def test_refusal_is_a_refusal_part() -> None:
    body = from_chat(
        chat_answer({"content": None, "refusal": "I can't help."}), request(), response_id="r", created_at=1
    )
    response = Response.model_validate(body)
    message = response.output[0]
    assert message.type == "message" and message.content[0].type == "refusal"
    assert message.content[0].refusal == "I can't help."


def test_logprobs_are_carried_onto_the_output_text() -> None:
    answer = chat_answer({"content": "Hi"})
    top = [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}, {"token": "Hey", "logprob": -2.5, "bytes": None}]
    answer["choices"][0]["logprobs"] = {
        "content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": top}]
    }
    response = Response.model_validate(from_chat(answer, request(top_logprobs=2), response_id="r", created_at=1))
    part = response.output[0].content[0]  # type: ignore[union-attr,index]
    assert part.type == "output_text" and part.logprobs is not None
    assert part.logprobs[0].token == "Hi" and [t.token for t in part.logprobs[0].top_logprobs] == ["Hi", "Hey"]


# ---------------------------------------------------------------- streams


def chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "local-llama-8b",
            "choices": choices, **extra}  # fmt: skip


USAGE = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "Greet "}),
    chunk({"reasoning_content": "back."}),
    chunk({"content": "Hello"}),
    chunk({"content": ", "}),
    chunk({"content": "world!"}),
    chunk({}, "stop"),
    chunk(None, usage=USAGE),
]
TEXT_WHOLE = {"content": "Hello, world!", "reasoning_content": "Greet back."}


def _call(index: int, call_id: str | None = None, name: str | None = None, arguments: str = "") -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return call


TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": None, "tool_calls": [_call(0, "call_a", "get_weather")]}),
    chunk({"tool_calls": [_call(0, arguments='{"city":')]}),
    chunk({"tool_calls": [_call(0, arguments='"Paris"}')]}),
    chunk({"tool_calls": [_call(1, "call_b", "get_weather", '{"ci')]}),
    chunk({"tool_calls": [_call(1, arguments='ty":"Oslo"}')]}),
    chunk({}, "tool_calls"),
    chunk(None, usage=USAGE),
]
TOOL_WHOLE = {
    "content": None,
    "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
    ],
}


def run(chunks: list[dict[str, Any]], req: dict[str, Any]) -> tuple[ChatToResponsesStream, list[dict[str, Any]]]:
    stream = ChatToResponsesStream(req, response_id="resp_s", created_at=1700000000)
    events = [event for c in chunks for event in stream.feed(copy.deepcopy(c))]
    events += stream.finish()
    return stream, events


def without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("id", "item_id")}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def check_stream(events: list[dict[str, Any]], req: dict[str, Any]) -> Any:
    """Every event validates, numbers run 0..n-1, and the SDK's own accumulator agrees with response.completed."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    parsed = [EVENTS.validate_python(e) for e in events]
    assert [e.type for e in parsed[:2]] == ["response.created", "response.in_progress"]
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=req.get("tools") or omit, text_format=omit)
    final = None
    for event in parsed:
        for handled in state.handle_event(event):
            if handled.type == "response.completed":
                final = handled.response
    assert final is not None
    return final


@pytest.mark.parametrize(
    ("chunks", "whole", "finish_reason", "req"),
    [
        (TEXT_CHUNKS, TEXT_WHOLE, "stop", request()),
        (TOOL_CHUNKS, TOOL_WHOLE, "tool_calls", request(tools=[WEATHER])),
    ],
    ids=["text", "parallel-tool-calls"],
)
def test_stream_ends_with_the_response_from_chat_gives(
    chunks: list[dict[str, Any]], whole: dict[str, Any], finish_reason: str, req: dict[str, Any]
) -> None:
    stream, events = run(chunks, req)
    check_stream(events, req)
    completed = events[-1]
    assert completed["type"] == "response.completed"
    expected = from_chat(
        chat_answer(whole, finish_reason, usage=USAGE), req, response_id="resp_s", created_at=1700000000
    )
    assert without_ids(completed["response"]) == without_ids(expected)
    assert stream.response == completed["response"]
    assert completed["response"]["usage"]["total_tokens"] == 15  # the usage chunk arrived after the finish chunk


def test_streamed_text_deltas_add_up_to_the_done_text() -> None:
    _, events = run(TEXT_CHUNKS, request())
    final = check_stream(events, request())
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    (done,) = [e for e in events if e["type"] == "response.output_text.done"]
    assert deltas == done["text"] == final.output_text == "Hello, world!"
    reasoning = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_text.delta")
    assert reasoning == "Greet back."
    types = [e["type"] for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text_events = [e for e in events if e["type"].startswith("response.output_text")]
    assert {(e["output_index"], e["content_index"]) for e in text_events} == {(1, 0)}


def test_parallel_tool_call_stream_keeps_each_call_to_its_item() -> None:
    req = request(tools=[WEATHER])
    _, events = run(TOOL_CHUNKS, req)
    final = check_stream(events, req)
    assert [(item.call_id, item.arguments) for item in final.output] == [
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"city":"Oslo"}'),
    ]
    added = [e for e in events if e["type"] == "response.output_item.added"]
    by_index: dict[int, str] = {}
    for e in events:
        if e["type"] == "response.function_call_arguments.delta":
            by_index[e["output_index"]] = by_index.get(e["output_index"], "") + e["delta"]
    assert by_index == {0: '{"city":"Paris"}', 1: '{"city":"Oslo"}'}
    dones = {e["output_index"]: e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"}
    assert dones == by_index
    assert [e["item"]["call_id"] for e in added] == ["call_a", "call_b"]


def test_stream_cut_by_length_ends_incomplete() -> None:
    chunks = [
        chunk({"role": "assistant", "content": "Once"}),
        chunk({"content": " upon"}, "length"),
        chunk(None, usage=USAGE),
    ]
    _, events = run(chunks, request(max_output_tokens=16))
    check_stream_types = [EVENTS.validate_python(e) for e in events]
    assert check_stream_types[-1].type == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_empty_stream_still_answers_with_an_empty_message() -> None:
    _, events = run([], request())
    final = check_stream(events, request())
    assert final.status == "completed" and final.output_text == ""


def test_broken_upstream_fails_the_response_and_finish_after_is_a_no_op() -> None:
    stream = ChatToResponsesStream(request(), response_id="resp_f", created_at=1)
    events = stream.feed(chunk({"role": "assistant", "content": "Hel"}))
    events += stream.fail("server_error", "upstream connection reset")
    parsed = [EVENTS.validate_python(e) for e in events]
    assert parsed[-1].type == "response.failed"
    assert parsed[-1].response.error is not None and parsed[-1].response.error.message == "upstream connection reset"
    assert parsed[-1].response.status == "failed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert stream.finish() == [] and stream.feed(chunk({"content": "lo"})) == []
    assert stream.response is not None and stream.response["status"] == "failed"


def test_finish_is_idempotent() -> None:
    stream, events = run(TEXT_CHUNKS, request())
    assert events[-1]["type"] == "response.completed"
    assert stream.finish() == []


def test_encode_event_frames_one_sse_event() -> None:
    event = {"type": "response.output_text.delta", "sequence_number": 4, "delta": "hé"}
    raw = encode_event(event)
    assert raw.startswith(b"event: response.output_text.delta\ndata: ") and raw.endswith(b"\n\n")
    assert orjson.loads(raw.split(b"data: ", 1)[1]) == event


def test_calls_that_reuse_one_index_stay_separate_items() -> None:
    """Some engines send every tool call at index 0, each complete in one delta: a new id means a new call."""
    req = request(tools=[WEATHER])
    chunks = [
        chunk({"role": "assistant", "tool_calls": [_call(0, "call_a", "get_weather", '{"city":"Paris"}')]}),
        chunk({"tool_calls": [_call(0, "call_b", "get_weather", '{"city":')]}),
        chunk({"tool_calls": [_call(0, arguments='"Oslo"}')]}),
        chunk({}, "tool_calls"),
    ]
    _, events = run(chunks, req)
    final = check_stream(events, req)
    assert [(item.call_id, item.arguments) for item in final.output] == [
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"city":"Oslo"}'),
    ]


def test_an_error_chunk_mid_stream_fails_the_response() -> None:
    stream = ChatToResponsesStream(request(), response_id="resp_e", created_at=1)
    events = stream.feed(chunk({"role": "assistant", "content": "Hel"}))
    events += stream.feed({"error": {"message": "CUDA out of memory", "code": 500}})
    parsed = [EVENTS.validate_python(e) for e in events]
    assert parsed[-1].type == "response.failed"
    assert parsed[-1].response.error is not None
    assert (parsed[-1].response.error.code, parsed[-1].response.error.message) == ("server_error", "CUDA out of memory")
    assert parsed[-1].response.output[0].status == "incomplete"  # what had streamed so far is kept
