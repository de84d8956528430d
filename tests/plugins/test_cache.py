"""The cache plugin's pieces without a network: keys, stream assembly and replay, the index, the store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from plugins._cache import index as index_module
from plugins._cache import replay
from plugins._cache.index import Embedder, Partition
from plugins._cache.keys import exact_keys, semantic_keys, tenant_of
from plugins._cache.replay import Assembler, chunks
from plugins._cache.shared import Shared, entry_key
from proxy import sse
from proxy.answershapes import assemble, synthesize
from proxy.exchange import ApiRequest, ApiResponse, Usage
from proxy.policy import PolicyError
from proxy.registry import PluginRegistry, build_registry
from proxy.runtime import Resources
from proxy.sse import decode_data, split_events
from proxy.store import Store, StoreConfig, open_store
from tests.chain_helpers import compile_chain_policy, make_exchange


@pytest.fixture
def registry() -> PluginRegistry:
    return build_registry(entry_points=False)


def chat(text: str, **extra: Any) -> ApiRequest:
    body = {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]}
    return ApiRequest("chat", "/chat/completions", {**body, **extra})


# ---- keys -----------------------------------------------------------------------------------


def test_exact_key_ignores_delivery_fields_and_api_defaults() -> None:
    base = exact_keys(chat("Hi there"), "t").exact
    same = [
        chat("Hi there", stream=True, stream_options={"include_usage": True}, user="u1", metadata={"a": "b"}),
        chat("  Hi there \n", temperature=1, n=1, top_p=1),
        ApiRequest("chat", "/chat/completions", {"model": "m", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Hi there"}]}),
    ]  # fmt: skip
    assert all(exact_keys(r, "t").exact == base for r in same)
    different = [
        chat("Hi there!"), chat("Hi there", temperature=0), chat("Hi there", seed=1), chat("Hi there", n=2),
        chat("Hi there", response_format={"type": "json_object"}), chat("Hi there", logit_bias={"50256": -100}),
        chat("Hi there", stop=["\n"]), chat("Hi there", some_new_field=True), chat("Hi there", model="m2"),
    ]  # fmt: skip
    keys = {exact_keys(r, "t").exact for r in different}
    assert base not in keys and len(keys) == len(different)
    assert exact_keys(chat("Hi there"), "other tenant").exact != base


def test_semantic_partition_holds_everything_but_the_last_user_turn() -> None:
    a = semantic_keys(chat("How do I enable 2FA?", temperature=0.01, max_tokens=100), "t")
    b = semantic_keys(chat("How can I turn on 2FA?", temperature=0.04, max_tokens=120), "t")
    assert a.partition == b.partition and a.exact != b.exact
    assert (a.query, b.query) == ("How do I enable 2FA?", "How can I turn on 2FA?")
    other_system = chat("How do I enable 2FA?")
    other_system.body["messages"][0]["content"] = "Answer in French."
    others = [other_system, chat("How do I enable 2FA?", tools=[{"type": "function", "function": {"name": "f"}}]),
              chat("How do I enable 2FA?", temperature=0.5), chat("How do I enable 2FA?", seed=3)]  # fmt: skip
    assert all(semantic_keys(r, "t").partition != a.partition for r in others)
    assert semantic_keys(chat("How do I enable 2FA?"), "u").partition != a.partition


def test_tenant_is_the_key_or_a_digest_of_the_credential(registry: PluginRegistry) -> None:
    keys = "keys:\n  - {name: alice, key: sk-alice}\n"
    policy = compile_chain_policy("[]", registry, keys)
    assert tenant_of(make_exchange(policy, authorization="Bearer sk-alice").caller, False) == "n:alice"
    assert tenant_of(make_exchange(policy, authorization="Bearer sk-alice").caller, True) == "*"
    open_policy = compile_chain_policy("[]", registry)
    one = tenant_of(make_exchange(open_policy, authorization="Bearer sk-1").caller, False)
    two = tenant_of(make_exchange(open_policy, authorization="Bearer sk-2").caller, False)
    assert one != two and "sk-1" not in one


def test_config_errors_name_the_field(registry: PluginRegistry) -> None:
    with pytest.raises(PolicyError, match="threshold"):
        compile_chain_policy("[{cache: {threshold: 1.5}}]", registry)
    with pytest.raises(PolicyError, match="colour"):
        compile_chain_policy("[{cache: {colour: red}}]", registry)


# ---- streams --------------------------------------------------------------------------------


def test_assembled_stream_replays_as_the_same_chunks() -> None:
    body = {"id": "c1", "created": 1, "model": "m", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip
    events = chunks("chat", body, include_usage=True)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 5
    assembler = Assembler("chat")
    for event in events:
        assembler.feed(event)
    assert assembler.result() == body
    assert all("usage" not in e for e in chunks("chat", body, include_usage=False))


def test_an_unfinished_stream_is_not_an_answer() -> None:
    assembler = Assembler("completions")
    assembler.feed({"id": "x", "choices": [{"index": 0, "text": "partial", "finish_reason": None}]})
    assert assembler.result() is None
    assembler.feed({"id": "x", "choices": [{"index": 0, "text": " end", "finish_reason": "stop"}]})
    assert assembler.result()["choices"][0]["text"] == "partial end"  # type: ignore[index]


def _stream(texts: list[str], finish: str = "stop", usage: bool = True, spaced: bool = False) -> list[bytes]:
    """A chat stream as an OpenAI upstream sends it (``usage: null`` on each chunk when usage is asked)."""
    head: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    deltas = [{"role": "assistant", "content": ""}, *({"content": t} for t in texts), {}]
    events = []
    for n, delta in enumerate(deltas):
        chunk = {
            **head,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish if n == len(deltas) - 1 else None}],
        }
        if usage:
            chunk["usage"] = None
        events.append(chunk)
    if usage:
        events.append({**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
    dumps = (lambda o: json.dumps(o).encode()) if spaced else orjson.dumps
    return [b"data: " + dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


@pytest.mark.parametrize("spaced", [False, True])
def test_a_finished_stream_is_kept_as_its_events_and_replayed_with_or_without_usage(spaced: bool) -> None:
    blocks = _stream(["Hel", "lo"], spaced=spaced)
    kept = replay.raw_entry(blocks, None, None)
    assert kept is not None
    reason, entry = kept
    assert reason == "stop" and replay.is_raw(entry)
    assert b"null" not in entry.replace(b'"finish_reason": null', b"").replace(b'"finish_reason":null', b"")
    with_usage = replay.raw_replay(entry, include_usage=True)
    events = [decode_data(e) for e in split_events(with_usage)]
    assert events[-1] is None and events[-2]["usage"]["total_tokens"] == 7  # type: ignore[index]
    without = [decode_data(e) for e in split_events(replay.raw_replay(entry, include_usage=False))]
    assert all(e is None or "usage" not in e for e in without) and len(without) == len(events) - 1
    whole = replay.raw_whole("chat", entry)
    assert whole == replay.assemble("chat", blocks, None)
    assert whole["choices"][0]["message"]["content"] == "Hello" and whole["usage"]["total_tokens"] == 7  # type: ignore[index]


def test_a_stream_without_its_usage_chunk_is_kept_with_the_recorded_usage() -> None:
    kept = replay.raw_entry(_stream(["Hi"], usage=False), Usage(4, 1, 5), None)
    assert kept is not None
    whole = replay.raw_whole("chat", kept[1])
    assert whole is not None and whole["usage"] == {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    bare = replay.raw_entry(_stream(["Hi"], usage=False), None, None)  # no usage known: kept without
    assert bare is not None and b"usage" not in bare[1]
    assert replay.raw_replay(bare[1], include_usage=False) == replay.raw_replay(bare[1], include_usage=True)
    assert replay.raw_whole("chat", bare[1])["choices"][0]["message"]["content"] == "Hi"  # type: ignore[index]


def test_text_that_looks_like_events_or_usage_does_not_confuse_a_kept_stream() -> None:
    tricky = ['data: {"usage": {"total_tokens": 1}}\n\n', '"finish_reason": "length"', " end"]
    kept = replay.raw_entry(_stream(tricky), None, None)
    assert kept is not None and kept[0] == "stop"
    whole = replay.raw_whole("chat", kept[1])
    assert whole["choices"][0]["message"]["content"] == "".join(tricky)  # type: ignore[index]
    plain = [decode_data(e) for e in split_events(replay.raw_replay(kept[1], include_usage=False))]
    assert all(e is None or "usage" not in e for e in plain) and len(plain) == 1 + len(tricky) + 2


def test_streams_that_are_not_one_plain_finished_choice_are_left_to_the_assembler() -> None:
    good = _stream(["a"])
    assert replay.raw_entry(good, None, 2) is None  # n=2: several choices
    assert replay.raw_entry(good[:-1], None, None) is None  # no [DONE]: not known to be whole
    two = _stream(["a"])[:-1] + _stream(["b"])  # two finish reasons
    assert replay.raw_entry(two, None, None) is None
    error = [good[0], b'data: {"error": {"message": "upstream died"}}\n\n', good[-1]]
    assert replay.raw_entry(error, None, None) is None
    assert replay.raw_entry(_stream(["a"], finish="length"), None, None)[0] == "length"  # type: ignore[index]


# ---- index ----------------------------------------------------------------------------------


def test_index_finds_the_nearest_and_forgets_dropped_rows(embedder: Embedder) -> None:
    part = Partition(cap=100)
    for i, text in enumerate(["How do I reset my password?", "Write a poem about the sea", "Tax rules in Ohio"]):
        part.add(embedder.embed(text), f"k{i}", text)
    found = part.search(embedder.embed("What are the steps to reset my password?"), 0.7, 4)
    assert [c.key for c in found] == ["k0"]
    part.drop("k0")
    assert part.search(embedder.embed("What are the steps to reset my password?"), 0.7, 4) == []


def test_index_keeps_at_most_cap_rows_oldest_out() -> None:
    rng = np.random.default_rng(0)
    part = Partition(cap=50)
    vectors = rng.standard_normal((120, 256)).astype(np.float32)
    for i, v in enumerate(vectors):
        part.add(v, f"k{i}", "t")
    assert len(part) <= 50
    assert part.search(vectors[119], 0.99, 1)[0].key == "k119"
    assert part.search(vectors[0], 0.99, 1) == []


def test_clustered_search_agrees_with_a_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "IVF_MIN", 500)
    rng = np.random.default_rng(1)
    base = rng.standard_normal((2000, 256)).astype(np.float32)
    part = Partition(cap=10_000)
    for i, v in enumerate(base):
        part.add(v, f"k{i}", "t")
    for i in range(0, 2000, 97):
        noisy = base[i] + 0.2 * rng.standard_normal(256).astype(np.float32)
        assert part.search(noisy, 0.8, 1)[0].key == f"k{i}"
    assert part.centroids is not None  # the clustered path was used
    part.add(base[0], "late", "t")  # rows added after training are found too
    assert {c.key for c in part.search(base[0], 0.99, 4)} == {"k0", "late"}


# ---- the store ------------------------------------------------------------------------------


async def test_entries_evict_past_the_cap_and_replicas_converge(
    replicas: tuple[Store, Store], embedder: Embedder
) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=3, sync_interval_s=0)
    b = Shared(two, ttl_s=60, cap=3, sync_interval_s=0)
    texts = ["reset my password", "poem about the sea", "tax rules in Ohio", "boil an egg"]
    for i, text in enumerate(texts):
        a.put("p", f"k{i}", b'{"n": %d}' % i, text, embedder.embed(text))
        await a.flush()
    assert await a.lookup("p", "k0") is None  # the oldest went when the fourth came
    assert await one.get(entry_key("p", 1)) is None
    assert (await b.lookup("p", "k3")).body == b'{"n": 3}'  # type: ignore[union-attr]
    seen = await b.index("p")  # the other replica reads the log
    found = seen.search(embedder.embed("boil an egg"), 0.9, 1)
    assert [c.key for c in found] == ["k3"]
    assert len(seen) == 3


def _resync(shared: Shared, partition: str) -> None:
    """As if ``sync_interval_s`` had passed for one partition."""
    shared.partitions[partition][1].at = float("-inf")


async def test_a_miss_needs_no_store_read_and_another_replicas_answer_is_found_after_a_sync(
    replicas: tuple[Store, Store],
) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=100, sync_interval_s=3600)
    b = Shared(two, ttl_s=60, cap=100, sync_interval_s=3600)
    a.put("p", "k0", b'{"n": 0}', None, None)
    await a.flush()
    assert (await b.lookup("p", "k0")).body == b'{"n": 0}'  # type: ignore[union-attr]  # b's first read of the log
    reads = b.skipped
    assert await b.lookup("p", "never-stored") is None
    assert b.skipped == reads + 1  # answered from what b knows: no store read
    a.put("p", "k1", b'{"n": 1}', None, None)
    await a.flush()
    assert (await a.lookup("p", "k1")).body == b'{"n": 1}'  # type: ignore[union-attr]  # its own: at once
    assert await b.lookup("p", "k1") is None  # b has not read the log since: a miss, never a wrong answer
    _resync(b, "p")
    assert (await b.lookup("p", "k1")).body == b'{"n": 1}'  # type: ignore[union-attr]
    await one.delete(entry_key("p", 2))  # gone (TTL, eviction elsewhere): one read finds out, then b knows
    assert await b.lookup("p", "k1") is None
    assert await b.lookup("p", "k1") is None and b.skipped == reads + 3


async def test_a_log_row_counted_before_it_is_written_is_read_at_a_later_sync(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        b = Shared(store, ttl_s=60, cap=100, sync_interval_s=3600)
        assert await store.incr("cache:n:p") == 1  # another replica took row 1 and has not written it yet
        assert await b.lookup("p", "k") is None
        await store.set_many([(entry_key("p", 1), b'{"c": 1, "s": 1, "k": "k"}\x00{"late": true}'),
                              ("cache:l:p:1", b'{"k": "k", "t": ""}')])  # fmt: skip
        assert await b.lookup("p", "k") is None  # not read again before the interval
        _resync(b, "p")
        assert (await b.lookup("p", "k")).body == b'{"late": true}'  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_without_a_cap_every_lookup_reads_the_store(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=None, sync_interval_s=3600)
        assert await shared.lookup("p", "k") is None
        await store.set("cache:e:k", b'{"c": 1, "s": 0}\x00{}')  # no log: answers live under their exact keys
        assert (await shared.lookup("p", "k")).body == b"{}"  # type: ignore[union-attr]
        assert shared.skipped == 0
    finally:
        await store.close()


async def test_without_a_sync_interval_every_lookup_reads_the_log_first(replicas: tuple[Store, Store]) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=100, sync_interval_s=0)
    b = Shared(two, ttl_s=60, cap=100, sync_interval_s=0)
    assert await b.lookup("p", "k") is None
    a.put("p", "k", b'{"a": 1}', None, None)
    await a.flush()
    assert (await b.lookup("p", "k")).body == b'{"a": 1}'  # type: ignore[union-attr]  # at once, no interval


async def test_without_a_cap_an_exact_answer_is_one_write(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=None, sync_interval_s=0)
        shared.put("p", "k", b'{"a": 1}', None, None)
        await shared.flush()
        assert (await shared.lookup("p", "k")).body == b'{"a": 1}'  # type: ignore[union-attr]
        assert await store.get("cache:e:k") is not None and await store.counter("cache:n:p") == 0
    finally:
        await store.close()


async def test_answers_are_seen_here_at_once_and_elsewhere_once_written(replicas: tuple[Store, Store]) -> None:
    one, two = replicas
    a = Shared(one, ttl_s=60, cap=2, sync_interval_s=0, write_delay_s=60)
    b = Shared(two, ttl_s=60, cap=2, sync_interval_s=0)
    for i in range(3):
        a.put("p", f"k{i}", b'{"n": %d}' % i, None, None)
    assert (await a.lookup("p", "k2")).body == b'{"n": 2}'  # type: ignore[union-attr]
    assert await b.lookup("p", "k2") is None  # not written yet (a minute's delay)
    await a.flush()
    assert a.written == 3
    assert (await b.lookup("p", "k2")).body == b'{"n": 2}'  # type: ignore[union-attr]
    assert await b.lookup("p", "k0") is None  # written in one batch, and the cap of 2 still holds
    assert await one.get(entry_key("p", 1)) is None
    assert await one.counter("cache:n:p") == 3


async def test_a_full_batch_is_written_without_waiting_for_the_delay(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=None, sync_interval_s=0, write_delay_s=3600)
        for i in range(300):
            shared.put("p", f"k{i}", b"{}", None, None)
        for _ in range(500):
            if shared.written >= 256:
                break
            await asyncio.sleep(0.01)
        assert shared.written >= 256
        assert await store.get("cache:e:k0") is not None
    finally:
        await shared.flush()
        await store.close()


async def test_flush_right_after_a_put_writes_it_without_waiting_for_the_delay(tmp_path: Path) -> None:
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    try:
        shared = Shared(store, ttl_s=60, cap=10, sync_interval_s=0, write_delay_s=3600)
        shared.put("p", "k", b"{}", None, None)
        async with asyncio.timeout(5):  # in this task: the flusher has not even started; flush must not wait an hour
            await shared.flush()
        assert await store.get(entry_key("p", 1)) is not None
    finally:
        await store.close()


async def test_a_kept_stream_that_does_not_assemble_is_a_miss_not_an_empty_answer(tmp_path: Path) -> None:
    policy = compile_chain_policy("[{cache: {mode: exact}}]", build_registry(entry_points=False))
    chain = policy.chains["default"]
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    await chain.startup(Resources(store, tmp_path))
    calls: list[int] = []

    async def upstream(exchange: Any) -> ApiResponse:
        calls.append(1)
        message = {"role": "assistant", "content": "fresh"}
        answer = {"object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        return ApiResponse(200, raw=orjson.dumps(answer))

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    try:
        exchange = make_exchange(policy, dict(body))
        plugin = chain.steps[0].plugin
        keys = exact_keys(exchange.request, tenant_of(exchange.caller, False))
        plugin.shared.put(keys.partition, keys.exact, b'data: {"choices": [}\n\n', None, None)  # a broken kept stream
        response = await chain.run(exchange, upstream)
        await chain.complete(exchange)
        assert calls == [1]
        assert response.peek()["choices"][0]["message"]["content"] == "fresh"  # type: ignore[index]
        assert exchange.verdicts["cache"] == "miss"
    finally:
        await chain.shutdown()
        await store.close()


async def test_a_long_messages_stream_is_stored_whole_and_replayed_as_its_events(tmp_path: Path) -> None:
    """Past 256 blocks a Responses / Messages stream is assembled on a worker thread; what it stores is the same."""
    policy = compile_chain_policy("[{cache: {mode: exact}}]", build_registry(entry_points=False))
    chain = policy.chains["default"]
    store = open_store(StoreConfig(), tmp_path, clock=time.time)
    await chain.startup(Resources(store, tmp_path))
    words = [f" w{i}" for i in range(300)]
    answer = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
        "stop_sequence": None, "content": [{"type": "text", "text": "".join(words)}],
        "usage": {"input_tokens": 5, "output_tokens": 300},
    }  # fmt: skip
    events = synthesize("messages", answer, usage_chunk=False)
    delta = next(e for e in events if e["type"] == "content_block_delta")
    spread = [*events[: events.index(delta)], *({**delta, "delta": {"type": "text_delta", "text": w}} for w in words)]
    spread += events[events.index(delta) + 1 :]

    async def upstream(exchange: Any) -> ApiResponse:
        async def blocks() -> AsyncIterator[bytes]:
            for event in spread:  # one block per event, as a slow upstream sends them
                yield sse.encode_events([event], named=True)

        return ApiResponse(200, stream=blocks(), headers={"content-type": "text/event-stream"})

    body = {"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": "count"}], "temperature": 0}
    try:
        for expected in ("miss", "hit"):
            exchange = make_exchange(policy, dict(body, stream=True), endpoint="messages", path="/messages")
            response = await chain.run(exchange, upstream)
            assert response.stream is not None
            seen = chain.byte_observers_for(exchange)
            got = b""
            async for data in response.stream:
                for hook in seen:
                    hook(exchange, data)
                got += data
            await chain.complete(exchange)
            await chain.steps[0].plugin.shared.flush()
            assert exchange.verdicts["cache"] == expected
            assert assemble("messages", [sse.decode_data(e) for e in sse.split_events(got)]) == answer  # type: ignore[misc]
    finally:
        await chain.shutdown()
        await store.close()
