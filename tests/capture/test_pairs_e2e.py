"""Preference pairs from the gateway's own events: a judge refinement and a schema repair, captured then exported."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from dataset.cli import main as dataset_main
from dataset.formats import problems
from plugins._capture.store import CaptureStore
from plugins._judge.verdict import Verdict
from plugins._schema.repair import repair_text
from plugins.capture import JUDGE_REFINE_MARK, SCHEMA_REPAIR_MARK
from plugins.judge import _critique
from tests.capture.helpers import EMAIL, assert_no_canary, store_bytes
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, start_site
from tests.plugins.test_judge import FAIL, PASS, ScriptedJudge

ASK: Any = [
    {"role": "system", "content": "Context: the Eiffel Tower is in Paris and was finished in 1889."},
    {"role": "user", "content": f"When was the Eiffel Tower finished? Reply to {EMAIL}"},
]
SHAPE = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_the_marks_capture_reads_are_what_schema_and_judge_write() -> None:
    assert repair_text([], SHAPE, tools=False).startswith(SCHEMA_REPAIR_MARK)
    assert _critique(Verdict(False, 0.1, ("wrong",))).startswith(JUDGE_REFINE_MARK)


@pytest.fixture
async def judge() -> AsyncIterator[tuple[ScriptedJudge, str]]:
    scripted = ScriptedJudge()
    runner, base = await start_site(scripted.app())
    yield scripted, base + "/v1"
    await runner.cleanup()


def gateway_policy(upstream: str, judge_url: str, steps: str) -> str:
    return textwrap.dedent(f"""
    backends:
      local: {{url: "{upstream}"}}
      judging: {{url: "{judge_url}"}}
    models:
      judge: {{backend: judging}}
      "*": {{backend: local}}
    chains:
      default: [pii, {steps}, {{capture: {{writer: thread}}}}]
    """)


JUDGE = "{judge: {model: judge, action: refine, max_rounds: 2, threshold: 0.7}}"
SCHEMA = "{schema: {attempts: 3, schemas: {'*': " + json.dumps(SHAPE) + "}}}"


async def captured(proxy: RunningProxy) -> tuple[Path, dict[str, Any]]:
    plugin = next(p for p in proxy.runtime.in_force().policy.plugins if getattr(p, "name", "") == "capture")
    path = plugin.path
    await proxy.runner.cleanup()  # stops the writer: everything queued is written
    (row,) = CaptureStore(path, readonly=True).rows()
    return path, row


def exported(path: Path, fmt: str, out: Path) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    assert dataset_main(["export", "--store", str(path), "--format", fmt, "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(problems(fmt, line) == [] for line in lines)
    labels = [json.loads(line)["source"] for line in out.with_name(out.stem + ".labels.jsonl").read_text().splitlines()]
    return lines, labels, json.loads(out.with_name(out.stem + ".manifest.json").read_text())


async def test_a_judge_refinement_is_a_pair_of_the_failed_draft_and_the_refined_answer(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    judge: tuple[ScriptedJudge, str],
    write_policy: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    proxy = await start_proxy(write_policy(gateway_policy(mock_upstream.url, judge[1], JUDGE)))
    judge[0].replies = [FAIL, PASS]
    async with proxy.client() as client:
        answer = await client.chat.completions.create(model="any-model", messages=ASK)
    path, row = await captured(proxy)
    assert [d["source"] for d in row["drafts"]] == ["judge_refine"] and row["events"] == ["judge_refine"]
    assert row["judge_score"] == 0.9 and row["verdicts"]["judge"] == "refined"
    assert row["answer"]["content"] != row["drafts"][0]["message"]["content"]
    assert row["answer"]["content"] == (answer.choices[0].message.content or "").replace(EMAIL, "<EMAIL_ADDRESS_1>")
    assert_no_canary(store_bytes(tmp_path / "home"))
    for fmt in ("openai-dpo", "trl"):
        lines, labels, manifest = exported(path, fmt, tmp_path / f"{fmt}.jsonl")
        assert len(lines) == 1 and labels == ["judge_refine"] and manifest["sources"] == {"judge_refine": 1}
        line = lines[0]
        chosen, rejected = (line["preferred_output"], line["non_preferred_output"]) if fmt == "openai-dpo" else (
            line["chosen"], line["rejected"])  # fmt: skip
        assert chosen[0]["content"] == row["answer"]["content"]
        assert rejected[0]["content"] == row["drafts"][0]["message"]["content"]
        prompt = line["input"]["messages"] if fmt == "openai-dpo" else line["prompt"]
        assert prompt[-1]["content"].startswith("When was") and "A reviewer" not in json.dumps(prompt)


async def test_schema_repair_and_judge_refine_in_one_request(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    judge: tuple[ScriptedJudge, str],
    write_policy: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    proxy = await start_proxy(write_policy(gateway_policy(mock_upstream.url, judge[1], f"{JUDGE}, {SCHEMA}")))
    judge[0].replies = [FAIL, PASS]
    async with proxy.client(default_headers={"x-mock-fault": "bad_json,fail_times=1"}) as client:
        raw = await client.chat.completions.with_raw_response.create(model="any-model", messages=ASK)
    assert raw.headers["x-chaperone-judge"] == "refined" and raw.headers["x-chaperone-schema"] == "valid"
    path, row = await captured(proxy)
    assert [d["source"] for d in row["drafts"]] == ["schema_repair", "judge_refine"]
    assert row["events"] == ["judge_refine", "schema_repair"]
    assert row["request"]["messages"][-1]["content"].startswith("When was")  # the prompt, not a repair turn
    json.loads(row["answer"]["content"])  # the final, valid answer
    lines, labels, manifest = exported(path, "trl", tmp_path / "trl.jsonl")
    # the mock writes the same JSON for the judged draft and its refinement: that pair says nothing and is not made
    assert labels == ["schema_repair"] and manifest["counts"]["pairs_built"] == 1
    assert lines[0]["rejected"][0]["content"].startswith("Sure! Here it is")  # the malformed draft
    json.loads(lines[0]["chosen"][0]["content"])


async def test_a_judge_fallback_is_a_pair_of_the_primary_answer_and_the_fallback_models(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    judge: tuple[ScriptedJudge, str],
    write_policy: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    steps = "{judge: {model: judge, action: fallback, fallback_model: judge, threshold: 0.7}}"
    proxy = await start_proxy(write_policy(gateway_policy(mock_upstream.url, judge[1], steps)))
    judge[0].replies = [FAIL, "It was finished in 1889.", PASS]  # verdict, the fallback model's answer, verdict
    async with proxy.client() as client:
        answer = await client.chat.completions.create(model="any-model", messages=ASK)
    assert answer.choices[0].message.content == "It was finished in 1889."
    path, row = await captured(proxy)
    assert row["verdicts"]["judge"] == "fallback" and row["events"] == ["judge_fallback"]
    assert row["answer"]["content"] == "It was finished in 1889."
    assert row["drafts"][0]["message"]["content"].startswith("Mock reply to")
    lines, labels, _ = exported(path, "openai-dpo", tmp_path / "dpo.jsonl")
    assert labels == ["judge_fallback"] and lines[0]["preferred_output"][0]["content"] == "It was finished in 1889."
