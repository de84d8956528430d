"""``chaperone dataset export``: rows → examples → clean-up → leakage check → split → validated lines → manifest.

Every step's count goes into the manifest (``FILE.manifest.json`` beside ``FILE``: ``sft.jsonl`` gets
``sft.manifest.json``), with the filters and options, the capture policies' digests, the tool version and
the SHA-256 of every file written. Each example's source and request id are in ``FILE.labels.jsonl``, one
line per exported line, in the same order (so the training file itself holds only what the format allows).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dataset.clean import dedupe, language_of
from dataset.examples import Example, example_text, message_text, pair_examples, prompt_text, sft_example
from dataset.formats import PAIRED, problems, to_line
from dataset.select import Filters, select
from dataset.split import eval_prompts, remove_leaks, split
from plugins._capture.schema import SCHEMA_VERSION
from plugins._capture.store import CaptureStore


@dataclass(frozen=True, slots=True)
class ExportOptions:
    fmt: str
    out: Path
    val_out: Path | None = None
    val_fraction: float = 0.0
    stratify: str | None = None
    seed: str = "chaperone"
    near_threshold: float = 0.9
    min_chars: int = 1
    max_chars: int | None = None
    languages: tuple[str, ...] = ()
    eval_set: Path | None = None
    sources: tuple[str, ...] = ()
    include_negative: bool = False

    def validation_path(self) -> Path:
        return self.val_out or self.out.with_name(self.out.stem + ".val" + (self.out.suffix or ".jsonl"))


@dataclass(slots=True)
class _Run:
    counts: dict[str, int] = field(default_factory=dict)
    invalid: list[dict[str, Any]] = field(default_factory=list)


def _examples(rows: list[dict[str, Any]], options: ExportOptions, run: _Run) -> list[Example]:
    answered = [r for r in rows if r["status"] < 400 and r["error_code"] is None]
    usable = [r for r in answered if r.get("answer") is not None or (r.get("feedback") or {}).get("correction")]
    run.counts["errors_dropped"] = len(rows) - len(answered)
    run.counts["no_text"] = len(answered) - len(usable)
    if options.fmt in PAIRED:
        examples = [p for r in usable for p in pair_examples(r)]
        run.counts["pairs_built"] = len(examples)
    else:
        if not options.include_negative:
            negative = [r for r in usable if (r.get("feedback") or {}).get("good") is False
                        and not (r.get("feedback") or {}).get("correction")]  # fmt: skip
            run.counts["negative_feedback_dropped"] = len(negative)
            usable = [r for r in usable if r not in negative]
        examples = [e for r in usable if (e := sft_example(r)) is not None]
        run.counts["examples_built"] = len(examples)
    if options.sources:
        before = len(examples)
        examples = [e for e in examples if e.source in options.sources]
        run.counts["source_filtered"] = before - len(examples)
    return examples


def _clean(examples: list[Example], options: ExportOptions, run: _Run) -> list[Example]:
    before = len(examples)
    examples = [e for e in examples if len(message_text(e.chosen)) >= options.min_chars
                and (options.max_chars is None or len(example_text(e)) <= options.max_chars)]  # fmt: skip
    run.counts["length_dropped"] = before - len(examples)
    if options.languages:
        before = len(examples)
        wanted = set(options.languages)
        examples = [e for e in examples if language_of(f"{prompt_text(e.prompt)}\n{message_text(e.chosen)}") in wanted]
        run.counts["language_dropped"] = before - len(examples)
    examples, dropped = dedupe(examples, example_text, options.near_threshold)
    run.counts["exact_duplicates"] = dropped.exact
    run.counts["near_duplicates"] = dropped.near
    return examples


def _lines(examples: list[Example], options: ExportOptions, run: _Run) -> list[tuple[Example, bytes]]:
    good = []
    for example in examples:
        line = to_line(options.fmt, example)
        found = problems(options.fmt, line)
        if found:
            if len(run.invalid) < 20:
                run.invalid.append({"id": example.id, "problems": found[:5]})
            continue
        good.append((example, orjson.dumps(line)))
    return good


def _write(path: Path, lines: list[bytes]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = b"".join(line + b"\n" for line in lines)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {"path": path.name, "lines": len(lines), "sha256": hashlib.sha256(data).hexdigest()}


def _labels(split_name: str, lines: list[tuple[Example, bytes]]) -> list[bytes]:
    return [orjson.dumps({"line": n, "split": split_name, "id": e.id, "request_id": e.row["request_id"],
                          "source": e.source, "model": e.row["model"]})
            for n, (e, _) in enumerate(lines, 1)]  # fmt: skip


def export(store: CaptureStore, filters: Filters, options: ExportOptions) -> dict[str, Any]:
    """Run the export; returns the manifest (also written beside ``options.out``)."""
    run = _Run()
    rows = list(select(store, filters))
    run.counts["selected"] = len(rows)
    examples = _clean(_examples(rows, options, run), options, run)
    eval_info = None
    if options.eval_set is not None:
        texts = eval_prompts(options.eval_set)
        examples, leaked = remove_leaks(examples, texts, options.near_threshold)
        run.counts["eval_leakage_dropped"] = leaked
        eval_info = {"path": options.eval_set.name, "rows": len(texts),
                     "sha256": hashlib.sha256(options.eval_set.read_bytes()).hexdigest()}  # fmt: skip
    train, validation = split(examples, options.val_fraction, stratify=options.stratify, seed=options.seed)
    train_lines, val_lines = _lines(train, options, run), _lines(validation, options, run)
    run.counts["invalid_dropped"] = len(train) + len(validation) - len(train_lines) - len(val_lines)
    files = {"train": _write(options.out, [b for _, b in train_lines])}
    if options.val_fraction > 0:
        files["validation"] = _write(options.validation_path(), [b for _, b in val_lines])
    labels_path = options.out.with_name(options.out.stem + ".labels.jsonl")
    files["labels"] = _write(labels_path, _labels("train", train_lines) + _labels("validation", val_lines))
    run.counts["train"], run.counts["validation"] = len(train_lines), len(val_lines)
    manifest = _manifest(options, filters, run, rows, train_lines + val_lines, files, eval_info)
    manifest_path = options.out.with_name(options.out.stem + ".manifest.json")
    manifest_path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


def _manifest(options: ExportOptions, filters: Filters, run: _Run, rows: list[dict[str, Any]],
              written: list[tuple[Example, bytes]], files: dict[str, Any],
              eval_info: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    shown = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    shown["out"] = options.out.name
    shown["val_out"] = options.validation_path().name if options.val_fraction > 0 else None
    shown["eval_set"] = options.eval_set.name if options.eval_set else None
    return {
        "tool": "chaperone dataset export",
        "version": _version(),
        "capture_schema": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": options.fmt,
        "filters": filters.describe(),
        "options": shown,
        "counts": run.counts,
        "sources": dict(sorted(Counter(e.source for e, _ in written).items())),
        "policy_digests": sorted({r["policy_digest"] for r in rows if r.get("policy_digest")}),
        "eval_set": eval_info,
        "invalid_examples": run.invalid,
        "files": files,
    }


def _version() -> str:
    try:
        return importlib.metadata.version("chaperone")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
