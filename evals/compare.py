"""``chaperone eval compare A B``: the same rows in two runs (or two models of one run), paired by id.

A side is a run directory (or its ``results.jsonl``), with ``:MODEL`` to pick one model of a run that
has several. For every scorer both sides have, rows scored on both sides are paired: B's score minus
A's is a win for B when above zero (below zero for ``perplexity``, where lower is better), a loss
when below, a tie when equal. The mean difference gets a 95 % percentile bootstrap interval (rows
resampled with replacement, 5000 times, a fixed seed, so the same inputs give the same interval).
The verdict, on the primary scorer (``--scorer``, default ``passed``: the gate's own pass/fail):
"B better" / "B worse" when the interval excludes zero, else "no difference".
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from evals.gate import LOWER_IS_BETTER

RESAMPLES = 5000
SEED = 20240601


class CompareError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Side:
    label: str
    model: str
    rows: dict[str, dict[str, float]]  # id -> scorer -> score (``passed`` included)


def load_side(spec: str, model: str | None = None) -> Side:
    path, wanted = Path(spec), model
    if not path.exists() and ":" in spec:
        head, _, tail = spec.rpartition(":")
        path, wanted = Path(head), tail
    results = path / "results.jsonl" if path.is_dir() else path
    try:
        items = [orjson.loads(line) for line in results.read_bytes().splitlines() if line.strip()]
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CompareError(f"cannot read {results}: {exc}") from None
    models = list(dict.fromkeys(str(item.get("model")) for item in items))
    if wanted is None:
        if len(models) != 1:
            raise CompareError(f"{spec}: the run has models {models}; pick one as {spec}:MODEL")
        wanted = models[0]
    elif wanted not in models:
        raise CompareError(f"{spec}: no model {wanted!r} in the run (it has {models})")
    rows: dict[str, dict[str, float]] = {}
    for item in items:
        if item.get("model") == wanted and "error" not in item:
            scores = {k: float(v) for k, v in (item.get("scores") or {}).items() if v is not None}
            scores["passed"] = float(bool(item.get("passed")))
            rows[str(item["id"])] = scores
    return Side(spec, wanted, rows)


def bootstrap_ci(diffs: list[float]) -> tuple[float, float]:
    import numpy as np

    values = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(SEED)
    means = values[rng.integers(0, len(values), size=(RESAMPLES, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def compare_scorer(a: Side, b: Side, name: str) -> dict[str, Any] | None:
    ids = [i for i in a.rows if i in b.rows and name in a.rows[i] and name in b.rows[i]]
    if not ids:
        return None
    sign = -1.0 if name in LOWER_IS_BETTER else 1.0
    diffs = [b.rows[i][name] - a.rows[i][name] for i in ids]
    better = [sign * d for d in diffs]
    low, high = bootstrap_ci(diffs)
    mean = sum(diffs) / len(diffs)
    if sign * low > 0 and sign * high > 0:
        verdict = "B better"
    elif sign * low < 0 and sign * high < 0:
        verdict = "B worse"
    else:
        verdict = "no difference"
    return {
        "pairs": len(ids), "wins": sum(1 for d in better if d > 0), "ties": sum(1 for d in better if d == 0),
        "losses": sum(1 for d in better if d < 0), "mean_a": round(sum(a.rows[i][name] for i in ids) / len(ids), 6),
        "mean_b": round(sum(b.rows[i][name] for i in ids) / len(ids), 6), "mean_diff": round(mean, 6),
        "ci95": [round(low, 6), round(high, 6)], "verdict": verdict,
    }  # fmt: skip


def compare(a: Side, b: Side, primary: str = "passed") -> dict[str, Any]:
    names = sorted({n for r in a.rows.values() for n in r} & {n for r in b.rows.values() for n in r})
    scorers = {n: c for n in names if (c := compare_scorer(a, b, n)) is not None}
    if primary not in scorers:
        raise CompareError(f"no rows scored {primary!r} on both sides (common scorers: {', '.join(scorers)})")
    return {
        "a": {"run": a.label, "model": a.model, "rows": len(a.rows)},
        "b": {"run": b.label, "model": b.model, "rows": len(b.rows)},
        "unpaired": sorted(set(a.rows) ^ set(b.rows)),
        "primary": primary,
        "verdict": scorers[primary]["verdict"],
        "scorers": scorers,
    }


def render(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = [f"A = {a['run']} ({a['model']}), B = {b['run']} ({b['model']})",
             f"{'scorer':<12} {'pairs':>5} {'win':>4} {'tie':>4} {'loss':>4} {'mean A':>8} {'mean B':>8} "
             f"{'B-A':>8}  {'95% CI':<20} verdict"]  # fmt: skip
    for name, c in result["scorers"].items():
        ci = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
        lines.append(f"{name:<12} {c['pairs']:>5} {c['wins']:>4} {c['ties']:>4} {c['losses']:>4} {c['mean_a']:>8.3f} "
                     f"{c['mean_b']:>8.3f} {c['mean_diff']:>+8.3f}  {ci:<20} {c['verdict']}")  # fmt: skip
    if result["unpaired"]:
        lines.append(f"unpaired rows (left out): {len(result['unpaired'])}")
    lines.append(f"verdict ({result['primary']}): {result['verdict']}")
    return "\n".join(lines)


def _main(args: argparse.Namespace) -> int:
    try:
        result = compare(load_side(args.a, args.model_a), load_side(args.b, args.model_b), args.scorer)
    except CompareError as exc:
        print(f"chaperone eval compare: {exc}", file=sys.stderr)
        return 2
    print(render(result))
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return 1 if args.fail_if_worse and result["verdict"] == "B worse" else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compare", help="paired comparison of two runs or two models: win/tie/loss, bootstrap CI")
    p.add_argument("a", help="baseline: a run directory or results.jsonl, optionally :MODEL")
    p.add_argument("b", help="candidate, the same way")
    p.add_argument("--model-a", help="model of A (instead of A:MODEL)")
    p.add_argument("--model-b", help="model of B")
    p.add_argument("--scorer", default="passed", help="scorer the verdict is on (default passed: the gate)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the comparison as JSON")
    p.add_argument("--fail-if-worse", action="store_true", help="exit 1 when the verdict is 'B worse'")
    p.set_defaults(func=_main)
