"""``chaperone eval run|compare|plugins`` and ``chaperone rollout`` (``proxy/cli.py`` delegates here)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EVAL_EXAMPLES = """examples:
  chaperone eval run held_out.jsonl --model current --model candidate --base-url http://127.0.0.1:8080/v1 \\
      --api-key $KEY --out runs/pr-42 --cutoff f1=0.6 --min-pass-rate 0.9
  chaperone eval run qa.jsonl --model m --judge-model judge --judge-repeats 3 --cutoff judge=0.5 --out runs/j
  chaperone eval compare runs/pr-41 runs/pr-42 --scorer f1
  chaperone eval compare runs/pr-42:current runs/pr-42:candidate
  chaperone eval plugins labelled.jsonl --policy my.yaml --out guard_scores.json

rows: {"id", "messages", "expected"?, "context"?, "pattern"?, "schema"?}, one a line.
exit status: 0 every model passed the gate, 1 some model failed it, 2 the eval could not run or a call failed."""

ROLLOUT_EXAMPLES = """examples:
  chaperone rollout policies/prod.yaml llama --weight canary=25        # the others keep their weights
  chaperone rollout policies/prod.yaml llama --weight stable=50 --weight canary=50
  chaperone rollout policies/prod.yaml llama --promote canary         # canary 100, every other variant 0
  chaperone rollout policies/prod.yaml llama --weight canary=0 --dry-run

A variant is named by its split entry's `name`, else its `model`, else its `backend`. The edited file
is compiled as a policy before it replaces the old one (atomically); comments and layout are kept."""


def _home() -> Path:
    return Path(os.environ.get("CHAPERONE_HOME") or Path.home() / ".chaperone")


def _run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from evals.judge import DEFAULT_RUBRIC

    p = sub.add_parser("run", help="answer a JSONL set with one or more models, score it, gate it")
    p.add_argument("data", type=Path, help="JSONL rows {id, messages, expected?, context?}")
    p.add_argument("--model", action="append", required=True, help="model to evaluate (repeatable)")
    p.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"),
                   help="OpenAI-compatible base URL (default $OPENAI_BASE_URL, else the local gateway)")  # fmt: skip
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "sk-none"), help="default $OPENAI_API_KEY")
    p.add_argument("--out", type=Path, required=True, help="directory for results.jsonl, summary.json, reports")
    p.add_argument("--scorer", action="append", default=[], help="run only these scorers (repeatable)")
    p.add_argument("--cutoff", action="append", default=[], metavar="NAME=VALUE",
                   help="a row passes when every cutoff holds (default exact=1 on rows with 'expected')")  # fmt: skip
    p.add_argument("--min-pass-rate", type=float, default=1.0, metavar="P", help="gate per model (default 1.0)")
    p.add_argument("--judge-model", help="model used by the judge and factuality scorers")
    p.add_argument("--rubric", default=DEFAULT_RUBRIC, help="the judge's criteria")
    p.add_argument("--judge-repeats", type=_positive, default=1, metavar="K", help="ask the judge K times")
    p.add_argument("--judge-retries", type=int, default=2, help="re-asks after an invalid judge reply (default 2)")
    p.add_argument("--judge-temperature", type=float, help="default 0 for one repeat, 0.7 for several")
    p.add_argument("--temperature", type=float, default=0.0, help="for the answers (default 0)")
    p.add_argument("--max-tokens", type=_positive, help="for the answers")
    p.add_argument("--concurrency", type=_positive, default=8, help="upstream calls at once (default 8)")
    p.add_argument("--cache-dir", type=Path, help="call cache (default $CHAPERONE_HOME/eval-cache)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the call cache")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per call (default 120)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _run(args: argparse.Namespace) -> int:
    from evals import gate
    from evals.data import DataError, load_rows
    from evals.judge import JudgeOptions
    from evals.run import ALL_SCORERS, RunOptions, plan_scorers, run

    try:
        rows = load_rows(args.data)
        unknown = [s for s in args.scorer if s not in ALL_SCORERS]
        if unknown:
            raise gate.GateError(f"unknown scorer {unknown[0]!r} (known: {', '.join(ALL_SCORERS)})")
        judge = None
        if args.judge_model:
            judge = JudgeOptions(args.judge_model, args.rubric, args.judge_repeats, max(0, args.judge_retries),
                                 args.judge_temperature)  # fmt: skip
        params: dict[str, object] = {"temperature": args.temperature}
        if args.max_tokens:
            params["max_tokens"] = args.max_tokens
        options = RunOptions(
            data=args.data, models=tuple(dict.fromkeys(args.model)), base_url=args.base_url, api_key=args.api_key,
            out=args.out, scorers=tuple(args.scorer), cutoffs=gate.parse_cutoffs(args.cutoff, ALL_SCORERS),
            min_pass_rate=gate.check_rate(args.min_pass_rate), judge=judge, concurrency=args.concurrency,
            cache_dir=None if args.no_cache else (args.cache_dir or _home() / "eval-cache"), params=params,
            timeout_s=args.timeout, progress=not args.quiet,
        )  # fmt: skip
        plan_scorers(options)
    except (DataError, gate.GateError) as exc:
        print(f"chaperone eval: {exc}", file=sys.stderr)
        return 2
    try:
        code, summary = run(options, rows)
    except KeyboardInterrupt:  # the answers so far are in the cache: a re-run picks up from there
        print("chaperone eval: interrupted (finished calls are cached; run again to resume)", file=sys.stderr)
        return 130
    _print_summary(summary, args.out)
    return code


def _print_summary(summary: dict[str, object], out: Path) -> None:
    models = summary["models"]
    assert isinstance(models, dict)
    for model, s in models.items():
        scores = " ".join(f"{k}={v:.3f}" for k, v in sorted(s["scores"].items()))
        print(f"{model}: {s['gate']} pass_rate={s['pass_rate']:.3f} rows={s['rows']} errors={s['errors']} {scores}")
    print(f"calls: {summary['calls']}; reports in {out}")


def main(argv: Sequence[str]) -> int:
    """``chaperone eval …``."""
    import logging

    logging.basicConfig(level=logging.WARNING)  # before any library configures logging: no per-call HTTP lines
    parser = argparse.ArgumentParser(
        prog="chaperone eval", description="Evaluate models on a JSONL set, compare runs, score the policy's guards.",
        epilog=EVAL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub)
    from evals.compare import register as register_compare
    from evals.guards import register as register_guards

    register_compare(sub)
    register_guards(sub)
    args = parser.parse_args(list(argv))
    return _call(args)


_EXTRA = frozenset({"openai", "sacrebleu", "rouge_score", "ruamel"})


def _call(args: argparse.Namespace) -> int:
    try:
        code: int = args.func(args)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in _EXTRA:
            raise
        hint = "install the eval extra: pip install 'chaperone[eval]'"
        print(f"chaperone: {exc.name} is missing; {hint}", file=sys.stderr)
        return 2
    return code


def rollout_main(argv: Sequence[str]) -> int:
    """``chaperone rollout …``."""
    from evals.rollout import build_parser

    parser = build_parser(ROLLOUT_EXAMPLES)
    args = parser.parse_args(list(argv))
    return _call(args)
