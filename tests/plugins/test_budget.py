"""The budget plugin through the real proxy and the openai SDK: config errors, context fitting, headers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from plugins._budget.fitting import SUMMARY_PROMPT
from proxy import tokens
from proxy.exchange import ApiRequest
from proxy.policy import PolicyError
from proxy.registry import DEFAULT_PLUGINS, PluginRegistry, build_registry
from tests.chain_helpers import compile_chain_policy, counting_threads, make_exchange
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

MODULES = tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.budget")))


@pytest.fixture
def registry() -> PluginRegistry:
    """Built-ins plus the budget plugin (a no-op addition once it is a built-in)."""
    return build_registry(entry_points=False, modules=MODULES)


def conversation(turns: int, *, with_tool: bool = False) -> list[Any]:
    """A system prompt, ``turns`` user/assistant pairs of ~40 tokens each, and a last user question."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"turn {i} " + "alpha beta gamma delta " * 8})
        if with_tool and i == 1:
            call = {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": "x"}'}}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": "call_1", "content": "result " * 30})
        messages.append({"role": "assistant", "content": f"answer {i} " + "epsilon zeta eta " * 10})
    messages.append({"role": "user", "content": "And the final question?"})
    return messages


async def start(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    budget: str,
    extra: str = "",
) -> RunningProxy:
    policy = simple_policy(mock_upstream.url, f"[{{budget: {budget}}}]", extra)
    return await start_proxy(write_policy(policy))


async def upstream_chats(mock_upstream: MockUpstream) -> list[dict[str, Any]]:
    return [r["body"] for r in await mock_upstream.requests() if r["path"].endswith("/chat/completions")]


@pytest.mark.parametrize(
    ("budget", "path", "words"),
    [
        ("{on_overflow: cut}", "chains.default[0].budget.on_overflow", "'reject', 'truncate'"),
        ("{on_overflow: summarize}", "chains.default[0].budget", "needs summarize_model"),
        ("{per_key: {rpm: 0}}", "chains.default[0].budget.per_key.rpm", "greater than or equal to 1"),
        ("{per_model: {m: {usd_per_day: -1}}}", "chains.default[0].budget.per_model.m.usd_per_day", "greater than 0"),
        ("{context_windows: {m: 1000}}", "chains.default[0].budget", "context_windows.m: 1000 tokens leave no room"),
    ],
)
def test_config_errors_name_the_yaml_path(budget: str, path: str, words: str, registry: PluginRegistry) -> None:
    with pytest.raises(PolicyError) as info:
        compile_chain_policy(f"[{{budget: {budget}}}]", registry)
    assert any(e.startswith(path) and words in e for e in info.value.errors), info.value.errors


def test_key_limits_are_validated_at_load(registry: PluginRegistry) -> None:
    extra = "keys:\n  - {name: a, key: sk-a, limits: {rpm: many}}\n"
    with pytest.raises(PolicyError) as info:
        compile_chain_policy("[]", registry, extra)
    assert any(e.startswith("keys[0].limits.rpm") for e in info.value.errors), info.value.errors


async def test_reject_names_the_counts(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start(
        start_proxy, mock_upstream, write_policy, "{context_windows: {mock-gpt: 300}, output_reserve: 50}"
    )
    async with proxy.client() as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="mock-gpt", messages=conversation(8))
    assert info.value.code == "context_length_exceeded"
    assert info.value.response.headers["x-chaperone-budget"] == "rejected:context"
    assert "maximum context length is 300 tokens" in info.value.message
    assert "resulted in" in info.value.message
    assert await upstream_chats(mock_upstream) == []


async def test_truncate_drops_oldest_turns_keeps_system_last_user_and_tool_pairs(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    budget = "{on_overflow: truncate, context_windows: {mock-gpt: 400}, output_reserve: 50}"
    proxy = await start(start_proxy, mock_upstream, write_policy, budget)
    messages = conversation(8, with_tool=True)
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=messages)
    assert raw.headers["x-chaperone-budget"].startswith("truncated; input_tokens=")
    sent = (await upstream_chats(mock_upstream))[0]["messages"]
    assert len(sent) < len(messages)
    assert sent[0] == messages[0] and sent[-1] == messages[-1]
    assert sent == messages[:1] + messages[len(messages) - len(sent) + 1 :]  # the oldest turns went
    for i, m in enumerate(sent):  # never a tool result without its call, nor a call without its result
        if m["role"] == "tool":
            assert sent[i - 1].get("tool_calls")
        if m.get("tool_calls"):
            assert sent[i + 1]["role"] == "tool"
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens < 400


async def test_middle_out_keeps_the_opening_and_the_latest_turns(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    budget = "{on_overflow: middle_out, context_windows: {mock-gpt: 500}, output_reserve: 50}"
    proxy = await start(start_proxy, mock_upstream, write_policy, budget)
    messages = conversation(8)
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=messages)
    assert raw.headers["x-chaperone-budget"].startswith("middle_out;")
    sent = (await upstream_chats(mock_upstream))[0]["messages"]
    assert sent[:3] == messages[:3]  # system and the first exchange
    assert sent[-3:] == messages[-3:]  # the latest exchange and the question
    assert len(sent) < len(messages)


