"""The Responses API with the official openai SDK, through the proxy to a chat-only upstream (the mock)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, serve_process, simple_policy

pytestmark = pytest.mark.asyncio

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


async def test_create_answers_with_text_usage_and_a_stored_id(
    client: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    response = await client.responses.create(
        model="mock-gpt", instructions="Be brief.", input="Tell me about proxies", max_output_tokens=64
    )
    assert response.status == "completed" and response.object == "response"
    assert response.id.startswith("resp_")
    assert response.output_text == "Mock reply to: Tell me about proxies"
    assert response.usage is not None and response.usage.output_tokens > 0 and response.usage.input_tokens > 0
    sent = (await mock_upstream.requests())[-1]
    assert sent["path"] == "/v1/chat/completions"  # translated for a backend that speaks only chat
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me about proxies"},
    ]
    assert sent["body"]["max_tokens"] == 64


async def test_stream_events_are_numbered_and_rebuild_the_same_answer(client: openai.AsyncOpenAI) -> None:
    whole = await client.responses.create(model="mock-gpt", input="Say something about streams")
    async with client.responses.stream(model="mock-gpt", input="Say something about streams") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") > 3  # it really streamed
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == whole.output_text
    assert final.usage is not None and whole.usage is not None
    assert final.usage.output_tokens == whole.usage.output_tokens


async def test_function_calling_round_trip(client: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    first = await client.responses.create(
        model="mock-gpt", input="What is the weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required"
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    arguments = json.loads(calls[0].arguments)
    assert isinstance(arguments["city"], str)
    second = await client.responses.create(
        model="mock-gpt",
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
             "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny and 21 degrees"},
        ],
    )  # fmt: skip
    assert second.output_text.startswith("Mock reply using the tool result: Sunny and 21 degrees")
    messages = (await mock_upstream.requests())[-1]["body"]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert messages[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "Sunny and 21 degrees"}


async def test_streamed_function_call_arguments_reassemble(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(
        model="mock-gpt", input="Call the weather tool for Rome", tools=[WEATHER_TOOL], tool_choice="required"
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(pieces) > 1
    call = next(item for item in final.output if item.type == "function_call")
    assert "".join(pieces) == call.arguments and isinstance(json.loads(call.arguments), dict)


async def test_json_schema_output(client: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    response = await client.responses.create(
        model="mock-gpt",
        input="Invent a person",
        text={"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}},
    )
    person = json.loads(response.output_text)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    assert response.text is not None and response.text.format.type == "json_schema"
    sent = (await mock_upstream.requests())[-1]["body"]
    assert sent["response_format"]["json_schema"]["schema"] == schema


async def test_previous_response_id_carries_the_conversation_over_three_turns(
    client: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    one = await client.responses.create(model="mock-gpt", input="My name is Ada")
    two = await client.responses.create(model="mock-gpt", input="I like chess", previous_response_id=one.id)
    three = await client.responses.create(model="mock-gpt", input="What do I like?", previous_response_id=two.id)
    assert three.previous_response_id == two.id
    messages = (await mock_upstream.requests())[-1]["body"]["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "My name is Ada"),
        ("assistant", one.output_text),
        ("user", "I like chess"),
        ("assistant", two.output_text),
        ("user", "What do I like?"),
    ]
    items = await client.responses.input_items.list(three.id, order="asc")
    assert [item.type for item in items.data] == ["message"]  # its own input, not the earlier turns'


async def test_an_unknown_previous_response_id_is_a_400_naming_it(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="mock-gpt", input="hi", previous_response_id="resp_nope")
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "previous_response_id"


async def test_retrieve_and_delete_a_stored_response(client: openai.AsyncOpenAI) -> None:
    created = await client.responses.create(model="mock-gpt", input="Keep this one")
    again = await client.responses.retrieve(created.id)
    assert again.id == created.id and again.output_text == created.output_text
    await client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(created.id)
    unstored = await client.responses.create(model="mock-gpt", input="Forget this", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)


async def test_one_key_cannot_read_or_continue_anothers_responses(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    extra = "keys:\n  - {name: alice, key: sk-alice}\n  - {name: bob, key: sk-bob}\n"
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=extra)))
    async with proxy.client("sk-alice") as alice, proxy.client("sk-bob") as bob:
        secret = await alice.responses.create(model="mock-gpt", input="Alice's secret plan")
        assert (await alice.responses.retrieve(secret.id)).id == secret.id
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(secret.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.input_items.list(secret.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.delete(secret.id)
        with pytest.raises(openai.BadRequestError):
            await bob.responses.create(model="mock-gpt", input="go on", previous_response_id=secret.id)
        assert (await alice.responses.retrieve(secret.id)).id == secret.id  # bob's delete did nothing


async def test_built_in_tools_on_a_chat_only_backend_are_a_400_naming_the_tool(
    client: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="mock-gpt", input="news?", tools=[WEATHER_TOOL, {"type": "web_search"}])
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "tools[1].type" and "web_search" in body["message"]
    assert all(r["path"] != "/v1/chat/completions" for r in await mock_upstream.requests())


async def test_bad_requests_name_the_param(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="mock-gpt", input="hi", temperature=7)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "temperature"


async def test_previous_response_id_works_across_replicas_on_one_redis(
    tmp_path: Path, mock_upstream: MockUpstream, clean_redis_url: str
) -> None:
    policy = tmp_path / "shared.yaml"
    policy.write_text(simple_policy(mock_upstream.url, extra=f"store: {{backend: redis, url: '{clean_redis_url}'}}\n"))
    async with (
        serve_process(tmp_path / "a", "--policy", str(policy)) as (_, url_a),
        serve_process(tmp_path / "b", "--policy", str(policy)) as (_, url_b),
        openai.AsyncOpenAI(base_url=url_a, api_key="sk-x", max_retries=0) as a,
        openai.AsyncOpenAI(base_url=url_b, api_key="sk-x", max_retries=0) as b,
    ):
        one = await a.responses.create(model="mock-gpt", input="Remember the number 42")
        two = await b.responses.create(model="mock-gpt", input="Which number?", previous_response_id=one.id)
        three = await a.responses.create(model="mock-gpt", input="Thanks", previous_response_id=two.id)
        assert (await b.responses.retrieve(three.id)).output_text == three.output_text
    messages = (await mock_upstream.requests())[-1]["body"]["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "Remember the number 42",
        "Which number?",
        "Thanks",
    ]


async def test_a_stream_that_breaks_mid_way_raises_in_the_sdk_and_is_not_stored(client: openai.AsyncOpenAI) -> None:
    created: list[str] = []
    with pytest.raises(openai.APIError, match="closed the connection"):
        async with client.responses.stream(model="mock-gpt", input="A long story [[mock:drop_after=3]]") as stream:
            async for event in stream:
                if event.type == "response.created":
                    created.append(event.response.id)
    assert created
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(created[0])


async def test_malformed_bodies_get_openai_errors_and_messages_paths_anthropic_ones(proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.url + "/responses", data=b"{not json") as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
        async with session.post(proxy.url + "/messages", data=b"[1, 2]", headers={"x-api-key": "k"}) as r:
            body = await r.json()
            assert r.status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        async with session.get(proxy.url + "/responses/resp_missing/input_items?limit=0") as r:
            assert r.status == 400 and (await r.json())["error"]["param"] == "limit"
