"""The pii plugin end to end: the official openai SDK over real sockets, the upstream never sees an original.

The mock upstream echoes the first words of the user's message, so masked placeholders come back in
its answer and the proxy must restore them: whole, streamed (the mock sends one word or mark per
chunk, so each placeholder arrives split over three chunks), with ``n>1`` and in JSON mode. A small
upstream written here answers with tool calls that carry the placeholders in their arguments.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import MockUpstream, ProxyFactory, simple_policy, start_site

EMAIL = "jane.roe@example.org"
CARD = "4111 1111 1111 1111"
SSN = "536-22-8726"
ORIGINALS = (EMAIL, CARD, "jane.roe")
PROMPT = f"Mail {EMAIL} about card {CARD} today"
CHAIN = "[{pii: {entities: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN, PHONE_NUMBER], modes: {US_SSN: block}}}]"


def no_original_in(value: Any) -> None:
    text = json.dumps(value)
    for original in ORIGINALS:
        assert original not in text, f"an original value reached the upstream: {original!r}"


@pytest.fixture
async def pii_proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> AsyncIterator[openai.AsyncOpenAI]:
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN)))
    async with proxy.client() as client:
        yield client


async def test_the_upstream_sees_placeholders_and_the_client_gets_originals(
    pii_proxy: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    raw = await pii_proxy.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=[{"role": "user", "content": PROMPT}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == f"Mock reply to: {PROMPT}"
    assert raw.headers["x-chaperone-pii"] == "CREDIT_CARD=1,EMAIL_ADDRESS=1"
    (seen,) = await mock_upstream.requests()
    no_original_in(seen["body"])
    assert seen["body"]["messages"][0]["content"] == "Mail <EMAIL_ADDRESS_1> about card <CREDIT_CARD_1> today"


async def test_streamed_answers_with_several_choices_are_restored(
    pii_proxy: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    stream = await pii_proxy.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": PROMPT}], stream=True, n=2,
        stream_options={"include_usage": True},
    )  # fmt: skip
    texts = {0: "", 1: ""}
    pieces = 0
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            if choice.delta.content:
                texts[choice.index] += choice.delta.content
                pieces += 1
    assert texts == {0: f"Mock reply to: {PROMPT}", 1: f"Mock reply to: {PROMPT}"}
    assert pieces > 10 and usage is not None and usage.completion_tokens > 0  # really streamed, usage kept
    no_original_in((await mock_upstream.requests())[0]["body"])


async def test_json_mode_answers_are_restored_and_stay_valid_json(
    pii_proxy: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    for stream in (False, True):
        kwargs: dict[str, Any] = {"response_format": {"type": "json_object"}}
        messages: Any = [{"role": "user", "content": f"JSON please, to {EMAIL}"}]
        if stream:
            chunks = await pii_proxy.chat.completions.create(model="mock-gpt", messages=messages, stream=True, **kwargs)
            content = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            answer = await pii_proxy.chat.completions.create(model="mock-gpt", messages=messages, **kwargs)
            content = answer.choices[0].message.content or ""
        assert json.loads(content) == {"reply": f"Mock reply to: JSON please, to {EMAIL}"}
    for seen in await mock_upstream.requests():
        no_original_in(seen["body"])


async def test_a_blocked_type_is_refused_naming_the_type_never_the_value(
    pii_proxy: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await pii_proxy.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": f"my SSN is {SSN}"}]
        )
    assert caught.value.code == "pii_detected"
    assert "US_SSN" in caught.value.message and SSN not in caught.value.message
    assert await mock_upstream.requests() == []


async def test_embeddings_input_is_masked_one_way(pii_proxy: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    result = await pii_proxy.embeddings.create(model="mock-embed", input=[f"contact {EMAIL}", "nothing here"])
    assert len(result.data) == 2
    (seen,) = await mock_upstream.requests()
    assert seen["body"]["input"] == ["contact <EMAIL_ADDRESS>", "nothing here"]


# ---- tool calls: a small upstream that echoes the placeholders it was sent into tool arguments -------------

PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")
SEEN = web.AppKey("seen", list)


def _tool_answer(body: dict[str, Any]) -> tuple[str, str]:
    text = json.dumps(body["messages"])
    found = PLACEHOLDER.findall(text)
    arguments = json.dumps({"to": found[0] if found else "nobody", "note": f"re {' and '.join(found)}"})
    return "send_mail", arguments


async def _tool_upstream(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[SEEN].append(body)
    name, arguments = _tool_answer(body)
    base = {"id": "chatcmpl-tool", "created": 0, "model": body["model"]}
    if not body.get("stream"):
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
        return web.json_response({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    base["object"] = "chat.completion.chunk"
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
    chunks = [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}, "finish_reason": None}]
    for i in range(0, len(arguments), 3):  # three characters at a time: every placeholder is split
        piece = {"index": 0, "function": {"arguments": arguments[i : i + 3]}}
        chunks.append({"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None})
    chunks.append({"index": 0, "delta": {}, "finish_reason": "tool_calls"})
    for choice in chunks:
        await response.write(b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    return response


async def test_tool_call_arguments_are_restored_streamed_and_not(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    app = web.Application()
    app[SEEN] = []
    app.router.add_post("/v1/chat/completions", _tool_upstream)
    runner, base = await start_site(app)
    try:
        proxy = await start_proxy(write_policy(simple_policy(base + "/v1", chain=CHAIN)))
        tools: Any = [{"type": "function", "function": {"name": "send_mail", "parameters": {"type": "object"}}}]
        messages: Any = [{"role": "user", "content": f'Write to {EMAIL}, with "quotes" and {CARD}'}]
        expected = {"to": EMAIL, "note": f"re {EMAIL} and {CARD}"}
        async with proxy.client() as client:
            answer = await client.chat.completions.create(model="m", messages=messages, tools=tools)
            calls = answer.choices[0].message.tool_calls or []
            assert json.loads(calls[0].function.arguments) == expected
            stream = await client.chat.completions.create(model="m", messages=messages, tools=tools, stream=True)
            arguments = ""
            async for chunk in stream:
                for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    arguments += (call.function.arguments or "") if call.function else ""
            assert json.loads(arguments) == expected
        for seen in app[SEEN]:
            no_original_in(seen)
    finally:
        await runner.cleanup()


async def test_no_original_value_in_logs_traces_or_the_store(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path],
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:  # fmt: skip
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN)), tracer_provider=provider)
    async with proxy.client() as client:
        await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": PROMPT}])
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": SSN}])
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        async for _ in stream:
            pass
    client_side = ("openai", "httpx", "httpcore")  # the SDK's own logs are the app's, not the gateway's
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records if not r.name.startswith(client_side))
    spans = json.dumps([dict(span.attributes or {}) for span in exporter.get_finished_spans()])
    assert "masked PII" in logged and "US_SSN" in logged  # the plugin did log, by type
    # Whatever the proxy keeps on disk (the state store under tmp_path/home) holds no original either.
    stored = b"".join(f.read_bytes() for f in (tmp_path / "home").rglob("*") if f.is_file())
    for original in (*ORIGINALS, SSN):
        assert original not in logged and original not in spans
        assert original.encode() not in stored
    provider.shutdown()
