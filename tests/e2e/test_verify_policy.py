"""policies/verified-json.yaml end to end: draft, schema repair, judge, refine, JSON out; streamed and not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import openai
import pytest
import yaml

from proxy.settings import PACKAGE_POLICIES
from tests.chain_helpers import sse_data
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, start_site
from tests.plugins.test_judge import FAIL, PASS, ScriptedJudge

POLICY = PACKAGE_POLICIES / "verified-json.yaml"
SHAPE = yaml.safe_load(POLICY.read_text())["chains"]["verified"][1]["schema"]["schemas"]["*"]
ASK: Any = [
    {"role": "system", "content": "Context: [1] The Eiffel Tower is in Paris. [2] It was finished in 1889."},
    {"role": "user", "content": "When was the Eiffel Tower finished?"},
]


@pytest.fixture
async def judge() -> AsyncIterator[tuple[ScriptedJudge, str]]:
    scripted = ScriptedJudge()
    runner, base = await start_site(scripted.app())
    yield scripted, base + "/v1"
    await runner.cleanup()


@pytest.fixture
async def verified(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    judge: tuple[ScriptedJudge, str],
    monkeypatch: pytest.MonkeyPatch,
) -> RunningProxy:
    monkeypatch.setenv("VERIFY_UPSTREAM_URL", mock_upstream.url)
    monkeypatch.setenv("VERIFY_JUDGE_URL", judge[1])
    return await start_proxy(POLICY)


async def drafts(mock: MockUpstream) -> list[dict[str, Any]]:
    return [r["body"] for r in await mock.requests() if r["path"] == "/v1/chat/completions"]


async def test_a_malformed_draft_is_repaired_judged_refined_and_returned_as_json(
    verified: RunningProxy, mock_upstream: MockUpstream, judge: tuple[ScriptedJudge, str]
) -> None:
    judge[0].replies = [FAIL, PASS]
    async with verified.client(default_headers={"x-mock-fault": "bad_json,fail_times=1"}) as client:
        raw = await client.chat.completions.with_raw_response.create(model="any-model", messages=ASK)
    document = json.loads(raw.parse().choices[0].message.content or "")
    jsonschema.validate(document, SHAPE)
    assert raw.headers["x-chaperone-judge"] == "refined" and raw.headers["x-chaperone-schema"] == "valid"
    calls = await drafts(mock_upstream)
    assert len(calls) == 3  # the malformed draft, its repair, the refinement
    assert "rejected by a validator" in calls[1]["messages"][-1]["content"]
    assert "Paris is in Spain" in calls[2]["messages"][-1]["content"]  # the judge's critique
    assert all(c["response_format"]["json_schema"]["strict"] is True for c in calls)
    first_prompt = judge[0].requests[0]["messages"][0]["content"]
    assert "finished in 1889" in first_prompt and "When was the Eiffel Tower finished?" in first_prompt
    assert "JSON schema" not in first_prompt.split("Policy")[0]  # the schema step's instruction is not "context"


async def test_a_stream_through_both_plugins_is_valid_sse_whose_content_passes_the_schema(
    verified: RunningProxy, judge: tuple[ScriptedJudge, str]
) -> None:
    judge[0].replies = [FAIL, PASS]
    body = {"model": "any-model", "messages": ASK, "stream": True, "stream_options": {"include_usage": True}}
    headers = {"x-mock-fault": "bad_json,fail_times=1"}
    async with aiohttp.ClientSession() as session:
        async with session.post(verified.url + "/chat/completions", json=body, headers=headers) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            events = sse_data(await response.read())
    assert events[-1] == "[DONE]" and events[-2]["usage"]["total_tokens"] > 0
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    jsonschema.validate(json.loads(text), SHAPE)
    async with verified.client() as client:  # and the SDK reads such a stream as any other
        stream = await client.chat.completions.create(model="any-model", messages=ASK, stream=True)
        jsonschema.validate(json.loads("".join([c.choices[0].delta.content or "" async for c in stream])), SHAPE)


async def test_a_draft_the_judge_never_accepts_is_refused(
    verified: RunningProxy, mock_upstream: MockUpstream, judge: tuple[ScriptedJudge, str]
) -> None:
    judge[0].default = FAIL
    async with verified.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="any-model", messages=ASK)
    error: Any = caught.value.body
    assert caught.value.status_code == 502 and error["code"] == "judge_rejected" and "Spain" in error["message"]
    assert len(await drafts(mock_upstream)) == 3 and len(judge[0].requests) == 3  # first draft + 2 rounds
