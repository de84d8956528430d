"""``type: anthropic``: the openai SDK (and the anthropic SDK) through the proxy to a stand-in Anthropic server."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp import web

from tests.conftest import ProxyFactory, RunningProxy, start_site
from tests.providers.anthropic_standin import CACHE_READ, CACHE_WRITE, KEY, STANDIN, create_app

pytestmark = pytest.mark.asyncio

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Upstream:
    def __init__(self, app: web.Application, url: str) -> None:
        self.app, self.url = app, url

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.app[STANDIN].requests


@pytest.fixture
async def standin() -> AsyncIterator[Upstream]:
    app = create_app()
    runner, url = await start_site(app)
    yield Upstream(app, url)
    await runner.cleanup()


def policy(url: str, key: str | None = KEY) -> str:
    key_line = f", api_key: {key}" if key else ""
    return textwrap.dedent(f"""
    backends:
      claude: {{type: anthropic, url: "{url}"{key_line}}}
    models:
      claude-chat: {{backend: claude, model: claude-standin}}
      "*": {{backend: claude}}
    passthrough:
      allow: ["WS /realtime"]
    chains:
      default: []
    """)


@pytest.fixture
async def proxy(start_proxy: ProxyFactory, standin: Upstream, write_policy: Callable[[str], Path]) -> RunningProxy:
    return await start_proxy(write_policy(policy(standin.url)))


@pytest.fixture
async def client(proxy: RunningProxy) -> AsyncIterator[openai.AsyncOpenAI]:
    async with proxy.client() as c:
        yield c


async def test_chat_becomes_a_message_and_back(client: openai.AsyncOpenAI, standin: Upstream) -> None:
    answer = await client.chat.completions.create(
        model="claude-chat",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        stop="END",
        user="u-1",
    )
    assert answer.choices[0].message.content == "Echo: hello there"
    assert answer.choices[0].finish_reason == "stop"
    sent = standin.requests[-1]
    assert sent["headers"]["x-api-key"] == KEY and sent["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {k.lower() for k in sent["headers"]}
    assert sent["body"] == {
        "model": "claude-standin",  # the route's upstream name
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
        "max_tokens": 4096,  # required by Messages: the default when the client gives none
        "system": "Be brief.",
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
    }
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    # cache reads and writes count as input, as OpenAI counts a prompt; the reads also as cached
    assert usage.prompt_tokens == 2 + CACHE_READ + CACHE_WRITE and usage.prompt_tokens_details.cached_tokens == 5
    assert usage.prompt_tokens_details.cache_write_tokens == CACHE_WRITE
    assert usage.completion_tokens == 3 and usage.total_tokens == usage.prompt_tokens + 3


async def test_a_stream_is_translated_chunk_by_chunk(client: openai.AsyncOpenAI) -> None:
    messages: Any = [{"role": "user", "content": "a streamed greeting please"}]
    whole = await client.chat.completions.create(model="claude-chat", messages=messages)
    stream = await client.chat.completions.create(
        model="claude-chat", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) >= 3  # really streamed
    assert "".join(texts) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert {c.id for c in chunks} == {"msg_standin_1"} and chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens  # type: ignore[union-attr]


async def test_no_usage_chunk_unless_asked(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="claude-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


async def _tool_turn(client: openai.AsyncOpenAI, stream: bool) -> tuple[str, str, str]:
    """Ask for the weather; return the tool call's id, name and arguments (streamed or whole)."""
    messages: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    if not stream:
        answer = await client.chat.completions.create(model="claude-chat", messages=messages, tools=[WEATHER])
        assert answer.choices[0].finish_reason == "tool_calls"
        assert answer.choices[0].message.content == "Let me check."
        call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
        return call.id, call.function.name, call.function.arguments
    chunks = [c async for c in await client.chat.completions.create(
        model="claude-chat", messages=messages, tools=[WEATHER], stream=True)]  # fmt: skip
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            entry["name"] += (delta.function.name or "") if delta.function else ""
            entry["arguments"] += (delta.function.arguments or "") if delta.function else ""
    assert list(calls) == [0]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    return calls[0]["id"], calls[0]["name"], calls[0]["arguments"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_tool_calls_both_ways(client: openai.AsyncOpenAI, standin: Upstream, stream: bool) -> None:
    call_id, name, arguments = await _tool_turn(client, stream)
    assert (call_id, name, json.loads(arguments)) == ("toolu_standin_1", "get_weather", {"city": "Paris"})
    sent = standin.requests[-1]["body"]
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],
            "description": "Current weather for a city",
        }
    ]
    follow_up: Any = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "18 C and sunny"},
        {"role": "user", "content": "Thanks!"},
    ]  # fmt: skip
    answer = await client.chat.completions.create(
        model="claude-chat", messages=follow_up, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False
    )
    assert answer.choices[0].message.content == "The tool said: 18 C and sunny"
    sent = standin.requests[-1]["body"]
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}],
    }
    # the tool result and the user's next words are one user turn (Messages alternates roles)
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": "18 C and sunny"},
            {"type": "text", "text": "Thanks!"},
        ],
    }
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


