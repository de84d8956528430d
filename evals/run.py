"""``chaperone eval run``: answer every row with every model, score, gate, and write the reports.

Rows are answered through one OpenAI-compatible URL (the gateway, or any) with the openai SDK, at
most ``concurrency`` calls at once, each call cached on disk (``evals.calls``). Reference scorers
run in a worker thread; judge scorers and perplexity are further (cached) calls. Exit status:
0 every model passed the gate, 1 some model failed it, 2 the eval could not run or a call failed
(a row without an answer is an error, not a model failure).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from evals import gate, judge, perplexity
from evals.calls import Caller, CallFailed, Counters, answer_text
from evals.data import Row, file_digest
from evals.scorers import REFERENCE, corpus_scores, score_row

JUDGES = ("judge", "factuality")
ALL_SCORERS = (*REFERENCE, *JUDGES, "perplexity")
OPT_IN = frozenset({"perplexity"})  # extra calls a backend must support: only when asked for


@dataclass(frozen=True)
class RunOptions:
    data: Path
    models: tuple[str, ...]
    base_url: str
    api_key: str
    out: Path
    scorers: tuple[str, ...] = ()  # empty: every applicable default scorer
    cutoffs: dict[str, float] = field(default_factory=dict)
    min_pass_rate: float = 1.0
    judge: judge.JudgeOptions | None = None
    concurrency: int = 8
    cache_dir: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens for the answers
    timeout_s: float = 120.0
    progress: bool = True


def plan_scorers(options: RunOptions) -> tuple[list[str], dict[str, float]]:
    """The scorers to run and the cutoffs in force (a cutoff's scorer is always run)."""
    cutoffs = dict(options.cutoffs) or dict(gate.DEFAULT_CUTOFFS)
    names = list(options.scorers) or [n for n in ALL_SCORERS if n not in OPT_IN]
    if options.judge is None:
        needing = [n for n in (*names, *cutoffs) if n in JUDGES and (options.scorers or n in cutoffs)]
        if needing:
            raise gate.GateError(f"scorer {needing[0]!r} needs --judge-model")
        names = [n for n in names if n not in JUDGES]
    names += [n for n in cutoffs if n not in names]
    return names, cutoffs


async def _answer_row(caller: Caller, model: str, row: Row, names: list[str], options: RunOptions) -> dict[str, Any]:
    result: dict[str, Any] = {"model": model, "id": row.id}
    body = {"model": model, "messages": row.messages, **options.params}
    started = time.perf_counter()
    try:
        response = await caller.chat(body, "generate")
        answer = answer_text(response)
    except CallFailed as exc:
        return {**result, "error": str(exc), "passed": False}
    result["answer"] = answer
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    result["usage"] = response.get("usage")
    scores: dict[str, float | None] = dict(await asyncio.to_thread(score_row, names, answer, row))
    try:
        await _model_scores(caller, model, row, answer, names, options, scores, result)
    except CallFailed as exc:
        return {**result, "scores": scores, "error": f"scoring call failed: {exc}", "passed": False}
    result["scores"] = scores
    return result


async def _model_scores(
    caller: Caller, model: str, row: Row, answer: str, names: list[str], options: RunOptions,
    scores: dict[str, float | None], result: dict[str, Any],
) -> None:  # fmt: skip
    """Judge scorers and perplexity: the scorers that cost calls."""
    if options.judge is not None:
        for kind in JUDGES:
            if kind in names and (kind != "factuality" or row.context is not None):
                verdict = await judge.judge(caller, kind, row, answer, options.judge)
                scores[kind] = verdict.score
                result.setdefault("judges", {})[kind] = verdict.as_dict()
    if "perplexity" in names and row.expected is not None:
        prefix, prompt = perplexity.render(row)
        response = await caller.completion(perplexity.request(model, row), "perplexity")
        value = perplexity.from_response(response, len(prefix), len(prompt))
        if value is None:
            result.setdefault("notes", []).append("perplexity: the backend returned no prompt logprobs")
        else:
            scores["perplexity"] = value


def summarize_model(rows: list[dict[str, Any]], by_id: dict[str, Row], min_pass_rate: float) -> dict[str, Any]:
    values: dict[str, list[float]] = {}
    for item in rows:
        for name, value in (item.get("scores") or {}).items():
            if value is not None:
                values.setdefault(name, []).append(value)
    passed = sum(1 for item in rows if item["passed"])
    rate = passed / len(rows) if rows else 0.0
    pairs = [(r["answer"], by_id[r["id"]].expected or "") for r in rows if "answer" in r and by_id[r["id"]].expected]
    summary: dict[str, Any] = {
        "rows": len(rows), "passed": passed, "failed": len(rows) - passed,
        "errors": sum(1 for item in rows if "error" in item), "pass_rate": round(rate, 6),
        "gate": "pass" if rate >= min_pass_rate and not any("error" in r for r in rows) else "fail",
        "scores": {name: round(statistics.fmean(v), 6) for name, v in values.items()},
        "scored_rows": {name: len(v) for name, v in values.items()},
        "corpus": corpus_scores(pairs),
    }  # fmt: skip
    judges = [r["judges"] for r in rows if "judges" in r]
    for kind in JUDGES:
        got = [j[kind] for j in judges if kind in j]
        if got:
            agreement = [g["agreement"] for g in got if g["agreement"] is not None]
            summary.setdefault("judges", {})[kind] = {
                "rows": len(got),
                "agreement": round(statistics.fmean(agreement), 6) if agreement else None,
                "unanimous": sum(1 for a in agreement if a == 1.0),
                "invalid_replies": sum(g["invalid_replies"] for g in got),
                "invalid_votes": sum(g["invalid"] for g in got),
                "no_valid_vote": sum(1 for g in got if g["label"] is None),
            }
    return summary


async def evaluate(options: RunOptions, rows: list[Row], err: IO[str]) -> tuple[list[dict[str, Any]], Counters]:
    """Every (model, row) result, in model then row order, and the call counters."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    names, cutoffs = plan_scorers(options)
    caller = Caller(options.base_url, options.api_key, options.cache_dir, options.concurrency, options.timeout_s)
    bar = tqdm(total=len(rows) * len(options.models), desc="eval", unit="row", file=err,
               disable=not options.progress or not err.isatty())  # fmt: skip
    limit = asyncio.Semaphore(options.concurrency * 2)  # rows in flight (calls are limited by the caller)

    async def one(model: str, row: Row) -> dict[str, Any]:
        async with limit:
            item = await _answer_row(caller, model, row, names, options)
        if "error" not in item:
            broken = gate.failed_cutoffs(item["scores"], cutoffs)
            item["passed"] = not broken
            if broken:
                item["failed"] = broken
        bar.update(1)
        return item

    try:
        results = await asyncio.gather(*(one(m, r) for m in options.models for r in rows))
    finally:
        bar.close()
        await caller.close()
    return list(results), caller.counters


def build_summary(
    options: RunOptions, rows: list[Row], results: list[dict[str, Any]], counters: Counters, seconds: float
) -> dict[str, Any]:
    names, cutoffs = plan_scorers(options)
    by_id = {row.id: row for row in rows}
    models = {m: summarize_model([r for r in results if r["model"] == m], by_id, options.min_pass_rate)
              for m in options.models}  # fmt: skip
    failed = [m for m, s in models.items() if s["gate"] == "fail"]
    return {
        "models": models,
        "gate": {"passed": not failed, "failed_models": failed, "min_pass_rate": options.min_pass_rate,
                 "cutoffs": cutoffs},
        "data": {"path": options.data.name, "sha256": file_digest(options.data), "rows": len(rows)},
        "scorers": names,
        "judge": None if options.judge is None else {"model": options.judge.model, "repeats": options.judge.repeats,
                                                      "rubric": options.judge.rubric},
        "base_url": options.base_url,
        "params": options.params,
        "calls": {"upstream": counters.calls, "cached": counters.cached, "errors": counters.errors},
        "seconds": round(seconds, 3),
    }  # fmt: skip


def run(options: RunOptions, rows: list[Row], err: IO[str] = sys.stderr) -> tuple[int, dict[str, Any]]:
    """Run the eval and write the reports; (exit status, summary)."""
    from evals.report import write_reports

    started = time.perf_counter()
    results, counters = asyncio.run(evaluate(options, rows, err))
    summary = build_summary(options, rows, results, counters, time.perf_counter() - started)
    write_reports(options.out, summary, results)
    if any("error" in r for r in results):
        return 2, summary
    return (0 if summary["gate"]["passed"] else 1), summary
