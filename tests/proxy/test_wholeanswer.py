"""Whole-answer plugins: a streamed answer reaches the chain whole and the client still gets a valid stream."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from proxy import CallNext, Exchange, ResponseRejected, hookimpl, textview
from proxy.answershapes import assemble, synthesize
from proxy.registry import PluginRegistry
from tests.chain_helpers import compile_chain_policy, sse_data
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

Seen = list[dict[str, Any]]


class WholeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    suffix: str | None = Field(default=None, description="on_response appends this to every text of the answer.")
    reject: bool = Field(default=False, description="on_response raises ResponseRejected.")
    buffers: bool = Field(default=True, description="The step's buffers_response.")
    asks: int = Field(default=1, description="How many times wrap_call calls call_next.")


def whole_plugin(seen: Seen) -> type:
    class Whole:
        name = "whole"
        Config = WholeConfig

        def __init__(self, config: WholeConfig) -> None:
            self.config = config
            self.buffers_response = config.buffers

        @hookimpl
        async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> Any:
            for _ in range(self.config.asks):
                response = await call_next(exchange)
                seen.append({"stream": response.stream is not None, "body": copy.deepcopy(response.body)})
            return response

        @hookimpl
        async def on_response(self, exchange: Exchange) -> None:
            assert exchange.response is not None
            if self.config.reject:
                raise ResponseRejected("not this one", code="schema_violation")
            if self.config.suffix and exchange.response.stream is None:
                body = exchange.response.json()
                for ref in textview.response_texts(exchange.request.endpoint, body):
                    if ref.kind == "content":
                        ref.set(ref.text + self.config.suffix)

    return Whole


@pytest.fixture
def seen() -> Seen:
    return []


@pytest.fixture
def start(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    registry: PluginRegistry,
    seen: Seen,
) -> Callable[..., Any]:
    registry(whole_plugin(seen))

    async def go(chain: str = "[{whole: {}}]") -> RunningProxy:
        return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=chain)))

    return go


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_a_chain_declares_it_buffers_only_with_a_buffering_step(registry: PluginRegistry, seen: Seen) -> None:
    registry(whole_plugin(seen))
    assert compile_chain_policy("[{whole: {}}]", registry).chains["default"].buffers_response
    assert not compile_chain_policy("[{whole: {buffers: false}}]", registry).chains["default"].buffers_response
    assert not compile_chain_policy("[{params: {}}]", registry).chains["default"].buffers_response


async def test_streamed_chat_is_seen_whole_and_replayed_byte_for_byte(start: Any, seen: Seen) -> None:
    running = await start()
    body = {"model": "mock-gpt", "messages": ask("hello there [[mock:tokens=5]]"), "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    async with aiohttp.ClientSession() as session, session.post(running.url + "/chat/completions", json=body) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        events = sse_data(await r.read())
    assert seen[0]["stream"] is False
    answer = seen[0]["body"]
    assert answer["object"] == "chat.completion" and answer["usage"]["completion_tokens"] == 5
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert content == answer["choices"][0]["message"]["content"] == "Mock reply to: hello"
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 5 and events[-2]["choices"] == []
    assert len(events) == 5 + 4  # role, 5 pieces, finish, usage, [DONE]: the upstream's own chunks


async def test_an_edited_answer_is_replayed_as_a_new_stream_the_sdk_reads(start: Any) -> None:
    running = await start("[{whole: {suffix: ' (checked)'}}]")
    async with running.client() as client:
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=ask("hi [[mock:tokens=3]]"), stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith(" (checked)") and len(text.split()) == 4
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_every_re_ask_comes_back_whole(start: Any, seen: Seen) -> None:
    running = await start("[{whole: {asks: 2}}]")
    async with running.client() as client:
        stream = await client.chat.completions.create(model="mock-gpt", messages=ask("again"), stream=True)
        assert [c async for c in stream]
    assert [s["stream"] for s in seen] == [False, False]


async def test_streamed_tool_calls_are_assembled(start: Any, seen: Seen) -> None:
    running = await start("[{whole: {suffix: '!'}}]")  # edits content only: tool calls travel in a new stream
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
    async with running.client() as client:
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=ask("weather?"), tools=[tool], tool_choice="required", stream=True
        )
        chunks = [c async for c in stream]
    call = seen[0]["body"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and "city" in json.loads(call["function"]["arguments"])
    streamed = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert json.loads("".join(tc.function.arguments or "" for tc in streamed if tc.function)) == json.loads(
        call["function"]["arguments"]
    )
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_streamed_completions_are_assembled_and_replayed(start: Any, seen: Seen) -> None:
    running = await start("[{whole: {suffix: '.'}}]")
    async with running.client() as client:
        stream = await client.completions.create(model="mock-gpt", prompt="say [[mock:tokens=4]]", stream=True)
        text = "".join([c.choices[0].text async for c in stream if c.choices])
    assert seen[0]["body"]["object"] == "text_completion"
    assert text == seen[0]["body"]["choices"][0]["text"] + "."


async def test_streamed_responses_are_assembled_and_replayed(start: Any, seen: Seen) -> None:
    running = await start("[{whole: {suffix: ' ok'}}]")
    async with running.client() as client:
        stream = await client.responses.create(model="mock-gpt", input="hello [[mock:tokens=3]]", stream=True)
        events = [e async for e in stream]
    assert seen[0]["body"]["object"] == "response"
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas.endswith(" ok") and events[-1].response.output_text == deltas


async def test_streamed_messages_are_assembled_and_replayed(start: Any, seen: Seen) -> None:
    running = await start("[{whole: {suffix: ' ok'}}]")
    async with anthropic.AsyncAnthropic(base_url=running.url.removesuffix("/v1"), api_key="x", max_retries=0) as c:
        async with c.messages.stream(model="mock-gpt", max_tokens=50, messages=ask("hello [[mock:tokens=3]]")) as s:
            kinds = [event.type async for event in s]
            final = await s.get_final_message()
    assert seen[0]["body"]["type"] == "message"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].type == "text" and final.content[0].text.endswith(" ok")
    assert final.usage.output_tokens == seen[0]["body"]["usage"]["output_tokens"]


async def test_a_rejected_stream_is_a_json_error_before_any_byte(start: Any) -> None:
    running = await start("[{whole: {reject: true}}]")
    async with running.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="mock-gpt", messages=ask("hi"), stream=True)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "schema_violation"  # type: ignore[index]


async def test_a_chain_without_a_buffering_step_streams_untouched(start: Any, seen: Seen) -> None:
    running = await start("[{whole: {buffers: false}}]")
    async with running.client() as client:
        stream = await client.chat.completions.create(model="mock-gpt", messages=ask("hi"), stream=True)
        assert [c async for c in stream]
    assert seen[0]["stream"] is True


@pytest.mark.parametrize(
    ("endpoint", "answer"),
    [
        ("chat", {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
             "logprobs": None, "finish_reason": "tool_calls"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        ("completions", {"id": "c2", "object": "text_completion", "created": 1, "model": "m", "choices": [
            {"index": 0, "text": "abc", "logprobs": None, "finish_reason": "stop"}]}),
        ("messages", {"id": "m1", "type": "message", "role": "assistant", "model": "m", "content": [
            {"type": "text", "text": "hi"}, {"type": "tool_use", "id": "tu", "name": "f", "input": {"a": 1}}],
          "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 4}}),
        ("responses", {"id": "r1", "object": "response", "status": "completed", "model": "m", "output": [
            {"type": "message", "id": "msg1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
          "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}),
    ],
)  # fmt: skip
def test_synthesized_events_assemble_back_into_the_same_answer(endpoint: str, answer: dict[str, Any]) -> None:
    events = synthesize(endpoint, answer, usage_chunk=True)
    assert assemble(endpoint, events) == answer


def test_an_empty_stream_assembles_to_nothing() -> None:
    assert assemble("chat", []) is None
    assert assemble("responses", [{"type": "response.created", "response": {}}]) is None


async def test_a_stream_cut_before_its_end_is_a_json_error_not_half_an_answer(start: Any) -> None:
    running = await start()
    async with running.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="mock-gpt", messages=ask("x [[mock:drop_after=2]]"), stream=True)
    assert caught.value.status_code == 502
