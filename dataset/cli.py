"""``chaperone dataset list|show|export``: read the capture store under CHAPERONE_HOME (or a policy's, or --store)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from dataset.export import ExportOptions, export
from dataset.formats import FORMATS
from dataset.select import Filters, parse_time, select
from plugins._capture.schema import DEFAULT_PATH
from plugins._capture.store import CaptureStore

EXAMPLES = """examples:
  chaperone dataset list --model gpt-4o-mini --since 2026-12-01
  chaperone dataset show 3f2a9c...                      (one record, as JSON)
  chaperone dataset export --format openai-sft --out sft.jsonl --feedback good --val-fraction 0.1 \\
      --stratify model --eval-set heldout.jsonl --lang en
  chaperone dataset export --format openai-dpo --out dpo.jsonl --source judge_refine --source schema_repair
  chaperone dataset export --format eval --out heldout.jsonl --feedback good   (rows for chaperone eval run)

The store: --store FILE, else the capture step's path in --policy, else $CHAPERONE_HOME/capture/capture.sqlite.
Exports write FILE, FILE's .val split (with --val-fraction), FILE.labels.jsonl and FILE.manifest.json."""


def store_path(args: argparse.Namespace, env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    home = Path(env.get("CHAPERONE_HOME") or "~/.chaperone").expanduser()
    if args.store:
        return Path(args.store)
    if args.policy:
        data = yaml.safe_load(Path(args.policy).read_text()) or {}
        for steps in (data.get("chains") or {}).values():
            for step in steps or []:
                if isinstance(step, dict) and "capture" in step:
                    configured = Path((step["capture"] or {}).get("path") or DEFAULT_PATH)
                    return configured if configured.is_absolute() else home / configured
    return home / DEFAULT_PATH


def _filters(args: argparse.Namespace) -> Filters:
    return Filters(
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        models=tuple(args.model or ()), keys=tuple(args.key or ()), tags=tuple(args.tag or ()),
        feedback=args.feedback, min_judge_score=args.min_judge_score,
    )  # fmt: skip


def _list(args: argparse.Namespace, store: CaptureStore) -> int:
    rows = list(select(store, _filters(args), limit=args.limit))
    if args.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(_summary(row)).decode() + "\n")
        return 0
    print(f"{'request id':<36} {'time (UTC)':<19} {'key':<10} {'model':<20} {'st':>3} {'judge':>5} {'fb':<4} events")
    for row in rows:
        s = _summary(row)
        judge = "" if s["judge_score"] is None else f"{s['judge_score']:.2f}"
        print(f"{s['request_id']:<36} {s['time']:<19} {s['key']:<10.10} {s['model']:<20.20} {s['status']:>3} "
              f"{judge:>5} {s['feedback']:<4} {','.join(s['events'])}")  # fmt: skip
    print(f"{len(rows)} record(s)", file=sys.stderr)
    return 0


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    fb = row.get("feedback")
    mark = "" if fb is None else ("fix" if fb.get("correction") else {True: "+", False: "-"}.get(fb["good"], "?"))
    when = datetime.fromtimestamp(row["ts"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "request_id": row["request_id"], "time": when, "key": row["key"], "model": row["model"],
        "status": row["status"], "judge_score": row["judge_score"], "feedback": mark, "events": row["events"],
        "tags": row["tags"], "drafts": len(row.get("drafts") or []),
    }  # fmt: skip


def _show(args: argparse.Namespace, store: CaptureStore) -> int:
    found = list(store.rows("e.request_id = ?", [args.request_id]))
    if not found:
        print(f"no captured request {args.request_id!r}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(found[0], option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _export(args: argparse.Namespace, store: CaptureStore) -> int:
    if not 0 <= args.val_fraction < 1:
        print("--val-fraction must be in [0, 1)", file=sys.stderr)
        return 2
    options = ExportOptions(
        fmt=args.format, out=Path(args.out), val_out=Path(args.val_out) if args.val_out else None,
        val_fraction=args.val_fraction, stratify=args.stratify, seed=args.seed, near_threshold=args.near_threshold,
        min_chars=args.min_chars, max_chars=args.max_chars, languages=tuple(args.lang or ()),
        eval_set=Path(args.eval_set) if args.eval_set else None, sources=tuple(args.source or ()),
        include_negative=args.include_negative,
    )  # fmt: skip
    manifest = export(store, _filters(args), options)
    counts = manifest["counts"]
    print(f"wrote {counts['train']} train and {counts['validation']} validation line(s) to {args.out} "
          f"({', '.join(f'{k}={v}' for k, v in counts.items() if k not in ('train', 'validation'))})",
          file=sys.stderr)  # fmt: skip
    if args.strict and counts.get("invalid_dropped"):
        print(f"--strict: {counts['invalid_dropped']} line(s) failed the {args.format} rules", file=sys.stderr)
        return 1
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="the capture SQLite file")
    parser.add_argument("--policy", help="read the store path from this policy's capture step")
    parser.add_argument("--since", help="records finished at or after (ISO date/time, UTC)")
    parser.add_argument("--until", help="records finished before (ISO date/time, UTC)")
    parser.add_argument("--model", action="append", help="requested model (repeat for several)")
    parser.add_argument("--key", action="append", help="key name (repeat; '(open)' for an open policy)")
    parser.add_argument("--tag", action="append", help="records with this tag (repeat: any of them)")
    parser.add_argument("--feedback", default="any", choices=["any", "good", "bad", "none", "some", "corrected"],
                        help="feedback filter (good: thumbs up or a correction)")  # fmt: skip
    parser.add_argument("--min-judge-score", type=float, help="records the judge scored at least this")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaperone dataset", description="Captured traffic as fine-tuning data.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="list captured records")
    _common(listing)
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON summary per line")
    listing.set_defaults(func=_list)
    show = sub.add_parser("show", help="one record as JSON")
    show.add_argument("request_id")
    show.add_argument("--store", help="the capture SQLite file")
    show.add_argument("--policy", help="read the store path from this policy's capture step")
    show.set_defaults(func=_show)
    out = sub.add_parser("export", help="write a fine-tuning file", epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    _common(out)
    out.add_argument("--format", required=True, choices=FORMATS, help="target format")
    out.add_argument("--out", required=True, metavar="FILE", help="the (train) JSONL file")
    out.add_argument("--val-fraction", type=float, default=0.0, help="share held out for validation (default 0)")
    out.add_argument("--val-out", metavar="FILE", help="validation file (default FILE with .val before .jsonl)")
    out.add_argument("--stratify", help="split by this field: model, key, backend, source, tags, …")
    out.add_argument("--seed", default="chaperone", help="the split's hash salt (default chaperone)")
    out.add_argument("--near-threshold", type=float, default=0.9, help="near-duplicate Jaccard threshold")
    out.add_argument("--min-chars", type=int, default=1, help="answers shorter than this are dropped")
    out.add_argument("--max-chars", type=int, help="examples longer than this (all text) are dropped")
    out.add_argument("--lang", action="append", help="keep only this language (ISO 639-1; repeat)")
    out.add_argument("--eval-set", metavar="FILE", help="eval JSONL: nothing equal or near to its prompts is exported")
    out.add_argument("--source", action="append", help="only these sources (judge_refine, schema_repair, "
                     "judge_fallback, retry, demonstration, answer)")  # fmt: skip
    out.add_argument("--include-negative", action="store_true", help="SFT: keep answers with thumbs-down feedback")
    out.add_argument("--strict", action="store_true", help="exit 1 when any line failed the format's rules")
    out.set_defaults(func=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    path = store_path(args)
    try:
        store = CaptureStore(path, readonly=True)
    except FileNotFoundError as exc:
        print(f"chaperone dataset: {exc}", file=sys.stderr)
        return 2
    try:
        code: int = args.func(args, store)
    except ValueError as exc:
        print(f"chaperone dataset: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
