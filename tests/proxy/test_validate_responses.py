"""``POST /v1/responses`` bodies: malformed ones are a 400 naming the param; odd valid shapes, unknown fields pass."""

from __future__ import annotations

from typing import Any

import pytest

from proxy import validate
from proxy.errors import InvalidRequest

FN = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": "hello", **fields}


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"input": "hi"}, "model", "missing_required_parameter"),
    (body(model=""), "model", "invalid_value"),
    ({"model": "m"}, "input", "missing_required_parameter"),
    (body(input=5), "input", "invalid_value"),
    (body(input=["hi"]), "input[0]", "invalid_value"),
    (body(input=[{"content": "hi"}]), "input[0].type", "invalid_value"),
    (body(input=[{"role": "tool", "content": "hi"}]), "input[0].role", "invalid_value"),
    (body(input=[{"type": "message", "role": "user"}]), "input[0].content", "invalid_value"),
    (body(input=[{"role": "user", "content": [{"text": "x"}]}]), "input[0].content[0]", "invalid_value"),
    (body(input=[{"type": 3}]), "input[0].type", "invalid_value"),
    (body(input=[{"type": "function_call", "call_id": "c", "name": "f"}]), "input[0].arguments", "invalid_value"),
    (body(input=[{"type": "function_call_output", "output": "x"}]), "input[0].call_id", "invalid_value"),
    (body(input=[{"type": "function_call_output", "call_id": "c", "output": 3}]), "input[0].output", "invalid_value"),
    (body(input=[{"type": "item_reference"}]), "input[0].id", "invalid_value"),
    (body(instructions=["be brief"]), "instructions", "invalid_value"),
    (body(tools={"type": "function"}), "tools", "invalid_value"),
    (body(tools=["web_search"]), "tools[0]", "invalid_value"),
    (body(tools=[FN, {"name": "x"}]), "tools[1].type", "invalid_value"),
    (body(tools=[{"type": "function", "parameters": {}}]), "tools[0].name", "invalid_value"),
    (body(tools=[{**FN, "parameters": "{}"}]), "tools[0].parameters", "invalid_value"),
    (body(tool_choice="always"), "tool_choice", "invalid_value"),
    (body(tool_choice={"name": "lookup"}), "tool_choice", "invalid_value"),
    (body(tool_choice={"type": "function"}), "tool_choice.name", "invalid_value"),
    (body(text="json"), "text", "invalid_value"),
    (body(text={"format": {"type": "yaml"}}), "text.format.type", "invalid_value"),
    (body(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name", "missing_required_parameter"),
    (body(text={"format": {"type": "json_schema", "name": "a b", "schema": {}}}), "text.format.name", "invalid_value"),
    (body(text={"format": {"type": "json_schema", "name": "a"}}), "text.format.schema", "missing_required_parameter"),
    (
        body(text={"format": {"type": "json_schema", "name": "a", "schema": "{}"}}),
        "text.format.schema",
        "invalid_value",
    ),
    (body(max_output_tokens=15), "max_output_tokens", "invalid_value"),
    (body(max_output_tokens=100.5), "max_output_tokens", "invalid_value"),
    (body(temperature=2.5), "temperature", "invalid_value"),
    (body(top_p=-0.1), "top_p", "invalid_value"),
    (body(top_logprobs=21), "top_logprobs", "invalid_value"),
    (body(stream="yes"), "stream", "invalid_value"),
    (body(store=1), "store", "invalid_value"),
    (body(parallel_tool_calls="false"), "parallel_tool_calls", "invalid_value"),
    (body(previous_response_id=7), "previous_response_id", "invalid_value"),
    (body(stream_options={"include_obfuscation": False}), "stream_options", "invalid_value"),
    (body(metadata=["a"]), "metadata", "invalid_value"),
    (body(metadata={f"k{i}": "v" for i in range(17)}), "metadata", "invalid_value"),
    (body(metadata={"k": 1}), "metadata.k", "invalid_value"),
    (body(metadata={"k": "v" * 513}), "metadata.k", "invalid_value"),
    (body(truncation="sometimes"), "truncation", "invalid_value"),
    (body(include="reasoning.encrypted_content"), "include", "invalid_value"),
]


@pytest.mark.parametrize(("request_body", "param", "code"), INVALID, ids=[p for _, p, _ in INVALID])
def test_malformed_bodies_are_a_400_naming_the_param(request_body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate.responses(request_body)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)
    assert param in caught.value.message


VALID: list[dict[str, Any]] = [
    body(),
    {"model": "m", "previous_response_id": "resp_1"},  # the stored conversation is the input
    body(input=[]),
    body(
        input=[
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "c", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "ok"}]},
            {"type": "item_reference", "id": "msg_1"},
        ]
    ),
    body(tools=[FN, {"type": "web_search"}], tool_choice={"type": "function", "name": "lookup"}),
    body(tool_choice={"type": "allowed_tools", "mode": "auto", "tools": []}),
    body(text={"format": {"type": "json_schema", "name": "answer-1", "schema": {"type": "object"}}}),
    body(text={"verbosity": "low"}),
    body(max_output_tokens=16, temperature=0, top_p=1, stream=True, stream_options={"include_obfuscation": False}),
    body(metadata={f"k{i}": "v" for i in range(16)}, store=False, parallel_tool_calls=True),
    body(temperature=None, top_p=None, tools=None),  # explicit nulls mean "the default"
    body(vendor_extension={"anything": True}, top_k=40),  # unknown fields pass
]


@pytest.mark.parametrize("request_body", VALID)
def test_valid_bodies_pass(request_body: dict[str, Any]) -> None:
    validate.responses(request_body)
