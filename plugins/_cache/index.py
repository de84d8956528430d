"""The semantic index: wordllama embeddings and one in-memory numpy matrix per partition.

Search is two-stage so it stays under 2 ms with 100k entries in a partition on one core: a coarse
pass over the first 64 dimensions of the rows (float32, 25 MB at 100k; wordllama's embeddings are
Matryoshka-trained, so a prefix is a usable embedding) keeps the rows within ``COARSE_MARGIN`` of the
threshold, and the best few dozen of those are re-scored on the full 256 dimensions (float16 rows,
51 MB at 100k). Rows are kept in insertion order; dropped rows are zeroed and compacted away once
they are a quarter of the matrix, and the oldest go first when the
partition reaches its entry cap. A lock guards each matrix: searches run in a worker thread.

Past ``IVF_MIN`` rows a full coarse scan is memory-bound (25 MB per query at 100k), so the partition
clusters its rows (k-means on the 64-d prefixes, about 2·√n clusters, retrained in the searching thread
each time the row count doubles; rows added since are put in their nearest cluster) and the coarse
pass scans only the ``IVF_PROBES`` clusters nearest the query. Rows that close to a query (cosine
≥ 0.6) practically always share one of its nearest clusters; a neighbour missed this way only costs
a miss, never a wrong answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from plugins._cache.guards import Features, features

DIM = 256
COARSE = 64
COARSE_MARGIN = 0.15
IVF_MIN = 16_384
"""From this many rows on, the coarse pass only scans the rows of the clusters nearest the query."""
IVF_PROBES = 12
"""How far below the threshold the 64-d prefix cosine may be and still get a full re-score (the largest
gap measured on the pair set, for pairs at full cosine ≥ 0.6, was 0.10)."""
_WORD_CACHE = 50_000

Vector = npt.NDArray[np.float32]


class Embedder:
    """wordllama (weights inside its wheel, no download) with a bounded cache of single-word vectors."""

    def __init__(self) -> None:
        self._model: Any = None
        self._words: OrderedDict[str, Vector] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model (about 0.2 s; call it from a thread)."""
        import wordllama  # type: ignore[import-untyped]

        self._model = wordllama.WordLlama.load(
            dim=DIM, cache_dir=Path(wordllama.__file__).parent, disable_download=True
        )

    def embed(self, text: str) -> Vector:
        """The raw (not normalised) 256-d embedding of ``text``."""
        return np.asarray(self._model.embed([text], norm=False)[0], dtype=np.float32)

    def word_similarity(self, a: list[str], b: list[str]) -> float:
        """The lowest, over the words of both lists, of the best cosine to a word of the other list."""
        va, vb = self._word_vectors(a), self._word_vectors(b)
        sims = va @ vb.T
        return float(min(sims.max(axis=1).min(), sims.max(axis=0).min()))

    def _word_vectors(self, words: list[str]) -> Vector:
        with self._lock:
            missing = [w for w in words if w not in self._words]
        if missing:
            vectors = self._model.embed(missing, norm=True)
            with self._lock:
                for word, vector in zip(missing, vectors, strict=True):
                    self._words[word] = np.asarray(vector, dtype=np.float32)
                while len(self._words) > _WORD_CACHE:
                    self._words.popitem(last=False)
        with self._lock:
            return np.stack([self._words[w] for w in words])


def split(vector: Vector) -> tuple[Vector, Vector]:
    """The normalised coarse prefix and the normalised full vector."""
    coarse = vector[:COARSE]
    return coarse / (np.linalg.norm(coarse) or 1.0), vector / (np.linalg.norm(vector) or 1.0)


@dataclass(slots=True)
class Candidate:
    similarity: float
    key: str
    text: str
    features: Features


