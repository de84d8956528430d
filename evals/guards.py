"""``chaperone eval plugins``: the policy's own guards scored on labelled data (precision, recall, F1).

The policy is compiled and its chain started in-process, exactly as ``chaperone scan`` does it; each
labelled text goes through the ``scan`` of the chain's ``pii`` and ``injection`` steps (their
configuration, thresholds and recognizers as the policy sets them; nothing is sent to a backend).

Labelled rows, one JSON object a line (the shipped ``benchmarks/data`` sets read as they are):
- PII: ``{"id"?, "text", "spans": [{"entity", "start", "end"} | {"entity", "value"}]}``; ``type`` may
  stand for ``entity``; a ``value`` is located at its first occurrence in the text.
- injection: ``{"id"?, "text", "label": 0|1}`` (or ``"injection": true|false``), ``"source": "user"``
  (a user message, the default) or ``"untrusted"`` (a tool result), ``"category"`` optional.
A row may carry both. PII is scored per entity type: a gold span is found when a finding of the same
type overlaps it; a finding overlapping no gold span of its type is a false positive. Injection is
scored as a binary detector (detected: the step's action is not ``allow``), overall and per category
(recall only: categories label attacks).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from proxy.exchange import ApiRequest


class GuardEvalError(ValueError):
    pass


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if tp + fp + fn else None)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": _r(precision), "recall": _r(recall), "f1": _r(f1)}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def gold_spans(row: dict[str, Any], where: str) -> list[tuple[str, int, int]]:
    text: str = row["text"]
    spans = []
    for span in row.get("spans") or row.get("entities") or []:
        entity = span.get("entity") or span.get("type")
        if isinstance(span.get("start"), int) and isinstance(span.get("end"), int):
            start, end = span["start"], span["end"]
        elif isinstance(span.get("value"), str) and span["value"] in text:
            start = text.index(span["value"])
            end = start + len(span["value"])
        else:
            raise GuardEvalError(f"{where}: a span needs start/end or a value found in the text: {span}")
        if not isinstance(entity, str):
            raise GuardEvalError(f"{where}: a span needs an 'entity' (or 'type')")
        spans.append((entity, start, end))
    return spans


def injection_label(row: dict[str, Any]) -> bool | None:
    if "injection" in row:
        return bool(row["injection"])
    if "label" in row:
        return bool(row["label"])
    return None


def request_for(text: str, source: str) -> ApiRequest:
    if source == "user":
        messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    else:  # a tool result: the untrusted source
        call = {"id": "call_eval", "type": "function", "function": {"name": "fetch", "arguments": "{}"}}
        messages = [
            {"role": "user", "content": "Use the tool result."},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_eval", "content": text},
        ]
    return ApiRequest("chat", "/chat/completions", {"model": "eval", "messages": messages})


class Tally:
    def __init__(self) -> None:
        self.pii: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # type -> tp, fp, fn
        self.inj: list[tuple[bool, bool, str]] = []  # label, detected, category

    def add_pii(self, gold: list[tuple[str, int, int]], found: list[tuple[str, int, int]]) -> None:
        for entity, start, end in gold:
            hit = any(e == entity and s < end and start < t for e, s, t in found)
            self.pii[entity][0 if hit else 2] += 1
        for entity, start, end in found:
            if not any(e == entity and s < end and start < t for e, s, t in gold):
                self.pii[entity][1] += 1

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pii:
            per = {k: prf(*v) for k, v in sorted(self.pii.items())}
            total = [sum(v[i] for v in self.pii.values()) for i in range(3)]
            out["pii"] = {"per_type": per, "micro": prf(*total)}
        if self.inj:
            tp = sum(1 for y, p, _ in self.inj if y and p)
            fp = sum(1 for y, p, _ in self.inj if not y and p)
            fn = sum(1 for y, p, _ in self.inj if y and not p)
            cats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for y, p, cat in self.inj:
                if y:
                    cats[cat][0] += 1
                    cats[cat][1] += int(p)
            per_cat = {c: {"attacks": n, "recall": round(hit / n, 4)} for c, (n, hit) in sorted(cats.items())}
            negatives = sum(1 for y, _, _ in self.inj if not y)
            out["injection"] = {**prf(tp, fp, fn), "rows": len(self.inj),
                                "false_positive_rate": round(fp / negatives, 4) if negatives else None,
                                "per_category": per_cat}  # fmt: skip
        return out


async def score(policy_path: Path, data: Path, chain_name: str | None, home: Path) -> dict[str, Any]:
    from proxy.policy import load_policy
    from proxy.registry import build_registry
    from proxy.runtime import Resources
    from proxy.scan import ScanFailed, _pick_chain, scan_targets
    from proxy.store import open_store

    policy = await asyncio.to_thread(load_policy, policy_path, build_registry())
    chain = _pick_chain(policy, chain_name)
    targets = {t.name: t for t in scan_targets(chain)[0] if t.name in ("pii", "injection")}
    if not targets:
        raise ScanFailed(f"chain {chain.name!r} has no pii or injection step to score")
    rows = _load(data)
    await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
    store = open_store(policy.store, home)
    tally = Tally()
    try:
        await chain.startup(Resources(store=store, home=home))
        try:
            for where, row in rows:
                await _score_row(targets, where, row, tally)
        finally:
            await chain.shutdown()
    finally:
        await store.close()
    return {"policy": str(policy_path), "chain": chain.name, "data": str(data), "rows": len(rows),
            "steps": sorted(targets), **tally.result()}  # fmt: skip


async def _score_row(targets: dict[str, Any], where: str, row: dict[str, Any], tally: Tally) -> None:
    text = row["text"]
    has_spans = "spans" in row or "entities" in row
    if "pii" in targets and has_spans:
        report = await targets["pii"].scan(request_for(text, "user")) or {}
        found = [(e["type"], e["start"], e["end"]) for e in report.get("entities", [])]
        tally.add_pii(gold_spans(row, where), found)
    label = injection_label(row)
    if "injection" in targets and label is not None:
        source = "user" if row.get("source", "user") == "user" else "untrusted"
        report = await targets["injection"].scan(request_for(text, source)) or {}
        tally.inj.append((label, report.get("action", "allow") != "allow", str(row.get("category", "-"))))


def _load(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise GuardEvalError(f"cannot read {path}: {exc.strerror or exc}") from None
    rows = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise GuardEvalError(f"{where}: not JSON: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise GuardEvalError(f"{where}: a row is an object with a 'text' string")
        rows.append((where, row))
    return rows


def _main(args: argparse.Namespace) -> int:
    from proxy.policy import PolicyError
    from proxy.scan import ScanFailed

    home = Path(args.home) if args.home else Path.home() / ".chaperone"
    try:
        result = asyncio.run(score(Path(args.policy), Path(args.data), args.chain, home))
    except PolicyError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    except (GuardEvalError, ScanFailed) as exc:
        print(f"chaperone eval plugins: {exc}", file=sys.stderr)
        return 2
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import os

    p = sub.add_parser("plugins", help="score the policy's pii and injection steps on labelled JSONL")
    p.add_argument("data", help="labelled JSONL (spans for PII, label for injection)")
    p.add_argument("--policy", default=os.environ.get("CHAPERONE_POLICY", "policies/default.yaml"))
    p.add_argument("--chain", help="chain to score (default: the policy's default chain)")
    p.add_argument("--out", help="also write the figures to this JSON file")
    p.add_argument("--home", default=os.environ.get("CHAPERONE_HOME"), help="state directory (the policy's store)")
    p.set_defaults(func=_main)