async def test_images_travel_as_image_blocks(client: openai.AsyncOpenAI, standin: Upstream) -> None:
    content: Any = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    await client.chat.completions.create(model="claude-chat", messages=[{"role": "user", "content": content}])
    blocks = standin.requests[-1]["body"]["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}


async def test_upstream_errors_reach_the_openai_sdk_as_its_own_exceptions(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as overloaded:
        await client.chat.completions.create(model="claude-chat", messages=[{"role": "user", "content": "overloaded"}])
    assert overloaded.value.status_code == 503  # 529 is Anthropic's; OpenAI clients retry a 503
    assert overloaded.value.body == {"message": "Overloaded", "type": "upstream_error", "param": None,
                                     "code": "overloaded_error"}  # fmt: skip
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="claude-chat", messages=[{"role": "user", "content": "slow down"}])
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.code == "rate_limit_error"


async def test_what_messages_cannot_carry_is_a_400_naming_the_param(
    client: openai.AsyncOpenAI, standin: Upstream
) -> None:
    before = len(standin.requests)
    for kwargs, param in (
        ({"temperature": 1.5}, "temperature"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model="claude-chat", messages=[{"role": "user", "content": "hi"}], **kwargs
            )
        assert refused.value.param == param and refused.value.code == "unsupported_value"
    assert len(standin.requests) == before  # refused here, never sent


async def test_a_stream_broken_upstream_ends_with_an_error(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="claude-chat", messages=[{"role": "user", "content": "break the stream"}], stream=True
    )
    seen = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        async for chunk in stream:
            seen.append(chunk)
    assert seen and seen[0].choices[0].delta.role == "assistant"


async def test_the_backends_bad_key_is_the_upstreams_401(
    start_proxy: ProxyFactory, standin: Upstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(standin.url, key="sk-ant-wrong")))
    async with proxy.client() as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model="claude-chat", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "authentication_error"


async def test_open_mode_sends_the_callers_own_key_as_x_api_key(
    start_proxy: ProxyFactory, standin: Upstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(standin.url, key=None)))
    async with proxy.client(api_key=KEY) as client:
        answer = await client.chat.completions.create(model="claude-chat", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content == "Echo: x"
    assert standin.requests[-1]["headers"]["x-api-key"] == KEY


async def test_the_responses_api_works_over_an_anthropic_backend(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="claude-chat", input="responses here", store=False)
    assert response.output_text == "Echo: responses here"


async def test_other_endpoints_are_refused_clearly(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="Anthropic Messages API") as refused:
        await client.embeddings.create(model="claude-chat", input="x")
    assert refused.value.code == "unsupported_endpoint"


async def test_realtime_to_an_anthropic_backend_is_refused_before_the_upgrade(proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(proxy.url + "/realtime?model=claude-chat")
    assert refused.value.status == 502


async def test_readiness_probes_the_anthropic_models_endpoint(proxy: RunningProxy) -> None:
    assert await proxy.runtime.check_ready() == []


# ---- native Messages clients -----------------------------------------------------------------


def claude_client(proxy: RunningProxy) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=proxy.url.removesuffix("/v1"), api_key="sk-client", max_retries=0)


async def test_native_messages_pass_through_unchanged(proxy: RunningProxy, standin: Upstream) -> None:
    async with claude_client(proxy) as claude:
        message = await claude.messages.create(
            model="claude-chat",
            max_tokens=50,
            messages=[{"role": "user", "content": "native hello"}],
            extra_body={"service_tier": "auto"},  # a field the chat translation would drop
            extra_headers={"anthropic-beta": "some-beta-2025"},
        )
    assert message.content[0].type == "text" and message.content[0].text == "Echo: native hello"
    assert message.usage.cache_read_input_tokens == CACHE_READ
    sent = standin.requests[-1]
    assert sent["body"] == {
        "model": "claude-standin",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "native hello"}],
        "service_tier": "auto",
    }
    assert sent["headers"]["x-api-key"] == KEY  # the backend's key, never the client's
    assert sent["headers"]["anthropic-beta"] == "some-beta-2025"


async def test_native_stream_usage_counts_the_input_tokens(proxy: RunningProxy) -> None:
    async with claude_client(proxy) as claude:
        async with claude.messages.stream(
            model="claude-chat", max_tokens=50, messages=[{"role": "user", "content": "stream natively"}]
        ) as stream:
            deltas = [event async for event in stream if event.type == "message_delta"]
            final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "Echo: stream natively"
    # the upstream's message_delta said only output_tokens; the proxy completes it for its accounting
    assert deltas[0].usage.input_tokens == final.usage.input_tokens > 0
    assert deltas[0].usage.cache_read_input_tokens == CACHE_READ


async def test_native_errors_stay_anthropic_shaped(proxy: RunningProxy) -> None:
    async with claude_client(proxy) as claude:
        with pytest.raises(anthropic.APIStatusError) as refused:
            await claude.messages.create(
                model="claude-chat", max_tokens=5, messages=[{"role": "user", "content": "overloaded"}]
            )
    assert refused.value.status_code == 529
    assert refused.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                                  "request_id": refused.value.response.headers["x-request-id"]}  # fmt: skip


async def test_usage_reaches_the_proxys_accounting(proxy: RunningProxy, client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(model="claude-chat", messages=[{"role": "user", "content": "count me"}])
    async with aiohttp.ClientSession() as session, session.get(proxy.url.removesuffix("/v1") + "/metrics") as r:
        text = await r.text()
    counts = {
        line.split('type="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("chaperone_tokens_total{") and 'model="claude-chat"' in line
    }
    assert counts == {"input": 2 + CACHE_READ + CACHE_WRITE, "output": 3, "cached": CACHE_READ}  # "Echo: count me"