@dataclass
class Partition:
    """The rows of one partition: vectors, the exact key each answers with, and the prompt text."""

    cap: int
    coarse: Vector = field(default_factory=lambda: np.zeros((16, COARSE), np.float32))
    fine: npt.NDArray[np.float16] = field(default_factory=lambda: np.zeros((16, DIM), np.float16))
    keys: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    feats: list[Features] = field(default_factory=list)
    where: dict[str, list[int]] = field(default_factory=dict)  # key -> its rows
    dead: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    centroids: Vector | None = None
    trained_at: int = 0
    order: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))  # rows sorted by cluster
    bounds: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(1, np.intp))  # cluster c: order[b[c]:b[c+1]]
    recent: list[list[int]] = field(default_factory=list)  # rows added since, per cluster

    def __len__(self) -> int:
        return len(self.keys) - self.dead

    def add(self, vector: Vector, key: str, text: str) -> None:
        """Append a row (its veto features computed now, about 70 µs, so searches never do it)."""
        coarse, fine = split(vector)
        feats = features(text)
        with self.lock:
            if len(self.keys) - self.dead >= self.cap:
                self._compact(drop_oldest=max(1, self.cap // 10))
            n = len(self.keys)
            if n == len(self.coarse):
                self.coarse = np.concatenate([self.coarse, np.zeros_like(self.coarse)])
                self.fine = np.concatenate([self.fine, np.zeros_like(self.fine)])
            self.coarse[n] = coarse
            self.fine[n] = fine
            if self.centroids is not None:
                self.recent[int(np.argmax(self.centroids @ coarse))].append(n)
            self.where.setdefault(key, []).append(n)
            self.keys.append(key)
            self.texts.append(text)
            self.feats.append(feats)

    def drop(self, key: str) -> None:
        with self.lock:
            for i in self.where.pop(key, ()):
                if self.keys[i] == key:
                    self.keys[i] = None
                    self.coarse[i] = 0
                    self.dead += 1
            if self.dead * 4 > len(self.keys):
                self._compact(drop_oldest=0)

    def search(self, vector: Vector, threshold: float, k: int) -> list[Candidate]:
        """Up to ``k`` live rows with full cosine ≥ ``threshold``, best first."""
        coarse, fine = split(vector)
        with self.lock:
            n = len(self.keys)
            if n == 0:
                return []
            if n >= IVF_MIN and n >= 2 * self.trained_at:
                self._train()
            rows = self._probe(coarse)
            scores = (self.coarse[:n] if rows is None else self.coarse[rows]) @ coarse
            top = np.flatnonzero(scores >= threshold - COARSE_MARGIN)
            m = 4 * k + 32
            if len(top) > m:
                top = top[np.argpartition(scores[top], len(top) - m)[len(top) - m :]]
            if rows is not None:
                top = rows[top]
            full = self.fine[top].astype(np.float32) @ fine
            order = np.argsort(-full)
            out: list[Candidate] = []
            for j in order[:k]:
                sim, i = float(full[j]), int(top[j])
                key = self.keys[i]
                if sim < threshold:
                    break
                if key is None:
                    continue
                out.append(Candidate(sim, key, self.texts[i], self.feats[i]))
            return out

    def _probe(self, coarse: Vector) -> npt.NDArray[np.intp] | None:
        """The rows of the clusters nearest ``coarse`` (None: no clusters yet, scan everything)."""
        if self.centroids is None:
            return None
        near = np.argsort(-(self.centroids @ coarse))[:IVF_PROBES]
        order, bounds = self.order, self.bounds
        parts = [order[bounds[c] : bounds[c + 1]] for c in near]
        parts += [np.asarray(self.recent[c], dtype=np.intp) for c in near if self.recent[c]]
        return np.concatenate(parts)

    def _train(self, iterations: int = 6, sample: int = 10_000) -> None:
        n = len(self.keys)
        k = int(2 * np.sqrt(n))
        rng = np.random.default_rng(n)
        data = self.coarse[rng.choice(n, size=min(n, sample), replace=False)]
        centroids = data[rng.choice(len(data), size=k, replace=False)].copy()
        for _ in range(iterations):
            labels = np.argmax(data @ centroids.T, axis=1)
            sums = np.zeros_like(centroids)
            np.add.at(sums, labels, data)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            filled = norms[:, 0] > 0
            centroids[filled] = sums[filled] / norms[filled]
        self.centroids = centroids
        self.trained_at = n
        self._assign_all()

    def _assign_all(self) -> None:
        assert self.centroids is not None
        n = len(self.keys)
        labels = np.empty(n, dtype=np.intp)
        for start in range(0, n, 8192):
            end = min(n, start + 8192)
            labels[start:end] = np.argmax(self.coarse[start:end] @ self.centroids.T, axis=1)
        self.order = np.argsort(labels, kind="stable")
        self.bounds = np.searchsorted(labels[self.order], np.arange(len(self.centroids) + 1))
        self.recent = [[] for _ in range(len(self.centroids))]

    def _compact(self, drop_oldest: int) -> None:
        live = [i for i, key in enumerate(self.keys) if key is not None][drop_oldest:]
        size = max(16, 1 << max(len(live), 1).bit_length())
        coarse = np.zeros((size, COARSE), np.float32)
        fine = np.zeros((size, DIM), np.float16)
        coarse[: len(live)] = self.coarse[live]
        fine[: len(live)] = self.fine[live]
        self.coarse, self.fine = coarse, fine
        self.keys = [self.keys[i] for i in live]
        self.where = {}
        for row, key in enumerate(self.keys):
            if key is not None:
                self.where.setdefault(key, []).append(row)
        self.texts = [self.texts[i] for i in live]
        self.feats = [self.feats[i] for i in live]
        self.dead = 0
        if self.centroids is not None:
            self._assign_all()
