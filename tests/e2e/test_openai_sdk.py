"""The official openai SDK, over real sockets, through the proxy to the mock upstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

pytestmark = pytest.mark.asyncio

MESSAGES: list[Any] = [{"role": "user", "content": "Say something about proxies and plugins"}]


async def test_chat_non_stream_passes_through(client: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    response = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=MESSAGES)
    completion = response.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert response.headers["x-request-id"]
    log = await mock_upstream.requests()
    assert log[-1]["body"]["messages"] == MESSAGES


async def test_stream_reassembles_to_the_same_content(client: openai.AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    stream = await client.chat.completions.create(
        model="mock-gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    pieces, usage, chunks = [], None, 0
    async for chunk in stream:
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert chunks > 3  # it really streamed, chunk by chunk
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


async def test_tools_round_trip(client: openai.AsyncOpenAI) -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city", "days"],
                },
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris? Call the tool."}]
    first = await client.chat.completions.create(model="mock-gpt", messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert set(args) >= {"city", "days"}
    messages += [first.choices[0].message.model_dump(exclude_none=True)]
    messages += [{"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}]
    second = await client.chat.completions.create(model="mock-gpt", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop"
    assert "21" in (second.choices[0].message.content or "")

    async with client.chat.completions.stream(model="mock-gpt", messages=messages[:1], tools=tools) as stream:
        final = await stream.get_final_completion()
    streamed_call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(streamed_call.function.arguments) == args


async def test_structured_output(client: openai.AsyncOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "score": {"type": "number"}},
        "required": ["name", "score"],
        "additionalProperties": False,
    }
    response = await client.chat.completions.create(
        model="mock-gpt",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "rating", "schema": schema, "strict": True}},
    )
    data = json.loads(response.choices[0].message.content or "")
    assert isinstance(data["name"], str) and isinstance(data["score"], int | float)


async def test_embeddings(client: openai.AsyncOpenAI) -> None:
    one = await client.embeddings.create(model="mock-embed", input=["alpha", "beta"], dimensions=12)
    again = await client.embeddings.create(model="mock-embed", input="alpha", dimensions=12)
    assert [len(item.embedding) for item in one.data] == [12, 12]
    assert one.data[0].embedding == pytest.approx(again.data[0].embedding)
    assert one.usage.prompt_tokens > 0


async def test_legacy_completions(client: openai.AsyncOpenAI) -> None:
    response = await client.completions.create(model="mock-gpt", prompt="Once upon a time", max_tokens=5)
    assert response.choices[0].text
    assert response.usage is not None and response.usage.completion_tokens <= 5


async def test_models_lists_what_the_policy_routes(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    # the named routes, then what the "*" route's upstream serves besides them  [launcher]
    assert [m.id for m in models.data] == ["mock-gpt", "aliased", "mock-embed"]
    model = await client.models.retrieve("aliased")
    assert model.owned_by == "chaperone:mock"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")


async def test_model_alias_maps_to_the_upstream_name(client: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    await client.chat.completions.create(model="aliased", messages=MESSAGES)
    assert (await mock_upstream.requests())[-1]["body"]["model"] == "upstream-name"


async def test_a_body_carrying_path_is_refused_unless_the_policy_allows_it(
    client: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.moderations.create(input="my SSN is 078-05-1120")
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "passthrough_refused"
    assert "POST /v1/moderations" in error["message"] and "passthrough.allow" in error["message"]
    assert all(r["path"] != "/v1/moderations" for r in await mock_upstream.requests())  # nothing left the proxy


async def test_an_allowed_path_is_forwarded_and_per_key_rules_replace_the_policys(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    extra = """
    passthrough:
      allow: ["GET /*", "POST /moderations"]
    keys:
      - {name: app, key: sk-app}
      - {name: audio-only, key: sk-audio, passthrough: ["POST /audio/*"]}
    """
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=extra)))
    async with proxy.client("sk-app") as app, proxy.client("sk-audio") as audio:
        result = await app.moderations.create(input="hello [[mock:flag]]")
        assert result.results[0].flagged is True
        with pytest.raises(openai.PermissionDeniedError, match=r"keys\[1\]\.passthrough"):
            await audio.moderations.create(input="hello")
        with pytest.raises(openai.PermissionDeniedError):  # the key's list replaces the policy's: no GET either
            await audio.files.list()


async def test_a_body_less_path_is_forwarded_by_default(proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            proxy.url + "/files?purpose=batch&limit=2", headers={"OpenAI-Organization": "org-1", "Connection": "close"}
        ) as r:
            assert r.status == 404  # the upstream's own answer to a path it does not serve
            assert (await r.json())["error"]["code"] == "unknown_url"
            assert r.headers["x-request-id"]
    seen = (await mock_upstream.requests())[-1]
    assert seen["path"] == "/v1/files" and seen["query"] == "purpose=batch&limit=2"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["openai-organization"] == "org-1"
    assert headers.get("connection", "").lower() != "close"  # hop-by-hop headers are not forwarded


async def test_client_key_is_forwarded_when_open_and_the_backend_has_none(
    proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with proxy.client(api_key="sk-users-own") as c:
        await c.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    headers = {k.lower(): v for k, v in (await mock_upstream.requests())[-1]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-users-own"


async def test_unknown_fields_pass_through(client: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    await client.chat.completions.create(
        model="mock-gpt", messages=MESSAGES, extra_body={"vendor_knob": {"a": [1, 2]}, "top_k": 3}
    )
    body = (await mock_upstream.requests())[-1]["body"]
    assert body["vendor_knob"] == {"a": [1, 2]} and body["top_k"] == 3


async def test_request_id_is_kept_when_sent(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=MESSAGES, extra_headers={"x-request-id": "trace-abc-123"}
    )
    assert raw.headers["x-request-id"] == "trace-abc-123"


async def test_health_and_readiness(proxy: RunningProxy) -> None:
    base = proxy.url.removesuffix("/v1")
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/healthz") as r:
            assert r.status == 200
        async with session.get(base + "/readyz") as r:
            assert r.status == 200, await r.text()
