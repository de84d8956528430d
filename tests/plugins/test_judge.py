"""The judge plugin: verdict parsing, then pass / refine / fallback / block / flag, timeouts, sampling, accounting."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from plugins._judge.verdict import read_verdict
from plugins.judge import Judge, JudgeConfig
from proxy.policy import PolicyError
from proxy.registry import PluginRegistry
from proxy.subcall import Subcaller
from tests.chain_helpers import CHAT_OK, StubBackend, compile_chain_policy, make_exchange
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, start_site

PASS = '{"pass": true, "score": 0.9, "reasons": []}'
FAIL = '{"pass": false, "score": 0.1, "reasons": ["claims Paris is in Spain; the context says France"]}'


class ScriptedJudge:
    """A judge upstream on a real port: answers its queued replies in order (then ``default``), or hangs on 'HANG'."""

    def __init__(self, replies: list[str] | None = None, default: str = PASS) -> None:
        self.replies = list(replies or [])
        self.default = default
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        reply = self.replies.pop(0) if self.replies else self.default
        if reply == "HANG":
            await asyncio.sleep(30)
        message = {"role": "assistant", "content": reply}
        return web.json_response({
            "id": "judge-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50},
        })  # fmt: skip

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app


@pytest.fixture
async def judge_server() -> AsyncIterator[tuple[ScriptedJudge, str]]:
    judge = ScriptedJudge()
    runner, base = await start_site(judge.app())
    yield judge, base + "/v1"
    await runner.cleanup()


def judge_policy(upstream: str, judge_url: str, chain: str) -> str:
    return f"""
backends:
  mock: {{url: "{upstream}", timeout_s: 10}}
  judges: {{url: "{judge_url}", timeout_s: 10}}
models:
  mock-gpt: {{backend: mock}}
  mock-big: {{backend: mock}}
  judge: {{backend: judges}}
chains:
  default: {chain}
