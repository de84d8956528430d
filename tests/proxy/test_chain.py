"""The chain runner: policy order in, reverse order out, onion call hooks, on_complete always, strict impls."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from proxy import (
    ApiResponse,
    CallNext,
    Exchange,
    PolicyViolation,
    StashKey,
    UpstreamError,
    UpstreamUnavailable,
    hookimpl,
    sse,
)
from proxy.policy import PolicyError, compile_policy_text
from proxy.pricing import ask_stream_usage
from proxy.registry import PluginRegistry, build_registry
from proxy.runtime import Resources
from tests.chain_helpers import CHAT_OK, StubBackend, closed_port_url, compile_chain_policy, make_exchange, sse_data
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

Events = list[tuple[Any, ...]]
StartChain = Callable[..., Awaitable[RunningProxy]]
SEQ = StashKey[int]()
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


class RecConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = Field(description="Recorded with every event.")
    answer: bool = Field(default=False, description="on_request answers early.")
    refuse: bool = Field(default=False, description="on_request raises PolicyViolation.")
    fail_complete: bool = Field(default=False, description="on_complete raises.")
    tag: bool = Field(default=False, description="on_chunk numbers the chunks it sees (chunk['seq']).")
    drop_seq: int | None = Field(default=None, description="on_chunk drops the chunk with this seq.")
    set_temperature: float | None = Field(default=None, description="on_request sets the temperature.")
    suffix: str | None = Field(default=None, description="on_response appends this to the answer.")
    tail: bool = Field(default=False, description="on_stream_end sends one more chunk naming this step.")
    idle: bool = Field(default=False, description="on_response says it has nothing to do on the stream.")


def recorder(events: Events) -> type:
    """A plugin class ``rec`` that logs every hook call into ``events`` (a fresh list per test)."""

    class Rec:
        name = "rec"
        Config = RecConfig

        def __init__(self, config: RecConfig) -> None:
            self.config = config
            self.label = config.label

        @hookimpl
        async def on_startup(self, resources: Resources) -> None:
            events.append(("startup", self.label, type(resources.store).__name__))

        @hookimpl
        async def on_shutdown(self) -> None:
            events.append(("shutdown", self.label))

        @hookimpl
        async def on_request(self, exchange: Exchange) -> ApiResponse | None:
            events.append(("request", self.label))
            if self.config.set_temperature is not None:
                exchange.request.body["temperature"] = self.config.set_temperature
            if self.config.refuse:
                raise PolicyViolation(f"refused by {self.label}", code="test_refusal")
            if self.config.answer:
                body = {
                    **CHAT_OK,
                    "choices": [
                        {
                            **CHAT_OK["choices"][0],
                            "message": {"role": "assistant", "content": f"answered by {self.label}"},
                        }
                    ],
                }
                return ApiResponse(200, body=body, source=self.label)
            return None

        @hookimpl
        async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
            events.append(("wrap>", self.label))
            response = await call_next(exchange)
            events.append(("wrap<", self.label))
            return response

        @hookimpl
        async def on_response(self, exchange: Exchange) -> None:
            events.append(("response", self.label))
            assert exchange.response is not None
            if self.config.idle:
                exchange.skip_stream_hooks(self)
            if self.config.suffix is not None and exchange.response.stream is None:
                exchange.response.json()["choices"][0]["message"]["content"] += self.config.suffix

        @hookimpl
        async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | None:
            if self.config.tag:
                seq = exchange.stash.get(SEQ, 0) or 0
                exchange.stash[SEQ] = seq + 1
                chunk["seq"] = seq
            events.append(("chunk", self.label, chunk.get("seq")))
            dropped = self.config.drop_seq is not None and chunk.get("seq") == self.config.drop_seq
            return None if dropped else chunk

        @hookimpl
        async def on_stream_end(self, exchange: Exchange) -> list[dict[str, Any]] | None:
            events.append(("end", self.label))
            if not self.config.tail:
                return None
            return [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": self.label}}]}]

        @hookimpl
        async def on_complete(self, exchange: Exchange) -> None:
            events.append(("complete", self.label, type(exchange.error).__name__ if exchange.error else None))
            if self.config.fail_complete:
                raise RuntimeError("on_complete blew up")

    return Rec


def only(events: Events, kind: str) -> list[Any]:
    """The labels (or label, extra) of one kind of event, in the order they happened."""
    return [e[1] if len(e) == 2 else e[1:] for e in events if e[0] == kind]


def rec_chain(*labels: str, **options: dict[str, Any]) -> str:
    steps = []
    for label in labels:
        config = {"label": label, **options.get(label, {})}
        steps.append("{rec: {" + ", ".join(f"{k}: {_yaml(v)}" for k, v in config.items()) + "}}")
    return "[" + ", ".join(steps) + "]"


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.fixture
def events() -> Events:
    return []


@pytest.fixture
def rec_registry(registry: PluginRegistry, events: Events) -> PluginRegistry:
    registry(recorder(events))
    return registry


@pytest.fixture
def start_chain(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    rec_registry: PluginRegistry,
) -> StartChain:
    """Start the proxy in front of the mock upstream with ``chain`` as the default chain."""

    async def start(chain: str, upstream_url: str | None = None) -> RunningProxy:
        return await start_proxy(write_policy(simple_policy(upstream_url or mock_upstream.url, chain=chain)))

    return start


async def post_chat(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.post(url + "/chat/completions", json=body) as r:
        return r.status, await r.read()


# ---- the hooks, one test each (tests/proxy/test_hookspecs.py checks these exist) ------------------


def test_hook_register_plugins(monkeypatch: pytest.MonkeyPatch, events: Events) -> None:
    module = types.ModuleType("chaperone_test_registering")
    rec = recorder(events)

    @hookimpl
    def register_plugins(register: PluginRegistry) -> None:
        register(rec)

    module.register_plugins = register_plugins  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    registry = build_registry(entry_points=False, modules=(), extra=(module.__name__,))
    assert registry.names() == ["rec"]
    assert registry.get("rec") is rec

    both = build_registry(entry_points=False, extra=(module.__name__,))
    known = [
        "budget",
        "cache",
        "capture",
        "cost",
        "headers",
        "injection",
        "judge",
        "params",
        "pii",
        "rec",
        "retry",
        "schema",
    ]
    assert both.names() == known


def test_registry_rejects_a_class_without_name_or_config() -> None:
    registry = PluginRegistry()

    class NoConfig:
        name = "noconfig"

    class NoName:
        Config = RecConfig

    with pytest.raises(TypeError, match="Config"):
        registry(NoConfig)
    with pytest.raises(TypeError, match="name"):
        registry(NoName)


def test_two_plugins_with_one_name_are_refused(events: Events) -> None:
    registry = PluginRegistry()
    registry(recorder(events))
    with pytest.raises(ValueError, match="'rec' registered twice"):
        registry(recorder(events))


async def test_hook_on_startup(start_chain: StartChain, events: Events) -> None:
    await start_chain(rec_chain("a", "b", "c"))
    assert only(events, "startup") == [("a", "DiskStore"), ("b", "DiskStore"), ("c", "DiskStore")]


async def test_hook_on_shutdown(start_chain: StartChain, events: Events) -> None:
    running = await start_chain(rec_chain("a", "b", "c"))
    assert only(events, "shutdown") == []
    await running.runner.cleanup()
    assert only(events, "shutdown") == ["c", "b", "a"]


async def test_hook_on_request(start_chain: StartChain, events: Events, mock_upstream: MockUpstream) -> None:
    running = await start_chain(rec_chain("a", "b", "c", b={"set_temperature": 0.25}))
    status, _ = await post_chat(running.url, {"model": "mock-gpt", "messages": MESSAGES, "temperature": 1.5})
    assert status == 200
    assert only(events, "request") == ["a", "b", "c"]
    assert (await mock_upstream.requests())[-1]["body"]["temperature"] == 0.25


async def test_hook_wrap_call() -> None:
    events: Events = []
    registry = build_registry(entry_points=False)
    registry(recorder(events))
    policy = compile_chain_policy(rec_chain("outer", "middle", "inner"), registry)

    def backend(exchange: Exchange) -> dict[str, Any]:
        events.append(("backend",))
        return CHAT_OK

    response = await policy.default_chain.run(make_exchange(policy), StubBackend(backend))
    assert response.body == CHAT_OK
    calls = [e for e in events if e[0] in ("wrap>", "wrap<", "backend")]
    assert calls == [
        ("wrap>", "outer"),
        ("wrap>", "middle"),
        ("wrap>", "inner"),
        ("backend",),
        ("wrap<", "inner"),
        ("wrap<", "middle"),
        ("wrap<", "outer"),
    ]


async def test_hook_on_response(start_chain: StartChain, events: Events) -> None:
    running = await start_chain(rec_chain("a", "b", "c", a={"suffix": "-a"}, c={"suffix": "-c"}))
    async with running.client() as client:
        completion = await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert only(events, "response") == ["c", "b", "a"]
    assert (completion.choices[0].message.content or "").endswith("-c-a")  # the inner step edits first


async def test_hook_on_chunk(start_chain: StartChain, events: Events) -> None:
    # c is innermost: it numbers the chunks and drops chunk 1, which a and b must never see.
    running = await start_chain(rec_chain("a", "b", "c", c={"tag": True, "drop_seq": 1}))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi [[mock:tokens=3]]"}], "stream": True}
    status, raw = await post_chat(running.url, body)
    assert status == 200
    chunks = only(events, "chunk")
    total = max(seq for label, seq in chunks if label == "c") + 1
    assert total >= 4
    expected: list[tuple[str, int]] = []
    for seq in range(total):
        expected += [("c", seq)] if seq == 1 else [("c", seq), ("b", seq), ("a", seq)]
    assert chunks == expected
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    assert [d["seq"] for d in data[:-1]] == [s for s in range(total) if s != 1]


async def test_hook_on_stream_end(start_chain: StartChain, events: Events) -> None:
    # b and c send a tail; each tail passes only the chunk hooks of the steps outside its sender.
    running = await start_chain(rec_chain("a", "b", "c", b={"tail": True}, c={"tail": True}))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi [[mock:tokens=2]]"}], "stream": True}
    status, raw = await post_chat(running.url, body)
    assert status == 200
    assert only(events, "end") == ["c", "b", "a"]
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    assert [d["choices"][0]["delta"].get("content") for d in data[-3:-1]] == ["c", "b"]
    chunk_events = [e for e in events if e[0] in ("chunk", "end")]
    after_end_c = chunk_events[chunk_events.index(("end", "c")) + 1 :]
    assert after_end_c[:2] == [("chunk", "b", None), ("chunk", "a", None)]  # c's tail
    after_end_b = chunk_events[chunk_events.index(("end", "b")) + 1 :]
    assert after_end_b[:2] == [("chunk", "a", None), ("end", "a")]  # b's tail skips b and c


class ObsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = Field(description="Recorded with every chunk it sees.")
    scribble: bool = Field(default=False, description="Writes into the chunk (which observers must not do).")
    ask_usage: bool = Field(default=False, description="Asks for stream usage, as the cost plugin does.")


def observer(events: Events) -> type:
    class Obs:
        name = "obs"
        Config = ObsConfig

        def __init__(self, config: ObsConfig) -> None:
            self.config = config

        @hookimpl
        async def on_request(self, exchange: Exchange) -> None:
            if self.config.ask_usage:
                ask_stream_usage(exchange)

        @hookimpl
        def observe_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> None:
            events.append(("observe", self.config.label, chunk.get("seq"), "usage" in chunk))
            if self.config.scribble:
                chunk["scribbled"] = True

    return Obs


async def test_hook_observe_chunk(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path],
    rec_registry: PluginRegistry, events: Events,
) -> None:  # fmt: skip
    # Observers see each chunk where their step stands: c (innermost) before b numbers it, a after.
    rec_registry(observer(events))
    chain = "[{obs: {label: a}}, {rec: {label: b, tag: true}}, {obs: {label: c}}]"
    running = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=chain)))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi [[mock:tokens=3]]"}], "stream": True}
    status, raw = await post_chat(running.url, body)
    assert status == 200
    seen = [(e[1], e[2]) for e in events if e[0] == "observe"]
    total = len(seen) // 2
    assert total >= 4
    assert seen == [pair for n in range(total) for pair in (("c", None), ("a", n))]
    assert [d["seq"] for d in sse_data(raw)[:-1]] == list(range(total))


async def test_a_chain_of_observers_passes_the_upstreams_bytes_and_drops_the_usage_it_asked_for(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path],
    rec_registry: PluginRegistry, events: Events,
) -> None:  # fmt: skip
    rec_registry(observer(events))
    chain = "[{obs: {label: a, ask_usage: true}}, {obs: {label: b, scribble: true}}]"
    running = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=chain)))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi [[mock:tokens=3]]"}], "stream": True}
    status, raw = await post_chat(running.url, body)
    assert status == 200
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    assert not any("scribbled" in d for d in data[:-1])  # no re-encoding: what the observer wrote never left
    assert not any("usage" in d for d in data[:-1])  # the client did not ask: no usage field, no usage chunk
    assert any(e[3] for e in events if e[0] == "observe" and e[1] == "a")  # the observers saw it
    asked = {**body, "stream_options": {"include_usage": True}}
    status, raw = await post_chat(running.url, asked)
    usage = [d["usage"] for d in sse_data(raw)[:-1] if d.get("usage")]
    assert len(usage) == 1 and usage[0]["completion_tokens"] == 3  # asked for: passed on as it came


class TapConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = Field(description="Names this step's record of bytes.")


def tap(seen: dict[str, list[bytes]]) -> type:
    class Tap:
        name = "tap"
        Config = TapConfig

        def __init__(self, config: TapConfig) -> None:
            self.label = config.label

        @hookimpl
        def observe_bytes(self, exchange: Exchange, data: bytes) -> None:
            seen.setdefault(self.label, []).append(data)

    return Tap


@pytest.mark.parametrize("with_chunk_hook", [False, True], ids=["unparsed", "parsed"])
async def test_hook_observe_bytes(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path],
    rec_registry: PluginRegistry, with_chunk_hook: bool,
) -> None:  # fmt: skip
    # Each observer gets exactly the bytes the client got, block by block, whether the chain parses or not.
    seen: dict[str, list[bytes]] = {}
    rec_registry(tap(seen))
    inner = ", {rec: {label: b, tag: true}}" if with_chunk_hook else ""
    chain = f"[{{tap: {{label: a}}}}{inner}, {{tap: {{label: c}}}}]"
    running = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=chain)))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi [[mock:tokens=3]]"}], "stream": True}
    status, raw = await post_chat(running.url, body)
    assert status == 200
    assert b"".join(seen["a"]) == raw == b"".join(seen["c"]) and seen["a"]
    assert (b'"seq":0' in raw) == with_chunk_hook


async def test_a_step_idle_on_a_stream_sees_no_chunks_and_an_all_idle_chain_parses_nothing(
    start_chain: StartChain, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await start_chain(rec_chain("a", "b", a={"idle": True}))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi [[mock:tokens=3]]"}], "stream": True}
    status, raw = await post_chat(running.url, body)
    assert status == 200 and sse_data(raw)[-1] == "[DONE]"
    assert {label for label, _ in only(events, "chunk")} == {"b"} and only(events, "end") == ["b"]
    events.clear()
    decoded: list[bytes] = []
    real_decode = sse.decode_data
    monkeypatch.setattr(sse, "decode_data", lambda event: decoded.append(event) or real_decode(event))
    running = await start_chain(rec_chain("c", c={"idle": True}))
    status, raw = await post_chat(running.url, body)
    assert status == 200 and sse_data(raw)[-1] == "[DONE]"
    assert only(events, "chunk") == [] and only(events, "end") == []
    assert decoded == []  # the bytes passed through unparsed


async def test_stream_end_hooks_run_once_before_the_error_of_a_broken_stream(
    start_chain: StartChain, events: Events
) -> None:
    running = await start_chain(rec_chain("a", a={"tail": True}))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "x [[mock:drop_after=2]]"}], "stream": True}
    status, raw = await post_chat(running.url, body)
    assert status == 200
    data = sse_data(raw)
    assert "error" in data[-1] and data[-2]["choices"][0]["delta"]["content"] == "a"
    assert only(events, "end") == ["a"]


async def test_hook_on_complete(start_chain: StartChain, events: Events) -> None:
    running = await start_chain(rec_chain("a", "b", "c"))
    status, _ = await post_chat(running.url, {"model": "mock-gpt", "messages": MESSAGES})
    assert status == 200
    assert only(events, "complete") == [("c", None), ("b", None), ("a", None)]
    assert [e[0] for e in events].index("complete") > [e[0] for e in events].index("response")


# ---- order and stop rules -------------------------------------------------------------------------


async def test_request_response_and_complete_order_end_to_end(start_chain: StartChain, events: Events) -> None:
    running = await start_chain(rec_chain("a", "b"))
    status, _ = await post_chat(running.url, {"model": "mock-gpt", "messages": MESSAGES})
    assert status == 200
    assert [e[:2] for e in events if e[0] not in ("startup",)] == [
        ("request", "a"),
        ("request", "b"),
        ("wrap>", "a"),
        ("wrap>", "b"),
        ("wrap<", "b"),
        ("wrap<", "a"),
        ("response", "b"),
        ("response", "a"),
        ("complete", "b"),
        ("complete", "a"),
    ]


async def test_short_circuit_skips_the_upstream_and_later_steps(
    start_chain: StartChain, events: Events, mock_upstream: MockUpstream
) -> None:
    running = await start_chain(rec_chain("s1", "s2", "s3", "s4", s2={"answer": True}))
    async with running.client() as client:
        completion = await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert completion.choices[0].message.content == "answered by s2"
    assert await mock_upstream.requests() == []
    assert only(events, "request") == ["s1", "s2"]
    assert only(events, "wrap>") == []
    assert only(events, "response") == ["s2", "s1"]
    assert only(events, "complete") == [("s2", None), ("s1", None)]


async def test_a_retry_wrap_may_call_next_twice() -> None:
    class RetryConfig(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        attempts: int = Field(ge=1, description="Calls in all.")

    class Retry:
        name = "toy_retry"  # the built-in is "retry"
        Config = RetryConfig

        def __init__(self, config: RetryConfig) -> None:
            self.config = config

        @hookimpl
        async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
            for attempt in range(self.config.attempts):
                try:
                    return await call_next(exchange)
                except UpstreamError:
                    if attempt + 1 == self.config.attempts:
                        raise
            raise AssertionError("unreachable")

    events: Events = []
    registry = build_registry(entry_points=False)
    registry(Retry)
    registry(recorder(events))
    policy = compile_chain_policy("[{toy_retry: {attempts: 3}}, {rec: {label: inner}}]", registry)
    failures = iter([UpstreamUnavailable("down")])

    def flaky(exchange: Exchange) -> dict[str, Any]:
        if (exc := next(failures, None)) is not None:
            raise exc
        return {**CHAT_OK, "id": "second-try"}

    stub = StubBackend(flaky)
    response = await policy.default_chain.run(make_exchange(policy), stub)
    assert response.body is not None and response.body["id"] == "second-try"
    assert len(stub.calls) == 2
    assert only(events, "wrap>") == ["inner", "inner"]
    assert only(events, "response") == ["inner"]


async def test_on_complete_runs_when_the_upstream_fails(start_chain: StartChain, events: Events) -> None:
    running = await start_chain(rec_chain("a", "b"), upstream_url=closed_port_url())
    async with running.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert info.value.status_code == 502
    assert only(events, "complete") == [("b", "UpstreamError"), ("a", "UpstreamError")]
    assert only(events, "response") == []


async def test_on_complete_runs_when_on_request_raises(
    start_chain: StartChain, events: Events, mock_upstream: MockUpstream
) -> None:
    running = await start_chain(rec_chain("a", "b", "c", b={"refuse": True}))
    async with running.client() as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert info.value.code == "test_refusal"
    assert only(events, "request") == ["a", "b"]
    assert only(events, "complete") == [("b", "PolicyViolation"), ("a", "PolicyViolation")]
    assert await mock_upstream.requests() == []


async def test_on_complete_failure_is_logged_and_changes_nothing(
    start_chain: StartChain, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_chain(rec_chain("a", "b", b={"fail_complete": True}))
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt",
            messages=MESSAGES,
            extra_headers={"x-request-id": "req-oncomplete"},
        )
    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content
    assert only(events, "complete") == [("b", None), ("a", None)]  # the outer step still ran
    failures = [r for r in caplog.records if r.name == "proxy.chain" and r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "req-oncomplete" in failures[0].getMessage() and failures[0].exc_info is not None


async def test_the_same_plugin_twice_with_two_configs(start_chain: StartChain, events: Events) -> None:
    running = await start_chain(rec_chain("first", "second", second={"set_temperature": 0.5}))
    status, _ = await post_chat(running.url, {"model": "mock-gpt", "messages": MESSAGES})
    assert status == 200
    assert only(events, "request") == ["first", "second"]
    assert only(events, "complete") == [("second", None), ("first", None)]


# ---- what a hookimpl may look like ------------------------------------------------------------------


class EmptyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SyncHook:
    name = "bad"
    Config = EmptyConfig

    def __init__(self, config: EmptyConfig) -> None:
        pass

    @hookimpl
    def on_request(self, exchange: Exchange) -> None:
        return None


class MisspelledHook(SyncHook):
    @hookimpl
    async def on_requets(self, exchange: Exchange) -> None:
        return None


class UnknownArgument(SyncHook):
    @hookimpl
    async def on_request(self, exchange: Exchange, budget: int) -> None:  # type: ignore[override]
        return None


@pytest.mark.parametrize(
    ("cls", "complaint"),
    [(SyncHook, "must be 'async def'"), (MisspelledHook, "on_requets"), (UnknownArgument, "budget")],
    ids=["not-async", "misspelled", "unknown-argument"],
)
def test_a_bad_hookimpl_is_rejected_at_policy_load(cls: type, complaint: str) -> None:
    registry = build_registry(entry_points=False)
    registry(cls)
    text = textwrap.dedent(
        """
        backends: {stub: {url: "http://127.0.0.1:9/v1"}}
        models: {"*": {backend: stub}}
        chains:
          default: []
          guarded: [params, bad]
        """
    )
    with pytest.raises(PolicyError) as info:
        compile_policy_text(text, registry, env={})
    (line,) = info.value.errors
    assert line.startswith("chains.guarded: plugin 'bad': ")  # names the chain and the step
    assert complaint in line
    assert "\n" not in line  # `chaperone check` prints one line per mistake


async def test_an_impl_may_take_fewer_arguments_than_its_spec() -> None:
    seen: list[str] = []

    class Lean:
        name = "lean"
        Config = EmptyConfig

        def __init__(self, config: EmptyConfig) -> None:
            pass

        @hookimpl
        async def on_request(self) -> None:
            seen.append("request")

        @hookimpl
        async def on_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
            seen.append(f"chunk {chunk['n']}")
            return {**chunk, "lean": True}

        @hookimpl
        async def on_complete(self) -> None:
            seen.append("complete")

    registry = build_registry(entry_points=False)
    registry(Lean)
    policy = compile_chain_policy("[lean]", registry)
    exchange = make_exchange(policy)
    await policy.default_chain.run(exchange, StubBackend())

    async def upstream() -> AsyncIterator[bytes]:
        yield b'data: {"n": 1}\n\ndata: {"n": 2}\n\n'
        yield b"data: [DONE]\n\n"

    out = b"".join([piece async for piece in policy.default_chain.process_stream(exchange, upstream())])
    await policy.default_chain.complete(exchange)
    assert seen == ["request", "chunk 1", "chunk 2", "complete"]
    assert sse_data(out) == [{"n": 1, "lean": True}, {"n": 2, "lean": True}, "[DONE]"]


async def test_a_chunk_hook_may_send_several_events_and_the_stream_keeps_its_framing() -> None:
    """A list from on_chunk becomes several events, each through the outer steps; names and numbering stay right."""
    seen: list[str] = []

    class Split:  # inner step: sends a copy of each delta before it
        name = "split"
        Config = RecConfig

        def __init__(self, config: RecConfig) -> None:
            pass

        @hookimpl
        async def on_chunk(self, chunk: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
            if chunk["type"].endswith(".delta"):
                return [{**chunk, "delta": chunk["delta"] + "!"}, chunk]
            return chunk

    class Outer:
        name = "outer"
        Config = RecConfig

        def __init__(self, config: RecConfig) -> None:
            pass

        @hookimpl
        async def on_chunk(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
            seen.append(chunk.get("delta", chunk["type"]))
            return None if chunk.get("delta") == "b" else chunk  # drops one event: numbering closes the gap

    registry = build_registry(entry_points=False)
    registry(Split)
    registry(Outer)
    policy = compile_chain_policy("[{outer: {label: o}}, {split: {label: s}}]", registry)
    exchange = make_exchange(policy)
    await policy.default_chain.run(exchange, StubBackend())

    def event(kind: str, n: int, **extra: Any) -> bytes:
        payload = json.dumps({"type": kind, "sequence_number": n, **extra})
        return f"event: {kind}\ndata: {payload}\n\n".encode()

    async def upstream() -> AsyncIterator[bytes]:
        yield event("response.created", 0) + event("response.output_text.delta", 1, delta="a")
        yield event("response.output_text.delta", 2, delta="b") + event("response.completed", 3)

    out = b"".join([piece async for piece in policy.default_chain.process_stream(exchange, upstream())])
    assert seen == ["response.created", "a!", "a", "b!", "b", "response.completed"]
    events = [e for e in out.split(b"\n\n") if e]
    assert all(e.startswith(b"event: response.") for e in events)  # the named framing is kept
    data = sse_data(out)
    assert [d.get("delta", d["type"]) for d in data] == ["response.created", "a!", "a", "b!", "response.completed"]
    assert [d["sequence_number"] for d in data] == [0, 1, 2, 3, 4]


# ---- third-party plugins ------------------------------------------------------------------------------

FAKE_PLUGIN = '''
"""A third-party plugin, installed as a distribution with a chaperone entry point."""
from pydantic import BaseModel, ConfigDict, Field

from proxy import hookimpl


class FakeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    greeting: str = Field(default="hi", description="Added to the request body.")


class Fake:
    name = "fake"
    Config = FakeConfig

    def __init__(self, config):
        self.config = config

    @hookimpl
    async def on_request(self, exchange):
        exchange.request.body["greeting"] = self.config.greeting


@hookimpl
def register_plugins(register):
    register(Fake)
'''


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    dist = site / "fake_plugin_dist-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin-dist\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[chaperone]\nfake = fake_chaperone_plugin\n")
    (site / "fake_chaperone_plugin.py").write_text(FAKE_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fake_chaperone_plugin", raising=False)
    yield site
    sys.modules.pop("fake_chaperone_plugin", None)


async def test_a_third_party_plugin_is_found_through_entry_points(fake_distribution: Path) -> None:
    assert build_registry(entry_points=False).get("fake") is None
    registry = build_registry()
    assert {"fake", "headers", "params"} <= set(registry.names())
    policy = compile_chain_policy("[{fake: {greeting: hello}}]", registry)
    stub = StubBackend()
    await policy.default_chain.run(make_exchange(policy), stub)
    assert stub.calls[0]["greeting"] == "hello"


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
async def test_the_usage_a_plugin_asked_for_is_cut_from_compact_and_spaced_json(spaced: bool) -> None:
    policy = compile_chain_policy("[]", build_registry())
    exchange = make_exchange(policy, {"model": "m", "messages": MESSAGES, "stream": True})
    ask_stream_usage(exchange)
    dumps = (lambda o: json.dumps(o).encode()) if spaced else (lambda o: json.dumps(o, separators=(",", ":")).encode())
    head = {"id": "c", "object": "chat.completion.chunk", "model": "m"}
    chunks = [{**head, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}], "usage": None}
              for w in ("a", "b")]  # fmt: skip
    chunks.append({**head, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

    async def upstream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield b"data: " + dumps(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"

    assert policy.default_chain.parses_chunks_for(exchange)
    out = b"".join([block async for block in policy.default_chain.process_stream(exchange, upstream())])
    data = sse_data(out)
    assert data[-1] == "[DONE]" and [d["choices"][0]["delta"]["content"] for d in data[:-1]] == ["a", "b"]
    assert b"usage" not in out
    assert exchange.usage is not None and exchange.usage.total_tokens == 5 and exchange.response_model == "m"
