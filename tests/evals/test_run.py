"""``chaperone eval run`` and ``compare`` end to end: the real proxy in front of the mock backend, over sockets.

The mock answers ``"Mock reply to: "`` plus the prompt's first words, so every expected value below
is known; ``[[mock:...]]`` markers in a row's context reach only the factuality judge's prompt.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evals.cli import main
from evals.data import load_rows
from evals.run import RunOptions, run
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy

ROWS = [
    {"id": "exact", "messages": [{"role": "user", "content": "hello there"}], "expected": "Mock reply to: hello there"},
    {"id": "partial", "messages": [{"role": "user", "content": "red green blue yellow"}],
     "expected": "Mock reply to: red green blue purple"},
]  # fmt: skip


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_results(out: Path) -> dict[str, dict[str, Any]]:
    return {(item := json.loads(line))["id"]: item for line in (out / "results.jsonl").read_text().splitlines()}


async def eval_run(
    proxy: RunningProxy, data: Path, out: Path, *extra: str, models: tuple[str, ...] = ("mock-gpt",)
) -> tuple[int, Any]:
    argv = ["run", str(data), "--base-url", proxy.url, "--api-key", "sk-test", "--out", str(out),
            "--cache-dir", str(out.parent / "cache"), "-q", *extra]  # fmt: skip
    argv += [arg for model in models for arg in ("--model", model)]
    code = await asyncio.to_thread(main, argv)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    return code, summary


async def test_scores_and_gates_through_the_gateway(proxy: RunningProxy, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "set.jsonl", ROWS)
    code, summary = await eval_run(proxy, data, tmp_path / "a", "--cutoff", "f1=0.8")
    assert code == 0
    model = summary["models"]["mock-gpt"]
    assert (model["rows"], model["pass_rate"]) == (2, 1.0)
    scores = model["scores"]
    assert scores["exact"] == 0.5
    assert scores["f1"] == pytest.approx((1 + 6 / 7) / 2, abs=1e-5)
    assert scores["bleu"] == pytest.approx((1 + 0.5**0.25) / 2, abs=1e-5)
    assert scores["rouge2"] == pytest.approx((1 + 5 / 6) / 2, abs=1e-5)
    results = [json.loads(line) for line in (tmp_path / "a" / "results.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in results] == ["Mock reply to: hello there", "Mock reply to: red green blue yellow"]

    code, summary = await eval_run(proxy, data, tmp_path / "b", "--cutoff", "f1=0.9")
    assert code == 1 and summary["models"]["mock-gpt"]["pass_rate"] == 0.5
    assert summary["gate"] == {"passed": False, "failed_models": ["mock-gpt"], "min_pass_rate": 1.0,
                               "cutoffs": {"f1": 0.9}}  # fmt: skip
    code, _ = await eval_run(proxy, data, tmp_path / "c")  # default cutoff exact=1: "partial" fails
    assert code == 1
    code, _ = await eval_run(proxy, data, tmp_path / "d", "--min-pass-rate", "0.5")
    assert code == 0
    markdown = (tmp_path / "b" / "report.md").read_text()
    assert "❌ fail" in markdown and "`partial`: f1=" in markdown
    page = (tmp_path / "b" / "report.html").read_text()
    assert "<script src" not in page and "<link" not in page and "Mock reply to: red green blue yellow" in page


async def test_a_rerun_is_answered_from_the_cache(
    proxy: RunningProxy, mock_upstream: MockUpstream, tmp_path: Path
) -> None:
    data = write_rows(tmp_path / "set.jsonl", ROWS)
    code, first = await eval_run(proxy, data, tmp_path / "one", "--judge-model", "mock-gpt", "--judge-repeats", "2")
    upstream = len(await mock_upstream.requests())
    assert upstream == first["calls"]["upstream"] == 2 + 2 * 2  # two answers, two judge repeats per row
    code_again, again = await eval_run(proxy, data, tmp_path / "two", "--judge-model", "mock-gpt",
                                       "--judge-repeats", "2")  # fmt: skip
    assert len(await mock_upstream.requests()) == upstream  # not one upstream call
    assert again["calls"] == {"upstream": 0, "cached": upstream, "errors": 0}
    assert (code_again, again["models"]) == (code, first["models"])
    _, third = await eval_run(proxy, data, tmp_path / "three", models=("mock-gpt", "aliased"))  # no judge this time
    assert third["calls"] == {"upstream": 2, "cached": 2, "errors": 0}  # only the new model's answers are asked
    assert len(await mock_upstream.requests()) == upstream + 2


async def test_errors_exit_2_and_are_never_cached(
    proxy: RunningProxy, mock_upstream: MockUpstream, tmp_path: Path
) -> None:
    rows = [*ROWS, {"id": "flaky", "messages": [{"role": "user", "content": "hi [[mock:status=400,fail_times=1]]"}],
                    "expected": "Mock reply to: hi"}]  # fmt: skip
    data = write_rows(tmp_path / "set.jsonl", rows)
    code, summary = await eval_run(proxy, data, tmp_path / "one", "--min-pass-rate", "0.5")
    assert code == 2 and summary["models"]["mock-gpt"]["errors"] == 1
    results = read_results(tmp_path / "one")
    assert results["flaky"]["error"].startswith("HTTP 400")
    before = len(await mock_upstream.requests())
    code, summary = await eval_run(proxy, data, tmp_path / "two", "--min-pass-rate", "0.5")
    assert code == 0 and summary["calls"] == {"upstream": 1, "cached": 2, "errors": 0}  # only the failed row again
    assert len(await mock_upstream.requests()) == before + 1


JUDGED_POLICY = """
backends:
  mock: {{url: "{url}"}}
  sloppy: {{url: "{url}", headers: {{x-mock-fault: wrong_json}}}}   # every JSON answer breaks its schema
