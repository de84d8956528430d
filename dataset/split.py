"""A deterministic, hash-stable train/validation split, stratified, and the leakage check against an eval set.

Split: within each stratum (the values of ``--stratify FIELD``), rows are ranked by
``sha256(seed + id)`` and the ``round(n * fraction)`` lowest go to validation. The same rows and seed give
the same split on every run and machine; adding rows moves only the rows they outrank.

Leakage: an eval set is JSONL rows with ``messages`` (the ``chaperone eval`` input). An example whose
prompt (its user turns) is an exact or near duplicate of an eval row's prompt is removed before the split,
so nothing in train or validation crosses into the eval set.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from dataset.clean import NearIndex
from dataset.examples import Example, prompt_text


def rank(seed: str, example_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{example_id}".encode()).hexdigest()


def split(
    examples: list[Example], fraction: float, *, stratify: str | None, seed: str
) -> tuple[list[Example], list[Example]]:
    """(train, validation), each in the input's order."""
    if fraction <= 0:
        return list(examples), []
    strata: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        strata[example.field(stratify) if stratify else ""].append(example)
    held: set[str] = set()
    for members in strata.values():
        ranked = sorted(members, key=lambda e: rank(seed, e.id))
        held.update(e.id for e in ranked[: round(len(members) * fraction)])
    return [e for e in examples if e.id not in held], [e for e in examples if e.id in held]


def eval_prompts(path: Path) -> list[str]:
    """The user-side text of every row of an eval JSONL file (rows with ``messages``)."""
    texts = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row: Any = orjson.loads(line)
        except ValueError:
            raise ValueError(f"{path}:{n}: not JSON") from None
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list):
            raise ValueError(f"{path}:{n}: a row needs 'messages'")
        texts.append(prompt_text([m for m in messages if isinstance(m, dict)]))
    return texts


def remove_leaks(examples: list[Example], eval_texts: list[str], threshold: float) -> tuple[list[Example], int]:
    """Examples whose prompt is neither an exact nor a near duplicate of an eval prompt; how many were removed."""
    index = NearIndex(threshold)
    for text in eval_texts:
        index.add(text)
    kept = [e for e in examples if index.match(prompt_text(e.prompt)) is None]
    return kept, len(examples) - len(kept)
