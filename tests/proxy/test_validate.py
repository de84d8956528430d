"""Malformed requests get a 400 naming the field, before any backend sees them; valid odd shapes pass."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import MockUpstream, RunningProxy

USER = {"role": "user", "content": "hello"}
CHAT = "/chat/completions"
EMBED = "/embeddings"
LEGACY = "/completions"


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [USER], **fields}


# path, body (dict sent as JSON, bytes sent raw), expected param, expected code
INVALID: list[tuple[str, Any, str | None, str]] = [
    (CHAT, b"[1, 2, 3]", None, "invalid_json"),
    (CHAT, b'{"model": "mock-gpt", "messages": [', None, "invalid_json"),
    (CHAT, b"", None, "invalid_json"),
    (CHAT, {"messages": [USER]}, "model", "missing_required_parameter"),
    (CHAT, {"model": 5, "messages": [USER]}, "model", "invalid_value"),
    (CHAT, {"model": "mock-gpt"}, "messages", "missing_required_parameter"),
    (CHAT, {"model": "mock-gpt", "messages": "hello"}, "messages", "invalid_value"),
    (CHAT, {"model": "mock-gpt", "messages": []}, "messages", "invalid_value"),
    (CHAT, {"model": "mock-gpt", "messages": ["hello"]}, "messages[0]", "invalid_value"),
    (CHAT, {"model": "mock-gpt", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    (
        CHAT,
        {"model": "mock-gpt", "messages": [{"role": ["user"], "content": "x"}]},
        "messages[0].role",
        "invalid_value",
    ),
    (CHAT, {"model": "mock-gpt", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_value"),
    (CHAT, {"model": "mock-gpt", "messages": [{"role": "user"}]}, "messages[0].content", "invalid_value"),
    (
        CHAT,
        {"model": "mock-gpt", "messages": [{"role": "user", "content": ["x"]}]},
        "messages[0].content[0]",
        "invalid_value",
    ),
    (
        CHAT,
        {"model": "mock-gpt", "messages": [USER, {"role": "tool", "content": "42"}]},
        "messages[1].tool_call_id",
        "invalid_value",
    ),
    (CHAT, chat(temperature="hot"), "temperature", "invalid_value"),
    (CHAT, chat(temperature=3), "temperature", "invalid_value"),
    (
        CHAT,
        b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        None,
        "invalid_json",  # NaN is not JSON; rejected wherever it appears, known field or not
    ),
    (CHAT, chat(top_p=2), "top_p", "invalid_value"),
    (CHAT, chat(n=0), "n", "invalid_value"),
    (CHAT, chat(max_tokens=-1), "max_tokens", "invalid_value"),
    (CHAT, chat(max_tokens=True), "max_tokens", "invalid_value"),
    (CHAT, chat(max_tokens=1.5), "max_tokens", "invalid_value"),
    (CHAT, chat(stop=["a", "b", "c", "d", "e"]), "stop", "invalid_value"),
    (CHAT, chat(stream="yes"), "stream", "invalid_value"),
    (CHAT, chat(stream_options={"include_usage": True}), "stream_options", "invalid_value"),
    (CHAT, chat(tools={"type": "function"}), "tools", "invalid_value"),
    (CHAT, chat(tools=[{"type": "function", "function": {}}]), "tools[0].function.name", "invalid_value"),
    (CHAT, chat(response_format={"type": "bogus"}), "response_format.type", "invalid_value"),
    (CHAT, chat(response_format="json"), "response_format", "invalid_value"),
    (EMBED, {"model": "mock-embed"}, "input", "missing_required_parameter"),
    (EMBED, {"model": "mock-embed", "input": []}, "input", "invalid_value"),
    (EMBED, {"model": "mock-embed", "input": [1.5]}, "input", "invalid_value"),
    (EMBED, {"model": "mock-embed", "input": "x", "encoding_format": "hex"}, "encoding_format", "invalid_value"),
    (EMBED, {"input": "x"}, "model", "missing_required_parameter"),
    (LEGACY, {"model": "mock-gpt"}, "prompt", "missing_required_parameter"),
    (LEGACY, {"model": "mock-gpt", "prompt": {"text": "x"}}, "prompt", "invalid_value"),
    (LEGACY, {"model": "mock-gpt", "prompt": "x", "echo": "yes"}, "echo", "invalid_value"),
]


def case_id(case: tuple[str, Any, str | None, str]) -> str:
    path, body, param, _ = case
    if isinstance(body, bytes):
        what = body[:12].decode() or "empty"
    else:
        what = param or "?"
    return f"{path.strip('/')}:{what}"


async def send(url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers={"content-type": "application/json"}) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize(("path", "body", "param", "code"), INVALID, ids=[case_id(c) for c in INVALID])
async def test_malformed_request_is_a_400_naming_the_field(
    path: str, body: Any, param: str | None, code: str, proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    status, answer = await send(proxy.url + path, body)
    assert status == 400, answer
    assert set(answer) == {"error"}
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param
    assert answer["error"]["code"] == code
    assert await mock_upstream.requests() == []


VALID: list[tuple[str, dict[str, Any]]] = [
    (
        "content-parts",
        chat(
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]}
            ]
        ),
    ),
    (
        "assistant-tool-calls-null-content",
        chat(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            ]
        ),
    ),
    ("unknown-fields", chat(vendor_knob={"depth": 3}, top_k=5, temperature=None)),
    ("stop-string-and-bounds", chat(stop="END", temperature=0, top_p=1, n=1, max_tokens=1)),
    ("stream-with-options", chat(stream=True, stream_options={"include_usage": True})),
]


@pytest.mark.parametrize("body", [v[1] for v in VALID], ids=[v[0] for v in VALID])
async def test_valid_edge_cases_reach_the_upstream_unchanged(
    body: dict[str, Any], proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with aiohttp.ClientSession() as session, session.post(proxy.url + CHAT, json=body) as r:
        assert r.status == 200, await r.text()
        await r.read()
    (seen,) = await mock_upstream.requests()
    assert seen["body"] == body


async def test_valid_embeddings_and_completions_pass(proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        for path, body in [
            (EMBED, {"model": "mock-embed", "input": [[1, 2, 3]], "encoding_format": "float"}),
            (LEGACY, {"model": "mock-gpt", "prompt": ["a", "b"], "max_tokens": 3}),
        ]:
            async with session.post(proxy.url + path, json=body) as r:
                assert r.status == 200, await r.text()
    assert [seen["body"] for seen in await mock_upstream.requests()] == [
        {"model": "mock-embed", "input": [[1, 2, 3]], "encoding_format": "float"},
        {"model": "mock-gpt", "prompt": ["a", "b"], "max_tokens": 3},
    ]


async def test_sdk_sees_bad_request_with_param(client: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="mock-gpt", messages=[USER], temperature=5)  # type: ignore[list-item]
    assert info.value.status_code == 400
    assert info.value.param == "temperature"
    assert info.value.code == "invalid_value"
    assert "temperature" in info.value.message
    assert await mock_upstream.requests() == []
