"""The text view finds every model-visible text in each endpoint's shapes, and replaces texts in place."""

from __future__ import annotations

import copy
from typing import Any

from proxy.exchange import ApiRequest
from proxy.textview import chunk_texts, request_texts, response_texts


def chat(body: dict[str, Any]) -> ApiRequest:
    return ApiRequest("chat", "/chat/completions", body)


FULL_CHAT: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "sys text"},
        {"role": "developer", "content": [{"type": "text", "text": "dev part"}]},
        {"role": "user", "name": "alice_w", "content": [
            {"type": "text", "text": "user part one"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "text", "text": "user part two"},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "weather"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "tool result text"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no can do"}]},
        {"role": "assistant", "function_call": {"name": "old", "arguments": '{"a": 1}'}, "content": "legacy"},
        {"role": "function", "name": "old", "content": "function result"},
    ],
    "tools": [{"type": "function", "function": {
        "name": "lookup", "description": "Look things up",
        "parameters": {"type": "object", "properties": {
            "q": {"type": "string", "description": "the query"},
            "opts": {"type": "array", "items": {"type": "object", "properties": {"k": {"description": "deep"}}}},
        }},
    }}],
}  # fmt: skip


def test_every_chat_request_text_is_found_with_role_kind_and_trust() -> None:
    refs = request_texts(chat(copy.deepcopy(FULL_CHAT)))
    got = [(r.text, r.role, r.kind, r.trust) for r in refs]
    assert got == [
        ("sys text", "system", "content", "system"),
        ("dev part", "developer", "content", "system"),
        ("user part one", "user", "content", "user"),
        ("user part two", "user", "content", "user"),
        ("alice_w", "user", "name", "user"),
        ('{"q": "weather"}', "assistant", "tool_arguments", "model"),
        ("tool result text", "tool", "content", "untrusted"),
        ("no can do", "assistant", "refusal", "model"),
        ("legacy", "assistant", "content", "model"),
        ('{"a": 1}', "assistant", "tool_arguments", "model"),
        ("function result", "function", "content", "untrusted"),
        ("old", "function", "name", "untrusted"),
        ("Look things up", "tools", "tool_definition", "system"),
        ("the query", "tools", "tool_definition", "system"),
        ("deep", "tools", "tool_definition", "system"),
    ]
    assert [r.json for r in refs if r.kind == "tool_arguments"] == [True, True]
    assert refs[2].path == ("messages", 2, "content", 0, "text")


def test_replacing_texts_edits_the_body_in_place_and_leaves_the_rest_alone() -> None:
    body = copy.deepcopy(FULL_CHAT)
    for ref in request_texts(chat(body)):
        ref.set(ref.text.upper())
    assert body["messages"][0]["content"] == "SYS TEXT"
    assert body["messages"][2]["content"][1] == FULL_CHAT["messages"][2]["content"][1]  # the image part
    assert body["messages"][2]["content"][2]["text"] == "USER PART TWO"
    assert body["messages"][3]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"Q": "WEATHER"}'}
    assert body["messages"][3]["content"] is None
    assert body["tools"][0]["function"]["parameters"]["properties"]["q"]["description"] == "THE QUERY"
    assert body["tools"][0]["function"]["name"] == "lookup"


def test_odd_shapes_are_skipped_not_crashed_on() -> None:
    body = {"messages": [None, 3, {"role": 7, "content": [1, {"type": "text", "text": 5}, {"type": "text"}]},
                         {"role": "user", "content": {"not": "a list"}}, {"content": "roleless"}],
            "tools": ["x", {"function": "y"}, {"function": {"parameters": {"properties": {"a": 1}}}}]}  # fmt: skip
    assert [(r.text, r.role) for r in request_texts(chat(body))] == [("roleless", "user")]
    assert request_texts(chat({"messages": "nope"})) == []


def test_a_hostile_deep_schema_does_not_recurse_without_end() -> None:
    schema: dict[str, Any] = {"description": "leaf"}
    for _ in range(200):
        schema = {"type": "object", "properties": {"x": schema}, "description": "level"}
    body = {"messages": [], "tools": [{"function": {"name": "f", "parameters": schema}}]}
    assert 0 < len(request_texts(chat(body))) <= 18


def test_completions_prompt_as_string_or_list_and_token_ids_skipped() -> None:
    one = ApiRequest("completions", "/completions", {"prompt": "say hi"})
    assert [(r.text, r.kind, r.trust) for r in request_texts(one)] == [("say hi", "prompt", "user")]
    many_body: dict[str, Any] = {"prompt": ["a", [1, 2, 3], "b"]}
    many = request_texts(ApiRequest("completions", "/completions", many_body))
    assert [r.path for r in many] == [("prompt", 0), ("prompt", 2)]
    many[1].set("B")
    assert many_body["prompt"] == ["a", [1, 2, 3], "B"]
    assert request_texts(ApiRequest("completions", "/completions", {"prompt": [1, 2]})) == []


def test_embeddings_input_as_string_or_list() -> None:
    body: dict[str, Any] = {"input": "embed me"}
    refs = request_texts(ApiRequest("embeddings", "/embeddings", body))
    refs[0].set("x")
    assert body == {"input": "x"} and refs[0].kind == "input"
    listed = request_texts(ApiRequest("embeddings", "/embeddings", {"input": ["one", "two", [5, 6]]}))
    assert [r.text for r in listed] == ["one", "two"]
    assert request_texts(ApiRequest("other", "/x", {"input": "y"})) == []


def test_whole_chat_answer_with_several_choices_and_tool_calls() -> None:
    body = {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": "first"}},
        {"index": 1, "message": {"role": "assistant", "content": None, "refusal": "refused", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": "y"}'}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ]}},
    ]}  # fmt: skip
    refs = response_texts("chat", body)
    assert [(r.text, r.kind, r.stream_key) for r in refs] == [
        ("first", "content", (0, "content", None)),
        ("refused", "refusal", (1, "refusal", None)),
        ('{"x": "y"}', "tool_arguments", (1, "tool_arguments", 0)),
        ("{}", "tool_arguments", (1, "tool_arguments", 1)),
    ]
    refs[2].set('{"x": "z"}')
    assert body["choices"][1]["message"]["tool_calls"][0]["function"]["arguments"] == '{"x": "z"}'


def test_stream_deltas_name_the_text_they_extend() -> None:
    chunk = {"choices": [
        {"index": 1, "delta": {"content": "piece"}},
        {"index": 0, "delta": {"tool_calls": [{"index": 2, "function": {"arguments": '{"q'}}]}},
        {"index": 3, "delta": {"function_call": {"arguments": "1"}}},
        {"index": 4, "delta": {}, "finish_reason": "stop"},
    ]}  # fmt: skip
    refs = chunk_texts("chat", chunk)
    assert [(r.text, r.stream_key, r.json) for r in refs] == [
        ("piece", (1, "content", None), False),
        ('{"q', (0, "tool_arguments", 2), True),
        ("1", (3, "function_arguments", None), True),
    ]
    assert chunk_texts("chat", {"choices": [], "usage": {"prompt_tokens": 1}}) == []
    assert chunk_texts("chat", {"object": "no choices"}) == []


def test_legacy_completion_answers_and_chunks() -> None:
    body = {"choices": [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]}
    assert [(r.text, r.stream_key) for r in response_texts("completions", body)] == [
        ("a", (0, "content", None)),
        ("b", (1, "content", None)),
    ]
    assert [r.text for r in chunk_texts("completions", {"choices": [{"index": 0, "text": "c"}]})] == ["c"]
