"""Streamed Responses and Messages requests through the cache: the official SDKs parse every hit, either way round."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anthropic

from tests.conftest import MockUpstream, ProxyFactory
from tests.e2e.test_cache_e2e import chat_calls, start, stored


async def test_a_responses_stream_is_cached_and_a_hit_replays_as_responses_events(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: exact}")
    ask = {"model": "mock-gpt", "input": "Name three rivers in Europe.", "temperature": 0, "store": False}
    async with proxy.client("sk-alice") as alice:
        async with alice.responses.stream(**ask) as first:
            [event async for event in first]
            original = await first.get_final_response()
        await stored(proxy, 1)  # kept as the whole response its stream built
        raw = await alice.responses.with_raw_response.create(**ask, stream=True)
        assert raw.headers["x-chaperone-cache"] == "hit"
        events = [event async for event in raw.parse()]
        kinds = [event.type for event in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert [event.sequence_number for event in events] == list(range(len(events)))
        deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
        assert deltas == original.output_text != ""
        final = events[-1].response  # type: ignore[union-attr]
        assert final.usage is not None and original.usage is not None
        assert final.usage.output_tokens == original.usage.output_tokens
        whole = await alice.responses.with_raw_response.create(**ask)  # the stream's answer serves a whole request
        assert whole.headers["x-chaperone-cache"] == "hit" and whole.parse().output_text == original.output_text
        other = {**ask, "input": "Name three lakes in Europe."}
        kept = await alice.responses.create(**other)  # and a whole answer serves a stream
        await stored(proxy, 2)
        async with alice.responses.stream(**other) as replayed:
            [event async for event in replayed]
            assert (await replayed.get_final_response()).output_text == kept.output_text
    assert await chat_calls(mock_upstream) == 2


async def test_a_messages_stream_is_cached_and_a_hit_replays_as_anthropic_events(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    proxy = await start(start_proxy, write_policy, mock_upstream, "{mode: exact}")
    ask = {
        "model": "mock-gpt", "max_tokens": 100, "extra_body": {"temperature": 0},  # this SDK has no temperature
        "messages": [{"role": "user", "content": "Name three mountains in Asia."}],
    }  # fmt: skip
    root = proxy.url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=root, api_key="sk-alice", max_retries=0) as claude:
        async with claude.messages.stream(**ask) as first:
            [event async for event in first]
            original = await first.get_final_message()
        await stored(proxy, 1)
        raw = await claude.messages.with_raw_response.create(**ask, stream=True)
        assert raw.headers["x-chaperone-cache"] == "hit"
        events = [event async for event in await raw.parse()]
        kinds = [event.type for event in events]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
        assert text == original.content[0].text != ""  # type: ignore[union-attr]
        stop = next(e for e in events if e.type == "message_delta")
        assert stop.delta.stop_reason == original.stop_reason  # type: ignore[union-attr]
        assert stop.usage.output_tokens == original.usage.output_tokens  # type: ignore[union-attr]
        whole = await claude.messages.with_raw_response.create(**ask)
        assert whole.headers["x-chaperone-cache"] == "hit"
        assert (await whole.parse()).content[0].text == original.content[0].text  # type: ignore[union-attr]
    assert await chat_calls(mock_upstream) == 1
