"""pii on the Responses API and Anthropic Messages: no original reaches the upstream, the client gets them back.

The mock upstream echoes the first words of the last user message (and of a tool result), so the
placeholders the chain sent come back in the answer, whole or split over stream events, and the chain
must restore them in the API's own shapes: Responses output items and events, Messages content blocks
and ``content_block_delta`` events. What the gateway stores for ``previous_response_id`` keeps the
placeholders, never the originals.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

pytestmark = pytest.mark.asyncio

EMAIL = "jane.roe@example.org"
PHONE = "+1 415 555 0132"
PROMPT = f"Mail {EMAIL} or call {PHONE} today"
CHAIN = "[{pii: {entities: [EMAIL_ADDRESS, PHONE_NUMBER]}}]"


async def assert_upstream_saw_no_original(mock_upstream: MockUpstream) -> None:
    sent = json.dumps([r["body"] for r in await mock_upstream.requests()])
    assert "<EMAIL_ADDRESS_1>" in sent
    for original in (EMAIL, "jane.roe", "555 0132"):
        assert original not in sent, f"an original value reached the upstream: {original!r}"


@pytest.fixture
async def pii_proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN)))


@pytest.fixture
async def oai(pii_proxy: RunningProxy) -> AsyncIterator[openai.AsyncOpenAI]:
    async with pii_proxy.client() as client:
        yield client


@pytest.fixture
async def claude(pii_proxy: RunningProxy) -> AsyncIterator[anthropic.AsyncAnthropic]:
    base = pii_proxy.url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=base, api_key="sk-test", max_retries=0) as client:
        yield client


async def test_responses_whole_answer(oai: openai.AsyncOpenAI, mock_upstream: MockUpstream) -> None:
    response = await oai.responses.create(model="mock-gpt", instructions=f"Reply to {EMAIL}", input=PROMPT)
    assert EMAIL in response.output_text and PHONE in response.output_text
    assert "<EMAIL_ADDRESS_1>" not in response.output_text
    await assert_upstream_saw_no_original(mock_upstream)
    stored = await oai.responses.retrieve(response.id)  # what the gateway keeps has the placeholders
    assert "<EMAIL_ADDRESS_1>" in stored.output_text and EMAIL not in stored.model_dump_json()


async def test_responses_stream_restores_placeholders_split_over_deltas(
    oai: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    async with oai.responses.stream(model="mock-gpt", input=PROMPT) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e.text for e in events if e.type == "response.output_text.done")
    assert EMAIL in deltas and PHONE in deltas and deltas == done == final.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))  # renumbered after re-chunking
    await assert_upstream_saw_no_original(mock_upstream)


async def test_responses_tool_results_and_follow_up_turns_are_masked(
    oai: openai.AsyncOpenAI, mock_upstream: MockUpstream
) -> None:
    first = await oai.responses.create(
        model="mock-gpt",
        input=[
            {"role": "user", "content": "Look up the customer"},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": f"Customer mail {EMAIL}"},
        ],
    )
    assert EMAIL in first.output_text
    follow = await oai.responses.create(model="mock-gpt", input=f"And {PHONE}?", previous_response_id=first.id)
    assert PHONE in follow.output_text
    await assert_upstream_saw_no_original(mock_upstream)


async def test_messages_whole_answer(claude: anthropic.AsyncAnthropic, mock_upstream: MockUpstream) -> None:
    message = await claude.messages.create(
        model="mock-gpt", max_tokens=100, system=f"Write to {EMAIL}", messages=[{"role": "user", "content": PROMPT}]
    )
    assert message.content[0].type == "text"
    assert EMAIL in message.content[0].text and PHONE in message.content[0].text
    await assert_upstream_saw_no_original(mock_upstream)


async def test_messages_stream_restores_placeholders_split_over_deltas(
    claude: anthropic.AsyncAnthropic, mock_upstream: MockUpstream
) -> None:
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    async with claude.messages.stream(model="mock-gpt", max_tokens=100, messages=messages) as stream:
        pieces = [
            e.delta.text async for e in stream if e.type == "content_block_delta" and e.delta.type == "text_delta"
        ]
        final = await stream.get_final_message()
    assert final.content[0].type == "text"
    assert EMAIL in "".join(pieces) and "".join(pieces) == final.content[0].text
    await assert_upstream_saw_no_original(mock_upstream)


async def test_messages_tool_results_are_masked(claude: anthropic.AsyncAnthropic, mock_upstream: MockUpstream) -> None:
    turn: Any = [
        {"role": "user", "content": "Who is the customer?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "crm", "input": {"q": EMAIL}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": f"Mail {EMAIL}"}]},
    ]
    message = await claude.messages.create(model="mock-gpt", max_tokens=100, messages=turn)
    assert message.content[0].type == "text" and EMAIL in message.content[0].text
    await assert_upstream_saw_no_original(mock_upstream)
