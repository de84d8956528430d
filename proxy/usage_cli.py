"""``chaperone usage``: spend by key, model or day, read straight from a policy's state store.

Like ``chaperone keys`` it needs no running proxy: it opens the policy's store (diskcache under
``CHAPERONE_HOME``, or the policy's Redis URL) and reads the counters the ``cost`` plugin keeps
(``proxy.usage``). Counters are written by each proxy process every ``flush_s`` (1 s by default), so the
last second of traffic may not show yet. Over HTTP, use ``GET /chaperone/usage`` (admin key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from proxy.policy import Policy, PolicyError, load_policy
from proxy.registry import build_registry, extra_modules_from_env
from proxy.settings import DEFAULT_POLICY, Settings
from proxy.store import StoreError, open_store
from proxy.usage import UsageQueryError, parse_groups, parse_range, summarize

EXAMPLES = """examples:
  chaperone usage --policy prod.yaml                       # this month, by key
  chaperone usage --policy prod.yaml --by model --from 2026-11-01 --to 2026-11-30
  chaperone usage --by day --key billing-bot               # one key, day by day
  chaperone usage --by key,model --json | jq '.data[] | select(.cost_usd > 10)'

Dates are UTC days (YYYY-MM-DD), both ends included; --from defaults to the first of the month of --to
(default: today). 'est' counts requests whose tokens the proxy counted (no usage from the upstream)."""


class _Raw(argparse.RawDescriptionHelpFormatter):
    pass


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``usage``; it sets ``func`` returning an exit status."""
    usage = subparsers.add_parser(
        "usage", help="spend by key, model or day (from the state store)", epilog=EXAMPLES, formatter_class=_Raw
    )
    usage.add_argument("--policy", help=f"policy file (default: $CHAPERONE_POLICY or {DEFAULT_POLICY.name})")
    usage.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first day (default: first of the month)")
    usage.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day (default: today, UTC)")
    usage.add_argument("--by", default="key", help="key, model or day, or several comma-separated (default: key)")
    usage.add_argument("--key", help="only this key name")
    usage.add_argument("--model", help="only this model (as clients name it)")
    usage.add_argument("--json", action="store_true", help="print the JSON summary, for scripts")
    usage.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        summary = asyncio.run(_summary(args))
    except _Failure as exc:
        print(f"chaperone usage: {exc}", file=sys.stderr)
        return exc.status
    print(json.dumps(summary, indent=2) if args.json else table(summary))
    return 0


class _Failure(Exception):
    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


async def _summary(args: argparse.Namespace) -> dict[str, Any]:
    policy = _policy(args.policy)
    try:
        start, end = parse_range(args.start, args.end)
        groups = parse_groups(args.by)
    except UsageQueryError as exc:
        raise _Failure(f"--{'by' if exc.param == 'group_by' else exc.param}: {exc}") from None
    try:
        home = Settings.from_env().home
    except ValueError as exc:
        raise _Failure(f"bad CHAPERONE_* environment setting: {exc}") from None
    store = open_store(policy.store, home)
    try:
        return await summarize(store, start, end, key=args.key, model=args.model, group_by=groups)
    except UsageQueryError as exc:
        raise _Failure(f"--{'by' if exc.param == 'group_by' else exc.param}: {exc}") from None
    except StoreError as exc:
        raise _Failure(f"the state store cannot be read: {exc}", 1) from None
    finally:
        await store.close()


def _policy(given: str | None) -> Policy:
    path = Path(given or os.environ.get("CHAPERONE_POLICY") or DEFAULT_POLICY)
    try:
        registry = build_registry(extra=extra_modules_from_env(os.environ.get("CHAPERONE_PLUGINS")))
    except (ImportError, TypeError, ValueError) as exc:
        raise _Failure(f"cannot load plugins: {exc}") from None
    try:
        return load_policy(path, registry)
    except PolicyError as exc:
        raise _Failure(f"the policy has errors:\n{exc.report()}") from None


_COLUMNS = (
    ("REQUESTS", "requests", "{:d}"),
    ("COST USD", "cost_usd", "{:.6f}"),
    ("PROMPT", "prompt_tokens", "{:d}"),
    ("CACHED", "cached_tokens", "{:d}"),
    ("OUTPUT", "completion_tokens", "{:d}"),
    ("REASONING", "reasoning_tokens", "{:d}"),
    ("EST", "estimated", "{:d}"),
    ("ERRORS", "errors", "{:d}"),
    ("HITS", "cache_hits", "{:d}"),
    ("SAVED USD", "saved_usd", "{:.6f}"),
)


def table(summary: dict[str, Any]) -> str:
    """The summary as an aligned text table with a TOTAL line; numbers right-aligned."""
    groups = summary["group_by"]
    title = f"usage {summary['from']} .. {summary['to']} by {','.join(groups)}"
    if not summary["data"]:
        return f"{title}: no usage recorded"
    header = (*(g.upper() for g in groups), *(c[0] for c in _COLUMNS))
    rows = [
        (*(str(r[g]) for g in groups), *(fmt.format(r[name]) for _, name, fmt in _COLUMNS)) for r in summary["data"]
    ]
    totals = summary["totals"]
    rows.append(("TOTAL", *([""] * (len(groups) - 1)), *(fmt.format(totals[name]) for _, name, fmt in _COLUMNS)))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    text_columns = len(groups)

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([title, line(header), *(line(row) for row in rows)])
