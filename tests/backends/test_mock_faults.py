"""Fault injection in the mock backend: statuses, drops, hangs, latency, fail_times, and how they are recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from backends.mock import FaultSpec, FaultSpecError, MockConfig, create_app, parse_fault

from .conftest import MockServer, StartMock

MODEL = "mock-gpt"


def _ask(text: str) -> Any:
    return [{"role": "user", "content": text}]


async def test_429_with_retry_after_raises_rate_limit_error(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=MODEL, messages=_ask("hi [[mock:status=429,retry_after=2]]"))
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.body == {
        "message": "Rate limit reached for requests (mock).",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }


async def test_503_defaults_retry_after_to_one(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model=MODEL, messages=_ask("hi [[mock:status=503]]"))
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "1"


async def test_500_raises_internal_server_error(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model=MODEL, messages=_ask("[[mock:status=500]]"))
    assert "retry-after" not in caught.value.response.headers
    assert caught.value.type == "server_error"


async def test_fault_header_and_shorthand_headers(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(
            model=MODEL,
            messages=_ask("hi"),
            extra_headers={"x-mock-fault": "status=401"},
        )
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=_ask("hi"),
        extra_headers={"x-mock-tokens": "4"},
    )
    assert completion.usage is not None and completion.usage.completion_tokens == 4


async def test_drop_after_breaks_the_stream(mock_server: MockServer, client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=_ask("hi [[mock:drop_after=3,tokens=20]]"),
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    records = await mock_server.wait_for_outcome("dropped")
    assert records[-1]["body"]["stream"] is True


async def test_drop_after_with_chunk_delay_breaks_the_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=_ask("hi [[mock:drop_after=2,chunk_delay_ms=1]]"),
        stream=True,
    )
    with pytest.raises(openai.APIConnectionError):
        _ = [chunk async for chunk in stream]


async def test_drop_without_stream_closes_without_a_response(
    mock_server: MockServer, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=_ask("hi [[mock:drop_after=0]]"))
    await mock_server.wait_for_outcome("dropped")


@pytest.mark.parametrize("handler_cancellation", [True, False])
@pytest.mark.parametrize("fault", ["hang", "latency_ms=60000"])
async def test_client_timeout_is_recorded_as_disconnect(
    start_mock: StartMock, handler_cancellation: bool, fault: str
) -> None:
    server = await start_mock(handler_cancellation=handler_cancellation)
    async with server.client(timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model=MODEL, messages=_ask(f"hi [[mock:{fault}]]"))
    await server.wait_for_outcome("client_disconnected")


async def test_hang_is_recorded_as_hung_until_the_client_leaves(mock_server: MockServer) -> None:
    async with mock_server.client() as client:
        pending = asyncio.create_task(client.chat.completions.create(model=MODEL, messages=_ask("[[mock:hang]]")))
        await mock_server.wait_for_outcome("hung")
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    records = await mock_server.wait_for_outcome("client_disconnected")
    assert len(records) == 1


@pytest.mark.parametrize("handler_cancellation", [True, False])
async def test_client_leaving_mid_stream_is_recorded(start_mock: StartMock, handler_cancellation: bool) -> None:
    server = await start_mock(handler_cancellation=handler_cancellation)
    async with server.client() as client:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=_ask("[[mock:tokens=1000,chunk_delay_ms=5]]"),
            stream=True,
        )
        async for _chunk in stream:
            break
        await stream.close()
    await server.wait_for_outcome("client_disconnected")


async def test_fail_times_fails_then_succeeds(mock_server: MockServer, client: openai.AsyncOpenAI) -> None:
    messages = _ask("retry me [[mock:status=500,fail_times=2]]")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=MODEL, messages=messages)
    completion = await client.chat.completions.create(model=MODEL, messages=messages)
    assert completion.choices[0].message.content == "Mock reply to: retry me"
    outcomes = [record["outcome"] for record in await mock_server.requests()]
    assert outcomes == ["error", "error", "completed"]


async def test_sdk_retries_succeed_after_fail_times(mock_server: MockServer) -> None:
    async with mock_server.client(max_retries=2) as client:
        messages = _ask("[[mock:status=503,retry_after=0.01,fail_times=2]]")
        completion = await client.chat.completions.create(model=MODEL, messages=messages)
    assert completion.choices[0].finish_reason == "stop"
    assert len(await mock_server.requests()) == 3


async def test_global_fault_from_config(start_mock: StartMock) -> None:
    server = await start_mock(MockConfig(fault="status=502"))
    async with server.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.embeddings.create(model="mock-embed", input="x")
        assert caught.value.status_code == 502
        models = await client.models.list()  # faults only apply to inference endpoints
    assert [model.id for model in models.data] == ["mock-gpt", "mock-embed"]


async def test_invalid_fault_is_a_400_naming_the_key(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODEL, messages=_ask("[[mock:explode=1]]"))
    assert "'explode'" in caught.value.message
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as from_header:
        await client.chat.completions.create(
            model=MODEL,
            messages=_ask("hi"),
            extra_headers={"x-mock-fault": "status=abc"},
        )
    assert "'status'" in from_header.value.message


def test_invalid_config_fault_fails_at_create_app() -> None:
    with pytest.raises(FaultSpecError, match="'latency'"):
        create_app(MockConfig(fault="latency=5"))


def test_parse_fault_syntax() -> None:
    spec = parse_fault(" Status=429 , retry-after=1.5,hang,tokens=0,fail_times=3 ")
    assert spec == FaultSpec(status=429, retry_after=1.5, hang=True, tokens=0, fail_times=3)
    assert spec.canonical() == "status=429,retry_after=1.5,hang=True,tokens=0,fail_times=3".replace("hang=True", "hang")
    assert FaultSpec(latency_ms=5).merged(parse_fault("tokens=2")) == FaultSpec(latency_ms=5, tokens=2)
    for bad, key in [("status=200", "status"), ("tokens=-1", "tokens"), ("hang=maybe", "hang"), ("x", "x")]:
        with pytest.raises(FaultSpecError) as caught:
            parse_fault(bad)
        assert caught.value.key == key


async def test_shutdown_ends_a_hang(start_mock: StartMock) -> None:
    server = await start_mock()
    runner_cleanup = server.app.shutdown  # what AppRunner.cleanup runs before waiting for open connections
    async with server.client() as client:
        pending = asyncio.create_task(client.chat.completions.create(model=MODEL, messages=_ask("[[mock:hang]]")))
        await server.wait_for_outcome("hung")
        await runner_cleanup()
        with pytest.raises(openai.InternalServerError) as caught:
            await pending
    assert caught.value.status_code == 503