models:
  mock-gpt: {{backend: mock}}
  sloppy-judge: {{backend: sloppy}}
chains:
  default: []
"""


async def test_judge_repeats_agreement_and_invalid_json(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    proxy = await start_proxy(write_policy(JUDGED_POLICY.format(url=mock_upstream.url)))
    rows = [
        {"id": "retried", "messages": [{"role": "user", "content": "what colour is the sky"}],
         "context": "The sky is blue. [[mock:bad_json,fail_times=1]]"},  # the first judge reply is cut short
        {"id": "no-context", "messages": [{"role": "user", "content": "hello"}]},
    ]  # fmt: skip
    data = write_rows(tmp_path / "set.jsonl", rows)
    cutoffs = ("--cutoff", "factuality=0.5", "--cutoff", "judge=0.5")
    code, summary = await eval_run(proxy, data, tmp_path / "j", "--judge-model", "mock-gpt", "--judge-repeats", "3",
                                   *cutoffs)  # fmt: skip
    assert code == 0
    judges = summary["models"]["mock-gpt"]["judges"]
    assert judges["judge"] == {"rows": 2, "agreement": 1.0, "unanimous": 2, "invalid_replies": 0, "invalid_votes": 0,
                               "no_valid_vote": 0}  # fmt: skip
    assert judges["factuality"] == {"rows": 1, "agreement": 1.0, "unanimous": 1, "invalid_replies": 1,
                                    "invalid_votes": 0, "no_valid_vote": 0}  # fmt: skip
    results = read_results(tmp_path / "j")
    assert results["retried"]["judges"]["factuality"]["votes"] == ["pass", "pass", "pass"]
    assert results["retried"]["judges"]["factuality"]["reasons"][0] != []
    assert "factuality" not in results["no-context"]["scores"]  # no context: not applicable

    # a judge that never writes a verdict: 2 repeats x (1 + 2 retries) invalid replies per row, no vote
    code, summary = await eval_run(proxy, data, tmp_path / "s", "--judge-model", "sloppy-judge", "--judge-repeats",
                                   "2", *cutoffs)  # fmt: skip
    assert code == 1 and summary["models"]["mock-gpt"]["pass_rate"] == 0.0
    sloppy = summary["models"]["mock-gpt"]["judges"]["judge"]
    assert (sloppy["invalid_replies"], sloppy["invalid_votes"], sloppy["no_valid_vote"]) == (12, 4, 2)
    assert sloppy["agreement"] is None
    assert read_results(tmp_path / "s")["no-context"]["failed"] == ["judge=None (cutoff 0.5)"]


async def test_compare_two_identical_runs_says_no_difference(proxy: RunningProxy, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "set.jsonl", ROWS)
    await eval_run(proxy, data, tmp_path / "base")
    await eval_run(proxy, data, tmp_path / "cand", models=("mock-gpt", "aliased"))
    out = tmp_path / "cmp.json"
    code = await asyncio.to_thread(main, ["compare", str(tmp_path / "base"), f"{tmp_path / 'cand'}:aliased",
                                          "--scorer", "f1", "--json", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert code == 0 and result["verdict"] == "no difference"
    assert result["scorers"]["f1"] | {"ci95": None} == {
        "pairs": 2, "wins": 0, "ties": 2, "losses": 0, "mean_a": result["scorers"]["f1"]["mean_a"],
        "mean_b": result["scorers"]["f1"]["mean_a"], "mean_diff": 0.0, "ci95": None, "verdict": "no difference",
    }  # fmt: skip
    assert await asyncio.to_thread(main, ["compare", str(tmp_path / "base"), str(tmp_path / "cand")]) == 2  # 2 models


async def test_bad_input_is_exit_2_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": 1, "messages": [{"role": "user", "content": "x"}]}\n{"id": 2, "messages": "hi"}\n')
    argv = ["run", str(data), "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert f"{data}:2: 'messages' must be a non-empty array" in capsys.readouterr().err
    good = write_rows(tmp_path / "good.jsonl", ROWS)
    assert main(["run", str(good), "--model", "m", "--out", str(tmp_path / "o"), "--cutoff", "judge=1"]) == 2
    assert "needs --judge-model" in capsys.readouterr().err


async def test_perplexity_of_the_reference_from_prompt_logprobs(proxy: RunningProxy, tmp_path: Path) -> None:
    # the mock's echo logprobs: -0.1 for a word seen earlier in the text, -2.0 for a new one
    rows = [
        {"id": "copied", "messages": [{"role": "user", "content": "red green"}], "expected": "red green"},
        {"id": "novel", "messages": [{"role": "user", "content": "red green"}], "expected": "blue violet"},
        {"id": "no-reference", "messages": [{"role": "user", "content": "hello"}]},
    ]
    data = write_rows(tmp_path / "set.jsonl", rows)
    code, summary = await eval_run(proxy, data, tmp_path / "p", "--scorer", "perplexity", "--cutoff", "perplexity=2")
    results = read_results(tmp_path / "p")
    assert results["copied"]["scores"]["perplexity"] == pytest.approx(math.exp(0.1), rel=1e-5)
    assert results["novel"]["scores"]["perplexity"] == pytest.approx(math.exp(2.0), rel=1e-5)
    assert "perplexity" not in results["no-reference"]["scores"]
    assert code == 1 and results["novel"]["failed"] == [f"perplexity={math.exp(2.0):.6f} (cutoff 2.0)"]
    assert summary["models"]["mock-gpt"]["scored_rows"]["perplexity"] == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_progress_bar_on_a_terminal_only(proxy: RunningProxy, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "set.jsonl", ROWS)
    rows = load_rows(data)
    for stream, shown in ((_Terminal(), True), (io.StringIO(), False)):
        options = RunOptions(data, ("mock-gpt",), proxy.url, "sk-test", tmp_path / "o", scorers=("f1",))
        code, _ = await asyncio.to_thread(run, options, rows, stream)
        assert code == 1  # exact=1 fails "partial"
        assert ("eval: 100%" in stream.getvalue() and "2/2" in stream.getvalue()) is shown
