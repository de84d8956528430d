"""Pass/fail rules: per-scorer cutoffs on each row, and a minimum pass rate per model.

A row passes when it has an answer and every cutoff holds: ``score >= value`` (``perplexity``: lower
is better, so ``score <= value``). A cutoff whose scorer does not apply to the row (no ``expected``,
no ``pattern``, no logprobs) is skipped for that row; a judge whose every reply was invalid scores
None, which fails its cutoff. With no ``--cutoff`` the default is ``exact=1`` for rows that carry
``expected`` (rows without one pass on having an answer). A model passes the gate when its pass rate
is at least ``min_pass_rate`` (default 1.0: every row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

LOWER_IS_BETTER = frozenset({"perplexity"})
DEFAULT_CUTOFFS = {"exact": 1.0}


class GateError(ValueError):
    """A cutoff or threshold that does not parse or names no scorer."""


def parse_cutoffs(items: Sequence[str], known: Sequence[str]) -> dict[str, float]:
    cutoffs: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise GateError(f"--cutoff {item!r}: expected NAME=VALUE, for example f1=0.8")
        if name not in known:
            raise GateError(f"--cutoff {item!r}: unknown scorer {name!r} (known: {', '.join(known)})")
        try:
            value = float(raw)
        except ValueError:
            raise GateError(f"--cutoff {item!r}: {raw!r} is not a number") from None
        if value != value:
            raise GateError(f"--cutoff {item!r}: not a number")
        cutoffs[name] = value
    return cutoffs


def holds(name: str, score: float | None, cutoff: float) -> bool:
    if score is None:
        return False
    return score <= cutoff if name in LOWER_IS_BETTER else score >= cutoff


def failed_cutoffs(scores: Mapping[str, float | None], cutoffs: Mapping[str, float]) -> list[str]:
    """The cutoffs a row's scores break (empty: the row passes); inapplicable scorers are skipped."""
    return [
        f"{name}={scores[name]} (cutoff {value})"
        for name, value in cutoffs.items()
        if name in scores and not holds(name, scores[name], value)
    ]


def check_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise GateError(f"--min-pass-rate must be between 0 and 1, got {rate}")
    return rate
