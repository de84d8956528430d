"""Partition log rows: one row per written batch of answers (a chunk of it), not one per answer.

A partition's counter (``cache:n:<partition>``) numbers its answers; a batch that stores ``n`` answers
bumps it by ``n`` and takes the numbers ``first .. first + n - 1``. Its log row is written once, under
``cache:l:<partition>:<first>``, in the same store write as the answers: the exact keys in number
order, and in semantic mode each answer's last user turn and, behind a NUL byte, the float16
embeddings of the answers that have one. So a key only ever names a row at the first number of a
batch, and a reader walks the log forward: a row at ``first`` holding ``n`` keys means the next row
starts at ``first + n``. Where no row is (one counted and not yet written, expired, or lost with a
writer that died between the two steps), the next row starts within ``MAX_ROW`` numbers, and a reader
probes those at once.

A row holds at most ``MAX_ROW`` answers (``SEMANTIC_ROW`` with embeddings, ~25 KB, so it stays inline
in the diskcache store). Rows of one answer each, as the cache wrote them before it wrote batches
(``{"k": key, "t": text}``), read as batches of one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import orjson

from plugins._cache.index import DIM, Partition, Vector
from proxy.store import Store

MAX_ROW = 256
"""Answers per log row at most: a reader that finds no row at a number finds the next within this."""
SEMANTIC_ROW = 32
"""Answers per log row when they carry embeddings (512 bytes each, plus their text)."""
_VECTOR_BYTES = DIM * 2


class Logged(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def text(self) -> str | None: ...
    @property
    def vector(self) -> Vector | None: ...


@dataclass(frozen=True, slots=True)
class Row:
    """One log row: its first answer number, the exact keys in order, their texts and embeddings."""

    first: int
    keys: tuple[str, ...]
    texts: tuple[str, ...] = ()
    vectors: tuple[int, ...] = ()  # positions (in ``keys``) of the answers whose embedding is in ``tail``
    tail: bytes = b""

    @property
    def end(self) -> int:
        """The number after its last answer: where the next row starts."""
        return self.first + len(self.keys)


def row_size(items: Sequence[Logged]) -> int:
    """How many of a partition's answers one row holds (fewer when they carry embeddings)."""
    return SEMANTIC_ROW if any(item.vector is not None for item in items) else MAX_ROW


def encode(items: Sequence[Logged]) -> bytes:
    """The log row of consecutive answers (at most ``MAX_ROW``)."""
    head: dict[str, object] = {"n": len(items), "k": [item.key for item in items]}
    vectors = [i for i, item in enumerate(items) if item.vector is not None and item.text]
    if not vectors:
        return orjson.dumps(head)
    head["t"] = [item.text or "" for item in items]
    head["v"] = vectors
    tail = b"".join(items[i].vector.astype(np.float16).tobytes() for i in vectors)  # type: ignore[union-attr]
    return orjson.dumps(head) + b"\x00" + tail


def decode(first: int, raw: bytes) -> Row | None:
    """A row read from the store (either layout), or None when it is not one."""
    head, _, tail = raw.partition(b"\x00")  # JSON never holds a raw NUL byte
    try:
        meta = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(meta, dict):
        return None
    keys = meta.get("k")
    if isinstance(keys, str):  # one answer a row, as written before batches
        text = meta.get("t")
        texts: tuple[str, ...] = (text,) if isinstance(text, str) else ("",)
        return Row(first, (keys,), texts, (0,) if len(tail) == _VECTOR_BYTES and texts[0] else (), tail)
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        return None
    texts_in = meta.get("t")
    texts = tuple(t if isinstance(t, str) else "" for t in texts_in) if isinstance(texts_in, list) else ()
    positions = meta.get("v")
    vectors: tuple[int, ...] = ()
    if isinstance(positions, list) and len(tail) == len(positions) * _VECTOR_BYTES and len(texts) == len(keys):
        vectors = tuple(int(p) for p in positions if isinstance(p, int) and 0 <= p < len(keys))
        if len(vectors) != len(positions):
            vectors = ()
    return Row(first, tuple(keys), texts, vectors, tail)


def add_to_index(index: Partition, rows: Sequence[Row]) -> None:
    """Put rows' embeddings into a partition's index (in a worker thread: ~0.1 ms an answer)."""
    for row in rows:
        for j, position in enumerate(row.vectors):
            text = row.texts[position]
            if text:
                chunk = row.tail[j * _VECTOR_BYTES : (j + 1) * _VECTOR_BYTES]
                vector = np.frombuffer(chunk, dtype=np.float16).astype(np.float32)
                index.add(vector, row.keys[position], text)


async def walk(store: Store, partition: str, own: dict[int, int], begin: int, end: int) -> tuple[list[Row], list[int]]:
    """The log rows starting at ``begin .. end``, walked forward (each row says where the next starts),
    skipping ``own`` (rows this process wrote: first -> n); and the numbers where a row should have been
    and none was."""
    rows: list[Row] = []
    missing: list[int] = []
    n = begin
    while n <= end:
        if n in own:
            n += own[n]
            continue
        raw = await store.get(f"cache:l:{partition}:{n}")
        row = decode(n, raw) if raw is not None else None
        if row is not None:
            rows.append(row)
            n = row.end
            continue
        missing.append(n)  # the next row starts within MAX_ROW numbers: probe them all at once
        top = min(end, n + MAX_ROW)
        probe = list(range(n + 1, top + 1))
        mine = next((m for m in probe if m in own), None)
        if mine is not None:
            probe = probe[: probe.index(mine)]
        raws = await asyncio.gather(*(store.get(f"cache:l:{partition}:{m}") for m in probe))
        n = top + 1 if mine is None else mine
        for m, raw in zip(probe, raws, strict=True):
            row = decode(m, raw) if raw is not None else None
            if row is not None:
                rows.append(row)
                n = row.end
                break
            missing.append(m)
    return rows, missing
