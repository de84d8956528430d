"""Clean-up before export: exact duplicates, near duplicates (MinHash LSH, datasketch), length and language.

Texts are normalised (case folded, whitespace collapsed, PII placeholders kept as tokens) before
hashing, so "Hello  World" and "hello world" are exact duplicates. Near duplicates are pairs whose word
3-gram sets have an estimated Jaccard similarity at or above the threshold (128 permutations, fixed
seed: the same rows are dropped on every run). Of duplicates, the oldest row is kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from dataset.examples import Example

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"<[A-Z_]+(?:_\d+)?>|\w+", re.UNICODE)
_PLACEHOLDER = re.compile(r"<[A-Z_]+(?:_\d+)?>")
NUM_PERM = 128
SEED = 1


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text.casefold()).strip()


def exact_key(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def minhash(text: str) -> MinHash:
    words = _WORD.findall(normalize(text))
    shingles = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))} if words else {""}
    sketch = MinHash(num_perm=NUM_PERM, seed=SEED)
    sketch.update_batch([s.encode() for s in sorted(shingles)])
    return sketch


class NearIndex:
    """Texts seen so far; ``match`` says whether a text is an exact or near duplicate of one of them."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._exact: set[str] = set()
        # candidates from a looser index, weighted against misses; each is then checked against the threshold
        self._lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=NUM_PERM, weights=(0.2, 0.8))
        self._sketches: dict[str, MinHash] = {}

    def match(self, text: str) -> str | None:
        """``"exact"``, ``"near"`` or None."""
        if exact_key(text) in self._exact:
            return "exact"
        sketch = minhash(text)
        for other in self._lsh.query(sketch):
            if sketch.jaccard(self._sketches[other]) >= self.threshold:
                return "near"
        return None

    def add(self, text: str) -> None:
        key = exact_key(text)
        if key in self._exact:
            return
        self._exact.add(key)
        sketch = minhash(text)
        self._sketches[key] = sketch
        self._lsh.insert(key, sketch)


@dataclass(frozen=True, slots=True)
class Dropped:
    exact: int = 0
    near: int = 0


def dedupe(
    examples: Iterable[Example], text: Callable[[Example], str], threshold: float
) -> tuple[list[Example], Dropped]:
    """Drop exact and near duplicates (later rows), in order."""
    index = NearIndex(threshold)
    kept: list[Example] = []
    exact = near = 0
    for example in examples:
        body = text(example)
        found = index.match(body)
        if found == "exact":
            exact += 1
        elif found == "near":
            near += 1
        else:
            index.add(body)
            kept.append(example)
    return kept, Dropped(exact, near)


def language_of(text: str) -> str | None:
    """An ISO 639-1 code for ``text`` (langdetect, seeded so it is deterministic), None when unsure."""
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0
    cleaned = _PLACEHOLDER.sub(" ", text)
    if len(_WORD.findall(cleaned)) < 3:
        return None
    try:
        found = detect_langs(cleaned)
    except LangDetectException:
        return None
    return found[0].lang if found and found[0].prob >= 0.5 else None