async def summarizing_proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    budget = "{on_overflow: summarize, summarize_model: cheap, context_windows: {mock-gpt: 400}, output_reserve: 50}"
    policy = simple_policy(mock_upstream.url, f"[{{budget: {budget}}}]").replace(
        '  "*": {backend: mock}\n', '  "*": {backend: mock}\n  cheap: {backend: mock}\n'
    )
    return await start_proxy(write_policy(policy))


async def test_summarize_replaces_old_turns_with_a_summary_from_the_cheap_route(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await summarizing_proxy(start_proxy, mock_upstream, write_policy)
    messages = conversation(8)
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=messages)
    assert raw.headers["x-chaperone-budget"].startswith("summarized;")
    summary_call, main = await upstream_chats(mock_upstream)
    assert summary_call["model"] == "cheap" and summary_call["messages"][0]["content"] == SUMMARY_PROMPT
    assert "turn 0 alpha" in summary_call["messages"][1]["content"]
    sent = main["messages"]
    assert sent[0] == messages[0] and sent[-1] == messages[-1]
    assert sent[1]["content"].startswith("Summary of the earlier conversation: Mock reply to:")
    assert len(sent) == 3


async def test_summarize_works_on_a_responses_input(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await summarizing_proxy(start_proxy, mock_upstream, write_policy)
    items = conversation(8)[1:]  # user and assistant turns as Responses input messages
    async with proxy.client() as client:
        raw = await client.responses.with_raw_response.create(
            model="mock-gpt", instructions="You are terse.", input=items, store=False
        )
    assert raw.headers["x-chaperone-budget"].startswith("summarized;")
    summary_call, main = await upstream_chats(mock_upstream)  # the mock speaks chat: both are translated
    assert summary_call["model"] == "cheap" and "turn 0 alpha" in summary_call["messages"][1]["content"]
    sent = main["messages"]  # instructions and the summary item, as the chat translation joins system messages
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("You are terse.\n\nSummary of the earlier")
    assert sent[1:] == [items[-1]]


async def test_summarize_works_on_an_anthropic_conversation(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await summarizing_proxy(start_proxy, mock_upstream, write_policy)
    turns = conversation(8)[1:]
    root = proxy.url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=root, api_key="sk-none", max_retries=0) as claude:
        raw = await claude.messages.with_raw_response.create(
            model="mock-gpt", max_tokens=40, system="You are terse.", messages=turns
        )
    assert raw.headers["x-chaperone-budget"].startswith("summarized;")
    summary_call, main = await upstream_chats(mock_upstream)
    assert summary_call["model"] == "cheap" and "turn 0 alpha" in summary_call["messages"][1]["content"]
    sent = main["messages"]  # the summary follows the system prompt: Messages has no system turns
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("You are terse.\n\nSummary of the earlier")
    assert sent[1:] == [turns[-1]]


async def test_fallback_routes_to_the_first_model_whose_window_fits(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    budget = "{on_overflow: fallback, context_windows: {small: 200, medium: 300, big: 100000}, output_reserve: 100}"
    policy = simple_policy(mock_upstream.url, f"[{{budget: {budget}}}]").replace(
        '  "*": {backend: mock}\n',
        '  "*": {backend: mock}\n  small: {backend: mock, fallback: [medium, big]}\n'
        "  medium: {backend: mock}\n  big: {backend: mock}\n",
    )
    proxy = await start_proxy(write_policy(policy))
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="small", messages=conversation(4))
    header = raw.headers["x-chaperone-budget"]
    assert header.startswith("fallback;") and "model=big" in header
    assert [b["model"] for b in await upstream_chats(mock_upstream)] == ["big"]


async def test_max_tokens_is_clamped_so_input_and_output_fit(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start(
        start_proxy, mock_upstream, write_policy, "{context_windows: {mock-gpt: 1000}, output_reserve: 100}"
    )
    messages = conversation(2)
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt",
            messages=messages,
            max_completion_tokens=5000,
        )
    sent = (await upstream_chats(mock_upstream))[0]
    header = raw.headers["x-chaperone-budget"]
    input_tokens = int(header.split("input_tokens=")[1].split(";")[0].split()[0])
    assert sent["max_completion_tokens"] == 1000 - input_tokens
    assert "clamped max_completion_tokens" in header and "(estimate)" in header  # mock-gpt is no OpenAI model


async def test_an_openai_model_is_counted_exactly(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start(start_proxy, mock_upstream, write_policy, "{}")
    async with proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello there"}]
        )
    assert raw.headers["x-chaperone-budget"] == "ok; input_tokens=9"  # 3 + (user, hello there) + 3
    assert "x-ratelimit-limit-requests" not in raw.headers  # no rpm configured


async def test_max_input_tokens_caps_every_model(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start(start_proxy, mock_upstream, write_policy, "{max_input_tokens: 100}")
    async with proxy.client() as client:
        await client.chat.completions.create(model="gpt-4o", messages=conversation(0), max_tokens=10_000)
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="gpt-4o", messages=conversation(2), max_tokens=10)
    assert info.value.code == "context_length_exceeded"
    assert "at most 100 input tokens" in info.value.message
    assert [b.get("max_tokens") for b in await upstream_chats(mock_upstream)] == [10_000]  # 128k window: no clamp


async def test_a_request_is_sized_by_the_client_bytes_even_after_the_chain_drops_them(
    registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether to count on a worker thread is decided by the body's size: the chain drops ``raw`` before any
    request hook runs, so the budget reads the size the handler kept instead of serialising the body again."""
    policy = compile_chain_policy("[{budget: {}}]", registry)
    plugin = policy.default_chain.steps[0].plugin
    sized: list[int] = []
    monkeypatch.setattr(tokens, "_size_hint", lambda body: sized.append(1) or 0)
    threads = counting_threads(monkeypatch)
    for text in ("hi", "word " * 20_000):
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        exchange = make_exchange(policy, body)
        exchange.request.size = len(orjson.dumps(body))  # what the handler keeps; raw is None, as in a chain
        await plugin.on_request(exchange)
    assert sized == []  # never re-serialised to be sized
    assert threads[0] == threading.get_ident() and threads[1] != threading.get_ident()  # the long one: off the loop


async def test_scan_reports_tokens_and_what_would_happen(registry: PluginRegistry) -> None:
    budget = "{on_overflow: truncate, context_windows: {m: 300}, output_reserve: 50}"
    policy = compile_chain_policy(f"[{{budget: {budget}}}]", registry)
    plugin = policy.default_chain.steps[0].plugin
    small = ApiRequest("chat", "/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    big = ApiRequest("chat", "/chat/completions", {"model": "m", "messages": conversation(8)})
    assert await plugin.scan(small) == {"action": "allow", "tokens": 8, "exact": False, "input_room": 250}
    report = await plugin.scan(big)
    assert report["action"] == "truncate" and report["tokens"] > 250


async def test_truncate_cuts_a_responses_input_keeping_call_and_output_together(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    budget = "{on_overflow: truncate, context_windows: {mock-gpt: 400}, output_reserve: 50}"
    proxy = await start(start_proxy, mock_upstream, write_policy, budget)
    items: list[Any] = [{"role": "user", "content": "Read the files."}]
    for i in range(6):
        items.append({"type": "function_call", "call_id": f"c{i}", "name": "read", "arguments": f'{{"n": {i}}}'})
        items.append({"type": "function_call_output", "call_id": f"c{i}", "output": "line " * 40})
    async with proxy.client() as client:
        raw = await client.responses.with_raw_response.create(model="mock-gpt", input=items, instructions="Be brief.")
    assert raw.headers["x-chaperone-budget"].startswith("truncated;")
    log = [r["body"] for r in await mock_upstream.requests()]
    sent = log[-1]["messages"]  # the chat backend received the Responses request as chat
    calls = [c["id"] for m in sent if m.get("tool_calls") for c in m["tool_calls"]]
    results = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
    assert calls == results and calls[-1] == "c5" and "c0" not in calls
    assert [m["content"] for m in sent if m["role"] == "user"] == ["Read the files."]


async def test_truncate_cuts_a_messages_conversation_by_whole_rounds(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    budget = "{on_overflow: truncate, context_windows: {mock-gpt: 400}, output_reserve: 50}"
    proxy = await start(start_proxy, mock_upstream, write_policy, budget)
    turns: list[Any] = []
    for i in range(6):  # each round: a question, a tool call, its result, an answer
        turns.append({"role": "user", "content": f"Question {i}: " + "word " * 30})
        use = {"type": "tool_use", "id": f"t{i}", "name": "look", "input": {"n": i}}
        turns.append({"role": "assistant", "content": [use]})
        turns.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"}]})
        turns.append({"role": "assistant", "content": f"Answer {i}."})
    turns.append({"role": "user", "content": "And now?"})
    async with anthropic.AsyncAnthropic(base_url=proxy.url.removesuffix("/v1"), api_key="k", max_retries=0) as claude:
        raw = await claude.messages.with_raw_response.create(
            model="mock-gpt", max_tokens=40, system="Be brief.", messages=turns
        )
    assert raw.headers["x-chaperone-budget"].startswith("truncated;")
    sent = (await upstream_chats(mock_upstream))[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    asked = [m["content"] for m in sent if m["role"] == "user"]
    assert asked[-1] == "And now?" and not any("Question 0" in str(a) for a in asked)
    calls = [c["id"] for m in sent if m.get("tool_calls") for c in m["tool_calls"]]
    results = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
    assert calls == results and calls and calls[-1] == "t5"  # whole rounds went: no call without its result
    assert sent[1]["role"] == "user"  # what is left still opens with a user turn
