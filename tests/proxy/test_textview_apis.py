"""The text view on the Responses API and Anthropic Messages: every text found, with trust; stream ends and deltas."""

from __future__ import annotations

import copy
from typing import Any

from proxy.exchange import ApiRequest
from proxy.textview import (
    append_text,
    chunk_ends,
    chunk_texts,
    delta_chunk,
    key_matches,
    request_texts,
    response_texts,
)

RESPONSES_REQUEST: dict[str, Any] = {
    "model": "m",
    "instructions": "be kind",
    "input": [
        {"role": "developer", "content": "dev rule"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "user text"},
            {"type": "input_image", "image_url": "https://example.com/a.png"},
        ]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "earlier answer"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"q": "x"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "tool said hi"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}]},
    ],
    "tools": [{"type": "function", "name": "f", "description": "finds",
               "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "query"}}}},
              {"type": "web_search"}],
}  # fmt: skip

MESSAGES_REQUEST: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "system": [{"type": "text", "text": "sys block"}],
    "messages": [
        {"role": "user", "content": "plain user"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "let me look"},
            {"type": "tool_use", "id": "t1", "name": "crm", "input": {"q": "who", "filters": [{"name": "x"}]}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "result text"}]},
            {"type": "text", "text": "thanks"},
        ]},
    ],
    "tools": [{"name": "crm", "description": "customer db",
               "input_schema": {"type": "object", "properties": {"q": {"description": "the query"}}}}],
}  # fmt: skip


def texts(endpoint: str, body: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(r.text, r.role, r.kind, r.trust) for r in request_texts(ApiRequest(endpoint, "/x", body))]


def test_every_responses_request_text_is_found_with_its_trust() -> None:
    assert texts("responses", copy.deepcopy(RESPONSES_REQUEST)) == [
        ("be kind", "system", "content", "system"),
        ("dev rule", "developer", "content", "system"),
        ("user text", "user", "content", "user"),
        ("earlier answer", "assistant", "content", "model"),
        ('{"q": "x"}', "assistant", "tool_arguments", "model"),
        ("tool said hi", "tool", "content", "untrusted"),
        ("thought", "assistant", "reasoning_summary", "model"),
        ("finds", "tools", "tool_definition", "system"),
        ("query", "tools", "tool_definition", "system"),
    ]
    assert texts("responses", {"input": "just a string"}) == [("just a string", "user", "content", "user")]


def test_every_messages_request_text_is_found_with_its_trust() -> None:
    assert texts("messages", copy.deepcopy(MESSAGES_REQUEST)) == [
        ("sys block", "system", "content", "system"),
        ("plain user", "user", "content", "user"),
        ("let me look", "assistant", "content", "model"),
        ("who", "assistant", "tool_arguments", "model"),
        ("x", "assistant", "tool_arguments", "model"),
        ("result text", "tool", "content", "untrusted"),
        ("thanks", "user", "content", "user"),
        ("customer db", "tools", "tool_definition", "system"),
        ("the query", "tools", "tool_definition", "system"),
    ]


def test_replacing_texts_edits_the_request_in_place() -> None:
    body = copy.deepcopy(MESSAGES_REQUEST)
    for ref in request_texts(ApiRequest("messages", "/messages", body)):
        ref.set(ref.text.upper())
    assert body["messages"][1]["content"][1]["input"] == {"q": "WHO", "filters": [{"name": "X"}]}
    assert body["messages"][2]["content"][0]["content"][0]["text"] == "RESULT TEXT"
    body = copy.deepcopy(RESPONSES_REQUEST)
    for ref in request_texts(ApiRequest("responses", "/responses", body)):
        ref.set(ref.text.upper())
    assert body["input"][4]["output"] == "TOOL SAID HI" and body["instructions"] == "BE KIND"


def test_answers_name_each_growing_text() -> None:
    response = {"output": [
        {"type": "message", "content": [{"type": "output_text", "text": "a"}, {"type": "refusal", "refusal": "b"}]},
        {"type": "function_call", "arguments": "{}"},
    ]}  # fmt: skip
    assert [(r.text, r.stream_key) for r in response_texts("responses", response)] == [
        ("a", (0, "content", 0)), ("b", (0, "refusal", 1)), ("{}", (1, "tool_arguments", None))
    ]  # fmt: skip
    message = {"content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "input": {"k": "v"}}]}
    assert [r.text for r in response_texts("messages", message)] == ["hi", "v"]


def test_responses_events_deltas_whole_texts_and_ends() -> None:
    delta = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
             "delta": "Hel", "logprobs": [], "sequence_number": 4}  # fmt: skip
    (ref,) = chunk_texts("responses", delta)
    assert ref.stream_key == (0, "content", 0) and ref.text == "Hel"
    done = {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0,
            "text": "Hello", "sequence_number": 9}  # fmt: skip
    (whole,) = chunk_texts("responses", done)
    assert whole.stream_key is None and whole.text == "Hello"
    assert key_matches((0, "content", 0), chunk_ends("responses", done))
    assert not key_matches((1, "content", 0), chunk_ends("responses", done))
    assert not append_text("responses", done, (0, "content", 0), "lo")
    extra = delta_chunk("responses", (0, "content", 0), "lo", delta)
    assert extra["type"] == "response.output_text.delta" and extra["item_id"] == "msg_1" and extra["delta"] == "lo"
    completed = {"type": "response.completed", "response": {"output": [
        {"type": "message", "content": [{"type": "output_text", "text": "Hello"}]}]}}  # fmt: skip
    assert [(r.text, r.stream_key) for r in chunk_texts("responses", completed)] == [("Hello", None)]
    assert chunk_ends("responses", completed) == [()]


def test_messages_events_deltas_and_ends() -> None:
    delta = {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a'}}
    (ref,) = chunk_texts("messages", delta)
    assert ref.stream_key == (1, "tool_arguments", None) and ref.json
    assert key_matches((1, "tool_arguments", None), chunk_ends("messages", {"type": "content_block_stop", "index": 1}))
    assert chunk_ends("messages", {"type": "message_delta", "delta": {}}) == [()]
    extra = delta_chunk("messages", (0, "content", None), "tail", {})
    assert extra == {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "tail"}}


def test_chat_finish_chunks_carry_released_text_themselves() -> None:
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]}
    assert chunk_ends("chat", chunk) == [(0,)]
    assert append_text("chat", chunk, (0, "content", None), "yz")
    assert chunk["choices"][0]["delta"]["content"] == "xyz"