"""


@pytest.fixture
def start(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    judge_server: tuple[ScriptedJudge, str],
) -> Callable[..., Any]:
    async def go(config: str) -> RunningProxy:
        chain = f"[{{judge: {{model: judge, {config}}}}}]"
        return await start_proxy(write_policy(judge_policy(mock_upstream.url, judge_server[1], chain)))

    return go


CONTEXT: Any = [
    {"role": "system", "content": "Context: Paris is the capital of France."},
    {"role": "user", "content": "Where is Paris?"},
]


async def chat_calls(mock: MockUpstream) -> list[dict[str, Any]]:
    return [r["body"] for r in await mock.requests() if r["path"] == "/v1/chat/completions"]


# ---- verdicts and config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "passed", "score"),
    [
        (PASS, True, 0.9),
        ('```json\n{"passed": "no", "score": "3", "reason": "made up"}\n```', False, 0.3),
        ('Here is my verdict: {"verdict": "PASS", "rating": 85} hope it helps', True, 0.85),
        ("FAIL. The answer is not grounded. Score: 2/10", False, 0.2),
        ("Yes, this answer passes.", True, None),
        ('{"pass": tru', None, None),  # broken JSON: no verdict, whatever the key's name says
        ('{"pass": false, "score": 0.2, "reasons": ["the answer invents', False, 0.2),  # cut at max_tokens
    ],
)
def test_verdicts_are_read_from_what_small_judges_write(reply: str, passed: bool | None, score: float | None) -> None:
    verdict = read_verdict(reply)
    assert verdict.passed is passed
    assert verdict.score == pytest.approx(score) if score is not None else verdict.score is None


def test_a_score_below_the_threshold_fails_even_when_it_says_pass() -> None:
    assert not read_verdict('{"pass": true, "score": 0.4}').accepts(0.5)
    assert read_verdict('{"pass": true}').accepts(0.5)
    assert not read_verdict('{"pass": false, "score": 0.9}').accepts(0.5)


def test_fallback_needs_a_model(registry: PluginRegistry) -> None:
    with pytest.raises(PolicyError, match="fallback_model"):
        compile_chain_policy("[{judge: {model: j, action: fallback}}]", registry)
    with pytest.raises(PolicyError, match="sample"):
        compile_chain_policy("[{judge: {model: j, sample: 1.5}}]", registry)


def test_sampling_judges_the_given_share_of_requests() -> None:
    judge = Judge(JudgeConfig(model="j", sample=0.3))
    ids = [uuid.uuid4().hex for _ in range(4000)]
    share = sum(judge.sampled(i) for i in ids) / len(ids)
    assert 0.27 < share < 0.33
    assert all(judge.sampled(i) == judge.sampled(i) for i in ids[:50])  # stable per request
    assert not any(Judge(JudgeConfig(model="j", sample=0)).sampled(i) for i in ids)


async def test_the_judges_tokens_are_added_to_the_requests_accounting(registry: PluginRegistry) -> None:
    policy = compile_chain_policy("[{judge: {model: judge}}]", registry)

    def handler(exchange: Any) -> dict[str, Any]:
        if exchange.request.body["model"] == "judge":
            return {**CHAT_OK, "choices": [{"index": 0, "message": {"role": "assistant", "content": PASS}}],
                    "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}}  # fmt: skip
        return dict(CHAT_OK)

    stub = StubBackend(handler)
    exchange = make_exchange(policy)
    exchange.subcaller = Subcaller(stub)
    response = await policy.default_chain.run(exchange, stub)
    assert response.headers["x-chaperone-judge"] == "pass"
    assert [(r.model, r.usage.total_tokens if r.usage else None) for r in exchange.subcalls] == [("judge", 37)]


# ---- end to end ------------------------------------------------------------------------------------


async def test_a_pass_lets_the_answer_through_and_the_judge_saw_question_context_answer(
    start: Any, judge_server: tuple[ScriptedJudge, str]
) -> None:
    running = await start("action: block")
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=CONTEXT)
    assert raw.headers["x-chaperone-judge"] == "pass"
    [asked] = judge_server[0].requests
    prompt = asked["messages"][0]["content"]
    assert "Where is Paris?" in prompt and "capital of France" in prompt
    assert raw.parse().choices[0].message.content in prompt
    assert asked["response_format"]["type"] == "json_schema" and asked["model"] == "judge"


async def test_fail_then_refine_then_pass(
    start: Any, judge_server: tuple[ScriptedJudge, str], mock_upstream: MockUpstream
) -> None:
    judge_server[0].replies = [FAIL, PASS]
    running = await start("action: refine, max_rounds: 2")
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=CONTEXT)
    assert raw.headers["x-chaperone-judge"] == "refined"
    calls = await chat_calls(mock_upstream)
    assert len(calls) == 2 and len(judge_server[0].requests) == 2
    critique = calls[1]["messages"][-1]
    assert critique["role"] == "user" and "Paris is in Spain" in critique["content"]
    assert calls[1]["messages"][-2]["role"] == "assistant"


async def test_refine_rounds_are_bounded_then_final_blocks(
    start: Any, judge_server: tuple[ScriptedJudge, str], mock_upstream: MockUpstream
) -> None:
    judge_server[0].default = FAIL
    running = await start("action: refine, max_rounds: 2, final: block")
    async with running.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="mock-gpt", messages=CONTEXT)
    assert caught.value.status_code == 502 and caught.value.body["code"] == "judge_rejected"  # type: ignore[index]
    assert len(await chat_calls(mock_upstream)) == 3 and len(judge_server[0].requests) == 3


async def test_a_fail_under_flag_passes_with_the_reasons(start: Any, judge_server: tuple[ScriptedJudge, str]) -> None:
    judge_server[0].default = FAIL
    running = await start("action: flag")
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=CONTEXT)
    assert raw.headers["x-chaperone-judge"] == "fail" and "Spain" in raw.headers["x-chaperone-judge-reasons"]


async def test_a_fail_under_fallback_answers_from_the_other_model(
    start: Any, judge_server: tuple[ScriptedJudge, str]
) -> None:
    judge_server[0].replies = [FAIL, PASS]
    running = await start("action: fallback, fallback_model: mock-big")
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=CONTEXT)
    assert raw.headers["x-chaperone-judge"] == "fallback" and raw.parse().model == "mock-big"


@pytest.mark.parametrize(("on_error", "status"), [("allow", 200), ("block", 502)])
async def test_a_judge_timeout_fails_open_or_closed(
    start: Any, judge_server: tuple[ScriptedJudge, str], on_error: str, status: int
) -> None:
    judge_server[0].default = "HANG"
    running = await start(f"timeout_s: 0.3, on_error: {on_error}")
    async with running.client() as client:
        if status == 200:
            raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=CONTEXT)
            assert raw.headers["x-chaperone-judge"] == "error" and raw.parse().choices[0].message.content
            return
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="mock-gpt", messages=CONTEXT)
    error: Any = caught.value.body
    assert caught.value.status_code == 502 and error["code"] == "judge_unavailable"


async def test_an_unreadable_verdict_counts_as_a_judge_error(
    start: Any, judge_server: tuple[ScriptedJudge, str]
) -> None:
    judge_server[0].default = "I cannot decide."
    running = await start("on_error: allow")
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=CONTEXT)
    assert raw.headers["x-chaperone-judge"] == "error"


async def test_sampling_end_to_end(start: Any, judge_server: tuple[ScriptedJudge, str]) -> None:
    running = await start("sample: 0.5")
    async with running.client() as client:
        for _ in range(60):
            await client.chat.completions.create(model="mock-gpt", messages=CONTEXT)
    assert 12 <= len(judge_server[0].requests) <= 48  # ~30 expected; bounds 4 sigma wide


async def test_a_stream_is_judged_then_released(start: Any, judge_server: tuple[ScriptedJudge, str]) -> None:
    judge_server[0].replies = [FAIL, PASS]
    running = await start("action: refine")
    async with running.client() as client:
        stream = await client.chat.completions.create(model="mock-gpt", messages=CONTEXT, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Mock reply to:") and len(judge_server[0].requests) == 2


async def test_audit_mode_streams_then_judges(
    start: Any, judge_server: tuple[ScriptedJudge, str], caplog: pytest.LogCaptureFixture
) -> None:
    judge_server[0].default = FAIL
    running = await start("mode: audit, action: block")
    with caplog.at_level(logging.WARNING, logger="plugins.judge"):
        async with running.client() as client:
            stream = await client.chat.completions.create(model="mock-gpt", messages=CONTEXT, stream=True)
            assert [c async for c in stream]
        for _ in range(100):  # on_complete runs after the last byte went out
            if judge_server[0].requests and any("judge audit: fail" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    assert any("judge audit: fail" in r.getMessage() for r in caplog.records)


async def test_the_judge_token_cap_stops_further_verdicts(start: Any, judge_server: tuple[ScriptedJudge, str]) -> None:
    judge_server[0].default = FAIL  # each verdict costs 50 tokens
    running = await start("action: refine, max_rounds: 3, max_judge_tokens: 60, on_error: allow")
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-gpt", messages=CONTEXT)
    assert raw.headers["x-chaperone-judge"] == "error" and len(judge_server[0].requests) == 2
