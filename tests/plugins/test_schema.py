"""The schema plugin: config checks, JSON parsing and validation, repair through the mock, tools, guided, streams."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from plugins._schema.check import Checker, NotJson, parse_json
from plugins.schema import Schema, SchemaConfig
from proxy.exchange import ApiResponse
from proxy.policy import PolicyError
from proxy.registry import PluginRegistry
from tests.chain_helpers import StubBackend, compile_chain_policy, make_exchange
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
WEATHER: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
CLOCK: Any = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def start(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> Callable[..., Any]:
    async def go(config: str = "{}") -> RunningProxy:
        return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=f"[{{schema: {config}}}]")))

    return go


async def chat_calls(mock: MockUpstream) -> list[dict[str, Any]]:
    return [r["body"] for r in await mock.requests() if r["path"] == "/v1/chat/completions"]


# ---- config and the pieces ------------------------------------------------------------------------


def test_a_broken_policy_schema_is_refused_naming_its_path(registry: PluginRegistry) -> None:
    with pytest.raises(PolicyError) as info:
        compile_chain_policy("[{schema: {schemas: {'*': {type: objekt}}}}]", registry)
    report = info.value.report()
    assert "chains.default[0].schema.schemas" in report and "not a valid JSON schema" in report
    with pytest.raises(PolicyError, match="attempts"):
        compile_chain_policy("[{schema: {attempts: 0}}]", registry)


def test_json_inside_a_markdown_fence_is_read() -> None:
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json("  ```\n[1, 2]\n```  ") == [1, 2]
    assert parse_json('{"a": 1}') == {"a": 1}
    with pytest.raises(NotJson):
        parse_json('Sure! {"a": 1')


def test_problems_name_the_path_and_strict_forbids_extra_keys() -> None:
    checker = Checker()
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert checker.problems(loose, {"a": "x", "b": 1}, strict=False) == []
    strict = [p.message for p in checker.problems(loose, {"b": 1}, strict=True)]
    assert any("'a' is a required property" in m for m in strict) and any("'b' was unexpected" in m for m in strict)
    [problem] = checker.problems(PERSON, {"name": "x", "age": -1}, strict=False)
    assert problem.path == "$.age" and "minimum" in problem.message


async def test_discarded_answers_are_added_to_the_accounting(registry: PluginRegistry) -> None:
    policy = compile_chain_policy("[{schema: {}}]", registry)
    answers = iter(['{"name": "x"', '{"name": "x", "age": 3}'])

    def handler(_: Any) -> dict[str, Any]:
        message = {"role": "assistant", "content": next(answers)}
        return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}  # fmt: skip

    stub = StubBackend(handler)
    exchange = make_exchange(policy, {"model": "m", "messages": ask("who?"), "response_format": FORMAT})
    response = await policy.default_chain.run(exchange, stub)
    assert json.loads(response.json()["choices"][0]["message"]["content"]) == {"name": "x", "age": 3}
    assert [r.usage.total_tokens for r in exchange.subcalls if r.usage] == [15]
    assert len(stub.calls) == 2 and exchange.request.body["messages"] == ask("who?")  # repair turns not kept
    assert response.headers["x-chaperone-schema"] == "repaired"


def test_audit_mode_does_not_buffer() -> None:
    assert Schema(SchemaConfig()).buffers_response is True
    assert Schema(SchemaConfig(mode="audit")).buffers_response is False


# ---- end to end, the openai SDK through the proxy to the mock -------------------------------------


async def test_malformed_then_valid_json_is_repaired_once(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start()
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=ask("Who is it? [[mock:bad_json]]"), response_format=FORMAT
        )
    answer = raw.parse()
    assert set(json.loads(answer.choices[0].message.content or "")) == {"name", "age"}
    assert raw.headers["x-chaperone-schema"] == "repaired"
    calls = await chat_calls(mock_upstream)
    assert len(calls) == 2
    repair = calls[1]["messages"]
    assert repair[1]["role"] == "assistant" and repair[1]["content"].startswith("Sure! Here it is:")
    assert "not valid JSON" in repair[2]["content"] and '"age"' in repair[2]["content"]


async def test_always_invalid_json_is_a_502_with_the_errors_after_n_attempts(
    start: Any, mock_upstream: MockUpstream
) -> None:
    running = await start("{attempts: 3}")
    async with running.client(default_headers={"x-mock-fault": "wrong_json"}) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="mock-gpt", messages=ask("Who?"), response_format=FORMAT)
    assert caught.value.status_code == 502
    error: Any = caught.value.body
    assert error["code"] == "schema_violation" and "after 3 attempt(s)" in error["message"]
    assert {"path": "$", "message": "Additional properties are not allowed ('mock_wrong' was unexpected)"} in error[
        "errors"
    ]
    assert len(await chat_calls(mock_upstream)) == 3


async def test_flag_returns_the_last_answer_with_a_header(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start("{attempts: 2, on_failure: flag}")
    async with running.client(default_headers={"x-mock-fault": "bad_json"}) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=ask("Who?"), response_format={"type": "json_object"}
        )
    assert raw.headers["x-chaperone-schema"] == "invalid"
    assert "not valid JSON" in raw.headers["x-chaperone-schema-errors"]
    assert (raw.parse().choices[0].message.content or "").startswith("Sure!")
    assert len(await chat_calls(mock_upstream)) == 2


async def test_a_fenced_answer_passes_without_a_repair(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start()
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=ask("Who? [[mock:fence_json]]"), response_format=FORMAT
        )
    assert (raw.parse().choices[0].message.content or "").startswith("```json")
    assert raw.headers["x-chaperone-schema"] == "valid" and len(await chat_calls(mock_upstream)) == 1


async def test_invalid_tool_arguments_are_repaired(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start()
    async with running.client() as client:
        answer = await client.chat.completions.create(
            model="mock-gpt", messages=ask("weather in Oslo [[mock:bad_json]]"), tools=[WEATHER], tool_choice="required"
        )
    call: Any = (answer.choices[0].message.tool_calls or [])[0]
    assert "city" in json.loads(call.function.arguments)
    calls = await chat_calls(mock_upstream)
    assert len(calls) == 2 and "tool_calls[0].arguments" in calls[1]["messages"][-1]["content"]


async def test_a_tool_outside_the_allow_list_is_refused(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start("{allowed_tools: [get_time], attempts: 2}")
    async with running.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="mock-gpt", messages=ask("get_weather please"), tools=[WEATHER, CLOCK], tool_choice="required"
            )
    error: Any = caught.value.body
    assert caught.value.status_code == 502 and "'get_weather', which is not allowed" in error["message"]


async def test_a_policy_schema_is_told_to_the_model_and_enforced(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start("{schemas: {'*': {type: object, required: [reply]}}, attempts: 1, set_format: false}")
    async with running.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="mock-gpt", messages=ask("hi"))  # prose: not JSON
    assert caught.value.status_code == 502
    [call] = await chat_calls(mock_upstream)
    assert call["messages"][0]["role"] == "system" and '"required":["reply"]' in call["messages"][0]["content"]
    assert "response_format" not in call


async def test_a_policy_schema_is_asked_for_in_the_response_format(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start("{schemas: {mock-gpt: {type: object, required: [reply]}}, strict: true}")
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=ask("hi"))
    assert raw.headers["x-chaperone-schema"] == "valid"
    [call] = await chat_calls(mock_upstream)
    assert call["response_format"]["json_schema"]["strict"] is True


@pytest.mark.parametrize("field", ["guided_json", "structured_outputs"])
async def test_guided_decoding_passes_the_schema_down(start: Any, mock_upstream: MockUpstream, field: str) -> None:
    running = await start(f"{{guided: {field}}}")
    async with running.client() as client:
        await client.chat.completions.create(model="mock-gpt", messages=ask("Who?"), response_format=FORMAT)
    [call] = await chat_calls(mock_upstream)
    assert call[field] == (PERSON if field == "guided_json" else {"json": PERSON})


async def test_guided_decoding_only_for_the_named_backends(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start("{guided: guided_json, guided_backends: [vllm]}")
    async with running.client() as client:
        await client.chat.completions.create(model="mock-gpt", messages=ask("Who?"), response_format=FORMAT)
    [call] = await chat_calls(mock_upstream)
    assert "guided_json" not in call


async def test_a_stream_is_held_repaired_and_released_as_valid_sse(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start()
    async with running.client() as client:
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=ask("Who? [[mock:bad_json]]"), response_format=FORMAT, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert set(json.loads(text)) == {"name", "age"}
    assert chunks[-1].usage is not None and len(await chat_calls(mock_upstream)) == 2


async def test_audit_mode_streams_live_and_logs_the_verdict(
    start: Any, mock_upstream: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start("{mode: audit}")
    with caplog.at_level(logging.WARNING, logger="plugins.schema"):
        async with running.client() as client:
            stream = await client.chat.completions.create(
                model="mock-gpt", messages=ask("Who? [[mock:bad_json]]"), response_format=FORMAT, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Sure!")  # passed on as the upstream wrote it
    assert len(await chat_calls(mock_upstream)) == 1
    assert any("schema audit: invalid answer" in r.getMessage() for r in caplog.records)


async def test_an_error_answer_is_passed_on_unchecked(registry: PluginRegistry) -> None:
    policy = compile_chain_policy("[{schema: {}}]", registry)
    stub = StubBackend(lambda _: ApiResponse(400, body={"error": {"message": "bad"}}))
    exchange = make_exchange(policy, {"model": "m", "messages": ask("x"), "response_format": FORMAT})
    assert (await policy.default_chain.run(exchange, stub)).status == 400 and len(stub.calls) == 1


async def test_a_responses_text_format_is_enforced_streamed_or_not(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start()
    text: Any = {"format": {"type": "json_schema", "name": "person", "schema": PERSON}}
    who = "Who? [[mock:bad_json]]"
    async with running.client() as client:
        raw = await client.responses.with_raw_response.create(model="mock-gpt", input=who, text=text)
        stream = await client.responses.create(model="mock-gpt", input=who, text=text, stream=True)
        events = [e async for e in stream]
    assert raw.headers["x-chaperone-schema"] == "repaired"
    assert set(json.loads(raw.parse().output_text)) == {"name", "age"}
    assert events[-1].type == "response.completed"
    assert set(json.loads(events[-1].response.output_text)) == {"name", "age"}
    assert len(await chat_calls(mock_upstream)) == 4


async def test_messages_tool_use_input_is_checked_and_repaired(start: Any, mock_upstream: MockUpstream) -> None:
    running = await start()
    tool: Any = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    async with anthropic.AsyncAnthropic(base_url=running.url.removesuffix("/v1"), api_key="x", max_retries=0) as claude:
        raw = await claude.messages.with_raw_response.create(
            model="mock-gpt", max_tokens=100, tools=[tool], tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "weather in Oslo [[mock:bad_json]]"}],
        )  # fmt: skip
        message = await raw.parse()
    assert raw.headers["x-chaperone-schema"] == "repaired"
    use: Any = message.content[0]
    assert use.type == "tool_use" and "city" in use.input
    calls = await chat_calls(mock_upstream)
    assert len(calls) == 2 and "$.content[0].arguments" in calls[1]["messages"][-1]["content"]
